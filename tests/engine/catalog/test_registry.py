"""Task discovery: a task package that fails to import, or exposes no TASK, is named and left out."""

from __future__ import annotations

import sys

import pytest

import suites
from ctbench.catalog import registry


@pytest.fixture
def extra_suites(tmp_path, monkeypatch):
    """Two extra task packages next to the real ones: one that raises on import, one without TASK."""
    (tmp_path / "zz_broken").mkdir()
    (tmp_path / "zz_broken" / "__init__.py").write_text("raise RuntimeError('missing dependency foo')\n")
    (tmp_path / "zz_empty").mkdir()
    (tmp_path / "zz_empty" / "__init__.py").write_text("x = 1\n")
    monkeypatch.setattr(suites, "__path__", [*suites.__path__, str(tmp_path)])
    registry.refresh()
    yield
    registry.refresh()
    for name in ("suites.zz_broken", "suites.zz_empty"):
        sys.modules.pop(name, None)


def test_broken_task_packages_are_named_and_the_others_load(extra_suites):
    broken = registry.broken_tasks()
    assert "RuntimeError: missing dependency foo" in broken["zz_broken"]
    assert "has no `TASK`" in broken["zz_empty"]
    assert {"adjoint_resnet", "bilevel", "gan_ntk", "implicit_jfb", "iresnet", "neis"} <= set(registry.tasks())
    with pytest.raises(registry.UsageError, match="zz_broken failed to import"):
        registry.get_task("zz_broken")
