"""The engine's shape: every module in a subpackage, layers that point one way, no import circle, and no arrow from
the engine to the command line, the report or a task."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "ctbench"
# each subpackage may import only itself and the ones before it
LAYERS = ["machine", "store", "api", "boards", "figures", "isolation", "catalog", "run"]
OUTSIDE = ("ctbench_cli", "report", "suites", "reference_impls", "benchmarks", "tests")


def _module(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (ENGINE / relative).with_suffix(".py").exists() or (ENGINE / relative / "__init__.py").exists()


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child.startswith("ctbench.") and _is_module(child) else node.module)
    return found


def engine_graph() -> dict[str, set[str]]:
    return {_module(p): {m for m in imports(p) if m.split(".")[0] == "ctbench"} for p in ENGINE.rglob("*.py")}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else len(LAYERS)


def test_every_engine_module_sits_in_a_subpackage():
    loose = sorted(p.name for p in ENGINE.glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules outside a subpackage: {loose}"
    assert sorted(p.parent.name for p in ENGINE.glob("*/__init__.py")) == sorted(LAYERS)


def test_layers_point_one_way():
    for module, targets in engine_graph().items():
        for target in targets:
            if target == "ctbench" and module == "ctbench.machine.env":
                continue  # the environment record reads the one version (also uninstalled, on PYTHONPATH)
            assert _layer(target) <= _layer(module), f"{module} imports {target}, a later layer"


def test_the_engine_imports_no_command_line_report_or_task():
    for path in ENGINE.rglob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[0] in OUTSIDE}
        assert not bad, f"{_module(path)} imports {bad}"


def test_no_import_circle_in_the_engine():
    graph = engine_graph()
    state: dict[str, int] = {}

    def visit(node: str, chain: tuple[str, ...]) -> None:
        if state.get(node) == 1:
            raise AssertionError(f"import circle: {' -> '.join((*chain, node))}")
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt != "ctbench":  # the package itself re-exports the API
                visit(nxt, (*chain, node))
        state[node] = 2

    for node in graph:
        visit(node, ())


def test_the_layer_checks_can_fail(tmp_path):
    """Failing controls: an upward import and a circle are both found."""
    assert _layer("ctbench.run.runner") > _layer("ctbench.store.results")
    graph = {"a": {"b"}, "b": {"a"}}
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        if state.get(node) == 1:
            return True
        state[node] = 1
        found = any(visit(n) for n in graph[node])
        state[node] = 2
        return found

    assert visit("a")
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from report.build import build_report\n")
    assert "report.build" in imports(bad)
