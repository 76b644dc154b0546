"""Run folders are untrusted input: a hostile manifest, scenario or layout is refused, never followed.

Every CLI case runs ``python -m engine`` in a subprocess with a 20 s timeout (a reader that follows
``/dev/zero`` or a FIFO would hang, and fail the test), and asserts exit code 2, a message naming
the file and the key, no traceback, and that nothing on disk changed (in the run folder or beside
it). ``cascade report`` is checked to be atomic: an interruption while drawing, or a failure while
swapping the new report in, leaves the old report and a folder that verifies; a damaged report is
repaired by ``cascade report``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import RunFolderError, ScenarioError
from engine.results import figures as figures_module
from engine.results import store
from engine.results.store import load_run, load_run_for_report, rewrite_report

from conftest import ROOT

CALM = ROOT / "scenarios" / "ci" / "ci-calm.yaml"


def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=20, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """One small run folder, and a copy of it with its report and figures drawn."""
    base = tmp_path_factory.mktemp("made")
    proc = subprocess.run([sys.executable, "-m", "engine", "run", CALM, "--paths", "200", "--out", base / "plain",
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    shutil.copytree(base / "plain", base / "reported", symlinks=True)
    proc = _cli("report", base / "reported", cwd=base)
    assert proc.returncode == 0, proc.stderr
    return {"plain": base / "plain", "reported": base / "reported"}


@pytest.fixture
def run(made, tmp_path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(made["plain"], folder, symlinks=True)
    return folder


@pytest.fixture
def reported(made, tmp_path) -> Path:
    folder = tmp_path / "reported"
    shutil.copytree(made["reported"], folder, symlinks=True)
    return folder


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder beside the run folder with files a hostile manifest may point at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.parquet").write_bytes(b"not yours")
    return folder


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit_manifest(folder: Path, edit) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _snapshot(root: Path) -> dict:
    """Every entry under ``root`` (links not followed): its kind and, for a file, its bytes' hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                out[str(path.relative_to(root))] = ("link", os.readlink(path))
            elif path.is_file():
                out[str(path.relative_to(root))] = ("file", _sha(path))
            else:
                out[str(path.relative_to(root))] = ("dir" if path.is_dir() else "special", None)
    return out


def _refused(tmp_path: Path, *args, says: list[str]) -> str:
    before = _snapshot(tmp_path)
    proc = _cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for text in says:
        assert text in proc.stderr, (text, proc.stderr)
    assert _snapshot(tmp_path) == before  # nothing written, moved or left behind, in the folder or beside it
    return proc.stderr


# --------------------------------------------------------------------------- manifest entries
@pytest.mark.slow
@pytest.mark.parametrize("command", ["compare", "rerun", "report"])
def test_an_absolute_path_entry_is_refused_by_every_reader(run, outside, tmp_path, command):
    secret = outside / "secret.parquet"
    _edit_manifest(run, lambda m: m["files"].update({str(secret): _sha(secret)}))
    args = {"compare": ["compare", run, run], "rerun": ["rerun", run, "--out", tmp_path / "again"],
            "report": ["report", run]}[command]
    _refused(tmp_path, *args, says=[f"{run / 'manifest.json'}: files.{secret}", "absolute path"])


def test_a_dotdot_entry_is_refused(run, outside, tmp_path):
    _edit_manifest(run, lambda m: m["files"].update({"../outside/secret.parquet": _sha(outside / "secret.parquet")}))
    _refused(tmp_path, "compare", run, run, says=["manifest.json: files.../outside/secret.parquet", "'..'"])


def test_a_symlink_entry_to_a_file_outside_is_not_followed(run, outside, tmp_path):
    secret = outside / "secret.parquet"
    (run / "fan.parquet").unlink()
    (run / "fan.parquet").symlink_to(secret)
    _edit_manifest(run, lambda m: m["files"].update({"fan.parquet": _sha(secret)}))  # the hash even matches
    _refused(tmp_path, "compare", run, run, says=["manifest.json: files.fan.parquet", "symbolic link"])


def test_a_symlink_entry_to_dev_zero_does_not_hang(run, tmp_path):
    (run / "metrics.json").unlink()
    (run / "metrics.json").symlink_to("/dev/zero")
    _refused(tmp_path, "report", run, says=["manifest.json: files.metrics.json", "symbolic link"])


