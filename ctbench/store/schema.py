"""The run schema field by field, as checks: every field a reader uses has the type it expects, down to each metric
value, check, series point and task description (``results/README.md`` documents the same fields).

A check is a function ``(value, where)`` that returns nothing or raises ``Problem(where, what is wrong)``; ``where``
names the field as ``cases[3].checks.loss_finite.passed``. Fields a reader does not use may hold any JSON value;
fields it uses may be absent where the README says so, but never of another type. Numbers are finite (JSON's
``NaN``/``Infinity`` never pass) and integers have at most ``MAX_INT_DIGITS`` digits, so nothing downstream
overflows; nesting is bounded by ``MAX_DEPTH`` so nothing downstream recurses without bound.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 64  # a run file nests about 6 deep (cases[i].series.name[j][k])
MAX_INT_DIGITS = 40
MAX_METRICS = 1000  # entries of a case's metrics (or spread): a case with more is refused by name
_INT_BOUND: int = 10**MAX_INT_DIGITS  # int ** int is typed Any (a negative power is a float)
STATUSES = ("ok", "failed", "invalid", "timeout", "oom", "suspect")

Check = Callable[[Any, str], None]

REFERENCE = "reference"  # a case's ``submission`` for the shipped implementations: no submission may take it


class Problem(Exception):
    """A field that does not have the type or value its readers need."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def is_number(value: Any) -> bool:
    """A finite float, or an integer of at most ``MAX_INT_DIGITS`` digits; never a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_INT_BOUND < value < _INT_BOUND
    return isinstance(value, float) and math.isfinite(value)


def _child(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def check_depth(doc: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse objects and lists nested deeper than ``limit`` (iteratively: a deep document cannot recurse here)."""
    stack = [(doc, 1)] if isinstance(doc, (dict, list, tuple)) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            raise Problem("<root>", f"nested deeper than {limit} levels")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))


def shallow(value: Any, where: str) -> None:
    """``check_depth`` as a check: nested at most ``MAX_DEPTH`` levels."""
    check_depth(value)


def anything(value: Any, where: str) -> None:
    """Any JSON value (a field no reader interprets; its depth is bounded by ``check_depth``)."""


