"""Feedback on long work: a tqdm bar on a terminal for run, sweep, breakpoint and attribute (the
calibration's is in tests/test_calibration.py), none with --json, --no-progress or in CI; and a
notice while numba compiles the kernels on a first run.

The bars are checked under a pseudo-terminal (tests/ptyrun.py), as a person would see them.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT
from ptyrun import run_in_pty

from engine.cli import main
from engine.nb import config

CALM = ROOT / "scenarios" / "ci" / "ci-calm.yaml"
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
_BAR = re.compile(r"\d+/\d+ \[")  # tqdm's "3/7 [00:01<00:02, ..." counter


def _commands(tmp_path):
    return {
        "run": (["run", CALM, "--paths", "4000", "--no-save"], "simulating"),
        "sweep": (["sweep", ROOT / "scenarios" / "put-protection-sweep.yaml", "--paths", "200", "--jobs", "1",
                   "--no-report", "--out", tmp_path / "sweep"], "sweep"),
        "breakpoint": (["breakpoint", FLAGSHIP, "--shock", "shocks[warsh].depth_multiplier", "--metric",
                        "market.prob_touch_60000", "--threshold", "30%", "--paths", "200", "--max-evals", "5"],
                       "breakpoint"),
        "attribute": (["attribute", ROOT / "scenarios" / "ci" / "ci-margin-hike.yaml", "--paths", "200", "--no-save"],
                      "attribution"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "sweep", "breakpoint", "attribute"])
def test_a_bar_on_a_terminal_and_none_with_json_or_in_ci(tmp_path, command):
    args, desc = _commands(tmp_path)[command]
    code, out = run_in_pty(args)
    assert code in (0, 1), out[-3000:]  # breakpoint: 1 when the threshold is not crossed within its budget
    assert f"{desc}:" in out and _BAR.search(out), f"no progress bar:\n{out[-3000:]}"
    args = [a if a != tmp_path / "sweep" else tmp_path / "sweep-ci" for a in args]
    code, out = run_in_pty(args, env={"CI": "true"})
    assert code in (0, 1) and not _BAR.search(out), f"a bar in CI:\n{out[-3000:]}"
    if command != "sweep":  # the sweep's --json prints its table's rows: same switch, checked by CI above
        code, out = run_in_pty([*args, "--json"])
        assert code in (0, 1) and not _BAR.search(out), out[-3000:]
        json.loads(out.strip().splitlines()[-1])


def test_the_compile_notice_is_printed_once_before_a_kernel_is_compiled(capsys, monkeypatch):
    """When numba's cache holds no kernel for this machine (a first run), the CLI says that it is
    compiling and how long that takes, once, on stderr; with a warm cache it says nothing."""
    monkeypatch.setattr(config, "_told", False)
    assert main(["run", str(CALM), "--paths", "100", "--no-save", "--no-progress"]) == 0  # compiled or loaded
    capsys.readouterr()
    monkeypatch.setattr(config, "_told", False)
    assert main(["run", str(CALM), "--paths", "100", "--no-save", "--no-progress"]) == 0
    assert "compiling" not in capsys.readouterr().err  # warm: nothing to say

    monkeypatch.setattr(config, "_told", False)
    monkeypatch.setattr(config, "is_cached", lambda dispatcher: False)
    assert main(["run", str(CALM), "--paths", "100", "--no-save", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("cascade: compiling") == 1, err
    assert "first run only" in err and config.COMPILE_SECONDS in err


def test_is_cached_reads_numbas_index(tmp_path, monkeypatch):
    """A fresh cached function is not cached before its first call in a process that has never
    compiled it, and is after (another process then loads it)."""
    import subprocess
    import sys

    (tmp_path / "fresh_kernel.py").write_text(
        "import numba\n@numba.njit(cache=True)\ndef twice(x):\n    return 2 * x\n")
    code = ("import sys; sys.path.insert(0, {p!r}); import fresh_kernel; from engine.nb.config import is_cached; "
            "print(is_cached(fresh_kernel.twice)); fresh_kernel.twice(3.0)").format(p=str(tmp_path))
    env = {"PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    import os

    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert (first.stdout.strip(), second.stdout.strip()) == ("False", "True"), (first.stderr, second.stderr)
