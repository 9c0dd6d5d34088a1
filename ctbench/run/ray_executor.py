"""Cases spread over a Ray cluster (``ctbench run --executor ray --ray-address HOST:PORT``; ``pip install
ctbench[ray]``).

Each case is a Ray task that starts the same contained worker process on its node (``ctbench.run.launch``), so
timeouts, crash containment, memory limits and sandboxing are those of a local run; records stream back to the
driver, which journals them, so Ctrl-C and resume behave as locally.

Placement keeps measurements honest: the driver places every case itself (Ray's node affinity), at most
``cases_per_node`` cases at a time on a node's CPUs (default 1: a timed case never shares its cores), and a CUDA case
on a whole GPU (``num_gpus=1``; Ray sets ``CUDA_VISIBLE_DEVICES``), one case per GPU. Each record says how many other
cases ran beside it on its node (``beside``). Cases whose durations earlier runs recorded go longest first.

Faults: a case whose node is lost mid-case is retried once on another node, then recorded as failed with the
reason; a case is journalled exactly once. An unreachable address is a usage error before any case starts.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ctbench.catalog.registry import UsageError
from ctbench.run.cases import Case
from ctbench.run.executors import Finished, Pending
from ctbench.run.records import record_of, stop_record
from ctbench.run.settings import RunSettings
from ctbench.store.results import run_files

RETRIES = 1  # a case whose node was lost runs once more elsewhere

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # torch's default thread count reads them
THREAD_ENV = "CTBENCH_THREAD_ENV"


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A usage error unless something listens at ``HOST:PORT`` (before Ray's own connection retries)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--ray-address {address!r}: expected HOST:PORT (the head node's GCS address)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UsageError(
            f"--ray-address {address}: nothing answers there ({exc}); is `ray start --head` running?"
        ) from None


def earlier_durations(out_dir: Path) -> dict[str, float]:
    """Case key -> duration in seconds, from the run files already in ``out_dir`` (longest-first ordering)."""
    durations: dict[str, float] = {}
    for path in run_files([out_dir]) if out_dir.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
            for c in doc.get("cases", []):
                key = json.dumps(
                    [c["task"], c["impl_spec"], c["submission"], c["scale"], c["params"], c["seed"]], sort_keys=True
                )
                if isinstance(c.get("duration_s"), (int, float)):
                    durations[key] = float(c["duration_s"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return durations


def _case_on_node(case_json: dict[str, Any], settings: RunSettings, timeout_s: float, submission: bool) -> dict:
    """In a Ray task on its node: run the case contained, exactly as a local run would (the sandbox decided by
    what this node has); return its outcome, the node's facts, the sandbox and the memory limit used."""
    from dataclasses import asdict

    from ctbench.isolation.lifetime import become_subreaper
    from ctbench.isolation.sandbox import bwrap
    from ctbench.machine.env import node
    from ctbench.run.launch import Limits, launch

    become_subreaper()
    restore_thread_env()
    sandbox = settings.sandbox == "on" or (settings.sandbox == "auto" and submission and bwrap() is not None)
    limit = settings.memory_limit()  # the node's own RAM unless --max-memory was given
    outcome = launch(
        case_json,
        settings.worker_args(),
        Limits(timeout_s, limit),
        sandbox=sandbox,
        hidden=[settings.out_dir],
        device=settings.device,
    )
    return {"outcome": asdict(outcome), "node": node(), "sandboxed": sandbox, "limit": limit}


