"""asv benchmarks of neis at smoke scale, through the task's own protocol (ctbench.smoke)."""

from ctbench import smoke

METHODS = ["vanilla_is", "ais", "neis_linear", "neis_gradient", "neis_mlp"]
TARGETS = ["eg1", "eg2"]


class Sampling:
    """One draw of n_time estimates of Z from the fitted estimator (NEIS: trained at smoke budget)."""

    params = (METHODS, TARGETS)
    param_names = ["impl", "target"]
    timeout = 300

    def setup(self, impl, target):
        self.step = smoke.hot_step("neis", impl, {"target": target})
        self.step()

    def time_step(self, impl, target):
        self.step()

    def peakmem_step(self, impl, target):
        self.step()


class Quality:
    """Variance at equal cost, its reduction against vanilla IS, cost and throughput of the smoke protocol."""

    params = (METHODS, TARGETS)
    param_names = ["impl", "target"]
    timeout = 600

    def setup_cache(self):
        return {
            (impl, target): smoke.run_case("neis", impl, {"target": target}).metrics
            for impl in METHODS
            for target in TARGETS
        }

    def track_variance_reduction(self, metrics, impl, target):
        return metrics[(impl, target)].get("variance_reduction", float("nan"))

    def track_rel_var_x_cost(self, metrics, impl, target):
        return metrics[(impl, target)]["rel_var_x_cost"]

    def track_cost_per_sample(self, metrics, impl, target):
        return metrics[(impl, target)]["cost_per_sample"]

    def track_u1_evals_per_s(self, metrics, impl, target):
        return metrics[(impl, target)]["u1_evals_per_s"]

    track_variance_reduction.unit = "x"
    track_rel_var_x_cost.unit = "relative variance"
    track_cost_per_sample.unit = "U1 evaluations"
    track_u1_evals_per_s.unit = "U1 evaluations/s"
