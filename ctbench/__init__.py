"""ctbench: benchmarks and leaderboards for memory-efficient and continuous-time deep learning."""

from ctbench.implementation import Manifest
from ctbench.task import CaseResult, Check, Context, Metric, Paper, PaperNumber, RunCheck, Scale, Task

__version__ = "0.1.0"

__all__ = [
    "CaseResult",
    "Check",
    "Context",
    "Manifest",
    "Metric",
    "Paper",
    "PaperNumber",
    "RunCheck",
    "Scale",
    "Task",
    "__version__",
]
