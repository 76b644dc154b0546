"""Text from files reaches the terminal inert: a scenario's description, a key or a file name that
holds escape sequences (retitle the window, clear the screen) or bidi overrides is printed with
them escaped, so no ESC byte reaches stdout or stderr."""

from __future__ import annotations

import pytest
from hostile import cascade, child_scenario

from engine._terminal import terminal_safe
from engine.errors import Problem

PAYLOAD = "\x1b]0;pwned\x07\x1b[2J"
YAML_PAYLOAD = r"\e]0;pwned\a\e[2J"  # the same, as a double-quoted YAML string writes it


def _no_escapes(proc) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    for stream in (proc.stdout, proc.stderr):
        assert "\x1b" not in stream and "\x07" not in stream, repr(stream)


def test_list_shows_a_hostile_description_escaped(tmp_path):
    child_scenario(tmp_path, "hostile-title", f'description: "{YAML_PAYLOAD} harmless"\n')
    proc = cascade("list", "--dir", tmp_path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _no_escapes(proc)
    assert r"\x1b]0;pwned\x07\x1b[2J harmless" in proc.stdout  # visible, escaped


def test_validate_messages_show_hostile_keys_and_names_escaped(tmp_path):
    child_scenario(tmp_path, "hostile-key", f'market:\n  "spot{YAML_PAYLOAD}": 1\n')
    proc = cascade("validate", "hostile-key.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    _no_escapes(proc)
    assert "hostile-key.yaml" in proc.stderr and r"\x1b[2J" in proc.stderr
    proc = cascade("validate", f"missing{PAYLOAD}.yaml", cwd=tmp_path)  # a file name from the command line
    assert proc.returncode == 2
    _no_escapes(proc)


@pytest.mark.slow
def test_validate_ok_line_and_show_keep_the_description_inert(tmp_path):
    child_scenario(tmp_path, "hostile-ok", f'description: "{YAML_PAYLOAD}"\n')
    for args in (["validate", "hostile-ok.yaml"], ["show", "hostile-ok.yaml"]):
        proc = cascade(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        _no_escapes(proc)


@pytest.mark.parametrize("text, shown", [
    (PAYLOAD, r"\x1b]0;pwned\x07\x1b[2J"),
    ("right\u202eto-left", r"right\u202eto-left"),
    ("8-bit CSI \x9b2J", r"8-bit CSI \x9b2J"),
    ("lines\nand\ttabs stay, é too", "lines\nand\ttabs stay, é too"),
])
def test_terminal_safe(text, shown):
    assert terminal_safe(text) == shown


def test_problem_text_is_terminal_safe():
    problem = Problem(f"unknown key {PAYLOAD}", f"a{PAYLOAD}.yaml", 3, 1, ("market", f"k{PAYLOAD}"))
    assert "\x1b" not in str(problem) and r"a\x1b]0;pwned" in str(problem)
