"""How a run ends: each case's outcome, whose a failed run check is, and the exit status that follows.

A case is ``ok``; or ``invalid as expected``, a negative control that its task expects to be invalid (a
non-invertible flow, a diverging baseline); or one of the statuses of a case that did not end ok. A failed run check
whose scope names a reference implementation, or no implementation (a check of the run as a whole), is the shipped
code's and fails the run; a failed check of a submission is listed but is the submission's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

EXPECTED = "invalid as expected"
OUTCOMES = ("ok", EXPECTED, "invalid", "failed", "timeout", "oom", "suspect")


def outcome(case: Mapping[str, Any]) -> str:
    """A case's status, ``invalid as expected`` for a negative control that was invalid."""
    return EXPECTED if case["status"] == "invalid" and case.get("expected_invalid") else str(case["status"])


def case_ok(case: Mapping[str, Any]) -> bool:
    """Whether a case ended ok, or invalid as its task expects."""
    return outcome(case) in ("ok", EXPECTED)


def check_owner(check: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> str:
    """Whose a run check is: ``reference`` (its scope names a reference or no implementation) or ``submission``."""
    impl = (check.get("scope") or {}).get("impl")
    if impl is None:
        return "reference"
    subs = {c["submission"] for c in cases if c["task"] == check["task"] and c["impl"] == impl}
    return "submission" if subs and "reference" not in subs else "reference"


def exit_status(doc: Mapping[str, Any]) -> int:
    """1 when a case did not end ok or a reference's run check failed, else 0."""
    cases = doc["cases"]
    bad_check = any(c["passed"] is False and check_owner(c, cases) == "reference" for c in doc.get("checks") or [])
    return 0 if all(case_ok(c) for c in cases) and not bad_check else 1
