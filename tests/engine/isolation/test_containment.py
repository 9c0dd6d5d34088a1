"""Containment of a hostile case: memory it hides outside its resident pages (a memfd, /dev/shm) or in a process that
left its tree counts against its limit; a process that forks and exits every few milliseconds is ended with it;
what a runner killed by SIGKILL left is ended by the next run. Plus the decisions behind them (the cgroup v2 path,
which cannot run on this machine's cgroup v1, and the pid file's rules). Runs use the template task (``tests/
template``); each hostile process counts at most 1.5 GiB before the runner should end it at 512 MiB."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from ctbench.isolation import cgroup, containment, procfs
from ctbench.isolation.footprint import footprint, host_shm_device

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

HOSTILE = r'''
import mmap, os, subprocess, sys, time
from pathlib import Path
import torch
from ctbench import Manifest
from suites.tiny.interface import Solver

TOKEN = os.environ["HOSTILE_TOKEN"]
PIDFILE = os.environ["HOSTILE_PIDFILE"]
GROUPS = os.environ["HOSTILE_GROUPS"]  # the process group of every escaped process, one a line
CHUNK, TOTAL = 64 * 2**20, 3 * 2**29  # 1.5 GiB in 64 MiB steps
BLOCK = b"\x01" * CHUNK


def fill(write):
    for _ in range(TOTAL // CHUNK):
        write(BLOCK)
        time.sleep(0.02)
    time.sleep(120)  # held: only the runner ends this


class MemfdHeld(Solver):
    """1.5 GiB in a memfd, held by its descriptor and never mapped."""
    manifest = Manifest(name="memfd_held")

    def solve(self, a, b):
        fd = os.memfd_create("hoard")
        fill(lambda block: os.write(fd, block))


class MemfdMapped(Solver):
    """1.5 GiB in a memfd that is mapped, its descriptor closed."""
    manifest = Manifest(name="memfd_mapped")

    def solve(self, a, b):
        fd = os.memfd_create("hoard")
        os.ftruncate(fd, TOTAL)
        view = mmap.mmap(fd, TOTAL)
        os.close(fd)
        fill(view.write)


class ShmHeld(Solver):
    """1.5 GiB in a file of /dev/shm, unlinked at once (nothing left behind), held by its descriptor."""
    manifest = Manifest(name="shm_held")

    def solve(self, a, b):
        path = f"/dev/shm/ctbench-test-{TOKEN}"
        f = open(path, "wb", buffering=0)
        os.unlink(path)
        fill(f.write)


class ShmWritten(Solver):
    """1.5 GiB written to a file of /dev/shm and closed after each chunk: neither held nor mapped."""
    manifest = Manifest(name="shm_written")

    def solve(self, a, b):
        path = f"/dev/shm/ctbench-test-{TOKEN}"

        def append(block):
            with open(path, "ab") as f:
                f.write(block)

        fill(append)


HOG = ("import time\n" + "hoard = []\n" + "for _ in range(24):\n"
       + "    hoard.append(b'x' * 2**26); time.sleep(0.02)\n" + "time.sleep(120)\n")


def escape(code):
    """Start ``code`` in a grandchild in its own session, whose parent exits at once (it is reparented to the
    runner, a subreaper); return its pid."""
    script = ("import os, sys\n"
              "if os.fork() == 0:\n"
              "    os.setsid()\n"
              f"    open({GROUPS!r}, 'a').write(str(os.getpgrp()) + '\\n')\n"
              f"    os.execv(sys.executable, [sys.executable, '-c', {code!r}, {TOKEN!r}])\n"
              "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", script], check=True)


class SetsidHog(Solver):
    """Hoards 1.5 GiB in a grandchild that left the case's process tree and session."""
    manifest = Manifest(name="setsid_hog")

    def solve(self, a, b):
        escape(HOG)
        time.sleep(120)


HOPPER = ("import os, time\n" + "n = 0\n" + "while True:\n" + "    if os.fork():\n" + "        os._exit(0)\n"
          + "    n += 1\n" + "    open(os.environ['HOSTILE_BEAT'], 'w').write(str(n))\n" + "    time.sleep(0.002)\n")


