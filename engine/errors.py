"""The project's exception classes.

Every problem with user input is a :class:`ScenarioError` (a ``ValueError``). It carries one or
more :class:`Problem` records, each naming the file, line and column (when the YAML has one),
the key path (``shocks[2].daily_flows_usd``), what was expected and what was found. All the
problems of a file are collected and raised together, so a user fixes a file in one pass.

A value that came from no file names its ``source`` instead, and its ``file`` is ``None``: a
``--set`` override (``source="--set market.spot_usd=84k"``, the key path in ``path``), a flag,
or a Python argument.

A bad argument to a public function (``engine.run(scenario, n_jobs=0)``,
``engine.load_scenario(path, overrides="n_paths=2000")``) is an :class:`InvalidParameterError`,
in one shape for every function, after scikit-learn's::

    The 'n_jobs' parameter of run must be an int >= 1. Got 0 instead.

It is a :class:`ScenarioError`, so a ``ValueError``, and a ``TypeError`` too, so that
``except ValueError`` and ``except TypeError`` both keep catching it whichever a caller wrote.
Each of its problems has ``source`` set to the parameter as Python spells it (``"n_jobs="``),
``expected`` (``"an int >= 1"``) and ``found`` (the value given). The command line shows the
same problem under its flag (``--jobs: must be an int >= 1, got 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

from ._terminal import terminal_safe

__all__ = ["BaselineError", "InvalidParameterError", "Problem", "RunFolderError", "ScenarioError", "Source",
           "format_path", "invalid_parameter"]


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
    if isinstance(value, PurePath):  # a path whole, as its text (not PosixPath(...))
        return repr(str(value))
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Source(str):
    """Where a value came from when it is no file: ``Source("--set market.spot_usd=84k")``.

    The loader records it where an origin's file goes (``(Source(...), None, None)``), so a
    :class:`Problem` made from such an origin (``Problem(message, *origin, path)``) gets it as its
    ``source`` and no ``file``: nothing downstream mistakes a flag for a file to open."""

    __slots__ = ()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario, located as precisely as the input allows.

    ``file`` (with ``line`` and ``column``) names a file the problem is in; ``source`` names what
    else the value came from when it is no file, shown in its place: a ``--set`` override
    (``--set market.spot_usd=84k``), a command-line flag (``--grid``) or a Python argument
    (``direction=``, the flag ``--direction``). A :class:`Source` given as ``file`` is moved to
    ``source``.
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

    def __post_init__(self):
        if isinstance(self.file, Source):  # an origin that is no file (a --set override)
            object.__setattr__(self, "source", str(self.file))
            object.__setattr__(self, "file", None)

    @property
    def key(self) -> str:
        return format_path(self.path)

    @property
    def parameter(self) -> str | None:
        """The Python argument the problem is about (``"n_jobs"`` for the source ``"n_jobs="``)."""
        return self.source[:-1] if self.source and self.source.endswith("=") else None

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
            return self._sentence(self.problems[0])
        return "\n".join([f"{len(self.problems)} problems:"] + [f"  {self._sentence(p)}" for p in self.problems])

    def _sentence(self, problem: Problem) -> str:
        """One problem as the message says it (a subclass words its own)."""
        return str(problem)

    @property
    def file(self) -> str | None:
        return self.problems[0].file

    @property
    def line(self) -> int | None:
        return self.problems[0].line

    @property
    def path(self) -> tuple:
        return self.problems[0].path


class InvalidParameterError(ScenarioError, TypeError):
    """A bad argument to a public function: its type or its value.

    Both a :class:`ScenarioError` (a ``ValueError``) and a ``TypeError``, as scikit-learn's
    ``InvalidParameterError`` is, so code that catches either keeps working. Each problem's
    ``source`` is the parameter (``"direction="``), ``expected`` what it must be and ``found``
    the value given; ``function`` names the function. The message reads::

        The 'direction' parameter of find_breakpoint must be one of 'auto', 'above', 'below'. Got 'up' instead.
    """

    def __init__(self, problems: list[Problem] | Problem, *, function: str):
        self.function = function
        super().__init__(problems)

    def _sentence(self, problem: Problem) -> str:
        if problem.parameter is None:  # a problem of the scenario the argument named
            return str(problem)
        text = f"The {problem.parameter!r} parameter of {self.function} {problem.message}."
        if problem.has_found:
            text += f" Got {_short(problem.found)} instead."
        if problem.hint:
            text = text[:-1] + f" ({problem.hint})."
        return terminal_safe(text)

    @property
    def parameter(self) -> str | None:
        """The first problem's parameter (``"n_jobs"``)."""
        return self.problems[0].parameter

    def __reduce__(self):  # pickled whole (a sweep's worker raises it back): problems and function
        return _invalid_parameter_error, (self.problems, self.function)


def _invalid_parameter_error(problems: list[Problem], function: str) -> InvalidParameterError:
    return InvalidParameterError(problems, function=function)


def invalid_parameter(function: str, name: str, expected: str, found: object, *, message: str | None = None,
                      hint: str | None = None) -> InvalidParameterError:
    """The error for one bad argument, to raise: ``raise invalid_parameter("run", "n_jobs", "an int >= 1", 0)``.

    ``message`` (default ``"must be " + expected``) completes "The 'n_jobs' parameter of run ..."
    and follows the flag on the command line (``--jobs: must be an int >= 1, got 0``)."""
    problem = Problem(message or f"must be {expected}", expected=expected, found=found, has_found=True, hint=hint,
                      source=f"{name}=")
    return InvalidParameterError(problem, function=function)


class RunFolderError(ValueError):
    """A run folder that is missing, incomplete, damaged or from an unknown format (a user error)."""


class BaselineError(ValueError):
    """A regression baseline that is missing, unreadable or malformed (a user error: the message
    names the file, the key, what was expected and what was found, or the command that writes it)."""
