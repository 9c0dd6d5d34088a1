"""``python -m ctbench_cli.gpu_summary OUT_DIR``: the summary of ``scripts/gpu_check.sh``.

Reads ``OUT_DIR/calibration.json`` (``ctbench.run.calibrate``) and the run file(s) under ``OUT_DIR/runs`` (through
``ctbench.store.results.load_runs``: no task code is imported), writes ``OUT_DIR/summary.txt`` and
``OUT_DIR/summary.json`` (small enough to copy back from a remote machine) and prints the text: per task a compact table
of each case's step time, step memory and step energy (cases never started are counted, not listed), then the
headline, last so that it is what a terminal's screen shows: the GPU's facts, the calibration's readings, the case
statuses per task, the ratios each task declares (step memory, or any metric its cases record, each in its unit), the
failed checks and the cases that did not finish. Anything absent (no energy counter, no calibration, a task or case a
ratio needs) is said so, never an error. Exit 0 when something was summarised, 1 when OUT_DIR holds neither a
calibration nor a readable run file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ctbench.api.task import Ratio
from ctbench.boards import ratios
from ctbench.store.results import load_runs

MIB, GIB = 2**20, 2**30
STEP_METRICS = ("step_time_s", "step_peak_memory_bytes", "step_energy_j", "device_used_bytes")
MAX_ERROR_CHARS = 110


# ---- formatting -------------------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def fmt_bytes(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "-"
    if abs(v) >= GIB:
        return f"{v / GIB:.2f} GiB"
    if abs(v) >= MIB:
        return f"{v / MIB:.1f} MiB"
    return f"{v / 2**10:.0f} KiB"


def fmt_time(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "-"
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 1e-3:
        return f"{v * 1e3:.1f} ms"
    return f"{v * 1e6:.0f} us"


def fmt_energy(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "-"
    return f"{v:.2f} J" if abs(v) >= 1 else f"{v * 1e3:.1f} mJ"


def fmt_metric(metric: str, value: Any) -> str:
    """``value`` in the unit ``metric``'s name gives (``_bytes``, ``_time_s``, ``_j``), else three digits."""
    if metric.endswith("_bytes"):
        return fmt_bytes(value)
    if metric.endswith("_time_s"):
        return fmt_time(value)
    if metric.endswith("_j"):
        return fmt_energy(value)
    v = _num(value)
    return "-" if v is None else f"{v:.3g}"


def _first_line(text: Any) -> str:
    line = next((s.strip() for s in str(text or "").splitlines() if s.strip()), "")
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


def _point(params: Mapping[str, Any], axes: Sequence[str]) -> str:
    return " ".join(f"{k}={params.get(k)}" for k in axes) or "-"


# ---- reading ----------------------------------------------------------------------------------------------------


def status_of(case: Mapping[str, Any]) -> str:
    """The case's status, with ``not run`` told apart from a real timeout (the run's time budget was spent)."""
    if case.get("status") == "timeout" and str(case.get("error") or "").startswith("not run"):
        return "not run"
    return str(case.get("status"))


def load_calibration(out_dir: Path) -> list[dict[str, Any]] | None:
    path = out_dir / "calibration.json"
    try:
        readings = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return [r for r in readings if isinstance(r, dict)] if isinstance(readings, list) else None


def varying_axes(cases: Sequence[Mapping[str, Any]]) -> list[str]:
    """The param axes whose value differs between the cases (the others say nothing in a table)."""
    axes = list(dict.fromkeys(k for c in cases for k in c.get("params", {})))
    return [a for a in axes if len({json.dumps(c.get("params", {}).get(a), sort_keys=True) for c in cases}) > 1]


def case_row(case: Mapping[str, Any], axes: Sequence[str], extra: Sequence[str] = ()) -> dict[str, Any]:
    """The case's table row: its step metrics and the ``extra`` metrics its task's ratios read."""
    metrics = case.get("metrics") or {}
    row = {"impl": case.get("impl"), "params": dict(case.get("params") or {}), "point": _point(case["params"], axes)}
    row["status"] = status_of(case)
    row.update({m: _num(metrics.get(m)) for m in (*STEP_METRICS, *extra)})
    row["duration_s"] = _num(case.get("duration_s"))
    if row["status"] not in ("ok",):
        row["error"] = _first_line(case.get("error") or case.get("invalid_reason") or case.get("note"))
    return row


# ---- ratios -----------------------------------------------------------------------------------------------------


