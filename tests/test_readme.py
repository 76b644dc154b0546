"""The README stays honest: it opens with the install+run and test commands, CI runs that test
command, every ``cascade`` command it shows parses and runs, its Python example runs, and each
console block shows what its commands print (``docs/regenerate.py`` rewrites those blocks from
real runs; the comparison allows timings, run-folder names and a last-digit rounding, nothing
else).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import build_parser
from engine.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import regenerate  # noqa: E402  (docs/regenerate.py: runs the README's console blocks)

README = ROOT / "README.md"

# The README's first two code blocks. The install takes the [test] extras so that the test
# command, run straight after it, finds pytest, hypothesis and jsonschema.
INSTALL_AND_RUN = 'pip install -e ".[test]" && cascade run scenarios/feb-2026-deleveraging.yaml'
TEST_COMMAND = "python -m pytest -q"


def _cascade(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != "CASCADE_SCENARIOS"}
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


_blocks = regenerate.blocks
_named_yaml = regenerate.named_yaml


def _command_lines(text: str) -> list[str]:
    """Every ``cascade ...`` command shown in a shell or console block."""
    return [c for lang, body in _blocks(text) for c in regenerate.cascade_commands(lang, body)]


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
    """A folder laid out for the README's commands, as ``docs/regenerate.py`` lays it out."""
    return regenerate.sandbox(tmp_path, README_TEXT)


@pytest.fixture(scope="module")
def readme_runs(tmp_path_factory) -> list[tuple[int, str]]:
    """Every console block's command run once, in the README's order, in one folder laid out as
    ``docs/regenerate.py`` lays it out: ``(exit code, output)`` in the order of :data:`SESSIONS`."""
    work = regenerate.sandbox(tmp_path_factory.mktemp("readme"), README_TEXT)
    return [regenerate.run(command, work) for command, _ in SESSIONS]


SESSIONS = regenerate.console_sessions(README_TEXT)


def test_the_readme_shows_console_sessions():
    assert len(SESSIONS) >= 8 and SESSIONS[0][0] == "cascade run scenarios/feb-2026-deleveraging.yaml"


def test_differences_hold_text_exactly_and_numbers_to_their_printed_digits():
    shown = "min_price   51,280  63,746  72.4%  2.54M\n30 rows in 5.9 s\nrun folder: results/x/20261205T111651Z-253bc9ac"
    assert regenerate.differences(shown, shown.replace("5.9 s", "61.2 s").replace("253bc9ac", "0000aaaa")) == []
    assert regenerate.differences(shown, shown.replace("63,746", "63,747")) == []  # one unit of the last digit
    assert regenerate.differences(shown, shown.replace("63,746", "63,846"))  # 0.16%: more than rounding
    assert regenerate.differences(shown, shown.replace("72.4%", "72.6%"))
    assert regenerate.differences(shown, shown.replace("2.54M", "2.58M"))
    assert regenerate.differences(shown, shown.replace("min_price", "max_price"))
    assert regenerate.differences(shown, shown + "\nmore")
    excerpt = "...\n30 rows in 1.0 s\n..."
    assert regenerate.differences(excerpt, shown) == []
    assert regenerate.differences("...\nmin_price 1 2 3% 4M", shown)  # not at the end


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(SESSIONS)), ids=lambda i: SESSIONS[i][0][:60])
def test_readme_shows_real_output(readme_runs, index):
    """Each console block shows what its command prints (``docs/regenerate.py`` rewrites them)."""
    command, expected = SESSIONS[index]
    code, got = readme_runs[index]
    assert code == 0 or (command.startswith("cascade validate") and code == 2), f"`{command}` failed:\n{got}"
    problems = regenerate.differences(expected, got)
    assert not problems, (f"README.md: the output of `{command}` changed; run `python docs/regenerate.py`:\n"
                          + "\n".join(problems))


def test_readme_examples_load(readme_dir):
    shown = " ".join(command for command, _ in SESSIONS)
    examples = _named_yaml(README_TEXT)
    assert {"my-scenario.yaml", "thin-books.yaml", "deeper-warsh.yaml"} <= set(examples)
    for name in examples:
        if name not in shown:  # files in a console session are judged by its output
            load_scenario(readme_dir / name)


@pytest.mark.slow
def test_readme_python_example_runs():
    blocks = [body for lang, body in _blocks(README_TEXT) if lang == "python"]
    assert blocks, "the README shows no Python example"
    for body in blocks:
        out = subprocess.run([sys.executable, "-c", body], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"the README's Python example failed:\n{body}\n{out.stderr[-3000:]}"


