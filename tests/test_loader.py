"""From files to a Scenario: extends, --set, YAML 1.2 reading, located errors, show round trips, grids."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import pytest
from pathlib import Path
import yaml

import engine
from engine.scenario.canonical import dump_scenario
from engine.scenario.grid import expand_grid, inline_sweeps, sweep_dimensions
from engine.errors import ScenarioError
from engine.scenario.loader import load_scenario, parse_override, set_path, split_path
from engine.scenario.yamlio import parse_yaml_text

BASE = """\
name: base
seed: 3
n_paths: 100
horizon:
  start: 2026-01-29T00:00:00Z
  duration: 2d
  step: 1h
market:
  spot_usd: 88.5k
  volatility:
    annual: 80%
  perpetuals:
    long: {notional_usd: 38B}
    short: {notional_usd: 23B}
    venues: {binance: 60%, cme: 40%}
shocks:
  - type: price_jump
    id: jump
    start: +1d
    size: -5%
  - type: balance_sheet_tightening
    id: warsh
    start: +6h
    ramp: 6h
outputs:
  sample_paths: 50
"""
# lines of BASE, for the location tests
BASE_SPOT_LINE, BASE_JUMP_SIZE_LINE = 9, 20


def problems_of(source, overrides=()) -> list[engine.Problem]:
    with pytest.raises(engine.ScenarioError) as info:
        load_scenario(source, overrides)
    return info.value.problems


def only_problem(source, overrides=()) -> engine.Problem:
    problems = problems_of(source, overrides)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


@pytest.fixture
def base(write_yaml):
    return write_yaml("base.yaml", BASE)


# ----------------------------------------------------------------------------- the fixtures
def test_tiny_scenario_is_valid(tiny_scenario, write_yaml):
    scenario = load_scenario(tiny_scenario)
    assert scenario.horizon.n_steps == 48
    assert load_scenario(write_yaml("tiny.yaml", tiny_scenario)).model_dump() == scenario.model_dump()


def test_shipped_scenarios_load(scenarios_dir):
    paths = sorted(scenarios_dir.glob("*.yaml")) + sorted(scenarios_dir.glob("ci/*.yaml"))
    assert paths
    for path in paths:
        load_scenario(path)


def test_shared_data_fixture_gives_the_folder(shared_data):
    assert shared_data.is_dir()
    assert shared_data.name == "data"


# ----------------------------------------------------------------------------- extends
def test_extends_merges_mappings_and_replaces_lists(base, write_yaml):
    child = write_yaml("child.yaml", """
        extends: base.yaml
        name: child
        market:
          volatility: {tail_dof: 6}
          perpetuals:
            long: {notional_usd: 40B}
        shocks:
          - {type: price_jump, start: +2h, size: -1%}
    """)
    s = load_scenario(child)
    assert s.name == "child"
    assert s.seed == 3  # inherited
    assert s.market.spot_usd == 88.5e3  # sibling of a merged key, kept
    assert s.market.volatility.annual == 0.8 and s.market.volatility.tail_dof == 6  # deep merge
    assert s.market.perpetuals.long.notional_usd == 40e9
    assert s.market.perpetuals.short.notional_usd == 23e9
    assert {k: v.share for k, v in s.market.perpetuals.venues.items()} == {"binance": 0.6, "cme": 0.4}
    assert [sh.size for sh in s.shocks] == [-0.01]  # lists are replaced, not merged


def test_extends_appends_with_plus_key(base, write_yaml):
    child = write_yaml("child.yaml", """
        extends: base.yaml
        shocks+:
          - {type: price_jump, id: late, start: +1d12h, size: -2%}
    """)
    assert [sh.id for sh in load_scenario(child).shocks] == ["jump", "warsh", "late"]


def test_extends_null_removes_the_parent_value(base, write_yaml):
    child = write_yaml("child.yaml", """
        extends: base.yaml
        market:
          volatility: {annual: null}
        outputs: null
    """)
    s = load_scenario(child)
    assert s.market.volatility.annual == 0.55  # the default again
    assert s.outputs.sample_paths == 10


def test_extends_replaces_a_mapping_whose_kind_changes(base, write_yaml):
    """Lognormal -> table leverage keeps none of the lognormal's keys (median, dispersion...)."""
    child = write_yaml("child.yaml", """
        extends: base.yaml
        market:
          perpetuals:
            long:
              leverage: {distribution: table, weights: {3: 50%, 10: 50%}}
    """)
    leverage = load_scenario(child).market.perpetuals.long.leverage
    assert leverage.distribution == "table" and leverage.weights == {3.0: 0.5, 10.0: 0.5}