def ratio_lines(task: str, spec: Ratio, cases: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict]]:
    """The summary lines and the JSON entries of one ratio over a task's cases; 'not measured' when it cannot be."""
    head = f"  {spec.title} ({task})"
    if not cases:
        return [f"{head}: not measured (no case of {task} in the run)"], []
    lines, entries = [], []
    for other, measured in ratios.measure(spec, cases).items():
        if not measured:
            lines.append(f"{head}: {spec.impl} / {other}: not measured (no point where both finished ok)")
        for m in measured:
            shown = f"{m.value:.2f}x" if m.value is not None else "undefined (zero)"
            where = _point(m.params, [spec.deepest] if spec.deepest else varying_axes(cases))
            at = f" at {where}" if where != "-" else ""
            amounts = f"{fmt_metric(spec.metric, m.numerator)} / {fmt_metric(spec.metric, m.denominator)}"
            lines.append(f"{head}: {spec.impl} / {other}{at}: {shown} ({amounts})")
            entry = {"task": task, "title": spec.title, "metric": spec.metric, "impl": spec.impl, "against": other}
            entries.append(
                {**entry, "params": m.params, "value": m.value, "numerator": m.numerator, "denominator": m.denominator}
            )
    for g in ratios.growth(spec, cases):
        (d0, v0), (d1, v1) = g.first, g.last
        lines.append(
            f"    {g.impl}: {fmt_metric(spec.metric, v0)} at {spec.deepest}={d0:g} -> "
            f"{fmt_metric(spec.metric, v1)} at {spec.deepest}={d1:g} (+{fmt_metric(spec.metric, v1 - v0)})"
        )
    return lines, entries


# ---- the summary ------------------------------------------------------------------------------------------------


