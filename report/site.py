"""Writing the pages: jinja2 templates with autoescaping, static assets copied beside them, all built in a staging
folder next to the output and moved into it only once every page is written.

Every string from a result file reaches the HTML through jinja2's autoescape, so a submission named
``<script>alert(1)</script>`` is shown as text, and through the ``bdi`` filter (``report.fmt.bdi``), so a name
holding a right-to-left override cannot reorder the page around it. The site records the files it wrote in
``.ctbench-report``; ``finish`` moves the new files in, then removes the files the previous build listed that
this one did not write, so a task that left the results leaves no stale page. Nothing else in the output folder
is touched, and a build that fails before ``finish`` leaves the previous site as it was: leaving the ``with``
block removes the staging folder, whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jinja2

from report.fmt import bdi, safe_url

HERE = Path(__file__).parent
MANIFEST = ".ctbench-report"


class Site:
    def __init__(self, out_dir: Path, common: dict[str, Any]):
        self.given = Path(out_dir)  # the output folder as named (pages are reported under this name)
        self.out_dir = self.given.resolve()
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        # next to the output, so that moving a page in is a rename on the same file system
        self.stage = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.building-", dir=self.out_dir.parent))
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
        self.env.filters["bdi"] = bdi
        try:
            for asset in sorted((HERE / "static").iterdir()):
                shutil.copyfile(asset, self.add(f"static/{asset.name}"))
        except BaseException:
            self.discard()
            raise

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def path(self, name: str) -> Path:
        """Where ``name`` is written while the site is being built (in the staging folder)."""
        target = self.stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def add(self, name: str) -> Path:
        """Record ``name`` (relative to the output folder) as written by this build; return where to write it."""
        self.written.append(name)
        return self.path(name)

    def render(self, template: str, name: str, **context: Any) -> Path:
        """Render a page into the staging folder; return the path it will have in the output folder."""
        html = self.env.get_template(template).render(**self.common, page=name, **context)
        self.add(name).write_text(html, encoding="utf-8", errors="backslashreplace")  # never fails on a surrogate
        return self.given / name

    def _previous(self) -> list[Path]:
        """The files the previous build listed, inside the output folder."""
        try:
            names = json.loads((self.out_dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        targets = []
        for name in names if isinstance(names, list) else []:
            target = (self.out_dir / str(name)).resolve()
            if target.is_relative_to(self.out_dir) and target.is_file():
                targets.append(target)
        return targets

    def finish(self) -> None:
        """Move the new files into the output folder, then remove the previous build's files it did not rewrite."""
        previous = self._previous()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        written = sorted(set(self.written))
        self.path(MANIFEST).write_text(json.dumps(written, indent=0), encoding="utf-8")
        for name in [*written, MANIFEST]:
            target = self.out_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.stage / name, target)
        kept = {(self.out_dir / name).resolve() for name in written}
        for target in previous:
            if target not in kept:
                target.unlink(missing_ok=True)
        self.discard()

    def discard(self) -> None:
        """Remove the staging folder (after ``finish``, or after a failed build: the output is left as it was)."""
        shutil.rmtree(self.stage, ignore_errors=True)