def test_extends_replaces_the_portfolio_whole(base, write_yaml):
    """A book is one unit: a child's 1 BTC spot book keeps none of the parent's perp or cash."""
    write_yaml("parent.yaml", """
        extends: base.yaml
        portfolio: {spot_btc: 1000, cash_usd: 15M, perp: {size_btc: 250, leverage: 3}}
    """)
    child = write_yaml("child.yaml", """
        extends: parent.yaml
        portfolio: {spot_btc: 1}
    """)
    book = load_scenario(child).portfolio
    assert book.spot_btc == 1 and book.cash_usd == 0 and book.perp is None
    inherited = write_yaml("inherits.yaml", "extends: parent.yaml\n")
    assert load_scenario(inherited).portfolio.perp.size_btc == 250  # no portfolio: the parent's whole book


def test_overrides_section_changes_one_inherited_item(base, write_yaml):
    child = write_yaml("child.yaml", """
        extends: base.yaml
        overrides:
          shocks[warsh].depth_multiplier: 0.5
          shocks[jump].size: -4%
    """)
    s = load_scenario(child)
    assert s.shock_by_id("warsh").depth_multiplier == 0.5 and s.shock_by_id("jump").size == -0.04
    assert [sh.id for sh in s.shocks] == ["jump", "warsh"]


def test_overrides_section_errors_point_at_its_line(base, write_yaml):
    child = write_yaml("child.yaml", """
        extends: base.yaml
        overrides:
          shocks[warsh].depth_multiplier: 0.5
          shocks[nope].size: -4%
    """)
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    problem = info.value.problems[0]
    assert problem.file == str(child) and problem.line == 4 and "no item 'nope'" in problem.message


def test_overrides_reach_date_keys_and_value_errors_point_at_the_override(write_yaml, tiny_scenario):
    tiny_scenario["shocks"] = [{"type": "etf_flows", "id": "etf", "start": "2026-01-29",
                                "daily_flows_usd": {"2026-01-29": "-800M", "2026-01-30": "-500M"}}]
    write_yaml("parent.yaml", tiny_scenario)
    child = write_yaml("child.yaml", """
        extends: parent.yaml
        overrides:
          shocks[etf].daily_flows_usd.2026-01-30: -1B
    """)
    flows = load_scenario(child).shocks[0].daily_flows_usd
    assert list(flows.values()) == [-800e6, -1e9]
    bad = write_yaml("bad.yaml", """
        extends: parent.yaml
        overrides:
          shocks[etf].daily_flows_usd.2026-01-30: lots
    """)
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert info.value.problems[0].file == str(bad) and info.value.problems[0].line == 3


def test_extends_refuses_absolute_paths(base, write_yaml):
    child = write_yaml("child.yaml", f"extends: {base}\n")
    with pytest.raises(ScenarioError, match="relative to this file"):
        load_scenario(child)


def test_extends_several_levels_relative_to_each_file(base, write_yaml):
    write_yaml("family/parent.yaml", """
        extends: ../base.yaml
        name: parent
        n_paths: 200
        market: {spot_usd: 80k}
    """)
    child = write_yaml("family/kids/child.yaml", """
        extends: ../parent.yaml
        name: child
        market:
          volatility: {annual: 60%}
        shocks+:
          - {type: price_jump, start: +1h, size: 1%}
    """)
    s = load_scenario(child)
    assert (s.name, s.n_paths, s.seed) == ("child", 200, 3)
    assert s.market.spot_usd == 80e3 and s.market.volatility.annual == 0.6
    assert len(s.shocks) == 3


def test_extends_a_list_of_parents_later_wins(base, write_yaml):
    write_yaml("more-paths.yaml", "n_paths: 500\nseed: 9\n")
    write_yaml("fewer-paths.yaml", "n_paths: 50\n")
    child = write_yaml("child.yaml", "extends: [base.yaml, more-paths.yaml, fewer-paths.yaml]\nname: child\n")
    s = load_scenario(child)
    assert (s.n_paths, s.seed) == (50, 9)