class ForkHopper(Solver):
    """Leaves a process that forks and exits every few milliseconds (never the same pid: a scan of /proc seldom
    sees it) and counts its hops in a file, then returns."""
    manifest = Manifest(name="fork_hopper")

    def solve(self, a, b):
        if not getattr(ForkHopper, "started", False):
            ForkHopper.started = True
            escape(HOPPER)
            time.sleep(1)
        return torch.linalg.solve(a, b)


class LeavesASleeper(Solver):
    """Once: leaves a sleeping process in its own session (writes its pid), then waits while the marker exists."""
    manifest = Manifest(name="leaves_sleeper")

    def solve(self, a, b):
        if not Path(PIDFILE).exists():
            escape("import os, sys, time\nopen(os.environ['HOSTILE_PIDFILE'], 'w').write(str(os.getpid()))\n"
                   "time.sleep(600)\n")
        while Path(os.environ["HOSTILE_MARK"]).exists():
            time.sleep(0.1)
        return torch.linalg.solve(a, b)
'''


def _groups(env: dict[str, str]) -> list[int]:
    """The process groups of what the hostile cases left (each escaped process writes its own)."""
    try:
        return [int(line) for line in Path(env["HOSTILE_GROUPS"]).read_text().split()]
    except (OSError, ValueError):
        return []


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _tagged(token: str) -> list[psutil.Process]:
    """Live processes whose command line carries ``token`` (every process a hostile case left carries it)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if token in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.fixture
def env(tmp_path, tiny_task):
    token = uuid.uuid4().hex
    root = tmp_path / "tasks"
    env = tiny_task(root, tmp_path / "cache", {"hostile.py": HOSTILE})
    env = {**env, "HOSTILE": str(root / "hostile.py"), "HOSTILE_TOKEN": token, "HOSTILE_MARK": str(tmp_path / "mark"),
           "HOSTILE_PIDFILE": str(tmp_path / "left.pid"), "HOSTILE_GROUPS": str(tmp_path / "groups"),
           "HOSTILE_BEAT": str(tmp_path / "beat")}  # fmt: skip
    yield env
    for _ in range(200):  # whatever a failing test left behind: never outlive the test
        left = _tagged(token)
        groups = [g for g in _groups(env) if _group_alive(g)]
        if not left and not groups:
            break
        for g in groups:
            try:
                os.killpg(g, signal.SIGKILL)
            except OSError:
                pass
        for p in left:
            p.kill()
        time.sleep(0.05)
    Path(f"/dev/shm/ctbench-test-{token}").unlink(missing_ok=True)


def ctbench(out: Path, env: dict[str, str], *impls: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    argv = ["run", "--task", "tiny", "--param", "n=8", "--out", str(out), "--no-report", "--timeout", "40", *extra]
    argv += [f"--impl={env['HOSTILE']}:{impl}" for impl in impls]
    return subprocess.run([sys.executable, "-m", "ctbench_cli", *argv], env=env, capture_output=True, text=True,
                          timeout=400)  # fmt: skip


def cases(out: Path) -> dict[str, dict]:
    (path,) = out.glob("*.json")
    return {c["impl"]: c for c in json.loads(path.read_text())["cases"]}


def test_memory_in_memfds_and_dev_shm_and_escaped_processes_counts(tmp_path, env):
    out = tmp_path / "out"
    impls = ("MemfdHeld", "MemfdMapped", "ShmHeld", "SetsidHog")
    done = ctbench(out, env, *impls, extra=("--max-memory", "512M", "--sandbox", "off"))
    assert done.returncode == 1, done.stdout + done.stderr
    found = cases(out)
    for name in ("memfd_held", "memfd_mapped", "shm_held", "setsid_hog"):
        case = found[name]
        assert case["status"] == "oom", f"{name}: {case['status']}: {case['error']}"
        assert "exceeded the memory limit of 0.50 GiB" in case["error"]
        assert case["containment"] in ("watch", "cgroup2") and "outside" in case
    assert not _tagged(env["HOSTILE_TOKEN"]), "the escaped hog outlived its case"


@needs_bwrap
def test_a_file_left_in_a_sandboxs_dev_shm_counts(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(out, env, "ShmWritten", extra=("--max-memory", "512M", "--sandbox", "on"))
    assert done.returncode == 1, done.stdout + done.stderr
    case = cases(out)["shm_written"]
    assert case["sandboxed"] is True
    assert case["status"] == "oom", f"{case['status']}: {case['error']}"


def test_a_fork_hopper_is_ended_with_its_case(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(out, env, "ForkHopper", extra=("--sandbox", "off"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert cases(out)["fork_hopper"]["status"] == "ok"
    beat = Path(env["HOSTILE_BEAT"])
    hops = beat.read_text()
    time.sleep(1)  # a survivor would still be hopping
    # empty: the hopper was killed between truncating and writing its count (never again written by a survivor)
    assert beat.read_text() == hops, "a process of the fork hopper outlived its case"
    assert hops == "" or int(hops) > 10


def _listed(pid: int, deadline: float = 60) -> bool:
    """The running case's pid file names ``pid``."""
    end = time.time() + deadline
    while time.time() < end:
        for path in Path("/tmp").glob(f"ctbench-case-*{containment.PIDS}"):
            doc = containment.read_pids(path) or {}
            if any(entry[0] == pid for entry in doc.get("processes") or []):
                return True
        time.sleep(0.1)
    return False


def test_what_a_killed_runner_left_is_ended_by_the_next_run(tmp_path, env):
    out, mark, left = tmp_path / "out", Path(env["HOSTILE_MARK"]), Path(env["HOSTILE_PIDFILE"])
    mark.touch()
    argv = ["run", "--task", "tiny", "--param", "n=8", "--out", str(out), "--no-report", "--sandbox", "off",
            f"--impl={env['HOSTILE']}:LeavesASleeper"]  # fmt: skip
    runner = subprocess.Popen([sys.executable, "-m", "ctbench_cli", *argv], env=env, stdout=subprocess.DEVNULL)
    try:
        end = time.time() + 120
        while not (left.exists() and left.read_text().strip()) and time.time() < end:
            time.sleep(0.1)
        sleeper = int(left.read_text())
        assert _listed(sleeper), "the runner never listed the escaped process in its case's pid file"
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    time.sleep(1)  # the worker dies with the runner; the sleeper, in its own session, does not
    assert psutil.pid_exists(sleeper) and psutil.Process(sleeper).status() != psutil.STATUS_ZOMBIE
    mark.unlink()
    resumed = subprocess.run([sys.executable, "-m", "ctbench_cli", *argv], env=env, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    psutil.wait_procs([psutil.Process(sleeper)] if psutil.pid_exists(sleeper) else [], timeout=10)
    assert not psutil.pid_exists(sleeper) or psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE


# -- the decisions, without a case ---------------------------------------------------------------------------------
def _fake_cgroup(tmp_path: Path, mounts: str, controllers: str = "cpu memory pids", enabled: str = "") -> Path:
    """A /proc/self and a /sys/fs/cgroup as files, this process in ``/user.slice/runner``."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    own = root / "user.slice" / "runner"
    own.mkdir(parents=True)
    proc.mkdir()
    (proc / "mounts").write_text(mounts.replace("ROOT", str(root)))
    (proc / "cgroup").write_text("0::/user.slice/runner\n")
    (own / "cgroup.controllers").write_text(controllers)
    (own / "cgroup.subtree_control").write_text(enabled)
    (own / "cgroup.procs").write_text("")
    return root


V2 = "cgroup2 ROOT cgroup2 rw,nosuid 0 0\n"
V1 = "tmpfs ROOT tmpfs rw 0 0\ncgroup ROOT/memory cgroup rw,memory 0 0\ncgroup2 ROOT/unified cgroup2 rw 0 0\n"


def test_cases_get_a_cgroup_only_where_cgroup2_offers_memory_and_is_writable(tmp_path):
    root = _fake_cgroup(tmp_path / "v2", V2)
    own = root / "user.slice" / "runner"
    assert cgroup.parent(root, tmp_path / "v2" / "proc", pid=12345) == own
    assert (own / cgroup.RUNNER_LEAF / "cgroup.procs").read_text() == "12345"  # moved itself into a leaf first
    assert (own / "cgroup.subtree_control").read_text() == "+memory"
    root = _fake_cgroup(tmp_path / "on", V2, enabled="memory")
    assert cgroup.parent(root, tmp_path / "on" / "proc", pid=1) == root / "user.slice" / "runner"
    assert not (root / "user.slice" / "runner" / cgroup.RUNNER_LEAF).exists()  # already delegated: stays
    root = _fake_cgroup(tmp_path / "v1", V1)
    assert cgroup.parent(root, tmp_path / "v1" / "proc") is None  # cgroup v1 (this machine): the watch alone
    root = _fake_cgroup(tmp_path / "nomem", V2, controllers="cpu pids")
    assert cgroup.parent(root, tmp_path / "nomem" / "proc") is None
    root = _fake_cgroup(tmp_path / "hybrid", V2.replace("cgroup2 ROOT", "cgroup2 ROOT/unified"))
    assert cgroup.parent(root, tmp_path / "hybrid" / "proc") is None  # the hybrid layout: v2 is not at the root


def test_a_cgroup_this_user_cannot_write_is_not_used(tmp_path):
    root = _fake_cgroup(tmp_path, V2)
    own = root / "user.slice" / "runner"
    own.chmod(0o555)
    try:
        if os.access(own, os.W_OK):  # root ignores modes
            pytest.skip("running as root: a read-only folder is still writable")
        assert cgroup.parent(root, tmp_path / "proc") is None
    finally:
        own.chmod(0o755)


def test_this_machines_cgroup_decision_holds_the_case_by_the_watch():
    if cgroup.is_cgroup2_mount(Path("/proc/self/mounts").read_text()):
        pytest.skip("this machine mounts cgroup2 at /sys/fs/cgroup")
    assert cgroup.parent() is None


def test_a_case_group_is_limited_and_reports_the_kernels_oom(tmp_path):
    group = cgroup.case_group(tmp_path, 512 * 2**20)
    assert group is not None and (group.path / "memory.max").read_text() == str(512 * 2**20)
    assert (group.path / "memory.oom.group").read_text() == "1" and not group.oom_killed()
    (group.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (group.path / "memory.peak").write_text("536870912\n")
    assert group.oom_killed() and group.peak_bytes() == 512 * 2**20


def test_a_pid_file_never_ends_a_reused_pid_or_the_runner_itself(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        me, other = procfs.stat(os.getpid()), procfs.stat(sleeper.pid)
        path = tmp_path / f"case{containment.PIDS}"
        reused = [sleeper.pid, other.start + 1, other.pgid, other.sid]  # the same pid, started at another time
        ours = [os.getpid(), me.start, me.pgid, me.sid]
        path.write_text(json.dumps({"runner": [1, 0], "processes": [reused, ours]}))
        assert containment.end_listed(path, deadline_s=2) == 0 and sleeper.poll() is None
        listed = [sleeper.pid, other.start, other.pgid, other.sid]
        path.write_text(json.dumps({"runner": [1, 0], "processes": [listed, ours]}))
        assert containment.end_listed(path, deadline_s=5) == 1
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()


def test_footprint_counts_a_memfd_once_whether_held_or_mapped():
    """Measured in a fresh interpreter: the test process holds other tests' shared mappings."""
    done = subprocess.run([sys.executable, __file__, "memfd"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _memfd_counted_once() -> None:
    import mmap

    me, shm = [os.getpid()], host_shm_device()
    before = footprint(me, shm)
    fd = os.memfd_create("footprint-test")
    try:
        os.ftruncate(fd, 64 * 2**20)
        view = mmap.mmap(fd, 64 * 2**20)
        view.write(b"\x01" * 64 * 2**20)
        held_and_mapped = footprint(me, shm)
        os.close(fd)
        mapped = footprint(me, shm)
        view.close()
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    for seen in (held_and_mapped, mapped):
        grown = seen.total - before.total
        assert 60 * 2**20 < grown < 80 * 2**20, grown  # counted once, not once as held and again as mapped


if __name__ == "__main__" and sys.argv[1:] == ["memfd"]:
    _memfd_counted_once()
