"""A tiny task: the template of ``suites/README.md`` and the fixture of the engine's tests."""

from suites.tiny.task import Tiny

TASK = Tiny()