def test_extends_diamond_is_not_a_cycle(base, write_yaml):
    write_yaml("left.yaml", "extends: base.yaml\nseed: 1\nname: left\n")
    write_yaml("right.yaml", "extends: base.yaml\nn_paths: 7\n")
    child = write_yaml("child.yaml", "extends: [left.yaml, right.yaml]\n")
    s = load_scenario(child)
    # a later parent wins with everything it resolves to, its own parent's values included
    assert (s.name, s.seed, s.n_paths) == ("base", 3, 7)


def test_extends_cycle_through_three_files(write_yaml):
    write_yaml("a.yaml", "extends: b.yaml\n")
    write_yaml("b.yaml", "extends: c.yaml\n")
    c = write_yaml("c.yaml", "name: c\nextends: a.yaml\n")
    problem = only_problem(c.parent / "a.yaml")
    assert problem.file == str(c) and problem.line == 2 and problem.key == "extends"
    assert "a.yaml -> b.yaml -> c.yaml -> a.yaml" in problem.message


# ----------------------------------------------------------------------------- where errors point
def test_error_in_parent_points_into_the_parent(write_yaml):
    base = write_yaml("base.yaml", BASE.replace("spot_usd: 88.5k", "spot_usd: 88.5X"))
    child = write_yaml("child.yaml", "extends: base.yaml\nname: child\nn_paths: 10\n")
    problem = only_problem(child)
    assert (problem.file, problem.line, problem.key) == (str(base), BASE_SPOT_LINE, "market.spot_usd")


def test_error_in_child_points_into_the_child(base, write_yaml):
    child = write_yaml("child.yaml", """
        extends: base.yaml
        name: child
        market:
          volatility:
            annual: fast
    """)
    problem = only_problem(child)
    assert (problem.file, problem.line, problem.key) == (str(child), 5, "market.volatility.annual")


def test_child_fixes_the_parents_error(write_yaml):
    write_yaml("base.yaml", BASE.replace("spot_usd: 88.5k", "spot_usd: 88.5X"))
    child = write_yaml("child.yaml", "extends: base.yaml\nmarket: {spot_usd: 88.5k}\n")
    assert load_scenario(child).market.spot_usd == 88.5e3


def test_errors_in_parent_and_child_are_reported_together(write_yaml):
    base = write_yaml("base.yaml", BASE.replace("size: -5%", "size: -5%%"))
    child = write_yaml("child.yaml", """
        extends: base.yaml
        n_paths: -1
        shocks+:
          - {type: price_jump, start: +2h, size: huge}
    """)
    located = {(p.file, p.line, p.key) for p in problems_of(child)}
    assert located == {
        (str(base), BASE_JUMP_SIZE_LINE, "shocks[0].size"),
        (str(child), 2, "n_paths"),
        (str(child), 4, "shocks[2].size"),  # appended after the parent's two shocks
    }


def test_semantic_error_in_appended_shock_points_into_the_child(base, write_yaml):
    child = write_yaml("child.yaml", """
        extends: base.yaml
        shocks+:
          - type: price_jump
            id: jump
            start: +3d
            size: -1%
    """)
    located = {(p.file, p.line, p.key): p.message for p in problems_of(child)}
    assert set(located) == {(str(child), 4, "shocks[2].id"), (str(child), 5, "shocks[2].start")}
    assert "duplicate shock id 'jump' (also shocks[0])" in located[(str(child), 4, "shocks[2].id")]


def test_merge_key_values_point_at_the_value_that_wins(write_yaml):
    head = BASE.split("shocks:")[0]  # 15 lines
    path = write_yaml("merge.yaml", head + """\
shocks:
  - &jump
    type: price_jump
    start: +1h
    size: -5%
  - id: second
    size: big
    <<: *jump
""")
    problem = only_problem(path)
    assert (problem.line, problem.key) == (22, "shocks[1].size")  # the own key, not the anchor's line 20
    path = write_yaml("merge.yaml", head + """\
shocks:
  - &jump
    type: price_jump
    start: +1h
    size: -5%
  - <<: *jump
    start: +5d
""")
    problem = only_problem(path)
    assert (problem.line, problem.key) == (22, "shocks[1].start")
    assert "outside the horizon" in problem.message


