"""The docs stay honest: the schema reference, the JSON Schema editors use, and the model document.

* ``docs/scenario-reference.md`` is exactly what ``cascade schema --markdown`` prints, and it
  documents every field of every model a scenario can reach (derived from the models here).
* ``cascade schema`` is a valid JSON Schema that accepts the shipped scenarios and refuses what
  the loader refuses, checked the way a YAML language server checks (RFC 3339 formats).
* The README: tests/test_readme.py.
* ``docs/model.md`` names every per-path field, flow and summary metric the code produces, and
  only compiled arrays that exist.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import subprocess
import sys
import typing
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker
from pydantic import BaseModel

from engine.cli import main
from engine.errors import ScenarioError
from engine.scenario.canonical import to_plain
from engine.scenario.loader import load_scenario
from engine.scenario.reference import REGENERATE, schema_markdown
from engine.scenario.schema import Scenario
from engine.scenario.shocks import SHOCK_TYPES
from engine.strategies import RULES

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "scenario-reference.md"
MODEL = ROOT / "docs" / "model.md"
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
SCENARIOS = sorted(ROOT.glob("scenarios/*.yaml")) + sorted(ROOT.glob("scenarios/ci/*.yaml"))



def _cascade(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CASCADE_SCENARIOS"}
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# ----------------------------------------------------------------------------- the reference
def _rows_by_section(text: str) -> dict[str, list[list[str]]]:
    """``{'### title': [[key, type, default, bounds, description], ...]}`` from the Markdown tables."""
    sections: dict[str, list[list[str]]] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("### "):
            title = line
            sections[title] = []
        elif title and line.startswith("| `"):
            sections[title].append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return sections


def _leaf(key_cell: str) -> str:
    """```shocks[margin_hike].schedule[].at``` -> ``at``."""
    return re.split(r"[.\]]", key_cell.strip("`"))[-1]


def _reachable_models(tp, seen: set) -> set:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp not in seen:
            seen.add(tp)
            for field in tp.model_fields.values():
                _reachable_models(field.annotation, seen)
        return seen
    for arg in typing.get_args(tp):
        _reachable_models(arg, seen)
    return seen


MODELS = sorted(_reachable_models(Scenario, set()), key=lambda m: f"{m.__module__}.{m.__qualname__}")


def _norm(text: str) -> str:
    return " ".join(text.replace("\\", "").replace("``", "`").split())


def test_reference_file_is_up_to_date():
    committed = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    generated = schema_markdown()
    if committed != generated:
        diff = list(difflib.unified_diff(committed.splitlines(), generated.splitlines(),
                                         "committed", "generated", lineterm="", n=1))
        pytest.fail(f"{REFERENCE.relative_to(ROOT)} is out of date with the schema; regenerate it "
                    f"with:\n    {REGENERATE}\nfirst differences:\n" + "\n".join(diff[:30]))


def test_cli_prints_the_reference(capsys):
    assert main(["schema", "--markdown"]) == 0
    assert capsys.readouterr().out == schema_markdown()


def test_the_walk_reaches_every_shock_and_rule():
    for tag, shock in SHOCK_TYPES.items():
        assert shock in MODELS, f"shock type {tag!r} is not reachable from Scenario"
    for rule, module in RULES.items():
        assert module.Params in MODELS, f"strategy rule {rule!r} is not reachable from Scenario"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__qualname__)
def test_every_field_is_in_the_reference(model):
    sections = _rows_by_section(schema_markdown())
    fields = set(model.model_fields)
    tables = [title for title, rows in sections.items() if {_leaf(r[0]) for r in rows} - {"extends"} == fields]
    assert tables, f"no table in the reference documents exactly the keys of {model.__qualname__}: {sorted(fields)}"
    text = _norm(schema_markdown())
    for name, field in model.model_fields.items():
        if field.description:
            assert _norm(field.description) in text, f"{model.__qualname__}.{name}: description missing"


def test_every_shock_type_and_rule_has_its_section():
    titles = set(_rows_by_section(schema_markdown()))
    for tag in SHOCK_TYPES:
        assert f"### `shocks[{tag}]`" in titles
    for rule in RULES:
        assert f"### `strategies[{rule}]`" in titles


def test_every_key_has_a_type_a_default_and_a_description():
    for title, rows in _rows_by_section(schema_markdown()).items():
        for key, type_text, default, _bounds, description in rows:
            assert type_text and default, f"{title}: {key} has no type or default"
            assert description, f"{title}: {key} has no description; give its Field a description="


def test_reference_shows_friendly_defaults():
    rows = {r[0]: r for rs in _rows_by_section(schema_markdown()).values() for r in rs}
    assert rows["`market.impact.depth_usd_per_pct`"][1:3] == ["amount, USD per 1%", "`14M`"]
    half_life = rows["`market.impact.resilience_half_life`"]
    kind, default = half_life[1:3]
    expected_kind = "duration"
    assert kind == expected_kind and default == "`30m`"
    assert rows["`market.perpetuals.maintenance_margin_rate`"][2:4] == ["`null`", "> 0%, < 50%"]
    assert rows["`market.perpetuals.margin_tiers`"][2] == "`binance-btcusdt`"
    assert rows["`horizon.start`"][2] == "required"


# ----------------------------------------------------------------------------- the JSON Schema
_EDITOR_FORMATS = {  # what yaml-language-server accepts for these formats (RFC 3339)
    "date-time": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
    "date": r"\d{4}-\d{2}-\d{2}",
}


def _editor_validator(schema: dict, cls=Draft202012Validator):
    checker = FormatChecker(formats=())
    for name, pattern in _EDITOR_FORMATS.items():
        checker.checks(name)(lambda v, p=pattern: not isinstance(v, str) or re.fullmatch(p, v, re.I) is not None)
    return cls(schema, format_checker=checker)


def _as_editor_sees(value):
    """``yaml.safe_load`` output as JSON: YAML 1.2 editors see dates and times as strings."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(_as_editor_sees(k)): _as_editor_sees(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_editor_sees(v) for v in value]
    return value


