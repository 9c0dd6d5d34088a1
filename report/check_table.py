"""A run's claim checks as a Markdown table, one row per task and check: how many cases or scopes passed, failed or
were inconclusive, the values' range and the thresholds. ``python -m report.check_table RUN`` prints it;
``--update FILE`` rewrites the table that ``FILE`` holds between ``<!-- check-table: RUN -->`` and
``<!-- /check-table -->`` (``RUN`` relative to ``FILE``'s folder), so that a README quotes a run file's numbers as
the run file holds them, never pasted by hand (``results/README.md`` holds the reference run's).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ctbench.boards.cells import is_missing
from ctbench.store.results import Run

OUTCOMES = (("pass", True), ("fail", False), ("inconclusive", None))
BLOCK = re.compile(r"(<!-- check-table: (?P<run>[^ ]+) -->\n)(?P<table>.*?)(<!-- /check-table -->)", re.DOTALL)


def _number(value: Any, digits: int = 4) -> str:
    return "—" if is_missing(value) else f"{float(value):.{digits}g}"


def _span(values: Iterable[Any]) -> str:
    """The least and the greatest of ``values``, to 4 significant digits, more where those would read the same."""
    known = sorted({float(v) for v in values if not is_missing(v)})
    if not known:
        return "—"
    if len(known) == 1:
        return _number(known[0])
    digits = next((d for d in (4, 6, 8) if _number(known[0], d) != _number(known[-1], d)), 12)
    return f"{_number(known[0], digits)} to {_number(known[-1], digits)}"


def _checks(run: Mapping[str, Any]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Every check of ``run``, run checks and each case's, by task and name (a case check's ``task`` is its case's)."""
    found: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for check in run.get("checks", []):
        found.setdefault((check["task"], check["name"]), []).append(check)
    for case in run["cases"]:
        for name, check in case.get("checks", {}).items():
            found.setdefault((case["task"], name), []).append(check)
    return found


def table(run: Mapping[str, Any]) -> str:
    """The Markdown table of ``run``'s checks, sorted by task and check."""
    lines = ["| task | check | outcomes | values | thresholds |", "| --- | --- | --- | --- | --- |"]
    for (task, name), checks in sorted(_checks(run).items()):
        counts = [f"{sum(c['passed'] is passed for c in checks)} {word}" for word, passed in OUTCOMES]
        outcomes = ", ".join(c for c in counts if not c.startswith("0 "))
        values, thresholds = _span(c["value"] for c in checks), _span(c["threshold"] for c in checks)
        lines.append(f"| {task} | `{name}` | {outcomes} | {values} | {thresholds} |")
    return "\n".join(lines) + "\n"


def update(path: Path) -> bool:
    """Rewrite every check table of the file ``path`` from the run file it names; True when one changed."""
    text = path.read_text()

    def fresh(match: re.Match[str]) -> str:
        return match.group(1) + table(Run.load(path.parent / match.group("run"))) + match.group(4)

    new = BLOCK.sub(fresh, text)
    if new != text:
        path.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", nargs="?", type=Path, help="a run file: print its table")
    p.add_argument("--update", type=Path, metavar="FILE", help="rewrite the check tables FILE holds")
    args = p.parse_args(argv)
    if args.update is None and args.run is None:
        p.error("name a run file, or --update FILE")
    if args.update is not None:
        print(f"{args.update}: {'updated' if update(args.update) else 'already current'}")
    if args.run is not None:
        print(table(Run.load(args.run)), end="")


if __name__ == "__main__":
    main()