# ----------------------------------------------------------------------------- YAML 1.2 and merge keys
def test_yaml_12_scalars():
    data, _ = parse_yaml_text(
        "a: yes\nb: no\nc: on\nd: off\ne: 14:30\nf: 010\ng: 0o17\nh: 0x1F\ni: 1_000\nj: true\n"
        "k: ~\nl: 1e3\nm: .inf\nn: 2026-01-29\no: 2026-01-29T14:30:00Z\np: Yes\nq: y\n"
    )
    assert (data["a"], data["b"], data["c"], data["d"], data["p"], data["q"]) == ("yes", "no", "on", "off", "Yes", "y")
    assert data["e"] == "14:30"  # YAML 1.1 reads base 60: 870
    assert (data["f"], data["g"], data["h"], data["i"]) == (10, 15, 31, 1000)  # 010 is ten, not octal
    assert data["j"] is True and data["k"] is None
    assert data["l"] == 1000.0 and isinstance(data["l"], float) and data["m"] == float("inf")
    assert data["n"] == date(2026, 1, 29)
    assert data["o"] == datetime(2026, 1, 29, 14, 30, tzinfo=timezone.utc)


def test_yaml_12_scalars_in_a_scenario(tiny_scenario, write_yaml):
    text = yaml.safe_dump(tiny_scenario, sort_keys=False)
    text = text.replace("name: tiny", "name: yes")
    text += "  etf:\n    execution_window: {start: 14:30, end: 21:00}\n"
    s = load_scenario(write_yaml("yes.yaml", text))
    assert s.name == "yes"  # a string, not True
    assert (s.market.etf.execution_window.start, s.market.etf.execution_window.end) == (870, 1260)


def test_merge_keys():
    data, marks = parse_yaml_text(
        "a: &a {x: 1, y: 2}\nb: &b {y: 3, z: 4}\nc:\n  <<: [*a, *b]\n  x: 0\nd:\n  x: 5\n  <<: *a\n"
    )
    assert data["c"] == {"x": 0, "y": 2, "z": 4}  # own keys win, then the first source
    assert data["d"] == {"x": 5, "y": 2}
    assert marks[("c", "x")] == (5, 3) and marks[("c", "y")] == (1, 14) and marks[("c", "z")] == (2, 14)
    assert marks[("d", "x")] == (7, 3)


def test_merge_key_must_name_a_mapping():
    with pytest.raises(engine.ScenarioError, match="a merge key '<<' must refer to a mapping"):
        parse_yaml_text("a: &a [1, 2]\nb:\n  <<: *a\n")


# ----------------------------------------------------------------------------- --set
def test_set_numbers_amounts_and_list_items(base):
    s = load_scenario(base, [
        "n_paths=2000",
        "market.spot_usd=3M",
        "shocks[0].size=-10%",
        "shocks[warsh].depth_multiplier=0.5",
        "shocks[-1].ramp=12h",
        "market.perpetuals.venues.binance=70%",
        "market.perpetuals.venues.cme=30%",
    ])
    assert s.n_paths == 2000 and isinstance(s.n_paths, int)
    assert s.market.spot_usd == 3e6
    assert s.shocks[0].size == -0.10
    assert s.shock_by_id("warsh").depth_multiplier == 0.5
    assert s.shocks[1].ramp == timedelta(hours=12)
    assert {k: v.share for k, v in s.market.perpetuals.venues.items()} == pytest.approx({"binance": 0.7, "cme": 0.3})


def test_set_creates_nested_keys(base):
    s = load_scenario(base, ["market.macro.btc_beta=1.5", "portfolio.perp.size_btc=-20", "portfolio.perp.leverage=3"])
    assert s.market.macro.btc_beta == 1.5
    assert s.portfolio.perp.size_btc == -20 and s.portfolio.perp.leverage == 3


def test_set_values_are_yaml(base):
    s = load_scenario(base, ["shocks[jump].start=2026-01-30T06:00:00Z", "outputs.quantiles=[10, 50, 90]",
                             "description=yes"])
    assert s.shocks[0].start == datetime(2026, 1, 30, 6, tzinfo=timezone.utc)
    assert s.outputs.quantiles == [10, 50, 90]
    assert s.description == "yes"


