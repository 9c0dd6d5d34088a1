"""A case record: what one case of a run measured, as a run file holds it (``results/README.md``, field by field).

``Record`` is the one type that builds a record (``blank`` for a case about to run, ``fill`` from what its protocol
returned, ``stopped`` for a case that sent none), checks it against the schema (``validated``) and turns it into
the JSON a case sends back (``to_json``). It is a ``dict``: readers index its fields by name, as in the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ctbench.store import schema
from ctbench.store.files import jsonable

ERROR_TAIL = 4000  # characters of a traceback or a stop reason kept in a record
# what the runner, not the case, says about a record: its identity, taken from the case it launched
IDENTITY = ("task", "impl", "submission", "impl_spec", "impl_hash", "manifest", "scale", "params", "seed")


class _Check(Protocol):
    @property
    def value(self) -> float: ...
    @property
    def threshold(self) -> float: ...
    @property
    def passed(self) -> bool | None: ...
    @property
    def description(self) -> str: ...
    @property
    def interval(self) -> tuple[float, float] | None: ...


class Result(Protocol):
    """What a case's protocol returned (``ctbench.api.task.CaseResult``)."""

    @property
    def metrics(self) -> Mapping[str, float]: ...
    @property
    def dataset(self) -> str: ...
    @property
    def checks(self) -> Mapping[str, _Check]: ...
    @property
    def series(self) -> Mapping[str, list[list[float]]]: ...
    @property
    def spread(self) -> Mapping[str, float]: ...
    @property
    def intervals(self) -> Mapping[str, tuple[float, float]]: ...
    @property
    def invalid_reason(self) -> str | None: ...
    @property
    def note(self) -> str | None: ...


def finite_interval(interval: tuple[float, float] | Sequence[float] | None) -> list[float] | None:
    """An interval as a record holds it: ``[low, high]``, or None where it is missing or not finite."""
    if interval is None or not all(math.isfinite(v) for v in interval):
        return None
    return [float(interval[0]), float(interval[1])]


class Record(dict[str, Any]):
    """One case's record (a ``dict`` of the run file's case fields)."""

    @classmethod
    def blank(cls, case: Mapping[str, Any]) -> Record:
        """The record of ``case`` (``Case.to_json()`` form) before it ran: its identity (``IDENTITY``, what the
        runner launched), every other field empty, status ``failed``."""
        impl, manifest = case["impl"], case["impl"]["manifest"]
        return cls(
            task=case["task"],
            impl=manifest["name"],
            submission=impl["submission"],
            impl_spec=impl["spec"],
            impl_hash=impl.get("content_hash", ""),
            manifest={
                "name": manifest["name"],
                "authors": list(manifest.get("authors", ())),
                "url": manifest.get("url"),
            },
            scale=case["scale"],
            params=case["params"],
            seed=case["seed"],
            dataset="unknown",
            status="failed",
            metrics={},
            checks={},
            series={},
            spread={},
            intervals={},
            error=None,
            note=None,
        )

    @classmethod
    def stopped(cls, case: Mapping[str, Any], status: str, error: str, **fields: Any) -> Record:
        """The record of a case that sent none (stopped by a limit, crashed, not run): every field a record has,
        its ``status``, the last ``ERROR_TAIL`` characters of ``error``, and ``fields`` (where it ran, how long)."""
        record = cls.blank(case)
        record.update(status=status, error=error[-ERROR_TAIL:], **fields)
        return record

    def fill(self, result: Result) -> Record:
        """Fill in what the case's protocol returned; the status follows: ``failed`` for a non-finite metric (never
        a silent number), ``invalid`` where the protocol said so, else ``ok``."""
        self.update(
            dataset=result.dataset,
            metrics={k: float(v) for k, v in result.metrics.items()},
            checks={
                k: {
                    "value": c.value,
                    "threshold": c.threshold,
                    "passed": c.passed,
                    "description": c.description,
                    "interval": finite_interval(c.interval),
                }
                for k, c in result.checks.items()
            },
            series=dict(result.series),
            spread=dict(result.spread),
            intervals={k: pair for k, v in result.intervals.items() if (pair := finite_interval(v)) is not None},
            note=result.note,
        )
        bad = [k for k, v in self["metrics"].items() if not math.isfinite(v)]
        if bad:
            self.update(status="failed", error=f"non-finite metric(s): {', '.join(bad)}")
        elif result.invalid_reason:
            self.update(status="invalid", error=result.invalid_reason)
        else:
            self["status"] = "ok"
        return self

    @classmethod
    def validated(cls, value: Any, where: str = "case") -> Record:
        """``value`` as a ``Record`` if it passes the case schema (``ctbench.store.schema.CASE``), else
        ``schema.Problem`` naming the field."""
        schema.check_depth(value)
        schema.CASE(value, where)
        return cls(value)

    def to_json(self) -> bytes:
        """The record as JSON (non-finite numbers as null: a failed case keeps its other numbers)."""
        return json.dumps(jsonable(self), allow_nan=False).encode()
