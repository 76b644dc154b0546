"""Strategy files: the library of hedging programmes (``strategies/*.yaml``) and the ``use:`` key.

A strategy file is a YAML mapping with a ``description:`` (its first line is what ``cascade
list`` shows) and a ``strategies:`` list written exactly as a scenario's; no other top-level key.
A scenario, or another strategy file, takes a file's entries by naming it in its own
``strategies:`` list, mixed with inline rules::

    strategies:
      - use: put-protection-50k-60k     # a library name: strategies/put-protection-50k-60k.yaml
      - use: ../my-hedges.yaml          # a path, relative to the file that names it
      - {rule: stop_loss, drawdown: 25%}

A bare name (no ``/``, no ``.yaml`` or ``.yml`` suffix) is the file ``strategies/NAME.yaml`` in
the folder of the file that names it or, failing that, in the nearest parent folder that has one,
else under the current working directory. Anything else is a path relative to the naming file.
Each ``use:`` item is replaced by the file's entries, in order, as the naming file is read (before
``extends`` merges it), so ``overrides:``, ``--set`` and sweeps address them by their labels
(``strategies[put_55k].strike_usd``) as if they were written inline; labels must stay unique.
A ``use:`` item that ``overrides:`` or ``--set`` writes is replaced too (a ``--set``'s names and
paths are looked up from the current directory). Used files are read with the scenario reader's
limits, validated on their own (errors point at their lines), and may ``use:`` others; cycles
are refused.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import replace
from pathlib import Path

from pydantic import Field, ValidationError

from ..errors import Problem, ScenarioError, format_path
from ..strategies import Strategy
from .problems import Document, validation_problems
from .types import StrictModel
from .yamlio import load_yaml

__all__ = ["StrategyFile", "expand_uses", "is_strategy_data", "is_strategy_file",
           "library_dirs", "read_strategy_document", "validate_strategy_file", "MAX_USE_DEPTH", "MAX_EXPANDED"]

MAX_USE_DEPTH = 16  # files naming files (the extends limit)
MAX_EXPANDED = 1000  # entries of one strategies: list after expansion
_BARE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PATH_SUFFIXES = (".yaml", ".yml")
_LISTS = ("strategies", "strategies+")  # the keys whose items may be `use:` (`strategies+` appends under extends)
_SCENARIO_KEYS = ("market", "horizon", "extends")


class StrategyFile(StrictModel):
    """A file of the strategy library: hedging rules to ``use:`` in scenarios."""

    description: str = Field("", description="What the programme is; the first line is shown by `cascade list`.")
    strategies: list[Strategy] = Field(..., description="Hedging rules, as in a scenario's strategies: list.")

    @property
    def summary_line(self) -> str:
        return self.description.strip().split("\n", 1)[0]


def is_strategy_data(data) -> bool:
    """A top level with ``strategies:`` and no ``market:``, ``horizon:`` or ``extends:`` (a scenario's marks)."""
    return isinstance(data, dict) and "strategies" in data and not any(k in data for k in _SCENARIO_KEYS)


def is_strategy_file(path: str | Path) -> bool:
    """Whether ``path`` reads as a strategy file (a file that does not read is not one: the
    scenario loader then reports why)."""
    try:
        data, _ = load_yaml(path)
    except ScenarioError:
        return False
    return is_strategy_data(data)


# ----------------------------------------------------------------------------- resolution
def library_dirs(folder: str | Path) -> list[Path]:
    """Where a bare name is looked for, in order: ``strategies/`` in ``folder`` and each of its
    parents, then under the current working directory (each folder once)."""
    folder = Path(folder).resolve()
    out: list[Path] = []
    for d in (folder, *folder.parents, Path.cwd().resolve()):
        if d / "strategies" not in out:
            out.append(d / "strategies")
    return out


def _resolve(value, naming_file: Path, where) -> Path:
    """The file a ``use:`` value names; ``where`` is ``(file, line, column, key_path)`` of the value."""
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(Problem("use: expects a library name or a path to a .yaml file", *where,
                                    found=value, has_found=True,
                                    hint="e.g. use: put-protection-50k-60k, or use: ../my-hedges.yaml"))
    if "/" in value or "\\" in value or value.endswith(_PATH_SUFFIXES):
        if Path(value).is_absolute():
            raise ScenarioError(Problem(f"use {value!r}: give a path relative to this file", *where))
        path = naming_file.parent / value
        if not path.exists():  # a FIFO or a folder exists: reading it says what it is instead
            raise ScenarioError(Problem(f"use {value!r}: file not found (looked for {path})", *where))
        return path
    if not _BARE.fullmatch(value):
        raise ScenarioError(Problem(f"use {value!r}: a library name is letters, digits, '.', '_' and '-' "
                                    "(or give a path ending in .yaml)", *where))
    dirs = library_dirs(naming_file.parent)
    for d in dirs:
        if (d / f"{value}.yaml").is_file():
            return d / f"{value}.yaml"
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    hint = None
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif known:
        hint = "library names: " + ", ".join(known)
    raise ScenarioError(Problem(f"use {value!r}: no strategy file {value}.yaml (looked in "
                                + ", ".join(str(d) for d in dirs) + ")", *where, hint=hint))


# ----------------------------------------------------------------------------- reading
def read_strategy_document(path: str | Path, stack: tuple = (), cache: dict | None = None) -> Document:
    """A strategy file read, its ``use:`` items expanded (``stack``: the files naming it, to
    refuse cycles), not yet validated: a scenario or anything else is refused."""
    file = str(path)
    data, marks = load_yaml(path)
    origins = {p: (file, line, col) for p, (line, col) in marks.items()}
    if not is_strategy_data(data):
        what = "a scenario" if isinstance(data, dict) and any(k in data for k in _SCENARIO_KEYS) else "not a strategy file"
        raise ScenarioError(Problem(f"{what}: a strategy file is a mapping with a strategies: list and no "
                                    "market:, horizon: or extends:", file, 1, 1))
    expand_uses(data, origins, file, stack + (Path(path).resolve(),), cache)
    return Document(data, origins, file)


def _read(path: Path, stack: tuple, cache: dict):
    """A used file's validated entries as ``(items, origins by path within the file)``."""
    resolved = path.resolve()
    if resolved not in cache:
        doc = read_strategy_document(path, stack, cache)
        validate_strategy_file(doc.data, doc.origins, doc.file)
        cache[resolved] = (doc.data["strategies"], doc.origins)
    return cache[resolved]


def validate_strategy_file(data: dict, origins: dict, file: str) -> StrategyFile:

    doc = Document(data, origins, file)
    try:
        model = StrategyFile.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(validation_problems(StrategyFile, doc, exc)) from None
    seen: dict[str, int] = {}
    problems = []
    for i, strategy in enumerate(model.strategies):
        if strategy.label in seen:
            problems.append(doc.problem(("strategies", i), f"two strategies are called {strategy.label!r} "
                                        f"(also strategies[{seen[strategy.label]}]); give each a distinct name"))
        seen.setdefault(strategy.label, i)
    if problems:
        raise ScenarioError(problems)
    return model


def _used_from(exc: ScenarioError, origin: tuple, key: tuple) -> ScenarioError:
    """``exc`` with each problem saying which ``use:`` brought its file in."""
    file, line = origin[0], origin[1]
    via = f"used by {file}{f':{line}' if line else ''} ({format_path(key)})"
    return ScenarioError([replace(p, hint=f"{p.hint}; {via}" if p.hint else via) for p in exc.problems])


def expand_uses(data: dict, origins: dict, file: str, stack: tuple = (), cache: dict | None = None) -> None:
    """Replace the ``use:`` items of ``data``'s ``strategies:`` (and ``strategies+:``) lists by the
    entries of the files they name, in place; ``origins`` (key path -> (file, line, column))
    follow the entries. ``file`` names the data's file (``<dict>``: paths are relative to the
    current directory); ``stack`` holds the resolved files being read, to refuse cycles."""
    cache = {} if cache is None else cache
    naming = Path(file) if not file.startswith("<") else Path.cwd() / file
    for key in _LISTS:
        items = data.get(key)
        if not isinstance(items, list) or not any(isinstance(it, dict) and "use" in it for it in items):
            continue
        out, moved, problems = [], {}, []
        for i, item in enumerate(items):
            here = (key, i)
            if not (isinstance(item, dict) and "use" in item):
                _move(origins, here, (key, len(out)), moved)
                out.append(item)
            else:
                try:
                    entries, entry_origins = _use(item, here, origins, naming, file, stack, cache)
                except ScenarioError as exc:  # every item's problems, reported together
                    problems += exc.problems
                    continue
                for k, entry in enumerate(entries):
                    for path, origin in entry_origins.items():
                        if path[:2] == ("strategies", k):
                            moved[(key, len(out)) + path[2:]] = origin
                    out.append(entry)
            if len(out) > MAX_EXPANDED:
                raise ScenarioError(Problem(f"more than {MAX_EXPANDED:,} strategies after expanding use:; refused",
                                            *origins.get(here, (file, None, None)), here))
        if problems:
            raise ScenarioError(problems)
        for path in [p for p in origins if p[:1] == (key,) and len(p) > 1]:
            del origins[path]
        origins.update(moved)
        data[key] = out


def _move(origins: dict, old: tuple, new: tuple, moved: dict) -> None:
    for path, origin in origins.items():
        if path[:len(old)] == old:
            moved[new + path[len(old):]] = origin


def _use(item: dict, here: tuple, origins: dict, naming: Path, file: str, stack: tuple, cache: dict):
    """The entries of the file one ``use:`` item names."""
    key = here + ("use",)
    origin = next((origins[key[:cut]] for cut in range(len(key), 0, -1) if key[:cut] in origins),
                  (file, None, None))
    where = (*origin, key)
    extra = [k for k in item if k != "use"]
    if extra:
        raise ScenarioError(Problem(f"a use: item takes no other keys, found {', '.join(map(str, extra))}",
                                    *where, hint="change a used entry with overrides: or --set "
                                                 "(strategies[LABEL].KEY), or write the rule inline"))
    path = _resolve(item["use"], naming, where)
    if path.resolve() in stack:
        chain = " -> ".join(p.name for p in stack + (path.resolve(),))
        raise ScenarioError(Problem(f"use cycle: {chain}", *where))
    if len(stack) >= MAX_USE_DEPTH:
        raise ScenarioError(Problem(f"use: chain deeper than {MAX_USE_DEPTH} files", *where))
    try:
        entries, entry_origins = _read(path, stack, cache)
    except ScenarioError as exc:
        raise _used_from(exc, origin, key) from None
    return copy.deepcopy(entries), entry_origins


