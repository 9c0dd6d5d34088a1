"""The particle dynamics of the paper (Franceschi et al. 2022, eq. 3 without a generator network):

    for t = 1..T:   fit f on (x^{t-1}, y);   x^t = x^{t-1} + eta v(x^{t-1}),   v = -grad_x l_gen(f(x))

with the distances of ``metrics`` recorded every ``eval_every`` iterations. The run stops as *diverged* at the
first iteration whose particles are not finite or leave the ball of radius ``diverge_factor`` x max_j |y_j|.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ctbench import expect_tensor
from suites.gan_ntk import metrics
from suites.gan_ntk.data import Problem
from suites.gan_ntk.interface import DiscriminatorDynamics


@dataclass
class Trajectory:
    """Final particles, the metric curves ``{name: [[iteration, value], ...]}``, and the divergence, if
    any."""

    particles: torch.Tensor
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    diverged_at: int | None = None
    diverged_reason: str = ""


def step_fn(impl: DiscriminatorDynamics, target: torch.Tensor, eta: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """One generator iteration x -> x + eta v(x), v from the discriminator fitted on (x, target)."""

    what = f"{type(impl).__name__}.witness_gradient (the velocity at the particles)"

    def step(x: torch.Tensor) -> torch.Tensor:
        return x + eta * expect_tensor(impl.witness_gradient(x, target), tuple(x.shape), x.dtype, what)

    return step


class Evaluator:
    """The distances between particles and target, with the case's fixed settings (MMD bandwidth, modes)."""

    def __init__(self, problem: Problem, cfg: Mapping[str, Any]):
        self.problem, self.cfg = problem, cfg
        self.bandwidth = metrics.median_distance(problem.target)

    def __call__(self, x: torch.Tensor) -> dict[str, float]:
        y, cfg = self.problem.target, self.cfg
        out = {
            "sinkhorn": metrics.sinkhorn_divergence(x, y, cfg["sinkhorn_blur"], cfg["sinkhorn_scaling"]),
            "mmd": metrics.mmd(x, y, self.bandwidth),
            "energy": metrics.energy_distance(x, y),
        }
        if self.problem.centers is not None:
            radius = cfg["mode_radius_std"] * self.problem.mode_std
            covered, quality = metrics.modes_covered(x, self.problem.centers, radius, cfg["mode_min_fraction"])
            out.update(modes_covered=float(covered), high_quality_fraction=quality)
        return out


def divergence(x: torch.Tensor, limit: float) -> str:
    """Why ``x`` counts as diverged, or '' if it does not."""
    if not bool(torch.isfinite(x).all()):
        return "particles are not finite"
    top = float(x.flatten(1).norm(dim=1).max())
    return f"max |x| = {top:.4g} > {limit:.4g}" if top > limit else ""


def run(impl: DiscriminatorDynamics, problem: Problem, cfg: Mapping[str, Any], evaluate: Evaluator) -> Trajectory:
    """Iterate ``cfg['iterations']`` generator steps from ``problem.particles``."""
    limit = cfg["diverge_factor"] * float(problem.target.flatten(1).norm(dim=1).max())
    step = step_fn(impl, problem.target, cfg["eta"])
    x = problem.particles.clone()
    traj = Trajectory(x)
    iterations, every = cfg["iterations"], cfg["eval_every"]
    for it in range(iterations + 1):
        if it % every == 0 or it == iterations:
            for name, value in evaluate(x).items():
                traj.series.setdefault(name, []).append([float(it), value])
        if it == iterations:
            break
        new = step(x).detach()
        reason = divergence(new, limit)
        if reason:
            traj.diverged_at, traj.diverged_reason = it + 1, reason
            break
        x = traj.particles = new
    return traj


def grid_field(impl: DiscriminatorDynamics, points: list[torch.Tensor], size: int) -> tuple[list, list]:
    """The velocity field of the last fitted discriminator on a size x size grid over the points' bounding box
    (padded by 10%): (grid points, vectors), each a list of [x, y]."""
    both = torch.cat(points).double()
    lo, hi = both.min(0).values, both.max(0).values
    pad = 0.1 * (hi - lo)
    axes = [torch.linspace(float(a - p), float(b + p), size) for a, b, p in zip(lo, hi, pad, strict=True)]
    grid = torch.cartesian_prod(*axes).to(points[0])
    vectors = expect_tensor(impl.field(grid), tuple(grid.shape), grid.dtype, f"{type(impl).__name__}.field").detach()
    return grid.double().round(decimals=4).tolist(), vectors.double().round(decimals=4).tolist()


def final_metrics(traj: Trajectory) -> dict[str, float]:
    """Final and initial values of every curve, and the Sinkhorn reduction factor."""
    out = {f"{name}_final": points[-1][1] for name, points in traj.series.items()}
    first, last = traj.series["sinkhorn"][0][1], traj.series["sinkhorn"][-1][1]
    out["sinkhorn_initial"] = first
    if last > 0:  # a debiased divergence can round to <= 0 when the clouds coincide: no finite ratio then
        out["sinkhorn_reduction"] = first / last
    for name in ("modes_covered", "high_quality_fraction"):
        if f"{name}_final" in out:
            out[name] = out.pop(f"{name}_final")
    return out
