"""Implementations: reference ones in ``reference_impls/<task>/`` and users' submissions, which have the same shape.

An implementation is a class that provides the abstract methods of its task's ``interface`` and carries a
``manifest``. It is named by a spec the runner can hand to a subprocess:

- ``path/to/file.py:ClassName`` or ``path/to/file.py`` (every implementation class in the file),
- ``path/to/folder`` (every implementation class in the folder's ``*.py`` files),
- ``package.module:ClassName`` or ``package.module`` (an installed module).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from ctbench.store.schema import REFERENCE


class ImplementationError(ValueError):
    """An implementation that cannot be loaded or does not satisfy its task's interface."""


@dataclass(frozen=True)
class Manifest:
    """Who made an implementation. ``name`` is the row label on leaderboards."""

    name: str
    authors: Sequence[str] = ()
    url: str = ""
    description: str = ""


@dataclass(frozen=True)
class ImplRef:
    """A loadable implementation: its manifest, the spec that re-imports it, and whether it is a reference."""

    manifest: Manifest
    spec: str  # "<module or file>:<ClassName>", enough for a subprocess to load it again
    submission: str  # REFERENCE for ours, else the submission's label
    content_hash: str = ""  # sha256 of the source that defines it: runs of different code never share a row

    @property
    def name(self) -> str:
        return self.manifest.name


def missing_members(cls: type, interface: type) -> list[str]:
    """Names ``interface`` declares abstract (and ``manifest``) that ``cls`` does not provide."""
    required = sorted(getattr(interface, "__abstractmethods__", ()))
    missing = [
        name
        for name in required
        if not callable(member := getattr(cls, name, None)) or getattr(member, "__isabstractmethod__", False)
    ]
    manifest = getattr(cls, "manifest", None)
    if not isinstance(manifest, Manifest):
        missing.append("manifest (a ctbench.Manifest with at least a name)")
    elif problem := manifest_problem(vars(manifest)):
        missing.append(f"a valid manifest ({problem})")
    return missing


MAX_NAME = 100  # characters of a manifest's name: a row label


def manifest_problem(fields: dict[str, object]) -> str | None:
    """What is wrong with a manifest's fields (``name`` a non-empty printable string of at most ``MAX_NAME``
    characters, ``authors`` a sequence of strings, ``url`` and ``description`` strings), else None."""
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip() or not name.isprintable() or len(name) > MAX_NAME:
        return f"its name must be a non-empty printable string of at most {MAX_NAME} characters, not {name!r:.80}"
    try:
        name.encode()
    except UnicodeEncodeError:
        return f"its name must be valid text, not {name!r:.80}"
    authors = fields.get("authors", ())
    if isinstance(authors, str) or not isinstance(authors, (list, tuple)):
        return "its authors must be a list of strings"
    if not all(isinstance(a, str) for a in authors):
        return "its authors must be a list of strings"
    for key in ("url", "description"):
        if not isinstance(fields.get(key, ""), str):
            return f"its {key} must be a string"
    return None


def _import_file(path: Path) -> ModuleType:
    module_name = f"ctbench_submission_{abs(hash(path.resolve()))}_{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImplementationError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _import(target: str) -> ModuleType:
    path = Path(target)
    try:
        if target.endswith(".py"):
            if not path.is_file():
                raise ImplementationError(f"no such file: {target}")
            return _import_file(path)
        return importlib.import_module(target)
    except ImplementationError:
        raise
    except Exception as exc:  # the submission's own import failed: say where
        raise ImplementationError(f"importing {target} failed: {type(exc).__name__}: {exc}") from exc


def _classes_in(module: ModuleType) -> list[type]:
    """Implementation classes defined in ``module``: concrete classes that carry their own manifest."""
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__
        and isinstance(obj.__dict__.get("manifest"), Manifest)
        and not inspect.isabstract(obj)
    ]


