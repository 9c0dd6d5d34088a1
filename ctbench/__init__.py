"""ctbench: benchmarks and leaderboards for memory-efficient and continuous-time deep learning."""

from ctbench.implementation import Manifest
from ctbench.measure import Policy
from ctbench.task import (
    CaseResult,
    Check,
    Context,
    Invalid,
    LinePlot,
    Metric,
    Paper,
    PaperNumber,
    Phase,
    Prepared,
    RunCheck,
    Scale,
    Step,
    Task,
)

__version__ = "0.2.0"

__all__ = [
    "CaseResult",
    "Check",
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
    "RunCheck",
    "Scale",
    "Step",
    "Task",
    "__version__",
]
