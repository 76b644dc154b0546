"""Running a command on a pseudo-terminal, as a person at a terminal would see it (for the tests
of progress bars, which appear only when stderr is a terminal)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from conftest import ROOT


def run_in_pty(args, cwd: Path = ROOT, env: dict | None = None, timeout: float = 600) -> tuple[int, str]:
    """``python -m engine ARGS`` with stdin, stdout and stderr on one 40 x 140 pseudo-terminal;
    its exit code and everything it wrote (progress-bar redraws included). ``CI`` is removed
    from the environment unless ``env`` sets it."""
    master, slave = pty.openpty()
    # a fresh pseudo-terminal has no size, and tqdm draws nothing on it
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    base = {k: v for k, v in os.environ.items() if k != "CI"}
    base.update({"COLUMNS": "140", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    proc = subprocess.Popen([sys.executable, "-m", "engine", *map(str, args)], stdin=slave, stdout=slave,
                            stderr=slave, cwd=cwd, env={**base, **(env or {})})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode("utf-8", errors="replace")
