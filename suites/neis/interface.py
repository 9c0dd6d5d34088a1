"""The contract of a normalising-constant estimator, and the budget the scale hands it.

The protocol calls ``fit(problem, budget)`` once (timed as the phase ``training``), then ``sample(problem, n)`` for
the scale's ``n_eval`` estimates, whose cost it counts in evaluations of U1, and the engine times ``sample`` for
``n_time`` estimates. An example: ``examples/neis/``.

What a method receives: ``problem`` (``suites.neis.problem.Problem``) has ``name`` (the target: ``eg1``, ``eg2``,
...), ``dim`` (d), ``device`` and ``dtype`` (draw samples in them), ``U1(x)``, the target's potential at the rows of
``x`` (any leading shape; +inf outside the support), counted per point and per point of its gradient when ``x``
requires grad (the cost per sample is read from this count), ``U0(x)``, the base's potential, rho0 = N(0, I) =
exp(-U0) with Z0 = 1 (free), and ``sample_base(n)``, n draws from rho0. The exact Z1 is never exposed.
``budget``, a ``Budget``: the scale's settings for this target, below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from suites.neis.problem import Problem


@dataclass(frozen=True)
class Budget:
    """Settings of one scale that an estimator may use (the paper's budgets at ``full``)."""

    time_steps: int  # N, steps of the fixed time grid per unit time (NEIS)
    temperatures: int  # K, temperatures of AIS
    mala_step: float  # step size of AIS's MALA transitions
    train_steps: int  # optimiser steps of NEIS's training
    train_batch: int  # samples per training step
    width: int  # hidden units of the velocity field's networks
    lr: float  # NEIS's initial normalised-gradient step
    seed_fraction: float  # NEIS's assisted start: initial fraction of training points moved into U1's wells
    seed_until: float  # ... decaying linearly to 0 at this fraction of the training steps
    exact_div_max_dim: int  # above this dimension a generic field's divergence is Hutchinson's estimate
    chunk: int  # samples per batched call when sampling

    @classmethod
    def of(cls, config: Mapping[str, Any], target: str | None = None) -> Budget:
        """The budget a scale's ``config`` holds for ``target``: its settings, with those of
        ``config["per_target"][target]`` in their place where given (the paper trains each example with its own
        step size and assisted start); the config's other settings are the protocol's."""
        merged = {**config, **config.get("per_target", {}).get(target, {})}
        return cls(**{f.name: merged[f.name] for f in fields(cls)})


class FlowDiverged(FloatingPointError):
    """Training produced a non-finite trajectory or loss; ``step`` is the optimiser step (0-based)."""

    def __init__(self, step: int, message: str, curve: list[float]):
        super().__init__(f"training step {step}: {message}")
        self.step = step
        self.curve = curve


class Estimator(ABC):
    """Estimates Z1 = int exp(-U1) with U1 evaluated only through ``problem.U1`` (which counts the cost)."""

    @abstractmethod
    def fit(self, problem: Problem, budget: Budget) -> list[float]:
        """Prepare for ``problem`` (train, for NEIS) within ``budget``; return the training curve, the log of
        the empirical second moment log E[Z_hat^2] on each step's batch (empty when nothing is trained).
        Raise ``FlowDiverged`` when training blows up."""

    @abstractmethod
    def sample(self, problem: Problem, n: int) -> torch.Tensor:
        """``n`` independent estimates of Z1, as their logs (shape [n]): each exp(.) is unbiased for Z1."""
