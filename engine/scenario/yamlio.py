"""Reading scenario YAML safely, keeping where every value came from.

``yaml.safe_load`` semantics with four changes a scenario language needs:

* **Duplicate keys are an error** (PyYAML silently keeps the last one).
* **Only plain data**: mappings, lists, strings, numbers, booleans, null and timestamps. Any
  other tag (``!!python/object``, ``!!binary``, ``!!set``, custom ``!tags``) is refused.
* **YAML 1.2 core scalars**: ``yes``/``no``/``on``/``off`` stay strings and ``14:30`` is not the
  base-60 integer 870, as it is in YAML 1.1.
* **Bounded**: files over :data:`MAX_FILE_BYTES`, documents that expand (through anchors and
  aliases) past :data:`MAX_NODES` nodes, nesting deeper than :data:`MAX_DEPTH` and aliases that
  contain themselves are refused, so a hostile file cannot exhaust memory or the stack.

:func:`load_yaml` returns the data and a ``marks`` dict mapping each key path (a tuple such as
``('shocks', 2, 'daily_flows_usd')``) to its ``(line, column)``, 1-based, so later errors can
point at the line.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .._files import read_regular_bytes
from ..errors import Problem, ScenarioError

__all__ = ["load_yaml", "parse_yaml_text", "MAX_FILE_BYTES", "MAX_NODES", "MAX_DEPTH", "Marks"]

MAX_FILE_BYTES = 1 << 20  # 1 MiB: the largest shipped scenario is a few kB
MAX_NODES = 200_000  # after alias expansion
MAX_DEPTH = 100  # nesting of mappings and lists; a scenario needs fewer than 10
Marks = dict[tuple, tuple[int, int]]

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_ALLOWED_SCALARS = {
    _STR,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core booleans and numbers (no yes/no, no base 60)."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _tag_name(tag: str) -> str:
    """``'tag:yaml.org,2002:python/object:os.system'`` -> ``'!!python/object:os.system'``, as written."""
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


class _Builder:
    """Turns a composed node graph into plain data, recording marks and refusing what is unsafe."""

    def __init__(self, loader: _Loader, file: str):
        self.loader = loader
        self.file = file
        self.marks: Marks = {}
        self.nodes = 0
        self.problems: list[Problem] = []
        self.active: set[int] = set()  # ids of the collections being built (to catch `&a [*a]`)

    def problem(self, node: yaml.Node, path: tuple, message: str, **kw) -> None:
        line, column = _mark(node)
        self.problems.append(Problem(message, self.file, line, column, path, **kw))

    def build(self, node: yaml.Node, path: tuple):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            line, column = _mark(node)
            raise ScenarioError(
                Problem(
                    f"the document expands to more than {MAX_NODES:,} values through anchors "
                    "and aliases (an alias bomb?); refused",
                    self.file, line, column, path,
                )
            )
        self.marks.setdefault(path, _mark(node))
        if isinstance(node, (MappingNode, SequenceNode)):
            if id(node) in self.active:
                self.problem(node, path, "an alias refers to a mapping or list that contains it; refused")
                return None
            if len(path) >= MAX_DEPTH:
                self.problem(node, path, f"nested more than {MAX_DEPTH} levels deep; refused")
                return None
            self.active.add(id(node))
            try:
                return self.build_collection(node, path)
            finally:
                self.active.discard(id(node))
        if node.tag not in _ALLOWED_SCALARS:
            self.problem(
                node, path,
                f"YAML tag {_tag_name(node.tag)!r} is not allowed; scenarios hold plain data only",
            )
            return None
        return self.construct(node, path)

    def build_collection(self, node: yaml.Node, path: tuple):
        if isinstance(node, MappingNode):
            if node.tag != _MAP:
                self.problem(node, path, f"YAML tag {_tag_name(node.tag)!r} is not allowed; use plain mappings")
                return None
            return self.build_mapping(node, path)
        if node.tag != _SEQ:
            self.problem(node, path, f"YAML tag {_tag_name(node.tag)!r} is not allowed; use plain lists")
            return None
        return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]

    def construct(self, node: ScalarNode, path: tuple):
        """A scalar's value; an impossible one (``2026-02-30``, a 5000-digit integer) is a problem."""
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.problem(node, path, f"cannot read value: {exc.problem}")
        except (ValueError, OverflowError) as exc:
            text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            self.problem(node, path, f"cannot read value {text!r}: {str(exc).split(';')[0]}")
        return None

    def _key(self, node: yaml.Node, path: tuple):
        if not isinstance(node, ScalarNode) or node.tag not in _ALLOWED_SCALARS:
            self.problem(node, path, "mapping keys must be plain scalars (text, numbers or dates)")
            return None
        return self.construct(node, path)

    def build_mapping(self, node: MappingNode, path: tuple) -> dict:
        out: dict = {}
        seen: dict = {}
        merges = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:  # YAML merge key "<<: *anchor", applied after the own keys
                merges += value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in seen:
                first = seen[key]
                self.problem(
                    key_node, path + (key,),
                    f"duplicate key {key!r} (first defined on line {first}); "
                    "YAML would silently keep only the last one",
                )
                continue
            seen[key] = _mark(key_node)[0]
            self.marks[path + (key,)] = _mark(key_node)
            out[key] = self.build(value_node, path + (key,))
        for src in merges:  # own keys win, then the first source that has a key
            own_marks, self.marks = self.marks, {}
            merged = self.build(src, path)
            merged_marks, self.marks = self.marks, own_marks
            if not isinstance(merged, dict):
                self.problem(src, path, "a merge key '<<' must refer to a mapping")
                continue
            taken = set(out)
            for where, mark in merged_marks.items():  # keep the marks of the values taken
                if len(where) > len(path) and where[len(path)] not in taken:
                    self.marks[where] = mark
            for k, v in merged.items():
                out.setdefault(k, v)
        return out


