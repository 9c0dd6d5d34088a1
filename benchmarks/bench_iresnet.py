"""asv benchmarks of iresnet at smoke scale, through the task's own protocol (ctbench.smoke)."""

import torch

from ctbench import smoke
from ctbench.measure import peak_memory

METHODS = ["iresnet", "residual_flow", "exact", "normflows_residual", "freia_iresnet"]


class HotStep:
    """One training step (freia_iresnet: one forward + log-det) on the 2-D smoke flow, 4 series terms."""

    params = METHODS
    param_names = ["impl"]

    def setup(self, impl):
        self.step = smoke.hot_step("iresnet", impl)
        self.step()

    def time_step(self, impl):
        self.step()

    def peakmem_step(self, impl):
        self.step()


class MemoryInTerms:
    """Working memory of one training step against the number of series terms: the truncated series' graph
    grows with the terms, the Neumann gradient's does not."""

    params = (["iresnet", "residual_flow"], [2, 8, 32])
    param_names = ["impl", "terms"]

    def setup(self, impl, terms):
        self.step = smoke.hot_step("iresnet", impl, {"terms": terms})
        self.step()

    def track_step_memory_mb(self, impl, terms):
        return peak_memory(self.step, torch.device("cpu"), repeat=3).step_bytes / 1e6

    track_step_memory_mb.unit = "MB"


class Quality:
    """Test NLL, estimator error and inversion error of the whole smoke protocol."""

    params = METHODS
    param_names = ["impl"]
    timeout = 300

    def setup_cache(self):
        return {impl: smoke.run_case("iresnet", impl).metrics for impl in METHODS}

    def track_test_nll(self, metrics, impl):
        return metrics[impl].get("test_nll", float("nan"))

    def track_logdet_std(self, metrics, impl):
        return metrics[impl]["logdet_std"]

    def track_inverse_error(self, metrics, impl):
        return metrics[impl]["inverse_error"]

    track_test_nll.unit = "nats"
    track_logdet_std.unit = "nats"
    track_inverse_error.unit = "relative error"
