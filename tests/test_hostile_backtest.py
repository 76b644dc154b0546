"""Hostile price files and flags for ``cascade backtest``: refused with the file, line and column
named, exit 2, no traceback; identical repeated rows dropped with a note."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

TIMEOUT = 20


@pytest.fixture
def bt_scenario(write_yaml, tiny_scenario):
    tiny = dict(tiny_scenario, portfolio={"spot_btc": 1, "cash_usd": "100k"},
                strategies=[{"rule": "stop_loss", "drawdown": 0.2}])
    return write_yaml("bt.yaml", tiny)


def _frame(n: int = 120) -> pd.DataFrame:
    times = pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC")
    close = 60_000 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, n)))
    return pd.DataFrame({"timestamp": times.strftime("%Y-%m-%d %H:%M:%S"), "close": close})


def _backtest(scenario, csv, *extra):
    return subprocess.run([sys.executable, "-m", "engine", "backtest", str(scenario), "--data", str(csv),
                           "--vol-window", "1d", *extra], capture_output=True, text=True, timeout=TIMEOUT)


def _refused(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_an_infinite_close_is_refused_with_its_line_and_column(bt_scenario, tmp_path):
    frame = _frame().astype({"close": object})
    frame.loc[40, "close"] = "inf"
    csv = tmp_path / "inf.csv"
    frame.to_csv(csv, index=False)
    _refused(_backtest(bt_scenario, csv), f"{csv}:42", "'close'", "finite positive close")


def test_conflicting_duplicates_are_refused_naming_both_lines(bt_scenario, tmp_path):
    frame = _frame()
    twin = frame.iloc[[10]].assign(close=frame.close[10] * 1.1)
    frame = pd.concat([frame.iloc[:11], twin, frame.iloc[11:]], ignore_index=True)
    csv = tmp_path / "dup.csv"
    frame.to_csv(csv, index=False)
    _refused(_backtest(bt_scenario, csv), f"{csv}:13", "repeats line 12", "another close")


@pytest.mark.slow
def test_identical_duplicates_are_dropped_with_a_note(bt_scenario, tmp_path):
    frame = _frame()
    frame = pd.concat([frame.iloc[:11], frame.iloc[[10]], frame.iloc[11:]], ignore_index=True)
    csv = tmp_path / "same.csv"
    frame.to_csv(csv, index=False)
    proc = _backtest(bt_scenario, csv, "--json")
    assert proc.returncode == 0, proc.stderr
    assert "1 repeated row(s)" in proc.stderr and "line 13" in proc.stderr
    assert '"rows": 120' in proc.stdout


def test_rows_going_back_in_time_are_refused(bt_scenario, tmp_path):
    frame = _frame()
    frame.iloc[[30, 31]] = frame.iloc[[31, 30]].to_numpy()
    csv = tmp_path / "back.csv"
    frame.to_csv(csv, index=False)
    _refused(_backtest(bt_scenario, csv), f"{csv}:33", "earlier than line 32", "increasing time")


def test_a_row_a_century_away_is_refused_fast(bt_scenario, tmp_path):
    frame = _frame()
    frame.loc[len(frame)] = ["2125-01-01 00:00:00", 61_000.0]
    csv = tmp_path / "century.csv"
    frame.to_csv(csv, index=False)
    _refused(_backtest(bt_scenario, csv), f"{csv}:122", "after line 121", "median spacing")


@pytest.mark.parametrize("window", ["0d", "30d"])
def test_vol_window_must_be_positive_and_shorter_than_the_data(bt_scenario, tmp_path, window):
    csv = tmp_path / "ok.csv"
    _frame().to_csv(csv, index=False)
    proc = subprocess.run([sys.executable, "-m", "engine", "backtest", str(bt_scenario), "--data", str(csv),
                           "--vol-window", window], capture_output=True, text=True, timeout=TIMEOUT)
    _refused(proc, f"--vol-window {timedelta(days=int(window[:-1]))}", "shorter than the data")
