"""From files to a validated :class:`Scenario`: ``extends``, ``--set`` overrides, and errors with lines.

Steps: read YAML (:mod:`.yamlio`) -> replace ``use:`` items of ``strategies:`` by the strategy
files' rules (:mod:`.strategy_files`) -> resolve ``extends`` (deep merge, cycles refused) -> apply
``--set key.path=value`` overrides -> read the book's positions file, if any (:mod:`.positions`)
-> validate with pydantic -> semantic checks that need the
whole scenario (:mod:`.checks`). Every problem found on the way is turned into a
:class:`~engine.errors.Problem` located at the file and line the value came from, and all of
them are raised together as one :class:`~engine.errors.ScenarioError`.

Merge rules for ``extends: base.yaml`` (a path relative to the file, or a list of them: the first
is the base, each later one and then the file itself patch it in order): mappings merge key by key, anything else (lists included) is replaced by the child's
value; a mapping whose ``type``, ``rule`` or ``distribution`` changes is replaced whole (a
lognormal leverage becoming a table keeps none of the lognormal's keys), and so is
``portfolio:`` (a book is one unit: a child's book keeps none of the parent's positions); ``key+: [...]``
appends to the parent's list (``shocks+:`` adds shocks); ``key: null`` removes the parent's
value so the default applies (RFC 7396 merge-patch semantics).

To change one item of an inherited list, a file may carry an ``overrides:`` mapping of key paths
to values, applied after its merge exactly like ``--set``::

    extends: ../feb-2026-deleveraging.yaml
    overrides:
      shocks[warsh].depth_multiplier: 0.5
      shocks[farside_days].daily_flows_usd.2026-02-04: -1B
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import Problem, ScenarioError, Source
from .problems import Document, Origin, validation_problems
from .library import find_scenario, on_disk
from .strategy_files import StrategyFile, expand_uses, read_strategy_document, validate_strategy_file
from .yamlio import load_yaml, parse_yaml_text

__all__ = ["Document", "read_document", "load_scenario", "load_strategy_file", "parse_override", "set_path",
           "split_path"]

MAX_EXTENDS_DEPTH = 16


# ----------------------------------------------------------------------------- extends
def _origins_from_marks(marks: dict, file: str) -> dict[tuple, Origin]:
    return {path: (file, line, col) for path, (line, col) in marks.items()}


_DISCRIMINATORS = ("type", "rule", "distribution")
# mappings a child replaces whole: a book is one unit (a child's 1 BTC spot book must not keep the
# parent's perp), so `portfolio:` in a file that extends another is that file's whole book
_WHOLE = {("portfolio",)}


def _same_kind(a: dict, b: dict) -> bool:
    return all(b.get(k, a.get(k)) == a.get(k) for k in _DISCRIMINATORS)


def _merge(base: dict, base_origins: dict, child: dict, child_origins: dict, prefix: tuple = ()):
    """Deep-merge ``child`` into a copy of ``base``; origins follow the values."""
    out = dict(base)
    for key, value in child.items():
        here = prefix + (key,)
        if isinstance(key, str) and key.endswith("+") and len(key) > 1:
            target = key[:-1]
            there = prefix + (target,)
            old = out.get(target, [])
            if not isinstance(value, list) or not isinstance(old, list):
                raise ScenarioError(
                    Problem(f"'{key}' appends a list to a list; got {type(value).__name__}",
                            *child_origins.get(here, (None, None, None)), here)
                )
            out[target] = list(old) + list(value)
            for path, origin in child_origins.items():
                if path[: len(here)] == here:
                    rest = path[len(here):]
                    if rest and isinstance(rest[0], int):
                        rest = (rest[0] + len(old),) + rest[1:]
                    base_origins[there + rest] = origin
            base_origins.setdefault(there, child_origins.get(here))
            continue
        if value is None:
            out.pop(key, None)
            _drop(base_origins, here)
            continue
        if (isinstance(value, dict) and isinstance(out.get(key, {}), dict) and _same_kind(out.get(key, {}), value)
                and here not in _WHOLE):
            out[key] = _merge(out.get(key, {}), base_origins, value, child_origins, here)
            base_origins[here] = child_origins.get(here, base_origins.get(here))
            continue
        out[key] = value
        _drop(base_origins, here)
        for path, origin in child_origins.items():
            if path[: len(here)] == here:
                base_origins[path] = origin
    return out


def _drop(origins: dict, prefix: tuple) -> None:
    for path in [p for p in origins if p[: len(prefix)] == prefix]:
        del origins[path]


def read_document(path: str | Path, _stack: tuple = ()) -> Document:
    """Read a scenario file and everything it ``extends``, merged. A top-level ``path`` that does
    not exist and is a bare name (``feb-2026-deleveraging``) is looked up in the scenario library
    (:func:`engine.scenario.library.find_scenario`)."""
    if not _stack and not on_disk(path):
        path = find_scenario(str(path)) or path
    file = str(path)
    data, marks = load_yaml(path)  # first: it refuses a name the system would not take
    resolved = Path(path).resolve()
    origins = _origins_from_marks(marks, file)
    if not isinstance(data, dict):
        raise ScenarioError(
            Problem(f"a scenario must be a YAML mapping of sections, got a {type(data).__name__}",
                    file, 1, 1)
        )
    expand_uses(data, origins, file, (resolved,))  # each file's `use:` items, relative to that file
    patches = data.pop("overrides", None)
    patch_origins = {p: o for p, o in origins.items() if p[:1] == ("overrides",)}
    parents = data.pop("extends", None)
    if parents is None:
        return _patched(Document(data, origins, file), patches, patch_origins)
    if isinstance(parents, str):
        parents = [parents]
    where = origins.get(("extends",), (file, None, None))
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ScenarioError(Problem("extends must be a relative path or a list of them", *where, ("extends",),
                                    found=parents, has_found=True))
    stack = _stack + (resolved,)
    if len(stack) > MAX_EXTENDS_DEPTH:
        raise ScenarioError(Problem(f"extends chain deeper than {MAX_EXTENDS_DEPTH} files", *where, ("extends",)))
    merged: dict = {}
    merged_origins: dict[tuple, Origin] = {}
    for parent in parents:
        if Path(parent).is_absolute():
            raise ScenarioError(Problem(f"extends {parent!r}: give a path relative to this file",
                                        *where, ("extends",)))
        parent_path = (Path(path).parent / parent)
        if parent_path.resolve() in stack:
            chain = " -> ".join(p.name for p in stack + (parent_path.resolve(),))
            raise ScenarioError(Problem(f"extends cycle: {chain}", *where, ("extends",)))
        if not parent_path.exists():
            raise ScenarioError(
                Problem(f"extends {parent!r}: file not found (looked for {parent_path})", *where, ("extends",))
            )
        try:
            doc = read_document(parent_path, stack)
        except ScenarioError as exc:  # the parent cannot be read at all (a FIFO, too big): say who names it
            first = exc.problems[0]
            if len(exc.problems) > 1 or first.line is not None or first.file != str(parent_path) or first.hint:
                raise
            via = f"extended by {where[0]}{f':{where[1]}' if where[1] else ''} (extends)"
            raise ScenarioError(replace(first, hint=via)) from None
        if not merged_origins and not merged:  # the first parent is the base: its nulls stay nulls
            merged, merged_origins = doc.data, dict(doc.origins)
        else:  # later parents patch it, like the child does
            merged = _merge(merged, merged_origins, doc.data, doc.origins)
    origins_out = dict(merged_origins)
    result = _merge(merged, origins_out, data, origins)
    return _patched(Document(result, origins_out, file), patches, patch_origins)


def read_stored_document(text: str, file: str) -> Document:
    """A resolved scenario as a run folder stores it (``scenario.yaml``): already merged, so it names
    no other file. ``extends:``, ``overrides:``, ``use:`` strategy items and a
    ``portfolio.positions_csv`` are refused with their location, never followed: the folder is
    untrusted input and must not make the engine read files outside it."""
    data, marks = parse_yaml_text(text, file)
    origins = _origins_from_marks(marks, file)
    if not isinstance(data, dict):
        raise ScenarioError(Problem(f"a scenario must be a YAML mapping of sections, got a {type(data).__name__}",
                                    file, 1, 1))
    named = [(key,) for key in ("extends", "overrides") if key in data]
    for key in ("strategies", "strategies+"):
        items = data.get(key)
        named += [(key, i, "use") for i, item in enumerate(items if isinstance(items, list) else [])
                  if isinstance(item, dict) and "use" in item]
    portfolio = data.get("portfolio")
    if isinstance(portfolio, dict) and portfolio.get("positions_csv") is not None:
        named.append(("portfolio", "positions_csv"))
    problems = [Problem("a stored scenario is resolved already and names no other file; refused, not followed",
                        *origins.get(path, origins.get(path[:1], (file, None, None))), path) for path in named]
    if problems:
        raise ScenarioError(problems)
    return Document(data, origins, file)


def _patched(doc: Document, patches, patch_origins: dict) -> Document:
    """Apply a file's ``overrides:`` (key path -> value) to its merged data."""
    if patches is None:
        return doc
    doc.origins.update(patch_origins)
    where = doc.origins.get(("overrides",), (doc.file, None, None))
    if not isinstance(patches, dict):
        raise ScenarioError(Problem("overrides must map key paths to values, e.g. "
                                    "{shocks[warsh].depth_multiplier: 0.5}", *where, ("overrides",)))
    problems = []
    for key, value in patches.items():
        origin = doc.origins.get(("overrides", key), where)
        try:
            concrete = set_path(doc.data, split_path(str(key)), value)
        except (ValueError, KeyError) as exc:
            problems.append(Problem(str(exc.args[0]), *origin, ("overrides", key)))
            continue
        _drop(doc.origins, concrete)
        for path, mark in list(doc.origins.items()):
            if path[:2] == ("overrides", key):
                doc.origins[concrete + path[2:]] = mark
        for cut in range(1, len(concrete) + 1):
            doc.origins.setdefault(concrete[:cut], origin)
    for path in [p for p in doc.origins if p[:1] == ("overrides",)]:
        del doc.origins[path]
    if problems:
        raise ScenarioError(problems)
    expand_uses(doc.data, doc.origins, doc.file)  # `use:` items an override wrote
    return doc


