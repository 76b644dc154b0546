"""engine._atomic: a final file is the old one or the whole new one, and a failure leaves no trace.

* a writer that fails (or is interrupted) half-way leaves the old file and no temporary file;
* a link planted at the temporary name is replaced, never written through;
* the new file has the usual permissions (umask), not a private temp file's;
* every copy of the pattern in the engine goes through the helper (no ``os.replace`` elsewhere
  writes a final file).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from engine import _atomic
from engine._atomic import temp_name, write_bytes, write_json, write_text, write_with

from conftest import ROOT


def test_write_replaces_whole_and_leaves_nothing_beside(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failing_writer_leaves_the_old_file(tmp_path, error):
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def half(tmp: Path) -> None:
        tmp.write_text("half of the ne")
        raise error

    with pytest.raises(type(error)):
        write_with(target, half)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_failing_fsync_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def no_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_atomic.os, "fsync", no_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_a_link_at_the_temporary_name_is_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "report.html"
    temp_name(target).symlink_to(victim)  # planted by someone who guessed our pid
    write_text(target, "<html>")
    assert victim.read_text() == "keep me"
    assert target.read_text() == "<html>" and not target.is_symlink()
    assert sorted(p.name for p in folder.iterdir()) == ["report.html"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_no_other_copy_of_the_atomic_write_pattern_in_the_engine():
    """Every os.replace / os.rename of the engine is in the helper or in a folder swap that is not a
    file write (run folder staging, cascade report's swap, the calibration report folder)."""
    allowed = {"engine/_atomic.py", "engine/results/store.py", "engine/calibration/report.py"}
    found = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if rel not in allowed and re.search(r"os\.replace\(|os\.rename\(|\.replace\(args\.|tmp\.replace\(", text):
            found.append(rel)
    assert found == []