def _syntax_problem(exc: yaml.YAMLError, file: str, text: str) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, yaml.reader.ReaderError):  # a control character; it has a position, not a mark
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return Problem(f"YAML syntax error: {exc.reason} (character {exc.character:#06x})", file, line, column)
    hint = None
    if "\\t" in str(problem) or "'\\t'" in str(exc) or "\t" in str(problem):
        hint = "tabs are not allowed for indentation in YAML; indent with spaces"
    elif mark is not None:
        lines = text.splitlines()
        if 0 <= mark.line < len(lines) and "\t" in lines[mark.line]:
            hint = "this line contains a tab; YAML indentation must use spaces"
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}"
    if context:
        message += f" ({context})"
    if mark is None:
        return Problem(message, file, hint=hint)
    return Problem(message, file, mark.line + 1, mark.column + 1, hint=hint)


def parse_yaml_text(text: str, file: str = "<string>"):
    """Parse YAML text into plain data and marks; raises :class:`ScenarioError`."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise ScenarioError(_syntax_problem(exc, file, text)) from None
    except RecursionError:
        raise ScenarioError(
            Problem("nested too deeply for a scenario (hundreds of levels of [ or {); refused", file)
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise ScenarioError(Problem("the file is empty; a scenario is a YAML mapping", file))
    builder = _Builder(loader, file)
    data = builder.build(node, ())
    if builder.problems:
        raise ScenarioError(builder.problems)
    return data, builder.marks


def load_yaml(path: str | Path):
    """Read a YAML file with the checks above; returns ``(data, marks)``."""
    file = str(path)
    # a regular file only (a FIFO would block, /dev/zero never ends), refused by size before reading
    raw = read_regular_bytes(path, MAX_FILE_BYTES, "a scenario or strategy file", file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ScenarioError(
            Problem(f"not UTF-8 text (byte {raw[exc.start]:#04x})", file, line)
        ) from None
    return parse_yaml_text(text, file)
