"""A submission's code never runs outside the sandbox, and inside it has no privilege: its module is resolved in a
separate (sandboxed) process, whatever it does at import time changes no run file, and a sandboxed process can
neither regain a capability nor see the run's ``--out``, other programs' sockets or the machine's devices."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ctbench.isolation.sandbox import sandbox_args

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

HEADER = """
import atexit, json, os, sys, time
from pathlib import Path
import torch
from ctbench import Manifest
from suites.tiny.interface import Solver
OUT = Path(os.environ["EVIL_OUT"])
"""

SOLVER = """
class Mine(Solver):
    manifest = Manifest(name={name})

    def solve(self, a, b):
        return torch.linalg.solve(a, b)
"""

# module-level code a submission may hold: each would change the verdict if it ran in the runner
AT_IMPORT = {
    "rewrites_run_files_at_exit": """
def forge():
    for path in OUT.glob("*.json"):
        doc = json.loads(path.read_text())
        for case in doc["cases"]:
            case["metrics"] = {k: 123.0 for k in case["metrics"]}
        path.write_text(json.dumps(doc))
atexit.register(forge)
import ctbench.store.results as results
results.Run.write = lambda *a, **k: None
""",
    "drops_files_into_out": """
try:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "stray.json").write_text("{}")
    (OUT / ".partial").mkdir(exist_ok=True)
    (OUT / ".partial" / "stray.jsonl").write_text("{}")
except OSError:
    pass
""",
}

# module-level code that ends or stalls the process that imports it: a usage error, never a run that exits 0
ENDS_RESOLUTION = {
    "exits_zero": ("os._exit(0)", "ended while being resolved"),
    "sys_exit": ("sys.exit(0)", "ended while being resolved"),
    "crashes": ("import ctypes; ctypes.string_at(0)", "ended while being resolved"),
    "hangs": ("time.sleep(600)", "did not finish within"),
}


def ctbench(argv: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ctbench_cli", *argv], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def hostile(tmp_path, tiny_task):
    """``hostile(at_import, name='"mine"')``: a submission file whose module runs ``at_import``; returns its path
    and the environment of a run whose ``--out`` is ``tmp_path / 'out'``."""

    def make(at_import: str, name: str = '"mine"') -> tuple[Path, dict[str, str]]:
        source = HEADER + at_import + SOLVER.format(name=name)
        env = tiny_task(tmp_path / "tasks", tmp_path / "cache", {"mine.py": source})
        env = {**env, "EVIL_OUT": str(tmp_path / "out"), "CTBENCH_RESOLVE_TIMEOUT": "20"}
        return tmp_path / "tasks" / "mine.py", env

    return make


def run_args(out: Path, spec: Path, sandbox: str) -> list[str]:
    return ["run", "--task", "tiny", "--param", "n=8", "--out", str(out), "--no-report", "--sandbox", sandbox,
            "--impl", "direct", "--impl", f"{spec}:Mine"]  # fmt: skip


@needs_bwrap
@pytest.mark.parametrize("sandbox", ["auto", "on"])
@pytest.mark.parametrize("kind", sorted(AT_IMPORT))
def test_code_a_submission_runs_at_import_changes_no_result(tmp_path, hostile, kind, sandbox):
    spec, env = hostile(AT_IMPORT[kind])
    out = tmp_path / "out"
    done = ctbench(run_args(out, spec, sandbox), env)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(p.name for p in out.iterdir() if p.name != ".partial")
    assert len(files) == 1 and files[0].endswith(".json") and files[0] != "stray.json", files
    assert not (out / ".partial" / "stray.jsonl").exists()
    doc = json.loads((out / files[0]).read_text())
    reference = next(c for c in doc["cases"] if c["impl"] == "direct")
    assert reference["status"] == "ok" and reference["metrics"]["residual"] < 1e-6  # its true value, not the forged 123
    assert {c["impl"] for c in doc["cases"]} == {"direct", "mine"}


@needs_bwrap
@pytest.mark.parametrize("kind", sorted(ENDS_RESOLUTION))
def test_a_submission_that_ends_or_stalls_while_resolved_is_a_usage_error(tmp_path, hostile, kind):
    code, message = ENDS_RESOLUTION[kind]
    spec, env = hostile(code)
    out = tmp_path / "out"
    done = ctbench(run_args(out, spec, "auto"), {**env, "CTBENCH_RESOLVE_TIMEOUT": "5"}, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "name, message",
    [("42", "must be a non-empty printable string"), ('"  "', "non-empty printable"),
     ('"two\\nlines"', "printable"), ('"x\\x1b[2Jy"', "printable"), ('"x" * 500', "at most 100")],
)  # fmt: skip
def test_a_bad_manifest_is_a_usage_error(tmp_path, hostile, name, message):
    spec, env = hostile("", name=name)
    out = tmp_path / "out"
    done = ctbench(run_args(out, spec, "off"), env, timeout=120)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()


def test_the_runner_never_imports_a_submission(tmp_path, hostile):
    """Even unsandboxed (``--sandbox off``), the submission is imported in its own process, not the runner's: a
    module that would replace the runner's run-file writer changes nothing."""
    spec, env = hostile(AT_IMPORT["rewrites_run_files_at_exit"])
    out = tmp_path / "out"
    done = ctbench(run_args(out, spec, "off"), env)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("*.json")
    reference = next(c for c in json.loads(path.read_text())["cases"] if c["impl"] == "direct")
    assert reference["metrics"]["residual"] < 1e-6


