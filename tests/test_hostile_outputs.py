"""Output locations are checked before any work: a folder or file that cannot be written is a
located user error (exit 2, the path and the flag named, no traceback), found before the
simulation runs, and nothing is left behind."""

from __future__ import annotations

import os
import stat

import pytest
from conftest import SHARED_DATA
from hostile import CALM, child_scenario, refused_here as _refused_here

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.parametrize("command", [["run", CALM, "--paths", "100"], ["attribute", CALM, "--paths", "100"],
                                     ["sweep", CALM, "--paths", "100", "--grid", "seed=1,2"]])
def test_out_under_a_file(tmp_path, command):
    (tmp_path / "afile").write_text("not a folder\n")
    proc = _refused_here(tmp_path, [*command, "--out", "afile/run"], "afile", "--out")
    assert "paths x" not in proc.stdout  # refused before the simulation, not after


@pytest.mark.skipif(IS_ROOT, reason="root ignores directory permissions (the file-parent case covers root)")
def test_run_out_under_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)  # 0o500
    try:
        proc = _refused_here(tmp_path, ["run", CALM, "--paths", "100", "--out", "locked/run"], "locked", "--out")
        assert "cannot write" in proc.stderr
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(stat.S_IRWXU)


def test_run_default_results_folder_that_is_a_file(tmp_path):
    (tmp_path / "results").write_text("a file where the results folder goes\n")
    _refused_here(tmp_path, ["run", CALM, "--paths", "100"], "results", "--out")


def test_schema_output_into_a_missing_folder(tmp_path):
    proc = _refused_here(tmp_path, ["schema", "-o", "missing/schema.json"], "missing/schema.json", "--output")
    assert "does not exist" in proc.stderr


def test_schema_output_onto_a_folder(tmp_path):
    (tmp_path / "taken").mkdir()
    _refused_here(tmp_path, ["schema", "-o", "taken"], "taken", "--output")


def test_surface_residuals_into_a_missing_folder(tmp_path):
    chains = sorted((SHARED_DATA / "options").glob("deribit_btc_options_chain_snapshot_*.csv")) \
        if SHARED_DATA.is_dir() else []
    if not chains:
        pytest.skip(f"../shared/data is absent: no Deribit chain under {SHARED_DATA / 'options'}")
    _refused_here(tmp_path, ["surface", chains[0], "--residuals", "missing/res.csv"], "missing/res.csv",
                  "--residuals")


def test_check_update_with_baselines_that_is_a_file(tmp_path):
    child_scenario(tmp_path, "hostile-update")
    (tmp_path / "baselines").write_text("a file, not a folder\n")
    proc = _refused_here(tmp_path, ["check", "hostile-update.yaml", "--update", "--baselines", "baselines"],
                         "baselines", "--baselines")
    assert "not a folder" in proc.stderr
