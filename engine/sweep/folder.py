"""A sweep's folder: chunk files written atomically with their SHA-256 sidecars, verified when a
sweep resumes, and the lock that keeps two sweeps out of one folder."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import write_bytes, write_json
from ..errors import RunFolderError
from .plan import SweepPlan


def _chunk_paths(folder: Path, k: int) -> tuple[Path, Path]:
    return folder / "chunks" / f"chunk-{k:06d}.parquet", folder / "chunks" / f"chunk-{k:06d}.json"


def _regular(path: Path) -> bool:
    """Whether ``path`` is a regular file, not a link to one (a sweep folder is untrusted: a FIFO
    or a link planted in it must never be opened)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def chunk_finished(plan: SweepPlan, folder: Path, k: int) -> bool:
    """A chunk is done when its sidecar names this plan's work for it and its file's hash matches
    (anything but two regular files is a chunk to compute again, and is replaced)."""
    data, meta = _chunk_paths(folder, k)
    if not (_regular(data) and _regular(meta)):
        return False
    try:
        record = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    with open(data, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return record.get("work") == plan.chunk_hash(k) and record.get("sha256") == digest


def save_chunk(plan: SweepPlan, folder: Path, k: int, rows: pd.DataFrame, failures: pd.DataFrame,
                seconds: float) -> None:
    data, meta = _chunk_paths(folder, k)
    frame = rows.copy()
    frame["__failed"] = False
    if not failures.empty:
        fail = failures.assign(__failed=True)
        frame = pd.concat([frame, fail], ignore_index=True)
    table = frame.to_parquet()  # the file's bytes, hashed as written
    write_bytes(data, table)
    record = {"chunk": k, "work": plan.chunk_hash(k), "sha256": hashlib.sha256(table).hexdigest(),
              "rows": int(len(rows)), "failures": int(len(failures)), "seconds": round(seconds, 4)}
    write_json(meta, record, indent=None)


def default_folder(plan: SweepPlan, root: str | Path = "results") -> Path:
    return Path(root) / plan.name / f"sweep-{plan.hash[:12]}"


LOCK_NAME = ".sweep.lock"


class FolderLock:
    """An exclusive ``fcntl.flock`` on ``folder/.sweep.lock`` for the duration of a sweep.

    The file holds a JSON record (pid, host, start time, command) for the message a second sweep
    prints. The kernel releases a flock when its holder dies, so a record found on taking the lock
    is a sweep that died before removing it: taken over, with a note. The file is removed on
    release (after checking, on taking it, that the locked file is still the one at the path)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def _holder(self) -> str:
        try:
            info = json.loads((self.path.read_text() if _regular(self.path) else "") or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another sweep"
        return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')} "
                f"({info.get('command', '?')})")

    def acquire(self) -> None:
        import fcntl
        import socket

        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunFolderError(f"{self.folder}: another sweep is running in this folder: {self._holder()}; "
                                     "wait for it to finish, or give another --out") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # its holder removed it while we waited: lock the new one
        stale = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if stale:
            print(f"cascade sweep: note: taking over the lock of {self.folder} left by a sweep that ended without "
                  f"releasing it ({stale[:200]})", file=sys.stderr)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def prepare_folder(plan: SweepPlan, folder: Path) -> None:
    plan_file = folder / "plan.json"
    if folder.exists() and any(p.name != LOCK_NAME for p in folder.iterdir()):
        if not _regular(plan_file):
            raise RunFolderError(f"{folder}: exists and is not a sweep folder (no plan.json as a plain file); "
                                 "give a new --out")
        try:
            old = json.loads(plan_file.read_text())
            old = old.get("hash") if isinstance(old, dict) else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = None
        if old != plan.hash:
            raise RunFolderError(f"{folder}: holds a different sweep (plan {str(old)[:12]}, this one "
                                 f"{plan.hash[:12]}); give a new --out or remove it")
        return
    (folder / "chunks").mkdir(parents=True, exist_ok=True)
    summary = {"hash": plan.hash, "name": plan.name, "seed": plan.seed, "n_paths": plan.n_paths, "mode": plan.mode,
               "scenario_keys": plan.scenario_keys, "strategies": plan.labels, "points": len(plan.points),
               "rows": len(plan.items), "chunk_size": plan.chunk_size, "chunks": plan.n_chunks}
    write_json(plan_file, summary)


def load_chunks(plan: SweepPlan, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every chunk's rows, in row order (the same table whatever ran the chunks)."""
    frames = [pd.read_parquet(_chunk_paths(folder, k)[0]) for k in range(plan.n_chunks)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    failed = frame["__failed"].astype(bool) if "__failed" in frame else pd.Series(False, index=frame.index)
    rows = frame[~failed].drop(columns=["__failed", "error", "traceback", "parameters"], errors="ignore")
    rows = rows.dropna(axis=1, how="all").sort_values("row", kind="stable").reset_index(drop=True)
    fails = frame[failed][["row", "point", "seed", "strategy", "parameters", "error", "traceback"]] if failed.any() \
        else pd.DataFrame(columns=["row", "point", "seed", "strategy", "parameters", "error", "traceback"])
    fails = fails.sort_values("row", kind="stable").reset_index(drop=True)
    return _tidy(rows, plan), fails


def _tidy(rows: pd.DataFrame, plan: SweepPlan) -> pd.DataFrame:
    """Columns in reading order: ids, strategy parameters (so the report's heatmaps are over
    them, e.g. strike x hedge ratio), scenario keys, strategy metrics, market metrics."""
    if rows.empty:
        return rows
    ids = [c for c in ("row", "point", "seed", "n_paths", "strategy", "rule") if c in rows]
    scenario_params = [f"param.{k}" for k in plan.scenario_keys if f"param.{k}" in rows]
    params = [c for c in rows.columns if c.startswith("param.") and c not in scenario_params] + scenario_params
    market = [c for c in rows.columns if c.startswith("market.")]
    rest = [c for c in rows.columns if c not in ids + params + market]
    out = rows[ids + params + rest + market].copy()
    for c in ("row", "point", "seed", "n_paths"):
        if c in out:
            out[c] = out[c].astype(np.int64)
    return out
