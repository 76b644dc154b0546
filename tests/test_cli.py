"""The ``cascade`` command end to end, in a subprocess as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"


def cascade(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_import_engine_is_light():
    """``import engine`` loads neither pydantic nor numba nor pandas: the CLI starts fast."""
    code = ("import sys, engine; heavy = {'pydantic', 'numba', 'pandas', 'scipy'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_validate_ok_and_summary_line():
    result = cascade("validate", str(FLAGSHIP))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "feb-2026-deleveraging" in result.stdout


def test_show_applies_overrides_and_prints_canonical_yaml():
    result = cascade("show", str(FLAGSHIP), "--set", "n_paths=123", "--set", "market.spot_usd=70k")
    assert result.returncode == 0, result.stderr
    assert "\nn_paths: 123\n" in result.stdout and "spot_usd: 70000.0" in result.stdout


def test_show_compiled_lists_every_driver():
    from engine.compile.layout import STEP_FIELDS, VENUE_FIELDS

    result = cascade("show", "--compiled", str(FLAGSHIP))
    assert result.returncode == 0, result.stderr
    for name in STEP_FIELDS + VENUE_FIELDS:
        assert name in result.stdout
    assert "book:" in result.stdout


def test_list_names_every_shipped_scenario_with_its_description():
    result = cascade("list")
    assert result.returncode == 0, result.stderr
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        assert path.name in result.stdout
    assert "INVALID" not in result.stdout


def test_list_reports_broken_files_without_failing(tmp_path):
    (tmp_path / "good.yaml").write_text(FLAGSHIP.read_text())
    (tmp_path / "bad.yaml").write_text("name: bad\nhorizon: 3\n")
    result = cascade("list", "--dir", str(tmp_path))
    assert result.returncode == 0
    assert "bad.yaml" in result.stdout and "INVALID" in result.stdout


def test_schema_is_json():
    result = cascade("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "shocks" in schema["properties"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["validate", "no/such/file.yaml"], "file not found"),
        (["show", str(FLAGSHIP), "--set", "n_paths"], "expects key.path=value"),
        (["show", str(FLAGSHIP), "--set", "n_paths=-4"], "n_paths"),
        (["show", str(FLAGSHIP), "--set", "shocks[nope].start=+1d"], "no item 'nope'"),
        (["frobnicate"], "invalid choice"),
        (["validate"], "required"),
    ],
)
def test_user_errors_exit_2_without_traceback(args, fragment):
    result = cascade(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_version():
    result = cascade("--version")
    assert result.returncode == 0 and "cascade-engine" in result.stdout


def test_validate_json_reports_each_file_with_located_problems(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nn_paths: 0\nhorizon: {start: 2026-01-29, duration: 1d}\n")
    result = cascade("validate", "--json", str(FLAGSHIP), str(bad))
    assert result.returncode == 2
    good, broken = (json.loads(line) for line in result.stdout.splitlines())
    assert good == {"file": str(FLAGSHIP), "valid": True, "name": "feb-2026-deleveraging", "problems": []}
    assert broken["valid"] is False
    by_key = {p["key"]: p for p in broken["problems"]}
    assert by_key["n_paths"]["line"] == 2 and by_key["n_paths"]["file"] == str(bad)
    assert "market" in by_key and "greater than or equal to 1" in by_key["n_paths"]["message"]