def text(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise Problem(where, "expected a string")


def number(value: Any, where: str) -> None:
    if not is_number(value):
        raise Problem(where, f"expected a finite number with at most {MAX_INT_DIGITS} digits")


def integer(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not is_number(value):
        raise Problem(where, f"expected an integer with at most {MAX_INT_DIGITS} digits")


def boolean(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise Problem(where, "expected true or false")


def scalar(value: Any, where: str) -> None:
    """A string, a finite number, a boolean or null (a field shown as it is)."""
    if value is not None and not isinstance(value, (str, bool)) and not is_number(value):
        raise Problem(where, "expected a string, a number, true, false or null")


def nullable(check: Check) -> Check:
    def nullable_check(value: Any, where: str) -> None:
        if value is not None:
            check(value, where)

    return nullable_check


def one_of(*choices: str) -> Check:
    def one_of_check(value: Any, where: str) -> None:
        if value not in choices or not isinstance(value, str):
            raise Problem(where, f"{value!r:.80} is not one of {', '.join(choices)}")

    return one_of_check


def mapping(values: Check = anything) -> Check:
    """An object whose every value passes ``values``."""

    def mapping_check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise Problem(where, "expected an object")
        for key, item in value.items():
            values(item, _child(where, str(key)))

    return mapping_check


def listing(items: Check = anything) -> Check:
    """A list whose every item passes ``items``."""

    def listing_check(value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise Problem(where, "expected a list")
        for i, item in enumerate(value):
            items(item, f"{where}[{i}]")

    return listing_check


def record(required: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    """An object with every ``required`` field, and the ``optional`` ones of their type where present; other
    fields may hold anything."""
    optional = optional or {}

    def record_check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise Problem(where or "<root>", "expected an object")
        for key, check in required.items():
            if key not in value:
                raise Problem(_child(where, key), "missing")
            check(value[key], _child(where, key))
        for key, check in optional.items():
            if key in value:
                check(value[key], _child(where, key))

    return record_check


def points(value: Any, where: str) -> None:
    """A series: a list of ``[x, y]`` pairs of finite numbers (null where a value was not finite)."""
    if not isinstance(value, list):
        raise Problem(where, "expected a list of [x, y] points")
    for i, point in enumerate(value):
        if not (isinstance(point, list) and len(point) == 2 and all(v is None or is_number(v) for v in point)):
            raise Problem(f"{where}[{i}]", "expected an [x, y] pair of finite numbers")


NUMBER_OR_NULL = nullable(number)
TEXT_OR_NULL = nullable(text)


@functools.lru_cache(maxsize=4096)  # metric names repeat from case to case
def lowest(metric: str) -> tuple[float, bool] | None:
    """The least value a metric can physically take, by its name, and whether that value itself is allowed: a
    duration (``..._time_s``) or a rate (``throughput_..._s``, ``<phase>_throughput_..._s``) is > 0, any other
    time (``..._s``, e.g. ``time_to_target_s``) and memory (``..._bytes``) >= 0 (the engine records 0 bytes for a
    step that allocated nothing beyond its baseline); None for other metrics (any finite number)."""
    if metric.endswith("_time_s") or (metric.endswith("_s") and "throughput_" in metric):
        return 0.0, False
    if metric.endswith(("_s", "_bytes")):
        return 0.0, True
    return None


HARDWARE_UNITS = ("s", "bytes", "J", "W")


def hardware_unit(unit: str) -> bool:
    """Whether a metric in ``unit`` measures the machine: a time, a memory, an energy, a power or a rate."""
    return unit in HARDWARE_UNITS or unit.endswith("/s")


def measured(limit: int, spread: bool) -> Check:
    """A case's metrics (or their spreads): at most ``limit`` of them, each a finite number or null, times and
    memory (``lowest``) never below what they can be, spreads never negative."""

    def measured_check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise Problem(where, "expected an object")
        if len(value) > limit:
            raise Problem(where, f"{len(value)} entries (at most {limit})")
        for key, item in value.items():
            NUMBER_OR_NULL(item, _child(where, str(key)))
            bound = (0.0, True) if spread else lowest(str(key))
            if item is not None and bound is not None and (item < bound[0] or (item == bound[0] and not bound[1])):
                what = "a spread" if spread else "a time or memory" if bound[1] else "a duration or rate"
                rule = ">= 0" if bound[1] else "> 0"
                raise Problem(_child(where, str(key)), f"{item!r:.40}: {what} must be {rule}")

    return measured_check


OUTSIDE = record(
    {},
    {
        **dict.fromkeys(("window_s", "call_median_s", "cpu_s"), NUMBER_OR_NULL),
        **dict.fromkeys(("peak_rss_bytes", "memory_growth_bytes"), NUMBER_OR_NULL),
        "timed_calls": nullable(integer),
        "marks": TEXT_OR_NULL,
    },
)


def interval(value: Any, where: str) -> None:
    """A confidence interval: two finite numbers, low <= high."""
    if not isinstance(value, list) or len(value) != 2:
        raise Problem(where, "expected [low, high]")
    for i, end in enumerate(value):
        number(end, _child(where, str(i)))
    if value[0] > value[1]:
        raise Problem(where, f"low {value[0]!r:.40} above high {value[1]!r:.40}")


# passed: true, false, or null for an inconclusive check (its interval holds the threshold)
CASE_CHECK = record(
    {"value": NUMBER_OR_NULL, "threshold": NUMBER_OR_NULL, "passed": nullable(boolean)},
    {"description": TEXT_OR_NULL, "interval": nullable(interval)},
)
RUN_CHECK = record(
    {"task": text, "name": text, "value": NUMBER_OR_NULL, "threshold": NUMBER_OR_NULL, "passed": nullable(boolean)},
    {"scope": mapping(), "description": TEXT_OR_NULL, "interval": nullable(interval)},
)
REUSED = record(
    {"run_id": text, "metrics": listing(text), "left_out": listing(text)},
    {"commit": TEXT_OR_NULL, "hardware": TEXT_OR_NULL},
)
MANIFEST = record({}, {"name": text, "authors": listing(text), "url": TEXT_OR_NULL})
CASE = record(
    {
        "task": text,
        "impl": text,
        "submission": text,
        "scale": text,
        "params": mapping(),
        "seed": integer,
        "dataset": text,
        "status": one_of(*STATUSES),
        "metrics": measured(MAX_METRICS, spread=False),
        "checks": mapping(CASE_CHECK),
    },
    {
        "impl_spec": text,
        "impl_hash": TEXT_OR_NULL,
        "manifest": MANIFEST,
        "series": mapping(points),
        "spread": measured(MAX_METRICS, spread=True),
        "intervals": mapping(interval),
        "error": TEXT_OR_NULL,
        "note": TEXT_OR_NULL,
        "duration_s": NUMBER_OR_NULL,
        "device": TEXT_OR_NULL,
        "threads": nullable(integer),
        "process": mapping(),
        "host": TEXT_OR_NULL,
        "hardware": TEXT_OR_NULL,
        "sandboxed": nullable(boolean),
        "start": nullable(one_of("warm", "cold")),
        "expected_invalid": TEXT_OR_NULL,
        "beside": nullable(integer),
        "containment": nullable(one_of("cgroup2", "watch")),
        "outside": OUTSIDE,
        "reused": REUSED,
    },
)
GPU = record(
    {},
    {
        "name": TEXT_OR_NULL,
        "driver": TEXT_OR_NULL,
        "memory_bytes": NUMBER_OR_NULL,
        "power_limit_w": NUMBER_OR_NULL,
        "clocks": mapping(NUMBER_OR_NULL),
    },
)
ENV = record(
    {},
    {
        **dict.fromkeys(("ctbench", "git_commit", "python", "platform", "hostname", "torch"), scalar),
        **dict.fromkeys(("cuda", "cuda_runtime", "cudnn", "cpu"), scalar),
        "git_dirty": nullable(boolean),
        "cuda_available": nullable(boolean),
        "gpus": listing(GPU),
        "cpu_cores": nullable(integer),
        "torch_threads": nullable(integer),
        "ram_bytes": NUMBER_OR_NULL,
        "env_vars": mapping(scalar),
    },
)
PAPER = record({"title": text, "authors": text, "venue": text}, {"url": TEXT_OR_NULL})
METRIC = record({}, {"unit": text, "higher_is_better": nullable(boolean), "description": text, "hardware": boolean})
PAPER_NUMBER = record(
    {"metric": text, "value": number, "impl": text, "dataset": text, "source": text}, {"note": TEXT_OR_NULL}
)
PLOT = record(
    {"name": text, "x": text, "y": text},
    {
        "xlabel": TEXT_OR_NULL,
        "ylabel": TEXT_OR_NULL,
        "xlog": boolean,
        "ylog": boolean,
        "scale_y": number,
        "facet": TEXT_OR_NULL,
        "where": mapping(),
        "kind": one_of("line", "bar"),
    },
)
RATIO = record({"title": text, "impl": text, "against": listing(text), "metric": text}, {"deepest": TEXT_OR_NULL})
CLAIM = record(
    {"name": text, "claim": text, "source": text, "control": text},
    {"task": TEXT_OR_NULL, "over": one_of("case", "run")},
)
TASK = record(
    {"summary": text, "paper": PAPER, "metrics": mapping(METRIC)},
    {
        "step": TEXT_OR_NULL,
        "primary_metric": TEXT_OR_NULL,
        "paper_numbers": listing(PAPER_NUMBER),
        "plots": listing(PLOT),
        "objectives": mapping(one_of("quality", "memory", "time")),
        "headline_ratios": listing(RATIO),
        "claims": listing(CLAIM),
        "custom_plots": boolean,
    },
)
_RUN_FIELDS = {"schema": text, "run_id": text, "created": text, "env": ENV}
_RUN_OPTIONAL = {"settings": mapping(), "tasks": mapping(TASK), "checks": listing(RUN_CHECK), "nodes": mapping(ENV)}
RUN = record({**_RUN_FIELDS, "cases": listing(CASE)}, _RUN_OPTIONAL)
# a run whose cases a reader checks one by one (``CASE``), leaving out those that fail
RUN_HEAD = record({**_RUN_FIELDS, "cases": listing()}, _RUN_OPTIONAL)