def _errors(validator, data) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message[:200]}"
            for e in validator.iter_errors(data)]


@pytest.fixture(scope="module")
def json_schema() -> dict:
    out = _cascade("schema")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_schema_is_a_valid_draft_2020_12_schema(json_schema):
    Draft202012Validator.check_schema(json_schema)
    assert json_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _parents(path: Path) -> list[str]:
    parents = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("extends") or []
    return [parents] if isinstance(parents, str) else list(parents)


# scenarios that extend nothing but the calibrated parameter file (scenarios/calibration/): whole
# scenarios but for the fitted market keys, checked with that file merged in
STANDALONE = [p for p in SCENARIOS if all(Path(x).parts[0] == "calibration" for x in _parents(p))]


def test_the_flagship_is_checked_standalone():
    assert FLAGSHIP in STANDALONE


@pytest.mark.parametrize("path", STANDALONE, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_shipped_scenario_matches_the_schema(json_schema, path):
    from engine.scenario.loader import read_document

    data = _as_editor_sees(read_document(path).data)
    assert _errors(_editor_validator(json_schema), data) == []


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_resolved_scenario_matches_the_schema(json_schema, path):
    """What ``cascade show`` prints (extends merged, defaults filled in) is valid too."""
    data = _as_editor_sees(to_plain(load_scenario(path)))
    assert _errors(_editor_validator(json_schema), data) == []


def _flagship() -> dict:
    return yaml.safe_load(FLAGSHIP.read_text(encoding="utf-8"))


def _unknown_key(d):
    d["market"]["volatility"]["anual"] = "60%"


def _bad_unit(d):
    d["market"]["spot_usd"] = "61X"


def _unknown_shock_type(d):
    d["shocks"][0]["type"] = "margin_hikes"


def _duration_without_unit(d):
    d["horizon"]["duration"] = 14


def _zero_paths(d):
    d["n_paths"] = 0


def _negative_depth(d):
    d["market"]["impact"]["depth_usd_per_pct"] = -5e6


BREAKAGES = [_unknown_key, _bad_unit, _unknown_shock_type, _duration_without_unit, _zero_paths, _negative_depth]
VALIDATORS = {"2020-12": Draft202012Validator, "7": Draft7Validator}


@pytest.mark.parametrize("draft", VALIDATORS)
@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.lstrip("_"))
def test_schema_refuses_what_the_loader_refuses(json_schema, json_schema_7, draft, breakage):
    data = _flagship()
    breakage(data)
    schema = json_schema if draft == "2020-12" else json_schema_7
    assert _errors(_editor_validator(schema, VALIDATORS[draft]), _as_editor_sees(data)), "the JSON Schema accepted it"
    with pytest.raises(ScenarioError):
        load_scenario(copy.deepcopy(data))


