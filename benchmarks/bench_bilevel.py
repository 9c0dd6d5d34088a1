"""asv benchmarks of bilevel at smoke scale, through the task's own protocol (ctbench.smoke)."""

from ctbench import smoke

SOLVERS = ["soba", "saba", "stocbio", "amigo", "fsla", "full_batch"]
PROBLEMS = ["quadratic", "hyperparam", "hyperparam-covtype"]


class SolverStep:
    """One step (iteration) of each solver."""

    params = (SOLVERS, PROBLEMS)
    param_names = ["impl", "problem"]

    def setup(self, impl, problem):
        self.step = smoke.hot_step("bilevel", impl, {"problem": problem})
        self.step()

    def time_step(self, impl, problem):
        self.step()

    def peakmem_step(self, impl, problem):
        self.step()


class Convergence:
    """Final suboptimality, time to 1e-3 and cost ratio of the whole smoke protocol on the quadratic."""

    params = SOLVERS
    param_names = ["impl"]
    timeout = 300

    def setup_cache(self):
        return {impl: smoke.run_case("bilevel", impl, {"problem": "quadratic"}).metrics for impl in SOLVERS}

    def track_final_suboptimality(self, metrics, impl):
        return metrics[impl]["final_suboptimality"]

    def track_cost_ratio_vs_sgd(self, metrics, impl):
        return metrics[impl]["cost_ratio_vs_sgd"]

    def track_state_bytes(self, metrics, impl):
        return metrics[impl]["state_bytes"]

    track_final_suboptimality.unit = "h - h*"
    track_cost_ratio_vs_sgd.unit = "x"
    track_state_bytes.unit = "bytes"
