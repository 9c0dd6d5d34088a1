"""asv benchmarks of implicit_jfb at smoke scale, through the task's own protocol (ctbench.smoke)."""

from ctbench import smoke

METHODS = ["jfb", "ift", "ift_cg", "unrolled", "explicit", "torchdeq_ift", "torchdeq_onestep"]
IMPLICIT = [m for m in METHODS if m != "explicit"]
SOLVERS = ["fixed_point", "anderson"]


class TrainingStep:
    """One training step (forward solve, backward, Adam) at tolerance 1e-2."""

    params = (METHODS, SOLVERS)
    param_names = ["impl", "solver"]

    def setup(self, impl, solver):
        self.step = smoke.hot_step("implicit_jfb", impl, {"solver": solver})
        self.step()

    def time_step(self, impl, solver):
        self.step()

    def peakmem_step(self, impl, solver):
        self.step()


class Quality:
    """Gradient cosine, Jacobian products, backward time and accuracy of the whole smoke protocol, for the
    methods that solve for the fixed point (the explicit network has no implicit gradient to compare with)."""

    params = IMPLICIT
    param_names = ["impl"]
    timeout = 600

    def setup_cache(self):
        return {impl: smoke.run_case("implicit_jfb", impl).metrics for impl in IMPLICIT}

    def track_grad_cosine(self, metrics, impl):
        return metrics[impl]["grad_cosine"]

    def track_backward_jacobian_products(self, metrics, impl):
        return metrics[impl]["backward_jacobian_products"]

    def track_backward_time_ms(self, metrics, impl):
        return metrics[impl]["backward_time_s"] * 1e3

    def track_test_accuracy(self, metrics, impl):
        return metrics[impl]["test_accuracy"]

    track_grad_cosine.unit = "cosine"
    track_backward_jacobian_products.unit = "products"
    track_backward_time_ms.unit = "ms"
    track_test_accuracy.unit = "fraction"
