"""Atomic file writes: a reader sees the old file or the whole new one, never half of either.

Every final file the engine writes (run folder manifests, reports, baselines, sweep chunks, replay
tables, fitted parameter files, ``--residuals``) goes through this module, so all of them get the
same guarantees:

* the data is written to a hidden temporary file in the *same* folder (``.<name>.partial-<pid>``;
  the same file system, so the rename cannot become a copy), opened without following a link at
  that name;
* the temporary file is flushed and ``fsync``-ed, then renamed over the target with ``os.replace``
  (atomic on POSIX and Windows), then the folder is ``fsync``-ed where the platform supports it, so
  the rename itself survives a power cut;
* on any failure, ``KeyboardInterrupt`` included, the temporary file is removed and the target is
  left as it was.

:func:`write_with` serves writers that want a path (``DataFrame.to_parquet``, ``Figure.savefig``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

__all__ = ["fsync_dir", "temp_name", "write_bytes", "write_json", "write_text", "write_with"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def temp_name(path: Path) -> Path:
    """The hidden temporary sibling ``path`` is written through."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder: the rename is still atomic
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably; returns ``path``."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        tmp.unlink(missing_ok=True)  # a stale file (or a planted link) of an earlier process with our pid
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically and durably; returns ``path``."""
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | Path, obj, *, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON (and a final newline) to ``path`` atomically and durably."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to write the file at a temporary path, then make it ``path`` atomically
    and durably (``write_with(p, lambda t: frame.to_parquet(t))``); returns ``path``."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        tmp.unlink(missing_ok=True)
        write(tmp)
        _fsync_file(tmp)
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
