"""Special and oversized input files are refused at once, located, without a traceback.

A named pipe (FIFO) given as a scenario, an ``extends:`` parent, a ``use:`` strategy file, a
regression baseline or a positions CSV would block a plain ``open()`` forever; a 200 MB file would
be read whole; a folder is not a scenario. Each case runs the CLI in a subprocess with a timeout
(a hang fails), and checks exit 2, a message naming the file (and the key or flag), no traceback,
and that nothing was written or changed in the folder.
"""

from __future__ import annotations

import os
import time

import pytest
from hostile import CALM, cascade, child_scenario, refused_here as _refused_here

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")


@pytest.mark.parametrize("command", [["validate"], ["show"], ["run", "--paths", "100"], ["check"]])
def test_fifo_as_the_scenario(tmp_path, command):
    os.mkfifo(tmp_path / "pipe.yaml")
    proc = _refused_here(tmp_path, [*command, "pipe.yaml"], "pipe.yaml", "named pipe")
    assert "not a regular file" in proc.stderr


def test_fifo_as_an_extends_parent(tmp_path):
    os.mkfifo(tmp_path / "parent.yaml")
    (tmp_path / "child.yaml").write_text("extends: parent.yaml\nname: child\n")
    _refused_here(tmp_path, ["validate", "child.yaml"], "parent.yaml", "named pipe", "child.yaml:1", "extends")


def test_fifo_as_a_use_strategy_file(tmp_path):
    os.mkfifo(tmp_path / "hedges.yaml")
    child_scenario(tmp_path, "uses-a-pipe", "strategies:\n  - use: ./hedges.yaml\n")
    _refused_here(tmp_path, ["validate", "uses-a-pipe.yaml"], "hedges.yaml", "named pipe", "strategies[0].use")


def test_fifo_in_a_strategies_library_does_not_block_list(tmp_path):
    (tmp_path / "strategies").mkdir()
    os.mkfifo(tmp_path / "strategies" / "pipe.yaml")
    child_scenario(tmp_path, "fine")
    proc = cascade("list", "--dir", tmp_path, cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "fine.yaml" in proc.stdout


def test_fifo_as_a_baseline(tmp_path):
    child_scenario(tmp_path, "hostile-baseline")
    (tmp_path / "baselines").mkdir()
    os.mkfifo(tmp_path / "baselines" / "hostile-baseline.json")
    _refused_here(tmp_path, ["check", "hostile-baseline.yaml", "--baselines", "baselines"],
                  "hostile-baseline.json", "named pipe", "baseline")


def test_fifo_as_a_positions_csv(tmp_path):
    os.mkfifo(tmp_path / "book.csv")
    _refused_here(tmp_path, ["run", CALM, "--paths", "100", "--book", "book.csv"], "book.csv", "named pipe",
                  "--book")


def test_fifo_as_portfolio_positions_csv(tmp_path):
    os.mkfifo(tmp_path / "book.csv")
    child_scenario(tmp_path, "piped-book", "portfolio:\n  positions_csv: book.csv\n")
    _refused_here(tmp_path, ["validate", "piped-book.yaml"], "book.csv", "named pipe", "portfolio.positions_csv")


def test_oversized_scenario_is_refused_by_its_size(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:  # sparse: 200 MB reported, nothing written to the disk
        fh.truncate(200 * 1024**2)
    started = time.monotonic()
    proc = _refused_here(tmp_path, ["validate", "big.yaml"], "big.yaml", "209,715,200 bytes", "-byte limit")
    assert time.monotonic() - started < 15, "refused by its size, not by reading it"
    assert "1 of 1 files invalid" in proc.stderr


def test_oversized_baseline_is_refused_by_its_size(tmp_path):
    child_scenario(tmp_path, "big-baseline")
    (tmp_path / "baselines").mkdir()
    with open(tmp_path / "baselines" / "big-baseline.json", "wb") as fh:
        fh.truncate(200 * 1024**2)
    _refused_here(tmp_path, ["check", "big-baseline.yaml", "--baselines", "baselines"],
                  "big-baseline.json", "-byte limit for a baseline")


@pytest.mark.slow
def test_a_directory_as_the_scenario(tmp_path):
    (tmp_path / "folder.yaml").mkdir()
    _refused_here(tmp_path, ["validate", "folder.yaml"], "folder.yaml", "is a directory")
    _refused_here(tmp_path, ["run", "folder.yaml", "--paths", "100"], "folder.yaml", "is a directory")


def _price_scenario(folder):
    return child_scenario(folder, "bt", "portfolio:\n  spot_btc: 1\n  cash_usd: 100k\n"
                                        "strategies:\n  - rule: stop_loss\n    drawdown: 0.2\n")


@pytest.mark.parametrize("command", ["backtest", "replay", "surface"])
def test_fifo_as_a_data_file(tmp_path, command):
    """A price history (backtest, replay) or an option chain (surface) that is a named pipe."""
    os.mkfifo(tmp_path / "prices.csv")
    scenario = _price_scenario(tmp_path).name
    args = {"backtest": ["backtest", scenario, "--data", "prices.csv"],
            "replay": ["replay", "--scenario", scenario, "--data", "prices.csv"],
            "surface": ["surface", "prices.csv"]}[command]
    _refused_here(tmp_path, args, "prices.csv", "named pipe")


def test_oversized_price_history_is_refused_by_its_size(tmp_path):
    with open(tmp_path / "prices.csv", "wb") as fh:  # sparse, as above
        fh.truncate(600 * 1024**2)
    _refused_here(tmp_path, ["backtest", _price_scenario(tmp_path).name, "--data", "prices.csv"],
                  "prices.csv", "-byte limit for a price history")
