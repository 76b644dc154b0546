"""The docs stay honest: the schema reference, the JSON Schema editors use, and the README.

* ``docs/scenario-reference.md`` is exactly what ``cascade schema --markdown`` prints, and it
  documents every field of every model a scenario can reach (derived from the models here).
* ``cascade schema`` is a valid JSON Schema that accepts the shipped scenarios and refuses what
  the loader refuses, checked the way a YAML language server checks (RFC 3339 formats).
* The README opens with the install+run and test commands, CI runs that test command, every
  ``cascade`` command it shows parses and runs, and the output it pastes is the real output (for
  ``cascade run``, whose figures move as the engine evolves, the real layout: same rows, same
  labels, numbers aside); its Python example runs.
* ``docs/model.md`` names every per-path field, flow and summary metric the code produces, and
  only compiled arrays that exist.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import shlex
import subprocess
import sys
import typing
from datetime import date, datetime
from pathlib import Path

import pytest
from conftest import SHARED_DATA
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import BaseModel

from engine.cli import build_parser, main
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
README = ROOT / "README.md"
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
SCENARIOS = sorted(ROOT.glob("scenarios/*.yaml")) + sorted(ROOT.glob("scenarios/ci/*.yaml"))

# The README's first two code blocks. The install takes the [test] extras so that the test
# command, run straight after it, finds pytest, hypothesis and jsonschema.
INSTALL_AND_RUN = 'pip install -e ".[test]" && cascade run scenarios/feb-2026-deleveraging.yaml'
TEST_COMMAND = "python -m pytest -q"


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


def _editor_validator(schema: dict) -> Draft202012Validator:
    checker = FormatChecker(formats=())
    for name, pattern in _EDITOR_FORMATS.items():
        checker.checks(name)(lambda v, p=pattern: not isinstance(v, str) or re.fullmatch(p, v, re.I) is not None)
    return Draft202012Validator(schema, format_checker=checker)


def _as_editor_sees(value):
    """``yaml.safe_load`` output as JSON: YAML 1.2 editors see dates and times as strings."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(_as_editor_sees(k)): _as_editor_sees(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_editor_sees(v) for v in value]
    return value


def _errors(validator: Draft202012Validator, data) -> list[str]:
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


@pytest.mark.parametrize("breakage", [_unknown_key, _bad_unit, _unknown_shock_type, _duration_without_unit,
                                      _zero_paths, _negative_depth],
                         ids=lambda f: f.__name__.lstrip("_"))
def test_schema_refuses_what_the_loader_refuses(json_schema, breakage):
    data = _flagship()
    breakage(data)
    assert _errors(_editor_validator(json_schema), _as_editor_sees(data)), "the JSON Schema accepted it"
    with pytest.raises(ScenarioError):
        load_scenario(copy.deepcopy(data))