def test_set_null(base):
    """An empty value or null sets null: for an optional key that is a value of its own."""
    assert load_scenario(base, ["market.volatility.tail_dof=null"]).market.volatility.tail_dof is None
    assert load_scenario(base, ["portfolio="]).portfolio is None
    problem = only_problem(base, ["market.spot_usd="])
    assert problem.key == "market.spot_usd" and problem.source == "--set market.spot_usd=" and problem.file is None


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("market..spot_usd=1", "cannot read key path 'market..spot_usd'"),
        ("shocks[0=1", "cannot read key path 'shocks[0'"),
        ("=5", "cannot read key path ''"),
        ("n_paths", "--set n_paths: expects key.path=value, got 'n_paths'"),
        ("shocks[5].size=1%", "shocks has 2 items; index 5 is out of range"),
        ("shocks[-3].size=1%", "shocks has 2 items; index -3 is out of range"),
        ("shocks[nope].size=1%", "shocks has no item 'nope'; items: jump, warsh"),
        ("seed.value=1", "seed is a value, not a section; cannot set 'value' inside it"),
        ("strategies[0].rule=collar", "strategies is not set in this scenario, so it has no item [0]"),
        ("market.spot_usd=[1, 2", "YAML syntax error"),
        ("name=!!python/object/apply:os.system [ls]", "YAML tag '!!python/object/apply:os.system' is not allowed"),
    ],
)
def test_set_bad_path_or_value(base, override, fragment):
    problem = only_problem(base, [override])
    assert problem.file is None and problem.source == f"--set {override}" and problem.line is None
    assert str(problem).startswith(f"--set {override}: ")
    assert fragment in str(problem)


@pytest.mark.parametrize(
    "override, key, fragment",
    [
        ("market.spot_prise=61k", "market.spot_prise", "did you mean 'spot_usd'?"),
        ("n_paths=many", "n_paths", "must be a whole number"),
        ("n_paths=true", "n_paths", "must be a whole number"),
        ("market.volatility.annual=.nan", "market.volatility.annual", "must be a finite rate"),
        ("market.macro.new_section.x=1", "market.macro.new_section", "unknown key 'new_section'"),
    ],
)
def test_set_value_errors_point_at_the_override(base, override, key, fragment):
    problem = only_problem(base, [override])
    assert problem.file is None and problem.source == f"--set {override}"
    assert problem.key == key and problem.line is None
    assert fragment in str(problem)


def test_set_problems_are_reported_together(base):
    problems = problems_of(base, ["shocks[9].size=1%", "n_paths=0", "market..x=1"])
    assert len(problems) == 2  # path problems first; validation waits until every override applies
    problems = problems_of(base, ["n_paths=0", "market.spot_usd=-1"])
    assert {p.key for p in problems} == {"n_paths", "market.spot_usd"}


def test_split_path_and_set_path():
    assert split_path("shocks[etf_run].generated.total_usd") == ("shocks", "etf_run", "generated", "total_usd")
    assert split_path("shocks[2]") == ("shocks", 2)
    assert split_path("a.b[-1].c") == ("a", "b", -1, "c")
    for bad in ("", "a.", ".a", "a..b", "a[", "a]", "a[0]b", "a.[0]"):
        with pytest.raises(ValueError):
            split_path(bad)
    data = {"shocks": [{"id": "x", "size": 1}], "market": {}}
    assert set_path(data, ("shocks", "x", "size"), 2) == ("shocks", 0, "size")
    assert set_path(data, ("market", "macro", "btc_beta"), 1.5) == ("market", "macro", "btc_beta")
    assert data == {"shocks": [{"id": "x", "size": 2}], "market": {"macro": {"btc_beta": 1.5}}}
    with pytest.raises(KeyError):
        set_path(data, ("missing", "x"), 1, create=False)


def test_parse_override_reads_the_value_as_yaml():
    assert parse_override("market.spot_usd=84k") == (("market", "spot_usd"), "84k")
    assert parse_override("a.b=[1, 2]") == (("a", "b"), [1, 2])
    assert parse_override("a=x=y") == (("a",), "x=y")
    assert parse_override("a=on") == (("a",), "on")


# ----------------------------------------------------------------------------- all problems at once
def test_all_problems_reported_together(tiny_scenario):
    tiny_scenario["n_paths"] = 0
    tiny_scenario["horizon"]["duration"] = 4
    tiny_scenario["market"]["spot_usd"] = "61X"
    tiny_scenario["market"]["volatility"] = {"anual": "50%"}
    tiny_scenario["shocks"] = [{"type": "price_jmp", "start": "+1d"}]
    problems = problems_of(tiny_scenario)
    assert {p.key for p in problems} == {
        "n_paths", "horizon.duration", "market.spot_usd", "market.volatility.anual", "shocks[0].type",
    }
    assert all(p.file == "<dict>" for p in problems)


