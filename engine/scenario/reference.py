"""The scenario reference in Markdown: ``cascade schema --markdown``, kept as ``docs/scenario-reference.md``.

Everything here is generated from the code, so the reference cannot drift from what the loader
accepts: the friendly-value table and the merge and sweep rules come from the docstrings of
:mod:`.units`, :mod:`.loader` and :mod:`.sweep`; the key tables come from walking the pydantic
models from :class:`~engine.scenario.schema.Scenario` down, through every shock of the
``type`` union, every strategy rule's ``Params`` and every ``distribution``. For each key: its
dotted path, its type with the unit, its default in the friendly form the loader reads back
(``14M``, ``30m``, ``0.5%``), its bounds and its description. A test keeps the committed file
equal to :func:`schema_markdown` byte for byte.
"""

from __future__ import annotations

import re
import sys
import types as _pytypes
import typing
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated, Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel, BeforeValidator, Tag
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from . import loader, strategy_files, sweep, units
from . import types as t
from .._format import amount_exact

__all__ = ["schema_markdown", "REGENERATE"]

REGENERATE = "cascade schema --markdown -o docs/scenario-reference.md"

# value kinds recognised by the identity of the metadata their Annotated alias carries
_ALIASES = {
    "amount": t.Amount,
    "rate": t.Rate,
    "duration": t.Duration,
    "timestamp": t.Timestamp,
    "when": t.When,
    "time of day": t.TimeOfDay,
    "number": t.Number,
    "name": t.Name,
    "sweep number": sweep.SweepNumber,
}
_MARKERS = {id(m): kind for kind, alias in _ALIASES.items() for m in typing.get_args(alias)[1:]}
_KIND_TEXT = {
    "timestamp": "timestamp (UTC)",
    "when": "when: UTC time or +offset",
    "time of day": "time of day (UTC)",
    "sweep number": "value",
}
_TAGS = ("type", "rule", "distribution")
_UNIONS = (Union, _pytypes.UnionType)


# ----------------------------------------------------------------------------- type analysis
def _strip(tp: Any) -> tuple[Any, list]:
    """``Annotated[X, m1, m2]`` -> ``(X, [m1, m2])``; a validator's declared input type wins over ``X``."""
    meta: list = []
    while typing.get_origin(tp) is Annotated:
        args = typing.get_args(tp)
        tp, meta = args[0], meta + list(args[1:])
        inputs = [m.json_schema_input_type for m in args[1:] if isinstance(m, BeforeValidator)
                  and m.json_schema_input_type is not PydanticUndefined]
        if inputs:  # e.g. a venue: a bare share or a mapping, both accepted
            tp, meta = inputs[0], []
    return tp, meta


def _kind(meta: list) -> str | None:
    for m in meta:
        if id(m) in _MARKERS:
            return _MARKERS[id(m)]
    return None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _members(tp: Any) -> tuple[list, bool]:
    """Members of a union (``None`` left out) and whether ``None`` was one of them."""
    args = typing.get_args(tp)
    members = [a for a in args if a is not type(None)]
    return members, len(members) < len(args)


def _is_sweep(tp: Any) -> bool:
    """Whether ``tp`` is a sweep spec (of numbers or of durations)."""
    return isinstance(tp, type) and issubclass(tp, sweep.SweepBase)


def _sweepable_value(tp: Any) -> Any | None:
    """The plain-value member of a ``sweepable(...)`` union, else ``None``."""
    if typing.get_origin(tp) not in _UNIONS:
        return None
    args = typing.get_args(tp)
    tags = [[m.tag for m in _strip(a)[1] if isinstance(m, Tag)] for a in args]
    if len(args) == 2 and tags == [["sweep"], ["value"]] and _is_sweep(_strip(args[0])[0]):
        return args[1]
    return None


def _value_kind(tp: Any) -> str | None:
    """The value kind of a key (through ``| None`` and ``sweepable``), for formatting bounds."""
    tp, meta = _strip(tp)
    if _kind(meta):
        return _kind(meta)
    if typing.get_origin(tp) in _UNIONS:
        kinds = {_value_kind(m) for m in _members(tp)[0] if not _is_sweep(_strip(m)[0])}
        return kinds.pop() if len(kinds) == 1 else None
    return None


