"""asv: building the HTML report over many cases (synthetic ``adjoint_resnet`` run files, see
``report.benchmark_build``): loading, aggregation, the task's plots, every page and the CSV files."""

from pathlib import Path

from report import build_report
from report.benchmark_build import synthetic_runs


class ReportBuild:
    params = [1000, 10000]
    param_names = ["cases"]
    number = 1
    repeat = 1
    rounds = 2
    warmup_time = 0
    timeout = 600

    def setup_cache(self):
        # asv runs setup_cache and the benchmarks in the same temporary folder
        for n in self.params:
            synthetic_runs(n, Path(f"runs-{n}"))

    def time_build(self, cases):
        build_report([Path(f"runs-{cases}")], Path(f"site-{cases}"))

    def peakmem_build(self, cases):
        build_report([Path(f"runs-{cases}")], Path(f"site-{cases}"))