def content_hash(cls: type) -> str:
    """A short sha256 of the file that defines ``cls`` and of the other ``.py`` files of its folder (a submission's
    helpers live beside it); empty when the source cannot be read."""
    try:
        source = Path(inspect.getsourcefile(cls) or "")
    except TypeError:
        return ""
    if not source.is_file():
        return ""
    digest = hashlib.sha256()
    for path in [source, *sorted(p for p in source.parent.glob("*.py") if p != source)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _spec_of(cls: type, target: str) -> str:
    """What a case's process re-imports: a file by its absolute path (cases run in their own folder)."""
    if target.endswith(".py"):
        target = str(Path(target).resolve())
    return f"{target}:{cls.__qualname__}"


def _named_classes(spec: str) -> list[tuple[str, type[Any]]]:
    """Each implementation class ``spec`` names, with the file or module it is in: its class, else those of its file
    or module (classes with their own ``manifest``), else those of every file of its folder. Imports the spec."""
    target, _, class_name = spec.partition(":")
    path = Path(target)
    if path.is_dir():
        if class_name:
            raise ImplementationError(f"{spec}: name a file, not a folder, with ':{class_name}'")
        files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        return [pair for f in files for pair in _named_classes(str(f))]
    module = _import(target)
    if not class_name:
        return [(target, cls) for cls in _classes_in(module)]
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        found = ", ".join(c.__name__ for c in _classes_in(module)) or "none"
        raise ImplementationError(f"{target} has no class {class_name!r} (implementation classes: {found})")
    return [(target, cls)]


def spec_classes(spec: str) -> list[type]:
    """The implementation classes ``spec`` names (``_named_classes``). Imports the spec."""
    return [cls for _, cls in _named_classes(spec)]


def implementing(classes: Sequence[type], interfaces: Mapping[str, type]) -> list[str]:
    """The names of ``interfaces`` every class implements: those it subclasses, or else, where it subclasses none
    of them, those whose abstract methods it provides (an interface without any matches by subclassing only)."""

    def provides(cls: type, interface: type) -> bool:
        required = getattr(interface, "__abstractmethods__", ())
        return bool(required) and not [m for m in missing_members(cls, interface) if m in required]

    if not classes:
        return []
    names = set(interfaces)
    for cls in classes:
        subclassed = {n for n, i in interfaces.items() if issubclass(cls, i)}
        names &= subclassed or {n for n, i in interfaces.items() if provides(cls, i)}
    return sorted(names)


def resolve(spec: str, interface: type, submission: str | None = None) -> list[ImplRef]:
    """Load the implementation(s) ``spec`` names and check them against ``interface``. The classes of a folder
    share its name as their submission label."""
    target = spec.partition(":")[0]
    folder = Path(target).is_dir()
    named = _named_classes(spec)
    if folder and not named:
        raise ImplementationError(f"{target}: no implementation class (a class with a `manifest`) found")
    refs = []
    for where, cls in named:
        missing = missing_members(cls, interface)
        if missing:
            raise ImplementationError(
                f"{_spec_of(cls, where)} does not satisfy {interface.__module__}.{interface.__name__}: "
                f"missing {', '.join(missing)}"
            )
        label = submission or (Path(target).name if folder else cls.manifest.name)
        refs.append(ImplRef(cls.manifest, _spec_of(cls, where), label, content_hash(cls)))
    return refs


def load_class(spec: str) -> type:
    """Re-import the class an ``ImplRef.spec`` names (in the case's subprocess)."""
    target, _, class_name = spec.partition(":")
    return cast(type, getattr(_import(target), class_name))


def _missing_library(exc: ImplementationError, package: str) -> str | None:
    """The third-party package whose absence made a reference fail to import (a peer library), else None."""
    cause = exc.__cause__
    if isinstance(cause, ModuleNotFoundError) and cause.name:
        top = cause.name.split(".")[0]
        if top not in ("ctbench", "suites", "reference_impls", package.split(".")[0]):
            return top
    return None


_UNAVAILABLE: dict[str, dict[str, str]] = {}


def task_references(task: Any) -> list[ImplRef]:
    """The reference implementations of ``task`` (a ``ctbench.Task``): those in its ``reference_package``."""
    return reference_impls(task.name, task.interface, task.reference_package)


def reference_impls(task_name: str, interface: type, package: str | None = None) -> list[ImplRef]:
    """The reference implementations of a task: every implementation class in ``package`` (by default
    ``reference_impls.<task>``, the folder layout; a task installed as a plugin names its own).

    A reference that wraps a peer library which is not installed (torchdeq, FrEIA, normflows on a machine without
    them) is left out and named by ``unavailable_references``; any other import error is raised."""
    package = package or f"reference_impls.{task_name}"
    try:
        pkg = importlib.import_module(package)
    except ModuleNotFoundError:
        return []
    refs: list[ImplRef] = []
    unavailable = _UNAVAILABLE.setdefault(task_name, {})
    for path in sorted(Path(pkg.__path__[0]).glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            refs += resolve(f"{package}.{path.stem}", interface, submission=REFERENCE)
        except ImplementationError as exc:
            library = _missing_library(exc, package)
            if library is None:
                raise
            unavailable[path.stem] = f"needs {library}, which is not installed"
    return refs


def unavailable_references(task_name: str) -> dict[str, str]:
    """References of the task left out by ``reference_impls`` (module name -> why)."""
    return dict(_UNAVAILABLE.get(task_name, {}))