class RayExecutor:
    """Cases on a Ray cluster, placed by the driver: ``cases_per_node`` CPU cases or one case per GPU on a node."""

    name = "ray"

    def __init__(self, settings: RunSettings, address: str, cases_per_node: int = 1, say: Callable = print):
        check_reachable(address)
        host = address.rpartition(":")[0]
        if host in ("127.0.0.1", "localhost"):
            # a cluster on this machine's loopback (tests, one-machine labs): Ray would otherwise rewrite the address
            # to the machine's interface address, where nothing listens; read when ray is imported
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray

        self.settings, self.address, self.per_node, self.say = settings, address, cases_per_node, say
        ray.init(address=address, runtime_env={"env_vars": _forwarded_env()}, log_to_driver=False)
        self.ray = ray
        self.nodes: dict[str, dict[str, Any]] = {}
        self.remote = ray.remote(max_retries=0)(_case_on_node)

    def _capacity(self) -> dict[str, int]:
        """Node id -> how many cases it may run at once (alive nodes only)."""
        capacity = {}
        for n in self.ray.nodes():
            if not n.get("Alive"):
                continue
            resources = n.get("Resources", {})
            if self.settings.device.startswith("cuda"):
                slots = int(resources.get("GPU", 0))
            else:
                slots = min(self.per_node, int(resources.get("CPU", 0)))
            if slots > 0:
                capacity[n["NodeID"]] = slots
        return capacity

    def _submit(self, case: Case, timeout: float, node_id: str) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        gpu = self.settings.device.startswith("cuda")
        options = {
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False),
            "num_cpus": 0 if gpu else 1,
            "num_gpus": 1 if gpu else 0,
        }
        submission = case.impl.submission != "reference"
        return self.remote.options(**options).remote(case.to_json(), self.settings, timeout, submission)

    def run(self, pending: Pending, may_start: Callable[[], bool], label: Callable[[Case], str]) -> Finished:
        running: dict[Any, tuple[Case, float, str, int, int]] = {}  # ref -> case, timeout, node, beside, attempt
        try:
            yield from self._dispatch(pending, may_start, label, running)
        finally:  # Ctrl-C or an error: stop the cases still running; the journal keeps the finished ones
            for ref in running:
                self.ray.cancel(ref, force=True)

    def _dispatch(
        self, pending: Pending, may_start: Callable[[], bool], label: Callable[[Case], str], running: dict
    ) -> Finished:
        durations = earlier_durations(self.settings.out_dir)
        queue = sorted(pending, key=lambda ct: -durations.get(_key(ct[0]), float("inf")))
        load: dict[str, int] = {}
        lost: dict[str, set[str]] = {}  # case key -> nodes it was lost on
        while queue or running:
            capacity = self._capacity()
            while queue:
                case, timeout = queue[0]
                if not may_start():
                    queue.pop(0)
                    yield case, None
                    continue
                free = [n for n, c in capacity.items() if load.get(n, 0) < c and n not in lost.get(case.key, ())]
                if not free:
                    if not running and not capacity:
                        raise RuntimeError("no Ray node with free CPUs (or GPUs for a CUDA run) is alive")
                    if not running:  # every alive node already lost this case
                        queue.pop(0)
                        tries = len(lost.get(case.key, ()))
                        yield case, self._lost_record(case, timeout, "no other node left to retry on", tries)
                        continue
                    break
                node_id = min(free, key=lambda n: load.get(n, 0))
                queue.pop(0)
                attempt = len(lost.get(case.key, ()))
                ref = self._submit(case, timeout, node_id)
                running[ref] = (case, timeout, node_id, load.get(node_id, 0), attempt)
                load[node_id] = load.get(node_id, 0) + 1
                self.say(f"{label(case)} -> node {node_id[:8]}")
            if not running:
                continue
            done, _ = self.ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                case, timeout, node_id, beside, attempt = running.pop(ref)
                load[node_id] -= 1
                try:
                    result = self.ray.get(ref)
                except self.ray.exceptions.TaskCancelledError:  # the driver is being interrupted
                    raise KeyboardInterrupt from None
                except self.ray.exceptions.RayTaskError as exc:  # ctbench failed on the node: not a lost node
                    detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                    error = f"the case could not be started on node {node_id[:8]}: {detail}"
                    yield case, stop_record(case, "failed", error, self.settings, 0.0)
                    continue
                except self.ray.exceptions.RayError as exc:  # the node or its worker died mid-case
                    lost.setdefault(case.key, set()).add(node_id)
                    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    if attempt < RETRIES:
                        self.say(f"        {case.label()}: node {node_id[:8]} lost ({reason}); retrying elsewhere")
                        queue.insert(0, (case, timeout))
                    else:
                        yield case, self._lost_record(case, timeout, reason, attempt + 1)
                    continue
                yield case, self._record(case, timeout, result, beside, node_id)

    def _record(self, case: Case, timeout: float, result: Mapping[str, Any], beside: int, node_id: str) -> dict:
        from ctbench.machine.env import hardware_label
        from ctbench.run.launch import Outcome

        facts = result["node"]
        self.nodes[facts["hostname"]] = facts
        where = {"host": facts["hostname"], "hardware": hardware_label(facts)}  # as the node, not the case, says
        outcome = Outcome(**result["outcome"])
        record = record_of(outcome, case, self.settings, timeout, result["sandboxed"], where, result["limit"])
        return {**record, "beside": beside, "node_id": node_id}

    def _lost_record(self, case: Case, timeout: float, reason: str, tries: int) -> dict:
        error = f"its node was lost {tries} time(s) and no retry was left or possible: {reason}"
        return stop_record(case, "failed", error, self.settings, 0.0)

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "ray_address": self.address, "cases_per_node": self.per_node, "start": "cold"}

    def close(self) -> None:
        self.ray.shutdown()


def _key(case: Case) -> str:
    return json.dumps(
        [case.task, case.impl.spec, case.impl.submission, case.scale, dict(case.params), case.seed], sort_keys=True
    )


def _forwarded_env() -> dict[str, str]:
    """The variables a case's process needs on every node: every ``CTBENCH_*`` (task roots, the cache...), the
    import path, and the driver's thread variables (``THREAD_VARS``, set or not) in ``CTBENCH_THREAD_ENV``."""
    env = {k: v for k, v in os.environ.items() if k.startswith("CTBENCH_") or k == "PYTHONPATH"}
    env[THREAD_ENV] = json.dumps({k: os.environ.get(k) for k in THREAD_VARS})
    return env


def restore_thread_env() -> None:
    """Put the driver's thread variables back in this Ray worker's environment, which a case's process inherits.
    Ray sets ``OMP_NUM_THREADS`` in its workers where it is unset (1 for a task that asks no CPU, as a GPU case),
    and torch takes it for its default thread count: without this, ``--threads auto`` on a GPU would mean one
    thread on a Ray node and one per core locally."""
    for name, value in json.loads(os.environ.get(THREAD_ENV, "{}")).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
