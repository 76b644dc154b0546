"""Hostile sweeps: a grid too large for memory, two sweeps into one folder, a stale lock, a sweep
killed with SIGTERM (its loky workers must not survive it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.sweep import folder as sweep_folder

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "scenarios" / "ci" / "ci-feb-2026-small.yaml"
TIMEOUT = 60
GRID = """\
extends: {small}
name: hostile-sweep
n_paths: 256
strategies:
  - rule: protective_put
    name: put
    strike_usd: {{values: [60k, 65k, 70k, 75k, 80k]}}
    hedge_ratio: {{values: [50%, 100%]}}
    expiry: 2026-02-27T08:00:00Z
sweep:
  mode: product
  parameters:
    shocks[metals_selloff].moves[0].move: [-10%, -20%, -30%, -34%]
"""


@pytest.fixture
def grid_file(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.format(small=os.path.relpath(SMALL, path.parent)))
    return path


def _sweep(grid_file, out, *extra, **kw):
    return subprocess.run([sys.executable, "-m", "engine", "sweep", str(grid_file), "--out", str(out), "--no-report",
                           "--no-progress", *extra], capture_output=True, text=True, timeout=TIMEOUT, **kw)


def test_a_sweep_too_large_for_memory_is_refused_before_its_folder(grid_file, tmp_path):
    out = tmp_path / "huge"
    proc = _sweep(grid_file, out, "--paths", "1e9")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(grid_file) in proc.stderr and "--paths 1,000,000,000" in proc.stderr and "GB" in proc.stderr
    assert not out.exists()


def test_a_second_sweep_into_a_locked_folder_is_refused_naming_the_holder(grid_file, tmp_path):
    out = tmp_path / "locked"
    lock = sweep_folder.FolderLock(out)
    lock.acquire()
    try:
        proc = _sweep(grid_file, out)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "another sweep is running" in proc.stderr and f"pid {os.getpid()}" in proc.stderr
        assert sorted(p.name for p in out.iterdir()) == [sweep_folder.LOCK_NAME]  # nothing of the refused sweep
    finally:
        lock.release()
    assert not out.exists() or not any(out.iterdir())


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_note(tmp_path, capsys):
    out = tmp_path / "stale"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"pid": int(dead.stdout), "host": os.uname().nodename, "started": "2026-01-01T00:00:00Z",
              "command": "cascade sweep grid.yaml"}
    (out / sweep_folder.LOCK_NAME).write_text(json.dumps(record))
    lock = sweep_folder.FolderLock(out)
    lock.acquire()
    try:
        assert "taking over the lock" in capsys.readouterr().err
        assert json.loads((out / sweep_folder.LOCK_NAME).read_text())["pid"] == os.getpid()
    finally:
        lock.release()
    assert not (out / sweep_folder.LOCK_NAME).exists()


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        out |= kids
        todo.extend(kids)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _interrupt_mid_sweep(grid_file, tmp_path, sig: int):
    """Start a 2-worker sweep, wait until a chunk is saved and its workers are seen, send ``sig``
    to the sweep's process; return ``(proc, workers, out, stderr text)`` once it has ended."""
    out = tmp_path / "killed"
    log = tmp_path / "stderr.txt"
    workers: set[int] = set()
    with open(log, "w") as err:  # a file, not a pipe: a surviving worker would hold a pipe open
        proc = subprocess.Popen([sys.executable, "-m", "engine", "sweep", str(grid_file), "--out", str(out),
                                 "--no-report", "--no-progress", "--jobs", "2", "--chunk-size", "1"],
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _children(proc.pid)
            if len(list((out / "chunks").glob("*.json"))) >= 1 and workers:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the sweep finished before it could be interrupted: " + log.read_text()
        workers |= _children(proc.pid)
        assert workers, "no worker process was seen"
        proc.send_signal(sig)
        proc.wait(30)
    except BaseException:
        _reap(proc, workers)
        raise
    return proc, workers, out, log.read_text()


def _reap(proc, workers) -> None:
    """Whatever the outcome, leave no process of a test behind."""
    if proc.poll() is None:
        proc.kill()
    for pid in workers:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _survivors(workers, wait: float) -> list[int]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    return [p for p in workers if _alive(p)]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_terminated_sweep_leaves_no_worker_and_no_lock(grid_file, tmp_path):
    proc, workers, out, text = _interrupt_mid_sweep(grid_file, tmp_path, signal.SIGTERM)
    try:
        assert proc.returncode == 130 and "interrupted" in text and "Traceback" not in text, text
        assert not _survivors(workers, 3), "worker processes survived the sweep"
        assert not (out / sweep_folder.LOCK_NAME).exists()
        assert not list(out.glob(".shared-*"))
    finally:
        _reap(proc, workers)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_workers_of_a_sweep_killed_with_sigkill_die_with_it_and_it_resumes(grid_file, tmp_path):
    """``kill -9`` gives the sweep no chance to stop its pool: each worker sees its parent gone
    (it is re-parented) and ends, busy or idle; the next run takes the dead run's lock over and
    finishes the table."""
    proc, workers, out, _ = _interrupt_mid_sweep(grid_file, tmp_path, signal.SIGKILL)
    try:
        assert proc.returncode == -signal.SIGKILL
        assert not _survivors(workers, 5), "worker processes outlived a sweep killed with SIGKILL"
        again = _sweep(grid_file, out, "--jobs", "2", "--chunk-size", "1")
        assert again.returncode == 0, again.stderr
        assert "taking over the lock" in again.stderr and "Traceback" not in again.stderr
    finally:
        _reap(proc, workers)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_special_files_planted_in_a_sweep_folder_are_never_opened(grid_file, tmp_path):
    out = tmp_path / "planted"
    (out / "chunks").mkdir(parents=True)
    os.mkfifo(out / "plan.json")
    proc = _sweep(grid_file, out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(out) in proc.stderr and "plan.json" in proc.stderr
