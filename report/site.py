"""Writing the pages: jinja2 templates with autoescaping, static assets copied beside them.

Every string from a result file reaches the HTML through jinja2's autoescape, so a submission named
``<script>alert(1)</script>`` is shown as text. The site records the files it wrote in ``.ctbench-report``
and removes them on the next build before writing the new ones, so a task that left the results leaves no
stale page; nothing else in the output folder is touched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jinja2

from report.fmt import safe_url

HERE = Path(__file__).parent
MANIFEST = ".ctbench-report"


class Site:
    def __init__(self, out_dir: Path, common: dict[str, Any]):
        self.out_dir = out_dir
        self.common = common
        self.written: list[str] = []
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["safe_url"] = safe_url
        self._remove_previous()
        out_dir.mkdir(parents=True, exist_ok=True)
        for asset in sorted((HERE / "static").iterdir()):
            self.add(f"static/{asset.name}")
            shutil.copyfile(asset, self.path(f"static/{asset.name}"))

    def _remove_previous(self) -> None:
        manifest = self.out_dir / MANIFEST
        if not manifest.is_file():
            return
        try:
            names = json.loads(manifest.read_text())
        except ValueError:
            return
        root = self.out_dir.resolve()
        for name in names if isinstance(names, list) else []:
            target = (self.out_dir / str(name)).resolve()
            if target.is_relative_to(root) and target.is_file():
                target.unlink()

    def path(self, name: str) -> Path:
        target = self.out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def add(self, name: str) -> Path:
        """Record ``name`` (relative to the output folder) as written by this build."""
        self.written.append(name)
        return self.path(name)

    def render(self, template: str, name: str, **context: Any) -> Path:
        html = self.env.get_template(template).render(**self.common, page=name, **context)
        target = self.add(name)
        target.write_text(html, encoding="utf-8")
        return target

    def finish(self) -> None:
        (self.out_dir / MANIFEST).write_text(json.dumps(sorted(self.written), indent=0))
