"""How long the processes of a case live: the runner adopts every orphan of its cases (a child subreaper), a worker
dies with whoever started it (``PR_SET_PDEATHSIG``), and a forked worker joins the cgroup the runner made for it."""

from __future__ import annotations

import ctypes
import functools
import signal
from pathlib import Path

from ctbench.isolation import cgroup

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
CGROUP_ENV = "CTBENCH_CGROUP"  # the cgroup.procs file a forked worker writes its pid to


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def become_subreaper() -> bool:
    """Orphaned descendants of our cases are reparented to this process (so they can be found and ended). Also
    decides, before this process starts any other, whether cases get a cgroup v2 (``case_cgroups``)."""
    case_cgroups()
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


@functools.cache
def case_cgroups() -> Path | None:
    """The cgroup v2 under which each case gets its own memory-limited cgroup, None where there is none (decided
    once per process: ``ctbench.isolation.cgroup.parent``)."""
    return cgroup.parent()


def die_with_parent() -> None:
    """In a worker: be killed when the process that started us dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