def _tag_field(model: type[BaseModel]) -> str | None:
    for name in _TAGS:
        f = model.model_fields.get(name)
        if f is not None and typing.get_origin(f.annotation) is Literal:
            return name
    return None


def _tag(model: type[BaseModel]) -> str:
    return typing.get_args(model.model_fields[_tag_field(model)].annotation)[0]


def _unit(name: str) -> str:
    """Unit read off a key's name: ``depth_usd_per_pct`` -> ``USD per 1%``."""
    match = re.search(r"(?:^|_)(usd|btc)(?:_per_([a-z_]+))?$", name)
    if not match:
        return ""
    per = {"pct": "1%", "ph_day": "PH/day"}.get(match.group(2) or "", (match.group(2) or "").replace("_", " "))
    return match.group(1).upper() + (f" per {per}" if per else "")


def _type_text(tp: Any, name: str, meta: list = ()) -> str:
    tp, extra = _strip(tp)
    kind = _kind(list(meta) + extra)
    if kind == "amount":
        return "amount" + (f", {_unit(name)}" if _unit(name) else "")
    if kind:
        return _KIND_TEXT.get(kind, kind)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNIONS:
        return _union_text(tp, name)
    if origin is Literal:
        return ", ".join(f"`{a}`" for a in args) if len(args) == 1 else "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return "list of " + _plural(_type_text(args[0], name))
    if origin is tuple:
        return "[" + ", ".join(_type_text(a, name) for a in args) + "]"
    if origin is dict:
        key = _type_text(args[0], "") + "".join(f" ({b})" for b in _bounds(args[0]))
        return f"mapping: {key} → {_type_text(args[1], name)}"
    if _is_sweep(tp):
        return "sweep spec"
    if _is_model(tp):
        return "section"
    return {bool: "bool", int: "integer", float: "number", str: "string", date: "date"}.get(tp, str(tp))


def _plural(text: str) -> str:
    word, _, rest = text.partition(",")
    if word in ("section", "amount", "rate", "number", "name", "duration", "value", "timestamp (UTC)"):
        word = word.replace(" (UTC)", "s (UTC)") if "(" in word else word + "s"
    return word + ("," + rest if rest else "")


def _union_text(tp: Any, name: str) -> str:
    members, nullable = _members(tp)
    value = _sweepable_value(tp if not nullable else Union[tuple(members)])  # noqa: UP007
    bare = [_strip(m)[0] for m in members]
    if value is not None:
        text = _type_text(value, name) + ", or a sweep spec"
    elif all(_is_model(b) and _tag_field(b) for b in bare) and len(bare) > 1:
        text = f"section, by `{_tag_field(bare[0])}`: " + ", ".join(f"`{_tag(b)}`" for b in bare)
    elif sweep.SweepSpec in bare:
        text = "sweep spec, or list of values"
    else:
        text = " or ".join(_type_text(m, name) for m in members)
    return text + (", or null" if nullable else "")


# ----------------------------------------------------------------------------- values
def _number(value: float) -> str:
    if isinstance(value, int) and value >= 2**31 and value & (value - 1) == 0:
        return f"2^{value.bit_length() - 1}"
    return str(value) if isinstance(value, int) else f"{value:.10g}"


_amount = amount_exact


def _scalar(value: Any, kind: str | None) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if kind == "rate" and isinstance(value, (int, float)):
        return f"{value * 100:.10g}%"
    if kind == "amount" and isinstance(value, (int, float)):
        return _amount(value)
    if kind == "duration" or (kind == "when" and (isinstance(value, timedelta) or str(value).startswith("+"))):
        text = units.format_duration(units.parse_duration(value.lstrip("+") if isinstance(value, str) else value))
        return ("+" if kind == "when" else "") + text
    if kind == "time of day":
        return f'"{value}"'
    if isinstance(value, (int, float)):
        return _number(value)
    return str(value) if value != "" else '""'