PROBE = r"""
import ctypes, errno, json, os, socket, sys
report = {"cap_eff": open("/proc/self/status").read().split("CapEff:")[1].split()[0],
          "dev": sorted(os.listdir("/dev")), "mountinfo": open("/proc/self/mountinfo").read(),
          "out_exists": os.path.exists(sys.argv[1]), "tmp": sorted(os.listdir("/tmp")) if os.path.isdir("/tmp") else []}
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND = 32, 4096
results = {}
for mount in ("/", "/usr", os.getcwd()):
    results[mount] = [libc.umount2(mount.encode(), 2) == 0,
                      libc.mount(None, mount.encode(), None, MS_REMOUNT | MS_BIND, None) == 0]
report["mounts"] = results
try:
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[2]); report["socket"] = "connected"
except OSError as exc:
    report["socket"] = exc.strerror
try:
    os.makedirs(sys.argv[1], exist_ok=True); open(os.path.join(sys.argv[1], "forged.json"), "w").write("{}")
    report["wrote_out"] = True
except OSError:
    report["wrote_out"] = False
print(json.dumps(report))
"""


def _as(user: str) -> list[str]:
    if user == "root":
        return []
    return ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
@pytest.mark.parametrize("user", ["root", "nobody"])
def test_a_sandboxed_process_has_no_privilege_devices_sockets_or_view_of_out(user, monkeypatch):
    # what other tests left on the import path lies in pytest's folder, closed to the unprivileged user
    monkeypatch.delenv("CTBENCH_PATH", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p.startswith(tempfile.gettempdir())])
    tmp_path = Path(tempfile.mkdtemp(prefix="ctbench-test-"))  # pytest's own folder is closed to other users
    try:
        _probe_as(user, tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _probe_as(user: str, tmp_path: Path) -> None:
    case_dir, out, sock_path = tmp_path / "case", tmp_path / "results" / "run-out", tmp_path / "listener.sock"
    case_dir.mkdir()
    out.mkdir(parents=True)
    (case_dir / "probe.py").write_text(PROBE)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen(1)
    for path in (tmp_path, tmp_path / "results", case_dir, out):
        os.chmod(path, 0o777)
    try:
        args = sandbox_args(case_dir, [out], "cpu")
        # the unprivileged user cannot read this interpreter's home: the probe runs on the system's python3
        python = sys.executable if user == "root" else (shutil.which("python3", path="/usr/bin") or "python3")
        command = [*_as(user), *args, python, "probe.py", str(out), str(sock_path)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=case_dir)
    finally:
        listener.close()
    assert done.returncode == 0, shlex.join(command) + "\n" + done.stderr
    report = json.loads(done.stdout)
    assert report["cap_eff"] == "0000000000000000"
    assert set(report["dev"]) == {"fd", "null", "shm", "stderr", "stdin", "stdout", "urandom", "zero"}
    assert str(out) not in report["mountinfo"] and not report["out_exists"] and not report["wrote_out"]
    assert report["socket"] != "connected"
    assert all(not unmounted and not remounted for unmounted, remounted in report["mounts"].values()), report
    assert not (out / "forged.json").exists()


@needs_bwrap
def test_a_cuda_case_sees_the_nvidia_nodes_and_no_other_device(tmp_path):
    args = sandbox_args(tmp_path, [], "cuda")
    bound = {args[i + 1] for i, a in enumerate(args) if a == "--dev-bind"}
    assert bound == {"/dev/null", "/dev/zero", "/dev/urandom", *(str(p) for p in Path("/dev").glob("nvidia*"))}
    assert "--dev-bind" not in sandbox_args(tmp_path, [], "cpu")[-1:]
    assert not any(str(p) in sandbox_args(tmp_path, [], "cpu") for p in Path("/dev").glob("nvidia*"))