def gpu_lines(env: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    lines = []
    software = ", ".join(
        f"{k} {env.get(k)}" for k in ("torch", "cuda", "cuda_runtime", "cudnn", "python") if env.get(k) is not None
    )
    gpus = [g for g in env.get("gpus") or [] if isinstance(g, dict)]
    if not gpus:
        cpu = f"{env.get('cpu', '?')} x{env.get('cpu_cores', '?')}"
        lines.append(f"GPU: none in the run's environment (device {settings.get('device', '?')}, {cpu})")
    for g in gpus:
        clocks = g.get("clocks") if isinstance(g.get("clocks"), dict) else {}
        others = [p for p in g.get("other_processes") or [] if isinstance(p, dict)]
        busy = ", ".join(f"pid {p.get('pid')} {fmt_bytes(p.get('used_bytes'))}" for p in others) or "none"
        power = _num(g.get("power_limit_w"))
        lines.append(
            f"GPU {g.get('index', 0)}: {g.get('name', '?')}, {fmt_bytes(g.get('memory_bytes'))}, driver "
            f"{g.get('driver', '?')}, compute capability {g.get('compute_capability', '?')}, power limit "
            f"{f'{power:.0f} W' if power is not None else '?'}"
        )
        lines.append(
            f"  clocks: SM {clocks.get('sm_mhz', '?')}/{clocks.get('sm_max_mhz', '?')} MHz, memory "
            f"{clocks.get('memory_mhz', '?')}/{clocks.get('memory_max_mhz', '?')} MHz (now/max); other processes: "
            f"{busy}"
        )
    lines.append(f"software: {software or '?'}")
    return lines


def calibration_lines(readings: list[dict[str, Any]] | None) -> list[str]:
    if readings is None:
        return ["calibration: not run (no readable calibration.json)"]
    lines = []
    for r in readings:
        nv = _num(r.get("nvml_delta_bytes"))
        seen = f", NVML +{fmt_bytes(nv)}" if nv is not None else ""
        energy = f", {fmt_energy(r.get('energy_j_per_step'))}/step" if r.get("energy_j_per_step") is not None else ""
        ratio = _num(r.get("ratio"))
        tolerance = _num(r.get("tolerance"))
        lines.append(
            f"calibration {r.get('device', '?')}: {fmt_bytes(r.get('allocated_bytes'))} allocated -> "
            f"{fmt_bytes(r.get('measured_bytes'))} measured ({r.get('source', '?')}, ratio "
            f"{f'{ratio:.4f}' if ratio is not None else '?'} within {f'{tolerance:.0%}' if tolerance else '?'}"
            f"{seen}{energy}): {'ok' if r.get('passed') else 'FAIL'}"
        )
    return lines or ["calibration: no reading"]


def summarise(out_dir: Path) -> tuple[str, dict[str, Any]]:
    """(the text, the JSON document) of OUT_DIR's calibration and runs."""
    calibration = load_calibration(out_dir)
    runs, skipped = load_runs([out_dir / "runs"]) if (out_dir / "runs").is_dir() else ([], [])
    runs.sort(key=lambda r: str(r.get("created", "")))
    cases = [c for r in runs for c in r["cases"]]
    env = runs[-1].get("env", {}) if runs else {}
    settings = runs[-1].get("settings") or {} if runs else {}
    declared = ratios.declared(runs)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for task in dict.fromkeys(c["task"] for c in cases):
        task_cases = [c for c in cases if c["task"] == task]
        axes = varying_axes(task_cases)
        extra = list(dict.fromkeys(r.metric for t, r in declared if t == task and r.metric not in STEP_METRICS))
        by_task[task] = [case_row(c, axes, extra) for c in task_cases]

    table: list[str] = []
    for task, every_row in by_task.items():
        rows = [r for r in every_row if r["status"] != "not run"]  # counted in the headline, not listed
        if not rows:
            table.append(f"== {task}: no case ran")
            continue
        width = max([len("point")] + [len(r["point"]) for r in rows])
        iw = max([len("impl")] + [len(str(r["impl"])) for r in rows])
        table.append(f"== {task}")
        table.append(f"  {'impl':<{iw}}  {'point':<{width}}  {'status':<8} {'time':>9} {'memory':>10} {'energy':>9}")
        for r in rows:
            table.append(
                f"  {r['impl']:<{iw}}  {r['point']:<{width}}  {r['status']:<8} {fmt_time(r['step_time_s']):>9} "
                f"{fmt_bytes(r['step_peak_memory_bytes']):>10} {fmt_energy(r['step_energy_j']):>9}"
            )

    head: list[str] = ["", "==== GPU check summary ===="]
    head += [f"run file: {r['_path']} ({len(r['cases'])} cases)" for r in runs] or ["run file: none"]
    head += [f"skipped file: {s.reason}" for s in skipped]
    head += gpu_lines(env, settings) if runs else []
    head += [f"left out: {x}" for x in settings.get("left_out") or []]
    head += calibration_lines(calibration)
    statuses = {task: dict(Counter(r["status"] for r in rows)) for task, rows in by_task.items()}
    for task, rows in by_task.items():
        seconds = sum(r["duration_s"] or 0 for r in rows)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses[task].items(), key=lambda t: t[0] != "ok"))
        head.append(f"{task}: {counts} ({seconds:.0f} s of cases)")
    measured: list[dict[str, Any]] = []
    head.append("headline ratios (each task's own; the same point, both cases ok):")
    if not declared:
        head.append("  none: no task of the run declares one")
    for task, spec in declared:
        lines, entries = ratio_lines(task, spec, [c for c in cases if c["task"] == task])
        head += lines
        measured += entries
    failed_checks = [c for r in runs for c in r.get("checks") or [] if c.get("passed") is False]
    for c in failed_checks:
        scope = " ".join(f"{k}={v}" for k, v in (c.get("scope") or {}).items() if k in ("impl", "dataset"))
        head.append(
            f"FAILED run check {c.get('task')}/{c.get('name')} [{scope}]: value {c.get('value')}, threshold "
            f"{c.get('threshold')}: {c.get('description') or ''}"
        )
    if not failed_checks and runs:
        head.append("run checks: none failed")
    failed_case_checks = [
        f"{c['task']}/{c['impl']} {name}"
        for c in cases
        for name, chk in (c.get("checks") or {}).items()
        if isinstance(chk, dict) and chk.get("passed") is False
    ]
    if failed_case_checks:
        head.append(f"failed case checks ({len(failed_case_checks)}): {'; '.join(failed_case_checks[:8])}")
    for task, rows in by_task.items():
        for r in rows:
            if r["status"] not in ("ok", "not run"):
                head.append(f"{r['status']}: {task}/{r['impl']} [{r['point']}]: {r.get('error', '')}")
    text = "\n".join(table + head) + "\n"
    doc = {
        "calibration": calibration,
        "calibration_passed": all(r.get("passed") for r in calibration) if calibration else None,
        "runs": [r["_path"] for r in runs],
        "skipped_files": [s.reason for s in skipped],
        "gpus": env.get("gpus") or [],
        "software": {k: env.get(k) for k in ("torch", "cuda", "cuda_runtime", "cudnn", "python", "hostname")},
        "left_out": settings.get("left_out") or [],
        "statuses": statuses,
        "tasks": by_task,
        "ratios": measured,
        "failed_run_checks": failed_checks,
        "failed_case_checks": failed_case_checks,
        "case_seconds": {task: sum(r["duration_s"] or 0 for r in rows) for task, rows in by_task.items()},
    }
    return text, doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ctbench_cli.gpu_summary", description=__doc__.split("\n")[0])
    p.add_argument("out_dir", type=Path, help="the folder scripts/gpu_check.sh wrote (calibration.json, runs/)")
    args = p.parse_args(argv)
    text, doc = summarise(args.out_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "summary.txt").write_text(text)
    (args.out_dir / "summary.json").write_text(json.dumps(doc, indent=1, allow_nan=False))
    print(text, end="")
    return 0 if doc["runs"] or doc["calibration"] else 1


if __name__ == "__main__":
    sys.exit(main())