# ----------------------------------------------------------------------------- --set
from .keypaths import set_path, split_path  # noqa: E402,F401  (here since --set; callers import them from here)


def parse_override(text: str) -> tuple[tuple, Any]:
    """``'market.spot_usd=84k'`` -> ``(('market', 'spot_usd'), '84k')``; the value is read as YAML.

    A problem names the override as its ``source`` (``--set market.spot_usd=84k``; no ``file``)."""
    source = Source(f"--set {text}")
    if "=" not in text:
        raise ScenarioError(Problem("expects key.path=value", expected="key.path=value", found=text, has_found=True,
                                    source=source))
    key, raw = text.split("=", 1)
    try:
        path = split_path(key.strip())
    except ValueError as exc:
        raise ScenarioError(Problem(str(exc), source=source)) from None
    if raw.strip() == "":
        return path, None
    try:
        value, _ = parse_yaml_text(raw, source)
    except ScenarioError as exc:  # the value's own line and column say little: its key path says where
        raise ScenarioError([replace(p, line=None, column=None, path=path + p.path) for p in exc.problems]) from None
    return path, value


def apply_overrides(doc: Document, overrides) -> None:
    problems = []
    for text in overrides:
        try:
            path, value = parse_override(text)
            concrete = set_path(doc.data, path, value)
        except ScenarioError as exc:
            problems += exc.problems
            continue
        except KeyError as exc:
            problems.append(Problem(str(exc.args[0]), source=f"--set {text}"))
            continue
        _drop(doc.origins, concrete)
        for cut in range(1, len(concrete) + 1):  # sections the override created come from it too
            doc.origins.setdefault(concrete[:cut], (Source(f"--set {text}"), None, None))
    if problems:
        raise ScenarioError(problems)
    expand_uses(doc.data, doc.origins, "<--set>")  # `use:` items a --set wrote: names and paths from here


