"""One case, in its own process: set the process state, load the task and the implementation, run the case
through the engine (``ctbench.run.protocol``), send the case record back.

``python -m ctbench.run.worker CASE.json FD ...`` is what the runner starts for every case (``ctbench.run.launch``): the
engine's marks and then the record go back through the inherited pipe ``FD`` (``ctbench.isolation.channel``);
``execute`` is the same thing in-process (no marks). A protocol that
raises produces a ``failed`` record with the error; a metric that is NaN or infinite makes the case ``failed``
too, never a silent number; so does a task that changes the process state.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ctbench.api import measure
from ctbench.api.claims import declared_only
from ctbench.api.implementation import load_class
from ctbench.api.measure import Meter
from ctbench.api.task import Context, Scale
from ctbench.catalog.registry import get_task
from ctbench.isolation.channel import Writer
from ctbench.isolation.lifetime import CGROUP_ENV, die_with_parent
from ctbench.machine.env import hardware_label, node
from ctbench.run import process
from ctbench.run.protocol import run_case
from ctbench.store.record import ERROR_TAIL, Record


def host_facts() -> dict[str, Any]:
    """Where a case ran: the host's name and its hardware label (cases of one run may run on several machines)."""
    facts = node()
    gpus = facts["gpus"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus and visible and visible.split(",")[0].isdigit():  # the GPU this case was given (Ray sets the variable)
        first = int(visible.split(",")[0])
        facts["gpus"] = [g for g in gpus if g.get("index") == first] or gpus
    return {"host": facts["hostname"], "hardware": hardware_label(facts)}


def case_state(scale: Scale, device: str, run_threads: int) -> process.State:
    """The process state of a case: the scale's declared threads on a CPU, else the run's ``--threads``."""
    threads = scale.threads if scale.threads is not None and device == "cpu" else run_threads
    return process.State(threads=threads)


def execute(case: dict[str, Any], device: str, data_root: Path, cache_dir: Path, threads: int = 0) -> Record:
    """Run one case (``Case.to_json()`` form) and return its record."""
    record = Record.blank(case)
    start = time.perf_counter()
    state = process.current()
    try:
        task = get_task(case["task"])
        scale = task.scales[case["scale"]]
        state = process.apply(case_state(scale, device, threads))  # imports torch._dynamo, as the first optimiser
        implementation = load_class(record["impl_spec"])
        gc.collect()  # what the imports made, out of the collector's sight (as the warm template does before it
        gc.freeze()  # forks): the engine's collection before each memory reading then scans the case's objects
        process.seed_everything(case["seed"])
        dev = torch.device(device)
        ctx = Context(dev, Path(data_root), Path(cache_dir), case["seed"], Meter(dev, task.phases),
                      stored=case.get("stored_metrics"))  # fmt: skip
        result = run_case(task, implementation(), scale, case["params"], ctx, state, case.get("step_only", False))
        result.checks = declared_only((claim.name for claim in task.claims), result.checks)
        record.fill(result)
        if record["status"] == "invalid":
            record["expected_invalid"] = task.expected_invalid(record["impl"], scale, case["params"])
    except Exception as exc:
        tb = traceback.format_exc()
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}\n{tb[-ERROR_TAIL:]}")
    record.update(host_facts())
    record["duration_s"] = time.perf_counter() - start
    record["device"] = device
    record["threads"] = state.threads
    record["process"] = state.as_record()
    return record


def send(channel: Writer, record: Record) -> None:
    """Send the record through the runner's channel, behind the case's secret (the one channel the runner reads)."""
    channel.record(record.to_json())


def join_cgroup() -> None:
    """Join the case's cgroup when the runner made one (``ctbench.run.launch``), before anything of the case runs."""
    procs = os.environ.pop(CGROUP_ENV, None)
    if procs:
        try:
            Path(procs).write_text(str(os.getpid()))
        except OSError:  # the runner placed us itself, or its watch holds the case alone
            pass


def main(argv: list[str]) -> int:
    """``python -m ctbench.run.worker CASE.json FD DEVICE DATA_ROOT CACHE_DIR THREADS``."""
    die_with_parent()
    join_cgroup()
    case_path, fd, device, data_root, cache_dir, threads = argv
    case = json.loads(Path(case_path).read_text())
    secret = case.pop("secret")
    Path(case_path).unlink()  # the secret leaves the disk before any task or submission code runs
    channel = Writer(int(fd), secret)
    measure.announce(channel.mark)  # the engine's marks go to the runner, which times them on its own clock
    send(channel, execute(case, device, Path(data_root), Path(cache_dir), int(threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