def test_a_symlink_on_the_way_is_refused(run, outside, tmp_path):
    (run / "sub").symlink_to(outside)
    _edit_manifest(run, lambda m: m["files"].update({"sub/secret.parquet": _sha(outside / "secret.parquet")}))
    _refused(tmp_path, "compare", run, run, says=["files.sub/secret.parquet", "symbolic link"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_entry_does_not_hang(run, tmp_path):
    (run / "per_path.parquet").unlink()
    os.mkfifo(run / "per_path.parquet")
    _refused(tmp_path, "compare", run, run, says=["manifest.json: files.per_path.parquet", "named pipe (FIFO)"])


# --------------------------------------------------------------------------- manifest shape
@pytest.mark.parametrize("edit, says", [
    (lambda m: m.pop("scenario"), ["manifest.json: scenario: missing"]),
    (lambda m: m.pop("files"), ["manifest.json: files: missing"]),
    (lambda m: m["scenario"].pop("hash"), ["manifest.json: scenario.hash: missing"]),
    (lambda m: m.update(seed="7"), ["manifest.json: seed:", "'7'"]),
    (lambda m: m.update(n_paths=-3), ["manifest.json: n_paths:", "greater than 0"]),
    (lambda m: m.update(scenario=["x"]), ["manifest.json: scenario:"]),
    (lambda m: m.update(files=[]), ["manifest.json: files:"]),
    (lambda m: m["files"].update({"fan.parquet": 5}), ["manifest.json: files.fan.parquet:"]),
    (lambda m: m.update(engine=None), ["manifest.json: engine:"]),
    (lambda m: m.update(start="yesterday"), ["manifest.json: start:", "ISO 8601"]),
    (lambda m: m["scenario"].update(extra=1), ["manifest.json: scenario.extra: unexpected key"]),
])
def test_missing_keys_and_wrong_types_are_located(run, tmp_path, edit, says):
    _edit_manifest(run, edit)
    _refused(tmp_path, "compare", run, run, says=says)


def test_a_manifest_that_is_not_an_object_is_refused(run, tmp_path):
    (run / "manifest.json").write_text("[1, 2]")
    _refused(tmp_path, "rerun", run, "--out", tmp_path / "again", says=["manifest.json: format None"])


def _edit_metrics(folder: Path, edit) -> None:
    """Edit ``metrics.json`` and list its new hash in the manifest, as a forger would."""
    metrics = json.loads((folder / "metrics.json").read_text())
    edit(metrics)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    _edit_manifest(folder, lambda m: m["files"].update({"metrics.json": _sha(folder / "metrics.json")}))


@pytest.mark.parametrize("edit, says", [
    (lambda m: m.pop("market"), ["metrics.json: market: missing"]),
    (lambda m: m.update(market=[1, 2]), ["metrics.json: market:"]),
    (lambda m: m["market"]["min_price"].update(p50="low"), ["metrics.json: market.min_price", "'low'"]),
    (lambda m: m.update(n_paths=0), ["metrics.json: n_paths:", "greater than 0"]),
    (lambda m: m.update(limits=[{"metric": "x", "max": 1}]), ["metrics.json: limits[0].value: missing"]),
    (lambda m: m.update(strategies={"put": {"es99": True}}), ["metrics.json: strategies.put.es99"]),
])
@pytest.mark.parametrize("command", ["compare", "report"])
def test_forged_metrics_are_refused_with_their_key(run, tmp_path, edit, says, command):
    _edit_metrics(run, edit)
    args = ("compare", run, run) if command == "compare" else ("report", run)
    _refused(tmp_path, *args, says=says)


# --------------------------------------------------------------------------- what is served
def test_only_listed_and_verified_files_are_served(run):
    shutil.copy(run / "fan.parquet", run / "planted.parquet")  # not in the manifest
    loaded = load_run(run)
    assert "planted" not in loaded.tables and "fan" in loaded.tables
    _edit_manifest(run, lambda m: m["files"].pop("sample_paths.parquet"))
    assert load_run(run).sample_paths is None  # on disk, but not listed: not served
    later = load_run(run)
    with open(run / "fan.parquet", "ab") as fh:  # changed after the manifest was checked
        fh.write(b"x")
    with pytest.raises(RunFolderError, match=r"fan\.parquet: changed since the run was written"):
        later.fan


@pytest.mark.slow
def test_a_stored_scenario_with_extends_is_refused_not_followed(run, outside, tmp_path):
    (outside / "base.yaml").write_text(CALM.read_text())  # would load fine if it were followed
    text = (run / "scenario.yaml").read_text()
    (run / "scenario.yaml").write_text("extends: ../outside/base.yaml\n" + text)
    _edit_manifest(run, lambda m: m["files"].update({"scenario.yaml": _sha(run / "scenario.yaml")}))
    for args in (["rerun", run, "--out", tmp_path / "again"], ["report", run]):
        _refused(tmp_path, *args, says=[f"{run / 'scenario.yaml'}:1", "extends", "not followed"])


def test_a_stored_scenario_with_use_items_is_refused(run, outside):
    (outside / "mine.yaml").write_text("rule: put\nstrike_usd: 80k\nsize_btc: 1\ntenor: 30d\n")
    text = (run / "scenario.yaml").read_text()
    assert "\nstrategies: []\n" in text
    (run / "scenario.yaml").write_text(text.replace("\nstrategies: []\n", "\nstrategies:\n- use: ../outside/mine.yaml\n"))
    _edit_manifest(run, lambda m: m["files"].update({"scenario.yaml": _sha(run / "scenario.yaml")}))
    with pytest.raises(ScenarioError, match=r"strategies\[0\]\.use: a stored scenario is resolved already"):
        load_run(run).scenario


# --------------------------------------------------------------------------- cascade report
def _state(folder: Path) -> dict:
    return {"manifest": (folder / "manifest.json").read_bytes(), "report": (folder / "report.html").read_bytes(),
            "figures": {p.name: p.read_bytes() for p in (folder / "figures").iterdir()}}


def test_an_interrupted_report_leaves_the_old_one_verifying(reported, monkeypatch):
    before = _state(reported)
    drawn = []

    def interrupted(run, axis):
        drawn.append("flows")
        raise KeyboardInterrupt  # Ctrl-C after the report and three figures were drawn

    monkeypatch.setattr(figures_module, "_flows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rewrite_report(load_run_for_report(reported))
    assert drawn == ["flows"]
    load_run(reported)  # verifies
    assert _state(reported) == before
    assert sorted(p.name for p in reported.iterdir() if p.name.startswith(".")) == []


def test_a_failure_while_swapping_puts_the_old_report_back(reported, monkeypatch):
    before = _state(reported)
    real = os.replace

    def failing(src, dst, *a, **k):
        if Path(dst) == reported / "manifest.json":
            raise OSError(28, "No space left on device")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(store.os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        rewrite_report(load_run_for_report(reported))
    monkeypatch.undo()
    load_run(reported)
    assert _state(reported) == before
    assert not any(p.name.startswith(".") for p in reported.iterdir())


def test_ctrl_c_during_the_swap_waits_until_the_folder_is_consistent(reported, monkeypatch):
    import signal

    before = _state(reported)
    old_inode = (reported / "report.html").stat().st_ino
    real = os.rename
    sent = []
    # Ctrl-C as on a terminal, even when the suite runs with SIGINT ignored (nohup, a CI runner)
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)

    def rename_then_ctrl_c(src, dst, *a, **k):
        real(src, dst, *a, **k)
        if not sent:  # Ctrl-C right after the old report was moved aside
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(store.os, "rename", rename_then_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            rewrite_report(load_run_for_report(reported))
    finally:
        monkeypatch.undo()
        restored = signal.signal(signal.SIGINT, handler)
    assert sent and restored is signal.default_int_handler
    after = load_run(reported)  # the swap finished first: the new report and manifest, verifying
    assert (reported / "report.html").stat().st_ino != old_inode  # the new file is in place
    assert sorted(after.manifest["files"]) == sorted(json.loads(before["manifest"])["files"])
    assert not any(p.name.startswith(".") for p in reported.iterdir())


@pytest.mark.slow
def test_a_damaged_report_is_repaired_by_cascade_report(reported, tmp_path):
    (reported / "report.html").write_text("<html>half")
    with pytest.raises(RunFolderError, match="report.html: changed since"):
        load_run(reported)
    shutil.rmtree(reported / "figures")
    _refused(tmp_path, "compare", reported, reported, says=["figures/fan.png: listed in the manifest but missing"])
    proc = _cli("report", reported, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    repaired = load_run(reported)  # verifies again
    assert "figures/fan.png" in repaired.manifest["files"] and (reported / "figures" / "fan.png").is_file()
    assert (reported / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_report_refuses_damaged_tables(reported, tmp_path):
    with open(reported / "per_path.parquet", "ab") as fh:
        fh.write(b"x")
    _refused(tmp_path, "report", reported, says=["per_path.parquet: changed since the run was written"])


@pytest.mark.slow
def test_a_figures_symlink_is_refused(reported, outside, tmp_path):
    shutil.move(reported / "figures", outside / "figures")
    (reported / "figures").symlink_to(outside / "figures")
    _refused(tmp_path, "report", reported, says=[f"{reported / 'figures'}: is a symbolic link"])
    _refused(tmp_path, "compare", reported, reported, says=["files.figures/fan.png", "symbolic link"])


def test_a_figures_file_is_refused(reported, tmp_path):
    shutil.rmtree(reported / "figures")
    (reported / "figures").write_text("mine")
    _refused(tmp_path, "report", reported, says=[f"{reported / 'figures'}: is not a folder"])
