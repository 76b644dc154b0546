"""Regenerate the output the README shows, from real runs of the commands it shows.

    python docs/regenerate.py            # rewrite README.md's console blocks in place
    python docs/regenerate.py --check    # exit 1, with a diff, when a block differs from its run

A ```` ```console ```` block holds one or more ``$ cascade ...`` commands, each followed by what it
prints (stdout, then stderr). Every block of the README is run in one scratch folder, in the
order the README shows them, as a reader following it would: the README's named YAML examples
(a block whose first line is ``# name.yaml``) are written there, ``scenarios/`` and
``strategies/`` are linked from the checkout, and ``../shared`` points at the shared data beside
it when that exists.

``tests/test_docs.py`` runs the same commands and holds each block to its output with
:func:`differences`: the text must be the same, timings (``in 8.4 s``) and run-folder names
(``20261205T111651Z-253bc9ac``) aside, and every number within :data:`REL_TOL` of the one shown
(or one unit of its last printed digit), the room a different CPU's last-bit rounding may need
in a Monte Carlo figure. A change to the model moves the figures by more than that, and the test
then says to run this script.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED = (ROOT / ".." / "shared").resolve()
TIMEOUT = 300
REL_TOL = 1e-3

_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?:%|[kMBT]\b)?")
_TIMING = re.compile(r"\b\d+(?:\.\d+)? (?:s|ms)\b|\(\d+(?:\.\d+)? M path-steps/s\)")
_RUN_FOLDER = re.compile(r"\b\d{8}T\d{6}Z-[0-9a-f]{8}\b")
_SCALE = {"k": 1e3, "M": 1e6, "B": 1e9, "T": 1e12, "%": 1e-2}
_COMPILING = "cascade: compiling the kernels"  # engine.cli's first-run notice


# ----------------------------------------------------------------------------- reading the README
def blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block."""
    return _BLOCK.findall(text)


def named_yaml(text: str) -> dict[str, str]:
    """The README's YAML examples that name their file on their first line (``# name.yaml``)."""
    return {m.group(1): body for lang, body in blocks(text) if lang == "yaml"
            for m in [re.match(r"# ([\w.-]+\.ya?ml)\n", body)] if m}


def cascade_commands(lang: str, body: str) -> list[str]:
    """The ``cascade ...`` commands of one shell or console block, split at ``&&``/``|``/``;``
    (a console block's commands are its ``$ `` lines)."""
    if lang not in ("bash", "sh", "shell", "console"):
        return []
    commands = []
    for line in body.splitlines():
        if lang == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        commands += [part.strip() for part in re.split(r"&&|\|\|?|;", line) if part.strip().startswith("cascade")]
    return commands


def sessions(body: str) -> list[tuple[str, str]]:
    """``(command, output)`` pairs of one console block (``$ `` starts a command)."""
    out = []
    for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
        command, _, output = chunk.partition("\n")
        out.append((command, output.rstrip("\n")))
    return out


def console_sessions(text: str) -> list[tuple[str, str]]:
    """Every ``(command, output)`` of every console block, in the README's order."""
    return [pair for lang, body in blocks(text) if lang == "console" for pair in sessions(body)]


# ----------------------------------------------------------------------------- running
def sandbox(folder: Path, text: str) -> Path:
    """A folder laid out for the README's commands (see the module's docstring); returns it."""
    work = folder / "work"
    work.mkdir()
    for name, body in named_yaml(text).items():
        (work / name).write_text(body, encoding="utf-8")
    (work / "scenarios").symlink_to(ROOT / "scenarios", target_is_directory=True)
    (work / "strategies").symlink_to(ROOT / "strategies", target_is_directory=True)
    if (SHARED / "data").is_dir():
        (folder / "shared").symlink_to(SHARED, target_is_directory=True)
    return work


