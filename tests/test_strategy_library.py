"""The strategy library (``strategies/*.yaml``) and ``use:``: every shipped file validates and says
what it is; scenarios take library files by name or path, mixed with inline rules; errors are
located; labels stay unique; ``--set``, ``overrides:`` and sweeps reach the expanded entries; the
CLI validates and lists strategy files; a user's own ``strategies`` Python package cannot break
the engine; and no engine module branches on rule names (each rule's module translates itself)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import engine
from engine.errors import ScenarioError
from engine.scenario.grid import sweep_dimensions
from engine.scenario.loader import load_strategy_file
from engine.scenario.strategy_files import is_strategy_file
from engine.strategies import RULES

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "strategies").glob("*.yaml"))
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
REQUIRED = {"put-protection-50k-60k", "put-spread-60k-50k", "collar-zero-cost", "perp-delta-hedge",
            "deleverage-on-drawdown"}
EXPIRY = "2026-02-27T08:00:00Z"


def _cascade(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CASCADE_SCENARIOS", "PYTHONPATH")}
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _scenario(path: Path, tiny: dict, strategies_yaml: str, extra: str = "") -> Path:
    """A tiny scenario at ``path`` whose ``strategies:`` section is ``strategies_yaml``."""
    body = yaml.safe_dump(tiny, sort_keys=False)
    return _write(path, body + "strategies:\n" + textwrap.indent(textwrap.dedent(strategies_yaml), "  ") + extra)


PUTS = """\
    description: Two puts.
    strategies:
      - {rule: protective_put, name: put_50k, strike_usd: 50k, size_btc: 1, tenor: 30d}
      - {rule: protective_put, name: put_55k, strike_usd: 55k, size_btc: 1, tenor: 30d}
    """


def _labels(scenario) -> list[str]:
    return [s.label for s in scenario.strategies]


# ----------------------------------------------------------------------------- the shipped library
def test_the_library_ships_the_required_programmes():
    assert REQUIRED <= {p.stem for p in LIBRARY}


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_shipped_strategy_file_validates_and_documents_itself(path):
    assert is_strategy_file(path)
    model = load_strategy_file(path)
    assert model.strategies, f"{path.name} has no strategies"
    assert model.summary_line.strip(), f"{path.name} has no description for `cascade list`"
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lower())
    text = "\n".join(header)
    assert len(header) >= 8, f"{path.name}: the header comment should say what the programme is and when to use it"
    for word in ("when to use", "parameters", "assumptions"):
        assert word in text, f"{path.name}: the header comment has no {word!r} part"


def test_put_protection_and_spread_are_the_feb_2026_monthly():
    puts = load_strategy_file(ROOT / "strategies" / "put-protection-50k-60k.yaml").strategies
    assert [(p.label, p.strike_usd) for p in puts] == [("put_50k", 50_000.0), ("put_55k", 55_000.0),
                                                      ("put_60k", 60_000.0)]
    spread, = load_strategy_file(ROOT / "strategies" / "put-spread-60k-50k.yaml").strategies
    assert (spread.long_strike_usd, spread.short_strike_usd) == (60_000.0, 50_000.0)
    for s in [*puts, spread]:
        assert s.hedge_ratio == 1.0 and s.expiry.isoformat() == "2026-02-27T08:00:00+00:00"


def test_the_zero_cost_collar_costs_about_nothing_at_the_flagship_start(tmp_path):
    """What collar-zero-cost.yaml's header claims: on the flagship's surface at its start, the net
    premium of the collar is within 10% of what the 60k put alone costs (the header gives -3%)."""
    rel = lambda p: os.path.relpath(p, tmp_path)  # noqa: E731
    path = _write(tmp_path / "collar-check.yaml", f"""\
        extends: {rel(FLAGSHIP)}
        name: collar-check
        strategies:
          - use: {rel(ROOT / "strategies" / "collar-zero-cost.yaml")}
          - use: {rel(ROOT / "strategies" / "put-protection-50k-60k.yaml")}
        """)
    scenario = engine.load_scenario(path)
    table = engine.run(scenario, n_paths=32).strategies.set_index("strategy")
    collar, put = table.loc["collar_zero_cost", "premium"], table.loc["put_60k", "premium"]
    assert put > 0 and abs(collar) < 0.1 * put, (collar, put)


# ----------------------------------------------------------------------------- use: by name and by path
def test_use_by_name_finds_the_nearest_library_and_keeps_the_order(tmp_path, tiny_scenario):
    _write(tmp_path / "strategies" / "puts.yaml", PUTS)
    path = _scenario(tmp_path / "scenarios" / "deep" / "s.yaml", tiny_scenario, """\
        - {rule: stop_loss, name: stop, drawdown: 20%}
        - use: puts
        - {rule: perp_hedge, name: perp}
        """)
    scenario = engine.load_scenario(path)
    assert _labels(scenario) == ["stop", "put_50k", "put_55k", "perp"]
    # a library nearer the scenario wins over the parent's
    _write(tmp_path / "scenarios" / "strategies" / "puts.yaml", """\
        strategies:
          - {rule: protective_put, name: near_put, strike_usd: 60k, size_btc: 1, tenor: 30d}
        """)
    assert _labels(engine.load_scenario(path)) == ["stop", "near_put", "perp"]


def test_use_by_name_falls_back_to_the_current_directory(tmp_path, tiny_scenario, monkeypatch):
    path = _scenario(tmp_path / "here" / "s.yaml", tiny_scenario, "- use: puts\n")
    with pytest.raises(ScenarioError):
        engine.load_scenario(path)
    work = tmp_path / "elsewhere"
    _write(work / "strategies" / "puts.yaml", PUTS)
    monkeypatch.chdir(work)
    assert _labels(engine.load_scenario(path)) == ["put_50k", "put_55k"]


def test_use_by_path_is_relative_to_the_file_that_names_it(tmp_path, tiny_scenario):
    _write(tmp_path / "mine" / "puts.yaml", PUTS)
    _write(tmp_path / "mine" / "combo.yaml", """\
        description: Puts and a stop.
        strategies:
          - use: puts.yaml
          - {rule: stop_loss, name: stop, stop_price_usd: 70k}
        """)
    path = _scenario(tmp_path / "scenarios" / "s.yaml", tiny_scenario, "- {use: ../mine/combo.yaml}\n")
    scenario = engine.load_scenario(path)
    assert _labels(scenario) == ["put_50k", "put_55k", "stop"]
    # the origins follow the entries: the loader knows each came from puts.yaml, line by line
    doc = scenario._source
    assert doc.locate(("strategies", 1, "strike_usd"))[:2] == (str(tmp_path / "scenarios" / "../mine/puts.yaml"), 4)


def test_use_in_extends_and_strategies_plus(tmp_path, tiny_scenario):
    _write(tmp_path / "strategies" / "puts.yaml", PUTS)
    _scenario(tmp_path / "base.yaml", tiny_scenario, "- use: puts\n")
    child = _write(tmp_path / "sub" / "child.yaml", """\
        extends: ../base.yaml
        strategies+:
          - {rule: stop_loss, name: stop, drawdown: 30%}
          - {use: ../extra.yaml}
        """)
    _write(tmp_path / "extra.yaml", "strategies:\n  - {rule: perp_hedge, name: perp}\n")
    assert _labels(engine.load_scenario(child)) == ["put_50k", "put_55k", "stop", "perp"]


# ----------------------------------------------------------------------------- located errors
def test_missing_library_name_says_where_it_looked(tmp_path, tiny_scenario):
    _write(tmp_path / "strategies" / "puts.yaml", PUTS)
    path = _scenario(tmp_path / "s.yaml", tiny_scenario, "- {rule: perp_hedge}\n- use: putz\n")
    with pytest.raises(ScenarioError) as info:
        engine.load_scenario(path)
    problem, = info.value.problems
    assert (problem.file, problem.key) == (str(path), "strategies[1].use")
    assert problem.line == path.read_text().splitlines().index("  - use: putz") + 1
    assert "no strategy file putz.yaml" in problem.message and str(tmp_path / "strategies") in problem.message
    assert problem.hint == "did you mean 'puts'?"


def test_missing_path_says_what_it_looked_for(tmp_path, tiny_scenario):
    path = _scenario(tmp_path / "s.yaml", tiny_scenario, "- use: ../nowhere/h.yaml\n")
    with pytest.raises(ScenarioError) as info:
        engine.load_scenario(path)
    problem, = info.value.problems
    assert problem.key == "strategies[0].use" and "file not found" in problem.message
    assert str(tmp_path / "../nowhere/h.yaml") in problem.message


def test_invalid_library_content_is_located_in_the_library_file(tmp_path, tiny_scenario):
    lib = _write(tmp_path / "strategies" / "bad.yaml", """\
        description: Broken.
        strategies:
          - {rule: protective_put, name: p, strike_usd: -5, size_btc: 1, tenor: 30d}
          - {rule: stop_loss, nme: x, drawdown: 10%}
        """)
    path = _scenario(tmp_path / "s.yaml", tiny_scenario, "- use: bad\n")
    with pytest.raises(ScenarioError) as info:
        engine.load_scenario(path)
    first, second = info.value.problems
    assert (first.file, first.line, first.key) == (str(lib), 3, "strategies[0].strike_usd")
    assert first.has_found and first.found == -5
    assert (second.file, second.line, second.key) == (str(lib), 4, "strategies[1].nme")
    assert "did you mean 'name'?" in second.hint
    for problem in (first, second):
        assert f"used by {path}:" in problem.hint and "(strategies[0].use)" in problem.hint
    # the same errors from `cascade validate` on the library file itself, exit 2
    out = _cascade("validate", str(lib))
    assert out.returncode == 2 and f"{lib}:3:" in out.stderr and "strategies[0].strike_usd" in out.stderr


@pytest.mark.parametrize("item, fragment", [
    ("{use: 5}", "expects a library name or a path"),
    ("{use: puts, name: x}", "takes no other keys, found name"),
    ("{use: /etc/hedges.yaml}", "give a path relative to this file"),
    ("{use: 'a b'}", "a library name is letters"),
    ("{use: ../scenario.yaml}", "a scenario: a strategy file is"),
])
def test_bad_use_items_are_refused_where_they_are_written(tmp_path, tiny_scenario, item, fragment):
    _write(tmp_path / "strategies" / "puts.yaml", PUTS)
    _scenario(tmp_path / "scenario.yaml", tiny_scenario, "[]\n")
    path = _scenario(tmp_path / "sub" / "s.yaml", tiny_scenario, f"- {item}\n")
    with pytest.raises(ScenarioError) as info:
        engine.load_scenario(path)
    text = str(info.value)
    assert fragment in text and "strategies[0].use" in text and str(path) in text


def test_every_bad_use_item_is_reported_at_once(tmp_path, tiny_scenario):
    path = _scenario(tmp_path / "s.yaml", tiny_scenario, "- use: nope-one\n- use: nope-two\n")
    with pytest.raises(ScenarioError) as info:
        engine.load_scenario(path)
    assert [p.key for p in info.value.problems] == ["strategies[0].use", "strategies[1].use"]


def test_use_cycles_are_refused(tmp_path, tiny_scenario):
    _write(tmp_path / "a.yaml", "strategies:\n  - use: b.yaml\n")
    _write(tmp_path / "b.yaml", "strategies:\n  - use: a.yaml\n")
    path = _scenario(tmp_path / "s.yaml", tiny_scenario, "- use: a.yaml\n")
    with pytest.raises(ScenarioError, match=r"use cycle: s.yaml -> a.yaml -> b.yaml -> a.yaml"):
        engine.load_scenario(path)


def test_duplicate_labels_after_expansion_are_refused(tmp_path, tiny_scenario):
    lib = _write(tmp_path / "strategies" / "puts.yaml", PUTS)
    path = _scenario(tmp_path / "s.yaml", tiny_scenario, """\
        - use: puts
        - {rule: protective_put, name: put_55k, strike_usd: 56k, size_btc: 1, tenor: 30d}
        """)
    with pytest.raises(ScenarioError) as info:
        engine.load_scenario(path)
    problem, = info.value.problems
    assert problem.key == "strategies[2]" and problem.file == str(path)
    assert "two strategies are called 'put_55k'" in problem.message and f"{lib}:4" in problem.message
    # the same library used twice
    twice = _scenario(tmp_path / "t.yaml", tiny_scenario, "- use: puts\n- use: puts\n")
    with pytest.raises(ScenarioError, match="two strategies are called 'put_50k'"):
        engine.load_scenario(twice)


# ----------------------------------------------------------------------------- --set, overrides, sweeps
def test_set_overrides_and_sweeps_reach_expanded_entries(tmp_path, tiny_scenario):
    _write(tmp_path / "strategies" / "puts.yaml", PUTS)
    path = _scenario(tmp_path / "s.yaml", tiny_scenario, "- use: puts\n")
    scenario = engine.load_scenario(path, ["strategies[put_55k].strike_usd=52k"])
    assert [s.strike_usd for s in scenario.strategies] == [50_000.0, 52_000.0]
    swept = engine.load_scenario(path, ["strategies[put_55k].strike_usd={values: [52k, 54k]}"])
    assert sweep_dimensions(swept) == [("strategies[put_55k].strike_usd", [52_000.0, 54_000.0])]
    patched = _write(tmp_path / "p.yaml", """\
        extends: s.yaml
        overrides:
          strategies[put_50k].strike_usd: 48k
        sweep:
          parameters:
            strategies[put_55k].strike_usd: [53k, 57k]
        """)
    scenario = engine.load_scenario(patched)
    assert scenario.strategies[0].strike_usd == 48_000.0
    assert sweep_dimensions(scenario) == [("strategies[put_55k].strike_usd", ["53k", "57k"])]  # checked, as written
    patched.write_text(patched.read_text().replace("[53k, 57k]", "[53k, -1k]"))
    with pytest.raises(ScenarioError, match="value '-1k' is not valid there"):
        engine.load_scenario(patched)
    with pytest.raises(ScenarioError, match="no item 'put_56k'; items: put_50k, put_55k"):
        engine.load_scenario(path, ["strategies[put_56k].strike_usd=52k"])


def test_a_use_item_written_by_set_is_expanded_from_the_current_directory(tmp_path, tiny_scenario, monkeypatch):
    _write(tmp_path / "strategies" / "puts.yaml", PUTS)
    path = _scenario(tmp_path / "scen" / "s.yaml", tiny_scenario, "[]\n")
    monkeypatch.chdir(tmp_path)
    scenario = engine.load_scenario(path, ["strategies=[{use: puts}, {rule: stop_loss, drawdown: 20%}]"])
    assert _labels(scenario) == ["put_50k", "put_55k", "stop_loss"]


def test_expanded_strategies_are_evaluated_like_inline_ones(tmp_path, tiny_scenario):
    _write(tmp_path / "strategies" / "puts.yaml", PUTS)
    inline = dict(tiny_scenario, strategies=yaml.safe_load(textwrap.dedent(PUTS))["strategies"])
    used = engine.load_scenario(_scenario(tmp_path / "s.yaml", tiny_scenario, "- use: puts\n"))
    a = engine.run(engine.load_scenario(inline), n_paths=32).strategies
    b = engine.run(used, n_paths=32).strategies
    assert a.equals(b)


# ----------------------------------------------------------------------------- the CLI
@pytest.mark.slow
def test_validate_takes_strategy_files_and_scenarios_together(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "strategies:\n  - {rule: stop_loss}\n")
    out = _cascade("validate", *map(str, LIBRARY), str(FLAGSHIP))
    assert out.returncode == 0, out.stderr
    for path in LIBRARY:
        assert f"ok  {path}  (strategy file" in out.stdout
    assert f"ok  {FLAGSHIP}  (feb-2026-deleveraging" in out.stdout
    out = _cascade("validate", str(LIBRARY[0]), str(bad))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{bad}:2:5: strategies[0]: give exactly one of stop_price_usd and drawdown" in out.stderr
    assert "1 of 2 files invalid" in out.stderr
    out = _cascade("validate", "--json", str(ROOT / "strategies" / "put-protection-50k-60k.yaml"))
    record = json.loads(out.stdout)
    assert record["valid"] and record["kind"] == "strategies" and record["strategies"] == ["put_50k", "put_55k", "put_60k"]


def test_show_prints_the_expanded_strategies(tmp_path, tiny_scenario):
    _write(tmp_path / "strategies" / "puts.yaml", PUTS)
    path = _scenario(tmp_path / "s.yaml", tiny_scenario, "- use: puts\n")
    out = _cascade("show", str(path))
    assert out.returncode == 0, out.stderr
    shown = yaml.safe_load(out.stdout)
    assert [s["name"] for s in shown["strategies"]] == ["put_50k", "put_55k"] and "use:" not in out.stdout


def test_list_shows_the_strategy_library_after_the_scenarios():
    out = _cascade("list")
    assert out.returncode == 0, out.stderr
    head, _, tail = out.stdout.partition("\nstrategies (in strategies/")
    assert "feb-2026-deleveraging.yaml" in head and tail
    for path in LIBRARY:
        line = next(line for line in tail.splitlines() if line.startswith(path.stem + " "))
        assert load_strategy_file(path).summary_line in line
    assert "INVALID" not in tail


@pytest.mark.slow
def test_a_strategies_package_in_the_working_directory_changes_nothing(tmp_path):
    """A user's own ``strategies`` Python package where they run the engine (first on sys.path)
    is not imported: the rules live in ``engine.strategies``."""
    package = tmp_path / "strategies"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('the user package must not be imported')\n")
    out = _cascade("validate", str(FLAGSHIP), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = _cascade("run", str(FLAGSHIP), "--paths", "200", "--no-progress", "--out", str(tmp_path / "run"),
                   cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "run" / "manifest.json").is_file()


# ----------------------------------------------------------------------------- one place per rule
def test_every_rule_module_holds_its_schema_and_its_translation():
    for name, module in RULES.items():
        assert module.__name__ == f"engine.strategies.{name}"
        assert callable(getattr(module, "translate", None)), f"{name} has no translate()"
        assert module.Params.model_fields["rule"].annotation.__args__ == (name,)


def _branches_on_rule_names(tree: ast.AST) -> list[int]:
    """Lines comparing something with a rule name (``x == "collar"``, ``x in ("collar", ...)``)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                if any(isinstance(v, ast.Constant) and v.value in RULES for v in values):
                    lines.append(node.lineno)
    return lines


def test_no_engine_module_outside_the_rules_branches_on_rule_names():
    offenders = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        if "strategies" in path.relative_to(ROOT / "engine").parts:
            continue
        lines = _branches_on_rule_names(ast.parse(path.read_text(encoding="utf-8")))
        offenders += [f"{path.relative_to(ROOT)}:{line}" for line in lines]
    assert offenders == [], "dispatch through engine.strategies.RULES instead: " + ", ".join(offenders)
    hedge = (ROOT / "engine" / "portfolio" / "hedge.py").read_text(encoding="utf-8")
    assert "s.rule ==" not in hedge and "s.rule in" not in hedge


def test_the_old_top_level_package_is_gone():
    assert not (ROOT / "strategies" / "__init__.py").exists()
    assert not list((ROOT / "strategies").glob("*.py"))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"strategies*"' not in pyproject
