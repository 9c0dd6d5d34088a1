"""asv benchmarks of gan_ntk at smoke scale, through the task's own protocol (ctbench.smoke)."""

from ctbench import smoke

TASK = "gan_ntk"
IMPLS = ["ipm", "lsgan", "vanilla", "finite_width"]
EIGHT_GAUSSIANS = {"experiment": "dynamics", "dataset": "eight_gaussians"}


class GeneratorIteration:
    """One generator iteration (discriminator fit + particle move) on eight Gaussians, 128 particles."""

    params = IMPLS
    param_names = ["impl"]

    def setup(self, impl):
        self.step = smoke.hot_step(TASK, impl, EIGHT_GAUSSIANS)
        self.step()

    def time_step(self, impl):
        self.step()

    def peakmem_step(self, impl):
        self.step()


class EmpiricalNTK:
    """The finite network's empirical NTK on 8 points (torch.func), by width."""

    params = [64, 256, 1024]
    param_names = ["width"]

    def setup(self, width):
        self.kernel = smoke.hot_step(TASK, "finite_width", {"experiment": "ntk_accuracy", "width": width})
        self.kernel()

    def time_kernel(self, width):
        self.kernel()

    def peakmem_kernel(self, width):
        self.kernel()


class Quality:
    """Distances reached, iterations/s and kernel throughput of the smoke protocol on eight Gaussians."""

    params = IMPLS
    param_names = ["impl"]
    timeout = 600

    def setup_cache(self):
        return {impl: smoke.run_case(TASK, impl, EIGHT_GAUSSIANS).metrics for impl in IMPLS}

    def track_sinkhorn_final(self, metrics, impl):
        return metrics[impl]["sinkhorn_final"]

    def track_sinkhorn_reduction(self, metrics, impl):
        return metrics[impl]["sinkhorn_reduction"]

    def track_modes_covered(self, metrics, impl):
        return metrics[impl]["modes_covered"]

    def track_iterations_per_s(self, metrics, impl):
        return metrics[impl]["iterations_per_s"]

    def track_kernel_entries_per_s(self, metrics, impl):
        return metrics[impl]["kernel_entries_per_s"]

    track_sinkhorn_final.unit = "Sinkhorn divergence"
    track_sinkhorn_reduction.unit = "x"
    track_modes_covered.unit = "modes"
    track_iterations_per_s.unit = "it/s"
    track_kernel_entries_per_s.unit = "entries/s"


class KernelAccuracy:
    """Relative error of the finite network's empirical NTK against the analytic NTK, by width."""

    params = [64, 256, 1024]
    param_names = ["width"]
    timeout = 300

    def setup_cache(self):
        return {
            w: smoke.run_case(TASK, "finite_width", {"experiment": "ntk_accuracy", "width": w}).metrics
            for w in self.params
        }

    def track_ntk_rel_error(self, metrics, width):
        return metrics[width]["ntk_rel_error"]

    track_ntk_rel_error.unit = "relative error"