def run(command: str, cwd: Path) -> tuple[int, str]:
    """``cascade ...`` as ``python -m engine ...`` (this checkout) in ``cwd``: its exit code and
    what it printed, stdout then stderr, as a console block shows it."""
    argv = shlex.split(command)
    if argv[0] != "cascade":
        raise ValueError(f"a console block runs cascade commands, not {command!r}")
    env = {k: v for k, v in os.environ.items() if k not in ("CASCADE_SCENARIOS", "COLUMNS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "engine", *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    # the first-run notice depends on numba's cache, not on the command: a reader sees it once
    err = "".join(line for line in proc.stderr.splitlines(keepends=True) if not line.startswith(_COMPILING))
    return proc.returncode, (proc.stdout + err).rstrip("\n")


# ----------------------------------------------------------------------------- comparing
def _value(token: str) -> float:
    scale = _SCALE.get(token[-1], 1.0)
    return float(token.rstrip("kMBT%").replace(",", "")) * scale


def _unit(token: str) -> float:
    """One unit of the last digit printed (``72.4%`` -> 0.001, ``68,387`` -> 1, ``2.54M`` -> 1e4)."""
    digits = token.rstrip("kMBT%").lstrip("+-").replace(",", "")
    mantissa = digits.split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(digits.split("e")[1]) if "e" in digits else 0
    return 10.0 ** (exponent - decimals) * _SCALE.get(token[-1], 1.0)


def _masked(line: str) -> str:
    return _RUN_FOLDER.sub("RUN", _TIMING.sub("TIME", line))


def _skeleton(line: str) -> str:
    """A line's text with its numbers, timings and run-folder names masked, spaces collapsed."""
    return " ".join(_NUMBER.sub("#", _masked(line)).split())


def align(expected: str, got: str) -> list[tuple[list[str], list[str]]] | str:
    """Pair each part of a shown output with the printed lines it stands for. A line ``...`` in
    the shown output stands for any number of printed lines (an excerpt: ``...`` first shows the
    end of the output, last its beginning). Returns the pairs, or why the shown part was not found."""
    want, have = expected.splitlines(), got.splitlines()
    parts, part = [], []
    for line in want:
        if line.strip() == "...":
            parts.append(part)
            part = []
        else:
            part.append(line)
    parts.append(part)
    pairs, at = [], 0
    for i, part in enumerate(parts):
        if not part:
            continue
        shape = [_skeleton(x) for x in part]
        starts = [at] if i == 0 else range(at, len(have) - len(part) + 1)
        start = next((k for k in starts if [_skeleton(x) for x in have[k:k + len(part)]] == shape), None)
        if start is None:
            printed = "\n".join(have[at:at + len(part) + 5])
            return (f"the shown lines from {part[0].strip()!r} on are not printed "
                    f"{'first' if i == 0 else 'in this order'}; printed:\n{printed}")
        pairs.append((part, have[start:start + len(part)]))
        at = start + len(part)
    if parts[-1] and at != len(have):
        return f"{len(have) - at} more lines printed than shown, from {have[at].strip()!r} (end an excerpt with ...)"
    return pairs


def differences(expected: str, got: str, rel: float = REL_TOL) -> list[str]:
    """How ``got`` departs from ``expected``: [] when it matches (the module's docstring says
    what matching allows; :func:`align` what ``...`` does). Each entry names the first difference
    of a line."""
    pairs = align(expected, got)
    if isinstance(pairs, str):
        return [pairs]
    out = []
    for want, have in pairs:
        for a, b in zip(want, have):
            a, b = _masked(a), _masked(b)
            for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b)):
                vx, vy = _value(x), _value(y)
                if abs(vx - vy) > max(rel * abs(vx), _unit(x) * 1.0000001):
                    out.append(f"{x} shown, {y} printed, in {b.strip()!r}")
                    break
    return out


# ----------------------------------------------------------------------------- rewriting
def _excerpt(shown: str, output: str, command: str) -> str:
    """``output`` cut as ``shown`` is: the same parts, with ``...`` where ``shown`` has it."""
    if not any(line.strip() == "..." for line in shown.splitlines()):
        return output
    pairs = align(shown, output)
    if isinstance(pairs, str):
        raise RuntimeError(f"`{command}`: the README shows an excerpt whose lines changed; edit the block by "
                           f"hand ({pairs})")
    lines, parts = [], iter(pairs)
    for piece in re.split(r"^[ \t]*\.\.\.[ \t]*$", shown, flags=re.M):
        if piece.strip("\n"):
            lines += next(parts)[1]
        lines.append("...")
    return "\n".join(lines[:-1])


def regenerate(text: str, work: Path, echo=None) -> str:
    """``text`` with every console block's outputs replaced by what its commands print now."""
    pieces, last = [], 0
    for match in _BLOCK.finditer(text):
        lang, body = match.group(1), match.group(2)
        if lang != "console":
            continue
        new = []
        for command, shown in sessions(body):
            if echo:
                echo(f"$ {command}")
            code, output = run(command, work)
            expected_failure = command.split()[1:2] == ["validate"] and code == 2
            if code != 0 and not expected_failure:
                raise RuntimeError(f"`{command}` exited {code}:\n{output}")
            output = _excerpt(shown, output, command)
            new.append(f"$ {command}\n{output}\n" if output else f"$ {command}\n")
        pieces += [text[last:match.start(2)], "".join(new)]
        last = match.end(2)
    return "".join(pieces) + text[last:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of rewriting; exit 1 on a difference")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="cascade-readme-") as tmp:
        work = sandbox(Path(tmp), text)
        if args.check:
            failed = 0
            for command, expected in console_sessions(text):
                _, got = run(command, work)
                for problem in differences(expected, got):
                    print(f"{README.name}: `{command}`: {problem}")
                    failed = 1
            return failed
        new = regenerate(text, work, echo=lambda line: print(line, file=sys.stderr))
    if new != text:
        README.write_text(new, encoding="utf-8")
        print(f"rewrote {README.relative_to(ROOT)}", file=sys.stderr)
    else:
        print(f"{README.relative_to(ROOT)} unchanged", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
