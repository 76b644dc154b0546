"""The CLI's checks before any work and what it reads once: ``rerun --out`` refused up front when
it holds files, ``replay`` reading its facts file once, ``breakpoint``/``attribute`` loading the
scenario (with its ``--set`` overrides) once for the checks and the search."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import engine.history.data
import engine.scenario.loader
import engine.simulate
from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
CALM = ROOT / "scenarios" / "ci" / "ci-calm.yaml"
FAILURE = ROOT / "scenarios" / "ci" / "ci-exchange-failure.yaml"
HIKE = ROOT / "scenarios" / "ci" / "ci-margin-hike.yaml"


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _count_file_loads(monkeypatch) -> list:
    """The scenario files :func:`engine.scenario.loader.load_scenario` is asked for from now on."""
    files, real = [], engine.scenario.loader.load_scenario

    def counting(source, *args, **kwargs):
        if isinstance(source, (str, os.PathLike)):
            files.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(engine.scenario.loader, "load_scenario", counting)
    return files


def test_rerun_refuses_an_out_folder_that_holds_files_before_simulating(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    code, _, err = _cli(capsys, "run", CALM, "--paths", "64", "--set", "horizon.duration=6h", "--out", run_dir,
                        "--json", "--no-progress")
    assert code == 0, err
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")

    def no_simulation(*args, **kwargs):
        raise AssertionError("rerun simulated before refusing --out")

    monkeypatch.setattr(engine.simulate, "run", no_simulation)
    code, out, err = _cli(capsys, "rerun", run_dir, "--out", full)
    assert code == 2 and out == ""
    assert f"{full}: --out: already exists and is not empty: it holds keep.txt" in err
    assert "expected a new or empty folder" in err and "give --out a new folder" in err and "Traceback" not in err
    assert [p.name for p in full.iterdir()] == ["keep.txt"] and (full / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "run"]


@pytest.mark.parametrize("command", [["run", CALM, "--paths", "64"], ["attribute", HIKE, "--paths", "64"]])
def test_an_out_that_is_a_file_or_holds_files_is_refused_under_its_flag(tmp_path, capsys, command):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    code, _, err = _cli(capsys, *command, "--out", a_file)
    assert code == 2 and "Traceback" not in err
    assert f"{a_file}: --out: exists and is not a folder: it is a file" in err and "give --out the path of" in err
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    code, _, err = _cli(capsys, *command, "--out", full)
    assert code == 2 and f"{full}: --out: already exists and is not empty: it holds x" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "full"]


def test_replay_reads_its_facts_file_once(tmp_path, capsys, monkeypatch, write_yaml, shared_data):
    data = shared_data / "btc_hourly_binance_BTCUSDT_2025-03-05_2026-04-05.csv"
    if not data.is_file():
        pytest.skip(f"{data} is absent")
    facts = write_yaml("facts.yaml", {"derivatives": {
        "futures_open_interest_usd": [{"date": "2026-01-29", "usd": 61e9}, {"date": "2026-02-05", "usd": 49e9}]}})
    reads, real = [], engine.history.data.load_facts

    def counting(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(engine.history.data, "load_facts", counting)
    args = ["replay", "--data", data, "--scenario", ROOT / "scenarios" / "feb-2026-deleveraging.yaml",
            "--start", "2026-01-20", "--end", "2026-02-10", "--facts", facts]
    code, text, err = _cli(capsys, *args, "--out", tmp_path / "out")
    assert code == 0, err
    assert reads == [facts] and "open interest change, 01-29 -> 02-05" in text
    assert "open interest, end of 2026-02-05" in (tmp_path / "out" / "replay_facts.csv").read_text()
    code, text, err = _cli(capsys, *args, "--json")
    assert code == 0, err
    assert reads == [facts, facts] and '"fact": "open interest, end of 2026-01-29"' in text


def test_breakpoint_loads_the_scenario_file_once_and_applies_set_once(capsys, monkeypatch):
    files = _count_file_loads(monkeypatch)
    code, out, err = _cli(capsys, "breakpoint", FAILURE, "--set", "horizon.duration=6h", "--shock",
                          "shocks[trigger].size", "--metric", "market.min_price.p50", "--threshold", "100k",
                          "--paths", "256", "--max-evals", "3", "--json")
    assert code in (0, 1) and "Traceback" not in err, err
    assert files == [FAILURE]
    assert '"scenario"' in out


def test_attribute_loads_the_scenario_file_once(capsys, monkeypatch):
    files = _count_file_loads(monkeypatch)
    code, _, err = _cli(capsys, "attribute", HIKE, "--paths", "64", "--no-save", "--json")
    assert code == 0, err
    assert files == [HIKE]  # the checks, the progress total and attribute() share one load