def test_semantic_problems_reported_together(tiny_scenario):
    tiny_scenario["shocks"] = [
        {"type": "price_jump", "id": "a", "start": "+3d", "size": "-5%"},
        {"type": "margin_hike", "id": "a", "start": "+1h", "venues": ["nowhere"], "initial_margin_rate": "2%"},
    ]
    problems = problems_of(tiny_scenario)
    assert {p.key for p in problems} == {"shocks[0].start", "shocks[1].id", "shocks[1].venues[0]"}


# ----------------------------------------------------------------------------- cascade show
def _show(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "show", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


RICH = BASE.replace("outputs:", """\
  - type: etf_flows
    id: flows
    start: 2026-01-29
    daily_flows_usd: {2026-01-29: -817.8M, 2026-01-30: 1B}
    execution_window: {start: "14:30", end: "20:00"}
  - type: margin_hike
    id: hike
    start: +2h
    venues: [binance]
    schedule:
      - {initial_margin_usd_per_contract: 25k, maintenance_margin_rate: 1%}
      - {at: +1d, initial_margin_rate: 15%}
portfolio:
  spot_btc: 100
  perp: {size_btc: -20, leverage: 3, venue: cme}
strategies:
  - rule: protective_put
    name: put_sweep
    strike_usd: {range: [50k, 60k, 5k]}
    size_btc: 10
    tenor: 30d
  - rule: perp_hedge
    hedge_ratio: {linspace: [0.25, 1.0, 4]}
sweep:
  parameters:
    market.spot_usd: [80k, 85k]
    shocks[warsh].depth_multiplier: {logspace: [0.1, 1, 3]}
regression:
  metrics:
    liquidations.total_usd: {rel: 5%}
outputs:""").replace("    long: {notional_usd: 38B}", """\
    long:
      notional_usd: 38B
      leverage: {distribution: table, weights: {3: 20%, 10: 50%, 25: 30%}}
      entry_price: {distribution: table, weights: {80k: 50%, 90k: 50%}}""")


_SHIPPED = sorted(
    str(p.relative_to(Path(__file__).resolve().parents[1] / "scenarios"))
    for p in (Path(__file__).resolve().parents[1] / "scenarios").rglob("*.yaml")
    if p.parent.name != "calibration"  # parameter files, not scenarios: they only make sense extended
)


# Every shipped scenario, not only the flagship: sweeps and breakpoints rebuild scenarios from this
# dump, and a default written out (a margin hike's contract size) once failed to load back.
@pytest.mark.parametrize("source", ["rich", *_SHIPPED])
def test_dump_scenario_reloads_to_an_equal_scenario(source, write_yaml, scenarios_dir):
    path = write_yaml("rich.yaml", RICH) if source == "rich" else scenarios_dir / source
    scenario = load_scenario(path)
    text = dump_scenario(scenario)
    again = load_scenario(write_yaml("shown.yaml", text))
    assert again.model_dump() == scenario.model_dump()
    assert dump_scenario(again) == text  # canonical: a fixed point


def test_cascade_show_output_reloads_to_an_equal_scenario(write_yaml):
    path = write_yaml("rich.yaml", RICH)
    run = _show(path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("# base: resolved by cascade-engine")
    again = load_scenario(write_yaml("shown.yaml", run.stdout))
    assert again.model_dump() == load_scenario(path).model_dump()


def test_cascade_show_applies_set(base, write_yaml):
    run = _show(base, "--set", "n_paths=1234", "--set", "shocks[warsh].depth_multiplier=0.25")
    assert run.returncode == 0, run.stderr
    shown = load_scenario(write_yaml("shown.yaml", run.stdout))
    assert shown.n_paths == 1234 and shown.shock_by_id("warsh").depth_multiplier == 0.25
    assert shown.model_dump() == load_scenario(base, ["n_paths=1234", "shocks[warsh].depth_multiplier=0.25"]).model_dump()


def test_cascade_show_bad_set_exits_2_without_traceback(base):
    run = _show(base, "--set", "shocks[nope].size=1%")
    assert run.returncode == 2
    assert "shocks has no item 'nope'" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


# ----------------------------------------------------------------------------- grids
def _with_sweep(tiny_scenario, mode, parameters, strategies=()):
    tiny_scenario["shocks"] = [{"type": "price_jump", "id": "jump", "start": "+1d", "size": "-5%"}]
    tiny_scenario["portfolio"] = {"spot_btc": 100}
    tiny_scenario["strategies"] = list(strategies)
    tiny_scenario["sweep"] = {"mode": mode, "parameters": parameters}
    return tiny_scenario


def test_expand_grid_product_and_zip(tiny_scenario):
    params = {"market.spot_usd": ["80k", "85k", "90k"], "shocks[jump].size": {"values": ["-1%", "-5%", "-9%"]}}
    product = expand_grid(load_scenario(_with_sweep(tiny_scenario, "product", params)))
    assert len(product) == 9
    assert product[0] == {"market.spot_usd": "80k", "shocks[jump].size": -0.01}
    zipped = expand_grid(load_scenario(_with_sweep(tiny_scenario, "zip", params)))
    assert zipped == [
        {"market.spot_usd": "80k", "shocks[jump].size": -0.01},
        {"market.spot_usd": "85k", "shocks[jump].size": -0.05},
        {"market.spot_usd": "90k", "shocks[jump].size": -0.09},
    ]


def test_expand_grid_without_sweeps_is_one_point(tiny_scenario):
    assert expand_grid(load_scenario(tiny_scenario)) == [{}]


def test_zip_of_unequal_lengths_is_refused(tiny_scenario):
    params = {"market.spot_usd": [80e3, 85e3], "shocks[jump].size": {"linspace": [-0.1, -0.01, 3]}}
    problem = only_problem(_with_sweep(tiny_scenario, "zip", params))
    assert problem.key == "sweep.mode"
    assert "market.spot_usd has 2, shocks[jump].size has 3" in problem.message


@pytest.mark.parametrize(
    "spec, values",
    [
        ({"values": ["50k", "55k", "60k"]}, [50e3, 55e3, 60e3]),
        ({"range": ["50k", "60k", "2.5k"]}, [50e3, 52.5e3, 55e3, 57.5e3, 60e3]),
        ({"range": ["50k", "59k", "2.5k"]}, [50e3, 52.5e3, 55e3, 57.5e3]),  # stop off the grid
        ({"range": ["60k", "50k", "-5k"]}, [60e3, 55e3, 50e3]),
        ({"linspace": ["50k", "60k", 3]}, [50e3, 55e3, 60e3]),
        ({"logspace": ["1k", "100k", 3]}, [1e3, 10e3, 100e3]),
    ],
)
def test_inline_strategy_sweeps(tiny_scenario, spec, values):
    strategy = {"rule": "protective_put", "name": "put", "strike_usd": spec, "size_btc": 10, "tenor": "30d"}
    scenario = load_scenario(_with_sweep(tiny_scenario, "product", {}, [strategy]))
    (key, got), = inline_sweeps(scenario)
    assert key == "strategies[put].strike_usd"
    assert got == pytest.approx(values)
    assert len(expand_grid(scenario)) == len(values)


def test_inline_and_top_level_sweeps_combine(tiny_scenario):
    strategies = [
        {"rule": "stop_loss", "drawdown": {"values": ["5%", "10%"]}},
        {"rule": "perp_hedge", "hedge_ratio": {"linspace": [0.5, 1, 3]}, "leverage": {"values": [2, 3]}},
    ]
    scenario = load_scenario(_with_sweep(tiny_scenario, "product", {"n_paths": [10, 20]}, strategies))
    dims = sweep_dimensions(scenario)
    assert [k for k, _ in dims] == [
        "strategies[stop_loss].drawdown", "strategies[perp_hedge].hedge_ratio",
        "strategies[perp_hedge].leverage", "n_paths",
    ]
    assert len(expand_grid(scenario)) == 2 * 3 * 2 * 2


@pytest.mark.parametrize(
    "field, spec, fragment",
    [
        ("drawdown", {"values": ["5%", "150%"]}, "sweep value 1.5: Input should be less than 1"),
        ("drawdown", {"range": ["50%", "150%", "50%"]}, "sweep value 1: Input should be less than 1"),
        ("drawdown", {"linspace": [0, 0.5, 3]}, "sweep value 0: Input should be greater than 0"),
        ("drawdown", {"logspace": [0, 0.5, 3]}, "logspace bounds must be positive"),
        ("drawdown", {"range": ["10%", "50%", "-1%"]}, "never reaches its stop"),
        ("drawdown", {"linspace": [0.1, 0.5, True]}, "must be a whole number"),
        ("drawdown", {"values": [0.1], "range": [0.1, 0.2, 0.1]}, "exactly one of values, range, linspace, logspace"),
        ("sell_fraction", {"values": [".nan"]}, "finite numbers"),
    ],
)
def test_inline_sweep_values_are_checked_against_the_bounds(tiny_scenario, field, spec, fragment):
    strategy = {"rule": "stop_loss", "drawdown": "10%", field: spec}
    problem = only_problem(_with_sweep(tiny_scenario, "product", {}, [strategy]))
    assert problem.key.startswith(f"strategies[0].{field}")  # or an item of its spec
    assert fragment in str(problem)


def test_top_level_sweep_values_are_checked_against_the_bounds(tiny_scenario):
    params = {
        "market.spot_usd": ["80k", "-5", "90k"],  # the bad value in the middle
        "n_paths": {"range": [0, 100, 50]},
        "shocks[nope].size": [0.1],
        "market.volatility.annual": list(range(1, 200)),  # a long list: its extremes are checked
    }
    problems = {p.key: p for p in problems_of(_with_sweep(tiny_scenario, "product", params))}
    assert set(problems) == {f"sweep.parameters.{k}" for k in params}
    assert "value '-5' is not valid there" in problems["sweep.parameters.market.spot_usd"].message
    assert "value 0.0 is not valid there" in problems["sweep.parameters.n_paths"].message
    assert "no item 'nope'" in problems["sweep.parameters.shocks[nope].size"].message
    assert "value 199 is not valid there" in problems["sweep.parameters.market.volatility.annual"].message


@pytest.mark.parametrize("override, key, message", [
    ("market.volatility.clustering.half_life=0s", "market.volatility.clustering.half_life", "must be positive"),
    ("market.impact.resilience_half_life=0s", "market.impact.resilience_half_life", "must be positive"),
    ("market.impact.depth_memory=-1d", "market.impact.depth_memory", "must be a duration"),  # no negative parses
    ("market.perpetuals.funding.interval=0s", "market.perpetuals.funding.interval", "must be positive"),
    ("market.behaviour.momentum.holding_time=0s", "market.behaviour.momentum.holding_time", "must be positive"),
])
def test_a_duration_out_of_range_is_refused_at_its_own_key(override, key, message):
    """A half-life or an interval of zero, a negative duration: the problem names the key itself
    (not the section holding it), with what it must be and what was given."""
    from conftest import ROOT

    from engine import ScenarioError, load_scenario

    with pytest.raises(ScenarioError) as info:
        load_scenario(ROOT / "scenarios" / "ci" / "ci-calm.yaml", [override])
    (problem,) = info.value.problems
    assert problem.key == key and message in problem.message, str(problem)
    assert problem.source == f"--set {override}" and problem.file is None


def test_a_negative_duration_from_python_is_refused_at_its_key():
    """Text never parses to a negative duration; a ``timedelta`` handed over from Python may be
    one, and is refused where it is, whatever the key (a shock's ramp here)."""
    from datetime import timedelta

    from conftest import ROOT

    import yaml
    from pydantic import ValidationError

    from engine import Scenario, load_scenario
    from engine.scenario.canonical import dump_scenario

    data = yaml.safe_load(dump_scenario(load_scenario(ROOT / "scenarios" / "ci" / "ci-feb-2026-small.yaml")))
    warsh = next(i for i, shock in enumerate(data["shocks"]) if shock.get("id") == "warsh")
    data["shocks"][warsh]["ramp"] = timedelta(hours=-1)
    with pytest.raises(ValidationError) as info:
        Scenario.model_validate(data)
    (error,) = info.value.errors()
    assert error["loc"] == ("shocks", warsh, "balance_sheet_tightening", "ramp"), error["loc"]
    assert "must not be negative" in error["msg"]


@pytest.mark.parametrize("name, message", [("x" * 5000, "File name too long"), ("a\x00b", "NUL byte")])
def test_a_name_no_system_takes_is_a_located_problem(name, message):
    """A scenario name the operating system refuses (too long, a NUL byte) is a ScenarioError
    naming it, not an OSError or a ValueError from deep inside pathlib."""
    from engine import ScenarioError, load_scenario

    with pytest.raises(ScenarioError) as info:
        load_scenario(name)
    assert message in str(info.value)
