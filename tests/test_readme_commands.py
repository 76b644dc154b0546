"""Every ``cascade`` command the README shows in a shell block runs and exits 0, block by block in
a folder laid out as a reader's (``docs/regenerate.py``): the commands of one block in order, as
they may build on each other (``cascade run --out runs/calm`` then ``cascade rerun runs/calm``).
The console blocks, whose outputs are compared, are in tests/test_readme.py.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import regenerate  # noqa: E402  (docs/regenerate.py)

README_TEXT = (ROOT / "README.md").read_text(encoding="utf-8")

# Shown in the README but not run here, each for a reason; tests elsewhere run the same code.
NOT_RUN = {
    "cascade calibrate": "a full fit takes a minute or more; tests/test_calibration.py fits on a small budget",
    "cascade calibrate --write-params scenarios/calibration/feb-2026.yaml":
        "rewrites the shipped parameter file (the scenarios folder is linked, not copied)",
}


def _reads_shared_by_default(command: str) -> bool:
    """`cascade calibrate` reads ../shared/data and ../shared/facts when not told where."""
    words = shlex.split(command, comments=True)
    return words[:2] == ["cascade", "calibrate"] and "--data" not in words


def _runnable(command: str) -> bool:
    if command.split("#")[0].strip() in NOT_RUN:
        return False
    return SHARED_DATA.is_dir() or not ("../shared/" in command or _reads_shared_by_default(command))


# the shell blocks (console blocks are compared with their output in tests/test_readme.py)
BLOCKS = [[c for c in regenerate.cascade_commands(lang, body) if _runnable(c)]
          for lang, body in regenerate.blocks(README_TEXT) if lang != "console"]
BLOCKS = [b for b in BLOCKS if b]


def test_commands_not_run_are_in_the_readme():
    commands = {c.split("#")[0].strip() for lang, body in regenerate.blocks(README_TEXT)
                for c in regenerate.cascade_commands(lang, body)}
    assert set(NOT_RUN) <= commands, set(NOT_RUN) - commands


@pytest.mark.slow
@pytest.mark.parametrize("commands", BLOCKS, ids=lambda b: b[0][:50])
def test_readme_commands_run(tmp_path, commands):
    work = regenerate.sandbox(tmp_path, README_TEXT)
    for command in commands:
        code, out = regenerate.run(shlex.join(shlex.split(command, comments=True)), work)
        assert code == 0, f"`{command}` failed:\n{out[-3000:]}"
