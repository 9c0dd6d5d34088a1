"""What a task author and a submitter import: the task API (``task``, ``check``, ``claims``), the engine's
measurement policy (``measure``), implementations and their manifests (``implementation``), and the helpers tasks
share (``data``, ``cache``, ``sweeps`` for run checks, ``returns`` to check what a method returns). ``ctbench``
re-exports the names below."""

from ctbench.api.check import Check, RunCheck
from ctbench.api.claims import Claim
from ctbench.api.implementation import Manifest
from ctbench.api.measure import Policy
from ctbench.api.returns import ReturnError, expect_tensor
from ctbench.api.task import (
    CaseResult,
    Context,
    Invalid,
    LinePlot,
    Metric,
    Paper,
    PaperNumber,
    Phase,
    Prepared,
    Ratio,
    Scale,
    Step,
    Task,
)

__all__ = [
    "CaseResult",
    "Check",
    "Claim",
    "Context",
    "Invalid",
    "LinePlot",
    "Manifest",
    "Metric",
    "Paper",
    "PaperNumber",
    "Phase",
    "Policy",
    "Prepared",
    "Ratio",
    "ReturnError",
    "RunCheck",
    "Scale",
    "Step",
    "Task",
    "expect_tensor",
]
