"""asv benchmarks of the harness itself: what ``ctbench run`` costs per case beyond the case's own work, with each
case's process forked from the warm template or started cold. The cases are the template task's (``tests/template``,
a linear solve of a few microseconds), so the time measured is the harness's."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "tests" / "template"
CASES = 8


class Harness:
    """``CASES`` trivial cases through the runner: wall time per case, warm against cold start."""

    params = ["warm", "cold"]
    param_names = ["start"]
    timeout = 600
    number = 1
    repeat = 3

    def setup(self, start):
        self.tmp = Path(tempfile.mkdtemp(prefix="ctbench-harness-"))
        shutil.copytree(TEMPLATE, self.tmp / "tasks")
        os.environ["CTBENCH_PATH"] = str(self.tmp / "tasks")  # read when ``suites`` is first imported, below
        from ctbench.api.implementation import reference_impls
        from ctbench.catalog import registry
        from ctbench.run.cases import expand
        from ctbench.run.runner import RunSettings

        task = registry.get_task("tiny")
        refs = reference_impls("tiny", task.interface)
        self.cases = expand(task, refs, "smoke", {"n": list(range(8, 8 + CASES))})
        self.settings = RunSettings(
            self.tmp / "out", self.tmp / "data", self.tmp / "cache", "cpu", threads=1, warm=start == "warm"
        )

    def teardown(self, start):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_per_case(self, start):
        from ctbench.run.runner import run

        shutil.rmtree(self.settings.out_dir, ignore_errors=True)
        run(self.cases, self.settings, say=lambda message: None)

    def track_overhead_per_case_s(self, start):
        """Wall time per case minus the cases' own recorded durations: process start and harness."""
        import time

        from ctbench.run.runner import run

        shutil.rmtree(self.settings.out_dir, ignore_errors=True)
        begin = time.perf_counter()
        outcome = run(self.cases, self.settings, say=lambda message: None)
        wall = time.perf_counter() - begin
        own = sum(c["duration_s"] for c in outcome.doc["cases"])
        return (wall - own) / len(self.cases)

    track_overhead_per_case_s.unit = "s"
