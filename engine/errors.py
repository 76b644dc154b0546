"""The project's exception classes.

Every problem with user input is a :class:`ScenarioError`. It carries one or more
:class:`Problem` records, each naming the file, line and column (when the YAML has one),
the key path (``shocks[2].daily_flows_usd``), what was expected and what was found. All the
problems of a file are collected and raised together, so a user fixes a file in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._terminal import terminal_safe

__all__ = ["BaselineError", "Problem", "RunFolderError", "ScenarioError", "format_path"]


def format_path(path: tuple) -> str:
    """``('shocks', 2, 'daily_flows_usd')`` -> ``'shocks[2].daily_flows_usd'``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario, located as precisely as the input allows.

    ``file`` (with ``line`` and ``column``) names a file the problem is in; ``source`` names what
    else the value came from when it is no file: a command-line flag (``--direction``, whose
    Python argument is ``direction=``), shown in its place.
    """

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: tuple = ()
    expected: str | None = None
    found: object = field(default=None, compare=False)
    has_found: bool = False
    hint: str | None = None
    source: str | None = None

    @property
    def key(self) -> str:
        return format_path(self.path)

    def to_dict(self) -> dict:
        """A JSON-ready record: file, line, column, key, message (and expected/found/hint)."""
        out = {"file": self.file, "line": self.line, "column": self.column, "key": self.key,
               "message": self.message}
        if self.source:
            out["source"] = self.source
        if self.expected:
            out["expected"] = self.expected
        if self.has_found:
            out["found"] = repr(self.found)
        if self.hint:
            out["hint"] = self.hint
        return out

    def location(self) -> str:
        loc = self.file or self.source or "<scenario>"
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc

    def __str__(self) -> str:
        text = f"{self.location()}: "
        if self.path:
            text += f"{self.key}: "
        text += self.message
        if self.expected and self.expected not in self.message:
            text += f"; expected {self.expected}"
        if self.has_found and "got " not in self.message and repr(self.found) not in self.message:
            text += f", got {_short(self.found)}"
        if self.hint:
            text += f" ({self.hint})"
        return terminal_safe(text)  # a file name or a quoted value may hold escape sequences


class ScenarioError(ValueError):
    """A scenario file (or override) that cannot be used, with every problem found in it."""

    def __init__(self, problems: list[Problem] | Problem | str, *, file: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(problems, file=file)]
        elif isinstance(problems, Problem):
            problems = [problems]
        if not problems:
            raise ValueError("ScenarioError needs at least one problem")
        self.problems: list[Problem] = list(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)

    @property
    def file(self) -> str | None:
        return self.problems[0].file

    @property
    def line(self) -> int | None:
        return self.problems[0].line

    @property
    def path(self) -> tuple:
        return self.problems[0].path


class RunFolderError(ValueError):
    """A run folder that is missing, incomplete, damaged or from an unknown format (a user error)."""


class BaselineError(ValueError):
    """A regression baseline that is missing, unreadable or malformed (a user error: the message
    names the file, the key, what was expected and what was found, or the command that writes it)."""