def _value(value: Any, tp: Any) -> str:
    """A default as YAML in the friendly units: ``14M``, ``30m``, ``0.5%``, ``[5, 25, 50]``."""
    tp, meta = _strip(tp)
    if value is None:
        return "null"
    if typing.get_origin(tp) in _UNIONS and not _kind(meta):
        members, _ = _members(tp)
        value_member = _sweepable_value(tp)
        candidates = [value_member] if value_member is not None else members
        for member in candidates:
            bare = _strip(member)[0]
            if not _is_model(bare) or isinstance(value, bare):
                return _value(value, member)
    if isinstance(value, BaseModel):
        tag = _tag_field(type(value))
        return f"{tag}: {getattr(value, tag)}" if tag else ""
    if isinstance(value, list):
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        return "[" + ", ".join(_value(v, item) for v in value) + "]"
    if isinstance(value, dict):
        key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        return "{" + ", ".join(f"{_value(k, key_tp)}: {_value(v, val_tp)}" for k, v in value.items()) + "}"
    return _scalar(value, _kind(meta))


def _default(f: FieldInfo, tag_field: bool) -> str:
    if f.is_required() or tag_field:
        return "required"
    value = f.get_default(call_default_factory=True)
    text = _value(value, f.rebuild_annotation())
    if isinstance(value, BaseModel):
        return (f"`{text}` " if text else "") + "(its defaults)"
    return f"`{text}`"


# ----------------------------------------------------------------------------- bounds
_SIGNS = ((at.Gt, "gt", ">"), (at.Ge, "ge", "≥"), (at.Lt, "lt", "<"), (at.Le, "le", "≤"))


def _bounds(tp: Any, meta: list = (), prefix: str = "", kind: str | None = None) -> list[str]:
    tp, extra = _strip(tp)
    meta = list(meta) + extra
    kind = kind or _kind(meta) or _value_kind(tp)
    out: list[str] = []
    for m in meta:
        if isinstance(m, FieldInfo):
            out += _bounds(float, m.metadata, prefix, kind)  # Field(ge=...) nested in an Annotated alias
        for cls, attr, sign in _SIGNS:
            if isinstance(m, cls):
                out.append(f"{prefix}{sign} {_scalar(getattr(m, attr), kind)}")
        if isinstance(m, at.MinLen):
            out.append(f"at least {m.min_length} item{'s' * (m.min_length != 1)}")
        if getattr(m, "max_length", None) is not None and kind != "name":
            out.append(f"at most {m.max_length} characters")
        if getattr(m, "pattern", None) and kind != "name":
            out.append(f"matches `{m.pattern}`")
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        for member in _members(tp)[0]:
            if not _is_sweep(_strip(member)[0]):
                out += _bounds(member, (), prefix, kind)
    elif origin is list:
        out += _bounds(typing.get_args(tp)[0], (), "each ")
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------- the walk
@dataclass
class _Section:
    title: str
    intro: str
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)


def _doc(obj: Any) -> str:
    """First paragraph of a docstring, as one Markdown line."""
    text = (obj.__doc__ or "").strip().split("\n\n")[0]
    return _rst(" ".join(text.split()))


def _rst(text: str) -> str:
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    return re.sub(r":[a-z]+:`~?\.?([^`]+)`", lambda m: f"`{m.group(1).split('.')[-1]}`", text)


def _cell(text: str) -> str:
    """Table-cell text: pipes escaped everywhere (GFM allows it in code), ``*`` outside code."""
    parts = text.replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("*", "\\*") for i, p in enumerate(parts))


