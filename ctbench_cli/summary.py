"""The end of ``ctbench run``: what ran and how it ended, honestly, and the exit status that follows from it.

Printed: the counts (negative controls apart, as "invalid as expected"); every case that did not end ok with its
first error line; every failed run check, saying whose it is; the grid points the tasks skipped, grouped by reason.

The exit status is the run's verdict (``ctbench.store.verdict.exit_status``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ctbench.boards.table import params_label
from ctbench.run.cases import SkippedPoint
from ctbench.store.text import printable
from ctbench.store.verdict import EXPECTED, OUTCOMES, case_ok, check_owner, exit_status, outcome

Say = Callable[[str], None]
SHOWN = 12  # at most this many lines per list; the rest are counted
LINE = 400  # characters of a listed line (names and error texts come from the cases)


def _safe(say: Say) -> Say:
    """``say``, each line terminal-safe (``printable``: no escape sequence, no line break from a case's names or
    error text) and at most ``LINE`` characters."""

    def safe_say(line: str) -> None:
        text = printable(line)
        say(text if len(text) <= LINE else text[: LINE - 1] + "…")

    return safe_say


def _where(case: Mapping[str, Any]) -> str:
    params = " ".join(f"{k}={v}" for k, v in case["params"].items())
    return f"{case['task']}/{case['impl']} [{case['scale']}{' ' + params if params else ''} seed={case['seed']}]"


def _listed(title: str, lines: Sequence[str], say: Say) -> None:
    if not lines:
        return
    say(f"{title}:")
    for line in lines[:SHOWN]:
        say(f"  {line}")
    if len(lines) > SHOWN:
        say(f"  ... and {len(lines) - SHOWN} more (see the report)")


def _number(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}"


def _interval(check: Mapping[str, Any]) -> str:
    interval = check.get("interval")
    return f" [{_number(interval[0])}, {_number(interval[1])}]" if isinstance(interval, list) else ""


def check_lines(doc: Mapping[str, Any], outcome: bool | None = False) -> list[str]:
    """The run checks whose ``passed`` is ``outcome``: False (failed) or None (inconclusive)."""
    lines = []
    for c in doc.get("checks") or []:
        if c["passed"] is not outcome:
            continue
        owner = check_owner(c, doc["cases"])
        scope = params_label(dict(c.get("scope") or {}))
        if outcome is None:
            why = "the interval holds the threshold" if isinstance(c.get("interval"), list) else "see its description"
            whose = f"undecided: {why}; the run does not fail"
        else:
            whose = "a reference's or the run's: the run fails" if owner == "reference" else "the submission's"
        value = f"{_number(c.get('value'))}{_interval(c)} against {_number(c.get('threshold'))}"
        lines.append(f"{c['task']}/{c['name']} [{scope}]: {value} ({whose})"
                     f"{': ' + c['description'] if c.get('description') else ''}")  # fmt: skip
    return lines


def skipped_lines(skipped: Sequence[SkippedPoint]) -> list[str]:
    """Skipped points grouped by (task, implementation, reason), with how many and which."""
    groups: dict[tuple[str, str, str], list[SkippedPoint]] = {}
    for point in skipped:
        groups.setdefault((point.task, point.impl, point.reason), []).append(point)
    lines = []
    for (task, impl, reason), points in groups.items():
        which = "; ".join(params_label(dict(p.params)) for p in points[:3]) + ("; ..." if len(points) > 3 else "")
        lines.append(f"{task}/{impl}: {len(points)} point{'s' if len(points) > 1 else ''} ({which}): {reason}")
    return lines


def summarise(doc: Mapping[str, Any], skipped: Sequence[SkippedPoint] = (), say: Say = print) -> int:
    """Print the run's summary (every line terminal-safe); return its exit status."""
    say = _safe(say)
    cases = doc["cases"]
    counts = Counter(outcome(c) for c in cases)
    order = [*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))]
    say(", ".join(f"{counts[s]} {s}" for s in order if counts[s]) or "no case")
    _listed("negative controls, invalid as the paper expects", [f"{_where(c)}: {c['expected_invalid']}"
            for c in cases if outcome(c) == EXPECTED], say)  # fmt: skip
    errors = [
        f"{_where(c)}: {c['status']}: {((c.get('error') or '').strip().splitlines() or ['no error recorded'])[0]}"
        for c in cases
        if not case_ok(c)
    ]
    _listed("not ok", errors, say)
    _listed("failed run checks", check_lines(doc), say)
    _listed("inconclusive run checks", check_lines(doc, None), say)
    _listed("skipped grid points", skipped_lines(skipped), say)
    return exit_status(doc)
