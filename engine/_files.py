"""Reading input files and checking output locations, treating the disk as untrusted.

Everything the engine reads from disk (scenarios, ``extends:`` parents, strategy files, position
books, regression baselines) goes through :func:`read_regular_bytes`: the file must be a regular
file no larger than the reader's limit. It is opened non-blocking and checked on the open
descriptor, so a FIFO, a socket or a device (``/dev/zero``, ``/dev/stdin``) is refused at once
instead of blocking forever or streaming without end, and a file swapped between a check and the
open cannot slip through.

Everything the engine writes is checked by :func:`check_output_dir` / :func:`check_output_file`
*before* the work starts, so an unwritable ``--out`` is reported in a second, not after a long
simulation, and without a traceback.

Text read from files is made safe to print by :func:`engine._terminal.terminal_safe`.
"""

from __future__ import annotations

import itertools
import os
import stat
import tempfile
from pathlib import Path

from .errors import Problem, ScenarioError

__all__ = ["read_regular_bytes", "read_data_bytes", "read_csv_frame", "check_output_dir", "check_output_file", "size_text"]

MAX_CSV_BYTES = 512 * 1024**2
"""The largest CSV read (price history, option chains, reference tables): 512 MB, a decade of
minute candles."""


def size_text(n: int) -> str:
    """``12582912`` -> ``'12.0 MB'``; small sizes in bytes."""
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{n:,} bytes"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def read_regular_bytes(path: str | Path, limit: int, what: str, shown: str | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    ``what`` names the kind of file in messages (``"a scenario"``, ``"a baseline"``); ``shown`` is
    how the file is named (default: the path as given). Raises :class:`ScenarioError` with one
    :class:`Problem` naming the file.
    """
    shown = str(path) if shown is None else shown
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ScenarioError(Problem("file not found", shown)) from None
    except IsADirectoryError:
        raise ScenarioError(Problem(f"not a regular file: it is a directory; {what} must be a plain file",
                                    shown)) from None
    except OSError as exc:
        raise ScenarioError(Problem(f"cannot read the file: {exc.strerror or exc}", shown)) from None
    except ValueError:  # a NUL byte in the name: no system takes it
        raise ScenarioError(Problem("not a file name: it holds a NUL byte", repr(shown))) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ScenarioError(Problem(f"not a regular file: it is {_kind(info.st_mode)}; {what} must be a "
                                        "plain file", shown))
        if info.st_size > limit:
            big = f" ({size_text(info.st_size)})" if info.st_size >= 1024**2 else ""
            raise ScenarioError(Problem(f"file is {info.st_size:,} bytes{big}, over the {limit:,}-byte limit "
                                        f"for {what}", shown))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= limit:  # at most one byte past the limit: a file may grow after the fstat
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise ScenarioError(Problem(f"cannot read the file: {exc.strerror or exc}", shown)) from None
    finally:
        os.close(fd)
    if total > limit:
        raise ScenarioError(Problem(f"file is more than {limit:,} bytes, over the {limit:,}-byte limit for {what}",
                                    shown))
    return b"".join(chunks)


def read_data_bytes(path: str | Path, limit: int, what: str) -> bytes:
    """:func:`read_regular_bytes` for the data files (price histories, chains, facts), whose
    readers raise ``ValueError`` with a text that starts with the file."""
    try:
        return read_regular_bytes(path, limit, what)
    except ScenarioError as exc:
        problem = exc.problems[0]
        raise ValueError(f"{path}: no such file" if problem.message == "file not found" else str(problem)) from None


def read_csv_frame(path: str | Path, what: str, *, limit: int = MAX_CSV_BYTES, **read_csv_kw):
    """A CSV file as a ``pandas.DataFrame``, read only if it is a regular file of at most ``limit``
    bytes (a FIFO, a device or a directory is refused at once, never read). Raises ``ValueError``
    whose text starts with the file, like the other readers of data files."""
    import io

    import pandas as pd

    data = read_data_bytes(path, limit, what)
    try:
        return pd.read_csv(io.BytesIO(data), **read_csv_kw)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV file ({str(exc).strip()})") from None
    except ValueError as exc:  # e.g. usecols naming a column the file lacks
        raise ValueError(f"{path}: {exc}") from None


# ----------------------------------------------------------------------------- output locations
def _probe(folder: Path, shown: str, flag: str) -> None:
    """Create and remove a temporary file in ``folder`` (an existing directory)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".cascade-write-test-", dir=folder)
    except OSError as exc:
        raise ScenarioError(Problem(f"{flag}: cannot write in {folder}: {exc.strerror or exc}", shown)) from None
    os.close(fd)
    os.unlink(name)


def _creatable_parent(path: Path, shown: str, flag: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable directory (``path`` is missing)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        if parent.is_symlink():  # a dangling link: mkdir would fail
            break
        parent = parent.parent
    if not parent.is_dir():
        raise ScenarioError(Problem(f"{flag}: cannot create it: {parent} is not a folder", shown))
    _probe(parent, shown, flag)


def check_output_dir(path: str | Path, flag: str, *, must_be_empty: bool = False) -> None:
    """Check, before any work, that a results folder can be written: an existing (with
    ``must_be_empty``, empty) directory we can write in, or a missing one whose nearest existing
    parent is a writable directory. Raises :class:`ScenarioError` naming the folder and the flag,
    what was expected, what was found and what to do."""
    path = Path(path)
    shown = str(path)
    wanted = "a new or empty folder" if must_be_empty else "a folder"
    if path.exists():
        if not path.is_dir():
            found = "a file" if path.is_file() else "something else"
            raise ScenarioError(Problem(f"{flag}: exists and is not a folder: it is {found}", shown, expected=wanted,
                                        hint=f"give {flag} the path of {wanted}"))
        entries = sorted(entry.name for entry in itertools.islice(path.iterdir(), 3)) if must_be_empty else []
        if entries:
            raise ScenarioError(Problem(f"{flag}: already exists and is not empty: it holds {', '.join(entries)}"
                                        f"{', ...' if len(entries) == 3 else ''}", shown, expected=wanted,
                                        hint=f"give {flag} a new folder, or empty this one"))
        _probe(path, shown, flag)
    elif path.is_symlink():
        raise ScenarioError(Problem(f"{flag}: is a link to a missing location", shown))
    else:
        _creatable_parent(path, shown, flag)


def check_output_file(path: str | Path, flag: str, *, create_parents: bool = False) -> None:
    """Check, before any work, that a file can be written at ``path``: not a directory, and its
    folder exists (or, with ``create_parents``, can be created) and is writable."""
    path = Path(path)
    shown = str(path)
    if path.is_dir():
        raise ScenarioError(Problem(f"{flag}: is a folder, expected a file name; give a file inside it", shown))
    if path.exists() and not path.is_file():
        raise ScenarioError(Problem(f"{flag}: exists and is not a regular file; give another path", shown))
    parent = path.parent
    if parent.is_dir():
        _probe(parent, shown, flag)
    elif parent.exists():
        raise ScenarioError(Problem(f"{flag}: {parent} is not a folder", shown))
    elif create_parents:
        _creatable_parent(parent, shown, flag)
    else:
        raise ScenarioError(Problem(f"{flag}: the folder {parent} does not exist; create it first or give a path "
                                    "in an existing folder", shown))