def _children(tp: Any, path: str) -> list[tuple[str, str, type[BaseModel]]]:
    """Sections below a key: ``(path, qualifier, model)``; sweep specs of sweepable keys excluded."""
    tp, _ = _strip(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNIONS:
        if _sweepable_value(tp) is not None:
            return []
        members = [_strip(m)[0] for m in _members(tp)[0]]
        models = [m for m in members if _is_model(m)]
        if len(models) > 1:
            return [(path, f"`{_tag_field(m)}: {_tag(m)}`", m) for m in models]
        return [c for m in members for c in _children(m, path)]
    if origin is list:
        item = _strip(args[0])[0]
        if typing.get_origin(item) in _UNIONS and all(_is_model(m) for m in typing.get_args(item)):
            return [(f"{path}[{_tag(m)}]", "", m) for m in typing.get_args(item)]
        return _children(args[0], f"{path}[]")
    if origin is dict:
        key = "<key path>" if path.endswith("parameters") else f"<{path.rsplit('.', 1)[-1].rstrip('s')}>"
        return _children(args[1], f"{path}.{key}")
    return [(path, "", tp)] if _is_model(tp) else []


def _section(model: type[BaseModel], path: str, qualifier: str, out: list[_Section]) -> None:
    title = (f"`{path}`" if path else "Top level") + (f" with {qualifier}" if qualifier else "")
    rule_doc = _doc(sys.modules[model.__module__]) if model.__name__ == "Params" else ""  # engine/strategies/*.py
    intro = _doc(model) or rule_doc
    section = _Section(title, intro)
    out.append(section)
    if model.__name__ == "Scenario":
        section.rows.append(("extends", "path or list of paths", "`null`", "",
                             "Scenario file(s) this one builds on (relative to this file); see the merge rules."))
    tag_field = _tag_field(model)
    below = []
    names = sorted(model.model_fields, key=lambda n: n != tag_field)  # the `type:` row first
    for name in names:
        f = model.model_fields[name]
        key = f"{path}.{name}" if path else name
        tp = f.rebuild_annotation()
        description = f.description or _section_doc(tp) or (
            f"Which kind this is: always `{_tag(model)}` here." if name == tag_field else "")
        section.rows.append((key, _type_text(tp, name), _default(f, name == tag_field), ", ".join(_bounds(tp)),
                             _rst(" ".join(description.split()))))
        below += _children(tp, key)
    for child_path, child_qualifier, child in below:
        _section(child, child_path, child_qualifier, out)


def _section_doc(tp: Any) -> str:
    children = _children(tp, "")
    return _doc(children[0][2]) if len(children) == 1 else ""


def _table(section: _Section) -> str:
    lines = [f"### {section.title}", ""]
    if section.intro:
        lines += [section.intro, ""]
    lines += ["| Key | Type | Default | Bounds | Description |", "|---|---|---|---|---|"]
    for key, type_text, default, bounds, description in section.rows:
        cells = [f"`{key}`", _cell(type_text), _cell(default), _cell(bounds), _cell(description)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- prose from docstrings
def _rst_table(doc: str) -> str:
    """The first RST simple table of ``doc`` as a Markdown table (continuation lines joined)."""
    lines = doc.splitlines()
    rules = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*=+(\s+=+)+\s*", line)]
    if len(rules) < 3:
        raise ValueError("no RST simple table found")
    spans = [m.span() for m in re.finditer(r"=+", lines[rules[0]])]

    def cells(line: str) -> list[str]:
        return [line[a:b if k < len(spans) - 1 else None].strip() for k, (a, b) in enumerate(spans)]

    header = cells(lines[rules[0] + 1])
    rows: list[list[str]] = []
    for line in lines[rules[1] + 1:rules[2]]:
        parts = cells(line)
        if parts[0] or not rows:
            rows.append(parts)
        else:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], parts)]
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(_cell(_rst(c)) for c in row) + " |" for row in rows]
    return "\n".join(md)


def _paragraph(doc: str, start: str) -> str:
    for para in doc.split("\n\n"):
        if para.strip().startswith(start):
            return _rst(" ".join(para.split()))
    raise ValueError(f"no paragraph starting with {start!r}")


def _literal_block(doc: str) -> str:
    """The indented block after the first ``::`` of ``doc``."""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    return "\n".join(line[4:] for line in block.splitlines())


_SET_RULES = """\
`cascade validate` and `cascade show` take `--set key.path=value` (repeatable), applied after
`extends` is merged and before validation. The path is dotted; a list item is picked by index
(`shocks[0]`) or by its `id`, `name`, `rule` or `type` (`shocks[warsh]`, `strategies[protective_put]`);
missing sections are created. The value is read as YAML, so friendly units work
(`--set market.spot_usd=84k`, `--set 'shocks[warsh].ramp=1d'`); an empty value sets `null`.
Quote paths with brackets in the shell."""

