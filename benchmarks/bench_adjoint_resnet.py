"""asv benchmarks of adjoint_resnet at smoke scale, through the task's own protocol (ctbench.smoke)."""

from ctbench import smoke

METHODS = ["backprop", "checkpoint", "adjoint_euler", "adjoint_heun", "torchdiffeq"]


class TrainingStep:
    """One fine-tuning step of the deep stage at depth 64."""

    params = METHODS
    param_names = ["impl"]

    def setup(self, impl):
        self.step = smoke.hot_step("adjoint_resnet", impl, {"depth": 64})
        self.step()

    def time_step(self, impl):
        self.step()

    def peakmem_step(self, impl):
        self.step()


class Quality:
    """Gradient error, reconstruction error and accuracy of the whole smoke protocol at depth 64."""

    params = METHODS
    param_names = ["impl"]
    timeout = 300

    def setup_cache(self):
        return {impl: smoke.run_case("adjoint_resnet", impl, {"depth": 64}).metrics for impl in METHODS}

    def track_grad_rel_error(self, metrics, impl):
        return metrics[impl]["grad_rel_error"]

    def track_test_accuracy(self, metrics, impl):
        return metrics[impl]["test_accuracy"]

    def track_step_peak_memory_mb(self, metrics, impl):
        return metrics[impl]["step_peak_memory_bytes"] / 1e6

    track_grad_rel_error.unit = "relative error"
    track_test_accuracy.unit = "fraction"
    track_step_peak_memory_mb.unit = "MB"
