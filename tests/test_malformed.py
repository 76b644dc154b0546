"""Hostile and malformed scenario files: every one is refused with a located, readable error.

Each file in ``tests/malformed/`` (not ``_parts/``, which holds files the cases extend) starts
with one or more expectation lines, one per problem the loader must report, and nothing more::

    # expect: key=shocks[0].type line=12 message=unknown type
    # expect: key=market.spot_usd line=6 file=_parts/base.yaml set=n_paths=5 message=must be finite

``key`` is :attr:`Problem.key` (empty for problems without a key path), ``line`` the 1-based line
(``none`` when the problem has none), ``file`` where the problem lies (default: the case itself;
a path relative to ``tests/malformed/``, or ``--set`` for an override), ``set`` an override to
apply, and ``message`` (always last) a fragment of the rendered problem. Cases that cannot be
committed as files (over 1 MiB, not UTF-8, zero bytes, ...) are generated at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import engine
from engine.scenario.loader import load_scenario
from engine.scenario.yamlio import MAX_FILE_BYTES

MALFORMED = Path(__file__).resolve().parent / "malformed"
CASES = sorted(p for p in MALFORMED.glob("*.yaml"))
_EXPECT = re.compile(r"^#\s*expect:\s*(.*)$")
_FIELD = re.compile(r"(\w+)=(.*?)(?=\s+\w+=|$)")


@dataclass
class Expect:
    message: str
    key: str = ""
    line: int | None = None
    file: str | None = None  # relative to MALFORMED, or "--set": no file, the override is the source
    override: str | None = None  # the set= field: the --set the problem comes from


@dataclass
class Case:
    path: Path
    expects: list[Expect] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)


def read_case(path: Path) -> Case:
    case = Case(path)
    for text in path.read_text(encoding="utf-8").splitlines():
        match = _EXPECT.match(text)
        if not match:
            break
        body = match.group(1)
        head, _, message = body.partition("message=")
        fields = dict(_FIELD.findall(head.strip()))
        assert message.strip(), f"{path.name}: an expect line needs message=..."
        if "set" in fields:
            case.overrides.append(fields["set"])
        line = fields.get("line", "none")
        case.expects.append(Expect(
            message=message.strip(),
            key=fields.get("key", ""),
            line=None if line == "none" else int(line),
            file=fields.get("file"),
            override=fields.get("set"),
        ))
    assert case.expects, f"{path.name}: the first line must be '# expect: key=... line=... message=...'"
    return case


def _file_matches(problem: engine.Problem, case: Case, expect: Expect) -> bool:
    if expect.file == "--set":  # no pseudo-file: the override is the problem's source
        assert expect.override, f"{case.path.name}: file=--set needs set=KEY=VALUE on the same expect line"
        return problem.file is None and problem.source == f"--set {expect.override}"
    if problem.file is None or problem.source is not None:
        return False
    wanted = MALFORMED / expect.file if expect.file else case.path
    return Path(problem.file).resolve() == wanted.resolve()


def _matches(problem: engine.Problem, case: Case, expect: Expect) -> bool:
    return (
        _file_matches(problem, case, expect)
        and problem.key == expect.key
        and problem.line == expect.line
        and expect.message in str(problem)
    )


def _describe(problems) -> str:
    return "\n".join(f"  file={p.file} source={p.source} key={p.key!r} line={p.line}: {p}" for p in problems)


def test_corpus_is_big_enough():
    assert len(CASES) >= 35
    assert not list(MALFORMED.glob("*.yml")), "name cases *.yaml so that they are collected"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_malformed_file_is_refused_with_located_problems(path):
    case = read_case(path)
    with pytest.raises(engine.ScenarioError) as info:
        load_scenario(str(path), case.overrides)
    problems = info.value.problems
    unmatched = list(problems)
    for expect in case.expects:
        found = next((p for p in unmatched if _matches(p, case, expect)), None)
        assert found is not None, f"no problem matches {expect}; got:\n{_describe(problems)}"
        unmatched.remove(found)
    assert not unmatched, f"problems not listed in the expectations:\n{_describe(unmatched)}"
    # every problem is located, and the rendered error names the file (or the --set it comes from)
    for problem in problems:
        assert bool(problem.file) != bool(problem.source), problem
        if problem.line is not None:
            assert str(problem).startswith(f"{problem.file}:{problem.line}")
        if problem.source is not None:
            assert problem.line is None and str(problem).startswith(f"{problem.source}: ")
    if not all(e.file == "--set" for e in case.expects):
        assert path.name in str(info.value)


# ----------------------------------------------------------------------------- the CLI
def _run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", "validate", *args],
        capture_output=True, text=True, timeout=120, cwd=MALFORMED,
    )


def _cli_args(case: Case) -> list[str]:
    args = [case.path.name]
    for override in case.overrides:
        args += ["--set", override]
    return args


@pytest.fixture(scope="module")
def cli_runs(request):
    """Start the CLI on every selected case at once (each a process of its own), to save time."""
    selected = [item.callspec.params["path"] for item in request.session.items
                if item.originalname == "test_cli_refuses_malformed_file" and hasattr(item, "callspec")]
    pool = ThreadPoolExecutor(max_workers=4)
    runs = {path: pool.submit(_run_cli, _cli_args(read_case(path))) for path in selected}
    yield runs
    pool.shutdown(cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_cli_refuses_malformed_file(path, cli_runs):
    run = cli_runs[path].result() if path in cli_runs else _run_cli(_cli_args(read_case(path)))
    assert run.returncode == 2, run
    assert path.name in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert "1 of 1 files invalid" in run.stderr
    assert run.stdout == ""


# ----------------------------------------------------------------------------- generated cases
def _valid_text() -> str:
    return (MALFORMED / "_parts" / "base.yaml").read_text(encoding="utf-8")


def _huge(tmp: Path) -> Path:
    path = tmp / "huge.yaml"
    padding = "# " + "x" * 1000 + "\n"
    path.write_text(_valid_text() + padding * (MAX_FILE_BYTES // len(padding) + 8))
    assert path.stat().st_size > MAX_FILE_BYTES
    return path


def _not_utf8(tmp: Path) -> Path:
    path = tmp / "latin1.yaml"
    path.write_bytes(_valid_text().encode() + "description: café crème\n".encode("latin-1"))
    return path


def _zero_bytes(tmp: Path) -> Path:
    path = tmp / "empty.yaml"
    path.write_bytes(b"")
    return path


def _deeply_nested(tmp: Path) -> Path:
    path = tmp / "deep.yaml"
    path.write_text(_valid_text() + "description: " + "[" * 50_000 + "]" * 50_000 + "\n")
    return path


def _control_character(tmp: Path) -> Path:
    path = tmp / "bell.yaml"
    path.write_text(_valid_text() + "description: ding\x07dong\n")
    return path


def _utf16(tmp: Path) -> Path:
    path = tmp / "utf16.yaml"
    path.write_text(_valid_text(), encoding="utf-16")
    return path


def _directory(tmp: Path) -> Path:
    path = tmp / "folder.yaml"
    path.mkdir()
    return path


def _extends_endless_device(tmp: Path) -> Path:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    path = tmp / "zero.yaml"
    path.write_text(f"extends: {os.path.relpath('/dev/zero', tmp)}\nname: zero\n")
    return path


GENERATED = {
    # builder, the file the problem names (None: the generated file), line ("after": the line
    # appended to a valid file), message fragment
    "over-1-MiB": (_huge, None, None, "-byte limit for a scenario"),
    "not-utf8": (_not_utf8, None, "after", "not UTF-8 text (byte 0xe9)"),
    "zero-bytes": (_zero_bytes, None, None, "the file is empty"),
    "nested-50000-deep": (_deeply_nested, None, None, "nested too deeply"),
    "control-character": (_control_character, None, "after", "special characters are not allowed"),
    "utf16": (_utf16, None, 1, "not UTF-8 text"),
    "a-directory": (_directory, None, None, "is a directory"),
    "extends-dev-zero": (_extends_endless_device, "/dev/zero", None, "not a regular file: it is a device"),
}


@pytest.mark.parametrize("name", GENERATED)
def test_generated_hostile_file_is_refused(name, tmp_path):
    build, file, line, fragment = GENERATED[name]
    path = build(tmp_path)
    with pytest.raises(engine.ScenarioError) as info:
        load_scenario(path)
    problem = info.value.problems[0]
    assert len(info.value.problems) == 1
    assert Path(problem.file).resolve() == Path(file or path).resolve()
    assert problem.line == (_valid_text().count("\n") + 1 if line == "after" else line)
    assert fragment in str(problem)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["over-1-MiB", "not-utf8", "nested-50000-deep"])
def test_cli_refuses_generated_hostile_file(name, tmp_path):
    path = GENERATED[name][0](tmp_path)
    run = subprocess.run([sys.executable, "-m", "engine", "validate", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert path.name in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