# ----------------------------------------------------------------------------- the README
def _blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w*)\n(.*?)^```\s*$", text, re.M | re.S)


def _named_yaml(text: str) -> dict[str, str]:
    """YAML examples whose first line names their file: ``# my-scenario.yaml``."""
    return {m.group(1): body for lang, body in _blocks(text) if lang == "yaml"
            for m in [re.match(r"# ([\w.-]+\.ya?ml)\n", body)] if m}


def _sessions(text: str) -> list[tuple[str, str]]:
    """``(command, expected output)`` from ```console blocks (``$ `` marks a command)."""
    out = []
    for lang, body in _blocks(text):
        if lang == "console":
            for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
                command, _, expected = chunk.partition("\n")
                out.append((command, expected.rstrip("\n")))
    return out


def _command_lines(text: str) -> list[str]:
    """Every ``cascade ...`` command shown in a shell or console block, split at ``&&``/``|``/``;``."""
    commands = []
    for lang, body in _blocks(text):
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        for line in body.splitlines():
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            for part in re.split(r"&&|\|\|?|;", line):
                if part.strip().startswith("cascade"):
                    commands.append(part.strip())
    return commands


README_TEXT = README.read_text(encoding="utf-8") if README.exists() else ""


def test_readme_opens_with_install_and_test_commands():
    blocks = _blocks(README_TEXT)
    assert len(blocks) >= 2, "README needs the install+run and test commands in code blocks"
    assert blocks[0][1].strip() == INSTALL_AND_RUN
    assert blocks[1][1].strip() == TEST_COMMAND
    first_section = README_TEXT.find("\n## ")
    assert first_section == -1 or README_TEXT.find(TEST_COMMAND) < first_section, "put both commands at the top"


def test_ci_runs_the_readme_test_command():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert TEST_COMMAND in lines


@pytest.mark.parametrize("command", _command_lines(README_TEXT))
def test_readme_command_parses(command):
    argv = shlex.split(command, comments=True)
    if any(re.search(r"<[^>]*>|\.\.\.", token) for token in argv):
        pytest.skip("placeholder")
    assert argv[0] == "cascade"
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        assert exc.code == 0, f"`{command}` does not parse"


@pytest.fixture
def readme_dir(tmp_path) -> Path:
    """A folder holding the README's example files, with the shipped scenarios beside them and,
    when it exists, the shared data at ``../shared`` as next to a checkout."""
    work = tmp_path / "work"
    work.mkdir()
    for name, body in _named_yaml(README_TEXT).items():
        (work / name).write_text(body, encoding="utf-8")
    (work / "scenarios").symlink_to(ROOT / "scenarios", target_is_directory=True)
    (work / "strategies").symlink_to(ROOT / "strategies", target_is_directory=True)  # `use:` by name
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").symlink_to(SHARED_DATA.parent, target_is_directory=True)
    return work


# `cascade run`, `sweep` and `attribute` print simulated figures and timings, which change whenever
# the model or the kernel does: their pasted output is held to the real layout (rows, labels,
# units), not the numbers.
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?:%|[kMBT]\b)?")


def _layout(text: str) -> list[str]:
    return [" ".join(_NUMBER.sub("#", line).split()) for line in text.splitlines()]


def test_layout_masks_numbers_only():
    assert _layout("min_price   51,280  63,746\nP(touch 60,000)   32.4%\nbad_debt_usd  9.233M  -1.5B  0") == \
        ["min_price # #", "P(touch #) #", "bad_debt_usd # # #"]
    assert _layout("simulated in 0.44 s (7.6 M path-steps/s)") == ["simulated in # s (# M path-steps/s)"]


def test_readme_shows_real_output(readme_dir):
    sessions = _sessions(README_TEXT)
    assert sessions, "the README shows no console session"
    for command, expected in sessions:
        out = _cascade(*shlex.split(command)[1:], cwd=readme_dir)
        got = (out.stdout + out.stderr).rstrip("\n")
        if shlex.split(command)[:2] in (["cascade", "run"], ["cascade", "sweep"], ["cascade", "attribute"]):
            assert out.returncode == 0, f"`{command}` failed:\n{out.stderr}"
            assert _layout(got) == _layout(expected), f"the layout of `{command}`'s output changed:\n{got}"
        else:
            assert got == expected, f"output of `{command}` changed"


# Shown in the README but not run here, each for a reason; tests elsewhere run the same code.
NOT_RUN = {
    "cascade calibrate": "a full fit takes a minute or more; tests/test_calibration.py fits on a small budget",
    "cascade calibrate --write-params scenarios/calibration/feb-2026.yaml":
        "rewrites the shipped parameter file (the scenarios folder is linked, not copied)",
}


def _reads_shared_by_default(command: str) -> bool:
    """`cascade calibrate` reads ../shared/data and ../shared/facts when not told where."""
    words = shlex.split(command, comments=True)
    return words[:2] == ["cascade", "calibrate"] and "--data" not in words


def test_commands_not_run_are_in_the_readme():
    commands = {c.split("#")[0].strip() for c in _command_lines(README_TEXT)}
    assert set(NOT_RUN) <= commands, set(NOT_RUN) - commands


def test_readme_commands_run(readme_dir):
    shown = {command for command, _ in _sessions(README_TEXT)}
    for command in _command_lines(README_TEXT):
        if command in shown:
            continue  # compared with its output above
        if command.split("#")[0].strip() in NOT_RUN:
            continue
        if not SHARED_DATA.is_dir() and ("../shared/" in command or _reads_shared_by_default(command)):
            continue  # needs the shared data, absent here
        out = _cascade(*shlex.split(command, comments=True)[1:], cwd=readme_dir)
        assert out.returncode == 0, f"`{command}` failed:\n{out.stderr}"


def test_readme_examples_load(readme_dir):
    shown = " ".join(command for command, _ in _sessions(README_TEXT))
    examples = _named_yaml(README_TEXT)
    assert {"my-scenario.yaml", "thin-books.yaml", "deeper-warsh.yaml"} <= set(examples)
    for name in examples:
        if name not in shown:  # files in a console session are judged by its output
            load_scenario(readme_dir / name)


def test_readme_python_example_runs():
    blocks = [body for lang, body in _blocks(README_TEXT) if lang == "python"]
    assert blocks, "the README shows no Python example"
    for body in blocks:
        out = subprocess.run([sys.executable, "-c", body], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"the README's Python example failed:\n{body}\n{out.stderr[-3000:]}"


# ----------------------------------------------------------------------------- the model document
MODEL_TEXT = MODEL.read_text(encoding="utf-8") if MODEL.exists() else ""


def test_model_doc_names_every_output():
    from engine.nb.kernel import FLOW_FIELDS, SUMMARY_FIELDS
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