def load_scenario(source, overrides=(), *, check: bool = True, book=None):
    """Load, merge, override, validate and check a scenario.

    Parameters
    ----------
    source : str, Path or dict
        A scenario file (its ``extends`` parents and ``use:`` strategy files followed), a bare
        name of the scenario library (``"feb-2026-deleveraging"``), or a mapping of raw scenario
        data as a YAML file would hold it.
    overrides : sequence of str
        ``key.path=value`` strings applied after the merge, as ``cascade ... --set`` takes them.
    check : bool
        Run the checks that span several keys (dates inside the horizon, venue names, ...).
    book : str or Path, optional
        A positions file (CSV or Deribit export) that replaces the portfolio's positions, as
        ``cascade run --book``; ``portfolio.positions_csv`` is read the same way.

    Returns
    -------
    Scenario
        The validated, frozen scenario (:class:`engine.scenario.schema.Scenario`).

    Raises
    ------
    ScenarioError
        With every problem found, each naming the file, line, column and key (a ``--set``
        override's problem names it as its ``source``: ``--set n_paths=0``, with no file).
    InvalidParameterError
        An argument of the wrong type, e.g. ``overrides`` a string rather than a list of them.

    Examples
    --------
    >>> scenario = load_scenario("scenarios/ci/ci-calm.yaml", ["n_paths=200"])
    >>> scenario.name, scenario.n_paths
    ('ci-calm', 200)
    >>> load_scenario("scenarios/ci/ci-calm.yaml", ["n_paths=0"])
    Traceback (most recent call last):
    ...
    engine.errors.ScenarioError: --set n_paths=0: n_paths: Input should be greater than or equal to 1, got 0
    """
    from .._params import check_bool, check_overrides, check_path
    from .checks import semantic_problems
    from .positions import take_book
    from .schema import Scenario

    if not isinstance(source, (Document, dict)):
        check_path("load_scenario", "source", source,
                   expected="a path, a library name or a mapping of scenario data")
    overrides = check_overrides("load_scenario", overrides)
    check = check_bool("load_scenario", "check", check)
    check_path("load_scenario", "book", book, optional=True)
    if isinstance(source, Document):  # read already (read_stored_document): nothing more to follow
        doc = source
    elif isinstance(source, dict):
        doc = Document(copy.deepcopy(source), {}, "<dict>")
        expand_uses(doc.data, doc.origins, doc.file)  # names and paths from the current directory
    else:
        doc = read_document(source)
    apply_overrides(doc, overrides)
    held = take_book(doc, book)  # the positions file, its keys taken out of doc.data
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        raise ScenarioError(validation_problems(Scenario, doc, exc)) from None
    if held is not None:
        scenario = held.apply(scenario)
        # the raw data that callers reload with changes (breakpoint, sweeps) holds the parsed book
        doc.data["portfolio"] = scenario.portfolio.model_dump(mode="json")
    if check:
        problems = semantic_problems(scenario, doc)
        if problems:
            raise ScenarioError(problems)
    object.__setattr__(scenario, "_source", doc)
    object.__setattr__(scenario, "_book", held)
    return scenario


# ----------------------------------------------------------------------------- whole files
def load_strategy_file(path: str | Path, overrides=()) -> StrategyFile:
    """Read, expand (``use:``), override (``--set``) and validate a strategy file."""
    doc = read_strategy_document(path)
    apply_overrides(doc, overrides)
    return validate_strategy_file(doc.data, doc.origins, doc.file)


# ----------------------------------------------------------------------------- loaded again
def source_data(scenario) -> dict:
    """A copy of the raw data ``scenario`` was validated from (``extends`` merged, overrides
    applied), to change and load again; for a scenario built in code, the keys it was given, not
    its defaults (some checks, and the values the loader derives, look at which keys were set)."""
    doc = getattr(scenario, "_source", None)
    if doc is not None:
        return copy.deepcopy(doc.data)
    from .canonical import _number_keys

    return _number_keys(scenario.model_dump(mode="json", exclude_unset=True), scenario.model_dump(exclude_unset=True))


def with_overrides(scenario, overrides=()):
    """``scenario`` (a loaded :class:`~engine.scenario.schema.Scenario`) with ``--set`` style
    ``overrides`` applied as if given with its file, validated again; itself when there are none."""
    return load_scenario(source_data(scenario), overrides) if overrides else scenario
