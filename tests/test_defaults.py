"""Defaults of one event do not leak into every scenario: February 2026's price levels and its
absorption band live in the flagship (and the scenarios that extend it); any other scenario gets
levels 10%, 20% and 30% below its own spot and no band, stated in ``cascade show``; a scenario
that sets none of the calibrated market keys is told so by ``validate`` and ``show``."""

from __future__ import annotations

import yaml
from conftest import ROOT

from engine.cli import main
from engine.scenario.loader import load_scenario

FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
OCTOBER = ROOT / "scenarios" / "history" / "oct-2025-exchange-failure.yaml"


def test_a_standalone_scenario_gets_levels_below_its_own_spot_and_no_band(tiny_scenario):
    scenario = load_scenario(tiny_scenario)  # spot 88.5k
    assert scenario.outputs.price_levels_usd == [79_600.0, 70_800.0, 61_900.0]  # 88.5k x 0.9, 0.8, 0.7
    assert scenario.outputs.price_bands == []


def test_levels_given_or_emptied_are_kept(tiny_scenario):
    assert load_scenario({**tiny_scenario, "outputs": {"price_levels_usd": ["60k"]}}).outputs.price_levels_usd == [60_000.0]
    assert load_scenario({**tiny_scenario, "outputs": {"price_levels_usd": []}}).outputs.price_levels_usd == []


def test_february_levels_and_band_are_the_flagships_own():
    feb = load_scenario(FLAGSHIP)
    assert feb.outputs.price_levels_usd == [73_600.0, 70_600.0, 66_900.0, 60_000.0, 56_100.0, 50_000.0]
    assert [(b.low_usd, b.high_usd, b.label) for b in feb.outputs.price_bands] == \
        [(66_900.0, 70_600.0, "on-chain absorption cluster")]
    october = load_scenario(OCTOBER)  # extends the calibration, not the flagship: none of February's band
    assert october.outputs.price_bands == [] and 110_000.0 in october.outputs.price_levels_usd


def test_show_states_the_default_levels(tmp_path, tiny_scenario, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_scenario))
    assert main(["show", str(path)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["outputs"]["price_levels_usd"] == [79_600, 70_800, 61_900]


def test_validate_and_show_note_uncalibrated_mechanics(tmp_path, tiny_scenario, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_scenario))
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"note: {path}: uses uncalibrated market mechanics" in err and "calibration/feb-2026.yaml" in err
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "# note:" in out and "uncalibrated" in out
    assert main(["validate", str(FLAGSHIP), str(OCTOBER)]) == 0  # both extend the calibration
    assert "uncalibrated" not in capsys.readouterr().err
