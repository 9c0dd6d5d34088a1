"""ctbench: benchmarks and leaderboards for memory-efficient and continuous-time deep learning.

The engine's parts, each a subpackage that imports only those listed before it:

- ``machine``: the environment record, NVML, memory calibration;
- ``store``: run files (one versioned JSON document per run), their schema, the run's verdict, text made safe to
  show;
- ``api``: what a task author and a submitter import (re-exported here);
- ``boards``: leaderboards, ranks, Pareto layers, boards and their cells, for ``show`` and the report alike;
- ``figures``: plots drawn from run files, one palette;
- ``isolation``: the sandbox, containment, the case's channel and the runner's outside view of it;
- ``catalog``: tasks found through the ``ctbench.tasks`` entry points and ``CTBENCH_PATH``, their descriptions,
  submissions resolved in isolation;
- ``run``: cases, the runner, executors (local, Ray), a case's process, the journal.
"""

from ctbench.api import (
    CaseResult,
    Check,
    Claim,
    Context,
    Invalid,
    LinePlot,
    Manifest,
    Metric,
    Paper,
    PaperNumber,
    Phase,
    Policy,
    Prepared,
    Ratio,
    ReturnError,
    RunCheck,
    Scale,
    Step,
    Task,
    expect_tensor,
)

__version__ = "0.2.0"  # the one version: pyproject.toml reads it from here

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
    "__version__",
    "expect_tensor",
]
