"""Running the CLI as a hostile user would, for tests/test_hostile_*.py.

Each case runs ``python -m engine`` in a subprocess with a timeout, so a read that blocks (a FIFO)
fails the test instead of hanging the suite, and checks what a user error must look like: exit 2,
a message naming the file (and the key or flag), no traceback, and nothing left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

CALM = ROOT / "scenarios" / "ci" / "ci-calm.yaml"  # small, valid, extends only files of the repo
TIMEOUT = 20  # seconds: every refusal here is immediate; a hang is a failure


def cascade(*args, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m engine ARGS`` in ``cwd``, with the checkout importable and a timeout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def tree(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` with its kind, size and modification time (what "changed" means)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def child_scenario(folder: Path, name: str, body: str = "", file: str | None = None) -> Path:
    """A scenario in ``folder`` that extends the small CI scenario, with ``body`` appended."""
    path = folder / (file or f"{name}.yaml")
    path.write_text(f"extends: {os.path.relpath(CALM, folder)}\nname: {name}\n{body}", encoding="utf-8")
    return path


def assert_refused(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, no traceback, and each fragment (the file, the key or flag) in stderr."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


def refused_here(folder: Path, args, *fragments: str) -> subprocess.CompletedProcess:
    """``cascade <args>`` run in ``folder`` is refused (:func:`assert_refused`) and leaves the folder
    exactly as it was: no run folder, no temporary file, nothing touched."""
    before = tree(folder)
    proc = cascade(*args, cwd=folder)
    assert_refused(proc, *fragments)
    assert tree(folder) == before
    return proc
