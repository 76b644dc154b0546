"""``cascade check`` in CI: a JUnit XML report with one test case per scenario, and GitHub Actions
error annotations (``::error file=...::``) when ``GITHUB_ACTIONS=true``."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from conftest import ROOT

from engine.cli import main
from engine.results.check import annotation

CALM = ROOT / "scenarios" / "ci" / "ci-calm.yaml"
# a thinner book than the baseline's: the calm market's figures move beyond their tolerance
THIN = "--set=market.impact.depth_usd_per_pct=3M"


def _cases(path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root
    assert suite.get("name") == "cascade check"
    return root, suite.findall("testcase")


def test_junit_has_a_passing_case_per_scenario(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "check.xml"
    assert main(["check", str(CALM), "--junit", str(out)]) == 0
    root, cases = _cases(out)
    assert [c.get("name") for c in cases] == ["ci-calm"] and root.get("failures") == "0"
    assert cases[0].get("file") == CALM.as_posix() and float(cases[0].get("time")) > 0
    assert cases[0].find("failure") is None and "within tolerance" in cases[0].find("system-out").text


def test_junit_records_a_drift_as_a_failure_and_a_bad_file_as_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "check.xml"
    assert main(["check", str(CALM), str(tmp_path / "missing.yaml"), THIN, "--junit", str(out)]) == 2
    root, cases = _cases(out)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "1")
    drift, missing = cases
    failure = drift.find("failure")
    assert failure is not None and "metrics drifted beyond tolerance" in failure.get("message")
    assert "DRIFT" in failure.text
    assert "no such scenario file" in missing.find("error").get("message")


def test_an_unwritable_junit_path_is_refused_before_any_run(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["check", str(CALM), "--junit", str(tmp_path / "file" / "check.xml")]) == 2
    err = capsys.readouterr().err
    assert "--junit" in err and "Traceback" not in err


def test_github_actions_gets_an_error_annotation_per_drift(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["check", str(CALM), THIN]) == 1
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("::error ")]
    assert len(lines) == 1
    assert lines[0].startswith(f"::error file={CALM.as_posix()},title=cascade check::ci-calm: ")
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert main(["check", str(CALM), THIN]) == 1
    assert "::error" not in capsys.readouterr().out


def test_github_actions_annotations_point_at_the_line_of_a_bad_key(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {os.path.relpath(CALM, tmp_path)}\nname: bad\nn_paths: -3\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["check", str(bad), "--baselines", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert f"::error file={bad.as_posix()},line=3,title=cascade check::" in out, out


def test_annotation_escapes_what_github_would_read_as_syntax():
    text = annotation("50% drift\nsecond line", "a,b:c.yaml", 7)
    assert text == "::error file=a%2Cb%3Ac.yaml,line=7,title=cascade check::50%25 drift%0Asecond line"


def test_an_absolute_scenario_path_finds_its_own_baseline_from_any_folder(tmp_path, capsys, monkeypatch):
    """``cascade check /abs/path/scenarios/ci/x.yaml`` run elsewhere reads the baseline of the
    project the scenario is in (the nearest results/baselines/ above it), not ./results/baselines."""
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(CALM)]) == 0
    out = capsys.readouterr().out
    assert f"against {(ROOT / 'results' / 'baselines' / 'ci-calm.json').as_posix()}" in out
    assert not (tmp_path / "results").exists()