_KEY_NOTATION = """\
Paths are written as for `--set`: `shocks[margin_hike]` is an item of `shocks` with
`type: margin_hike` (and `strategies[collar]` one with `rule: collar`), `[]` any item of a list,
`<name>` a key you choose. *Required* keys must be given whenever their section is written; a
section whose default is "(its defaults)" may be left out. Bounds use the key's own units.
A sweep spec (`{values: [...]}`, `{range: [...]}`, ...) is accepted wherever a type says so."""


def _prose() -> list[str]:
    units_doc, loader_doc, sweep_doc = units.__doc__, loader.__doc__, sweep.__doc__
    use_doc = strategy_files.__doc__
    return [
        "## Friendly values",
        _rst(" ".join(units_doc.strip().split("\n\n")[0].split())),
        _rst_table(units_doc),
        _paragraph(units_doc, "Amount suffixes"),
        "A *when* is either a timestamp or an offset from `horizon.start` written `+2d`, `+36h`. "
        "A *name* is letters, digits, `_`, `.` and `-`, starting with a letter or digit (at most 80 "
        "characters). A *number* is a plain finite number. Quote times of day (`\"14:30\"`).",
        "## Building on other files: `extends` and `--set`",
        _paragraph(loader_doc, "Steps:").split(". ")[0] + ".",
        _paragraph(loader_doc, "Merge rules"),
        _SET_RULES,
        "## Sweeps",
        _paragraph(sweep_doc, "A sweepable parameter").rstrip(":") + ":",
        "```\n" + _literal_block(sweep_doc) + "\n```",
        _paragraph(sweep_doc, "Every expanded value"),
        _paragraph(sweep_doc, "A duration sweep"),
        "## Strategy files: `use`",
        _paragraph(use_doc, "A strategy file is").rstrip(":") + ":",
        "```yaml\n" + _literal_block(use_doc) + "\n```",
        _paragraph(use_doc, "A bare name"),
    ]


def _use_section() -> _Section:
    """The ``strategies[use]`` table: a ``use:`` item is expanded by the loader, not a model's field."""
    section = _Section("`strategies[use]`", "An item replaced by the entries of a strategy file (see "
                       "\"Strategy files: `use`\"); it holds no other key.")
    section.rows.append(("strategies[use].use", "library name or path", "required", "",
                         "`NAME`: `strategies/NAME.yaml` in this file's folder or the nearest parent folder that "
                         "has one, else under the current directory; `dir/file.yaml`: a path relative to this file."))
    return section


def _duration_sweep_sections() -> list[_Section]:
    """The table of a duration sweep spec (``tenor: {values: [14d, 30d]}``): the same keys wherever
    a duration key says "or a sweep spec", so one table after ``sweep.parameters``'s spec."""
    out: list[_Section] = []
    _section(sweep.DurationSweep, "<duration key>", "", out)
    return out


def schema_markdown() -> str:
    """The whole reference as Markdown (what ``cascade schema --markdown`` prints)."""
    from .schema import Scenario

    sections: list[_Section] = []
    _section(Scenario, "", "", sections)
    first_rule = next(i for i, s in enumerate(sections) if s.title.startswith("`strategies["))
    sections.insert(first_rule, _use_section())
    number_spec = next(i for i, s in enumerate(sections) if s.title.startswith("`sweep.parameters."))
    sections[number_spec + 1:number_spec + 1] = _duration_sweep_sections()
    blocks = [
        f"<!-- Generated from the scenario models by `{REGENERATE}`; do not edit. -->",
        "# Scenario file reference",
        "Every key a scenario YAML file may hold, generated from the schema the loader validates "
        "with. For editors, `cascade schema -o scenario.schema.json` writes the same schema as "
        "JSON Schema.",
        *_prose(),
        "## Keys",
        _KEY_NOTATION,
        *(_table(s) for s in sections),
    ]
    return "\n\n".join(block.strip("\n") for block in blocks) + "\n"