@pytest.fixture(scope="module")
def json_schema_7() -> dict:
    """``cascade schema --draft 7``: for yaml-language-server, which validates up to draft-07."""
    out = _cascade("schema", "--draft", "7")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_draft_7_schema_is_valid_draft_07_and_uses_no_later_keyword(json_schema_7):
    Draft7Validator.check_schema(json_schema_7)
    assert json_schema_7["$schema"] == "http://json-schema.org/draft-07/schema#"
    text = json.dumps(json_schema_7)
    for keyword in ("$defs", "prefixItems", "unevaluatedProperties", "dependentRequired", "$dynamicRef"):
        assert f'"{keyword}"' not in text, keyword
    assert '"#/definitions/' in text


@pytest.mark.parametrize("path", STANDALONE, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_draft_7_schema_accepts_the_shipped_scenarios(json_schema_7, path):
    from engine.scenario.loader import read_document

    data = _as_editor_sees(read_document(path).data)
    assert _errors(_editor_validator(json_schema_7, Draft7Validator), data) == []


# ----------------------------------------------------------------------------- the model document
MODEL_TEXT = MODEL.read_text(encoding="utf-8") if MODEL.exists() else ""


def test_model_doc_names_every_output():
    from engine.compile.layout import FLOW_FIELDS, SUMMARY_FIELDS
    from engine.result import SUMMARY_METRICS

    documented = set(re.findall(r"^\| `(\w+)` \|", MODEL_TEXT, re.M))
    missing = [f for f in (*SUMMARY_FIELDS, "trough_time", "open_interest_change") if f not in documented]
    assert not missing, f"docs/model.md has no per_path row for {missing}"
    for name in (*FLOW_FIELDS, *SUMMARY_METRICS):
        assert f"`{name}`" in MODEL_TEXT, f"docs/model.md does not mention `{name}`"


def test_model_doc_names_only_compiled_arrays_that_exist():
    from engine.compile import layout

    known = {"Step": set(layout.STEP_FIELDS), "Venue": set(layout.VENUE_FIELDS), "Param": set(layout.PARAM_FIELDS)}
    named = re.findall(r"\b(Step|Venue|Param)\.([A-Z][A-Z0-9_]*)", MODEL_TEXT)
    assert named
    unknown = sorted({f"{kind}.{name}" for kind, name in named if name not in known[kind] | {"X"}})  # X: any
    assert not unknown, f"docs/model.md names arrays that engine/compile/layout.py does not define: {unknown}"


def test_no_internal_issue_numbers_in_what_users_read():
    """The tracker's numbers mean nothing to a reader: not in the README, the docs, the bench
    notes and scripts (their --help), the package's docstrings and messages, or the shipped scenarios and strategies."""
    root = Path(__file__).resolve().parents[1]
    files = [root / "README.md", *sorted((root / "bench").glob("*.md")), *sorted((root / "bench").glob("*.py")),
             *sorted((root / "docs").rglob("*.md")), root / "docs" / "regenerate.py",
             *sorted((root / "engine").rglob("*.py")), *sorted((root / "scenarios").rglob("*.yaml")),
             *sorted((root / "strategies").rglob("*.yaml"))]
    pattern = re.compile(r"\bissues? #?\d+\b", re.IGNORECASE)
    found = [f"{path.relative_to(root)}:{n}: {line.strip()}" for path in files
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not found, found
