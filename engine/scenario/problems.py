"""Raw YAML data with where each value came from, and pydantic's validation errors turned into
:class:`~engine.errors.Problem` records at those places.

:class:`Document` is what the loader (:mod:`.loader`) and the strategy files (:mod:`.strategy_files`)
build before validation: the data, the origin (file, line, column; or a ``--set`` override) of
every key path, and the file. :func:`validation_problems` walks a pydantic ``ValidationError``
back to the key paths of the data (through unions, discriminators and sweep specs) and says what
was expected there, with the allowed keys and a did-you-mean for an unknown one.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from ..errors import Problem

__all__ = ["Document", "Origin", "scenario_problem", "validation_problems"]

Origin = tuple[str, int | None, int | None]  # file, line, column; the file a Source for a --set


class Document:
    """Raw scenario data before validation, with the origin (file, line, column) of every value."""

    def __init__(self, data: dict, origins: dict[tuple, Origin], file: str):
        self.data = data
        self.origins = origins
        self.file = file

    def locate(self, path: tuple) -> Origin:
        """Origin of ``path``, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            origin = self.origins.get(tuple(path[:cut]))
            if origin is not None:
                return origin
        return (self.file, None, None)

    def problem(self, path: tuple, message: str, **kw) -> Problem:
        file, line, column = self.locate(path)
        return Problem(message, file, line, column, tuple(path), **kw)


# ----------------------------------------------------------------------------- validation errors
def scenario_problem(scenario, path: tuple, message: str, **kw) -> Problem:
    """A problem at the key ``path`` of a loaded scenario: located at its file, line and column
    when the scenario was loaded from one (its ``_source`` :class:`Document`), else by key alone;
    ``kw``: the :class:`Problem`'s other fields (``hint``, ``expected``, ``found``, ...)."""
    doc = getattr(scenario, "_source", None)
    return doc.problem(path, message, **kw) if doc is not None else Problem(message, path=tuple(path), **kw)


def _unwrap(tp: Any, node: Any) -> Any:
    """Strip Annotated/Optional and pick the union member that ``node`` selects."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            models = [a for a in typing.get_args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]
            others = [a for a in typing.get_args(tp) if a is not type(None)]
            if isinstance(node, dict):
                for member in models:
                    for tag in ("type", "rule", "distribution"):
                        field = member.model_fields.get(tag)
                        if field is not None and node.get(tag) in typing.get_args(field.annotation):
                            return member
                if len(models) == 1:
                    return models[0]
            picked = others[0] if len(others) == 1 else (models[0] if len(models) == 1 else tp)
            if picked is not tp and typing.get_origin(picked) in (Union, typing.Annotated):
                tp = picked
                continue
            tp = picked  # a union that the node does not decide (a dict of several sweep shapes): as it is
        return tp


def _type_at(root: type, data: Any, path: tuple) -> Any:
    tp, node = root, data
    for part in path:
        tp = _unwrap(tp, node)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return None
            tp = field.annotation
        elif origin in (list, tuple):
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return _unwrap(tp, node)


_TYPE_MARKERS = {"sweep", "value", "float", "int", "str", "bool", "list", "dict", "tuple",
                 "datetime", "timedelta", "date", "none", "[key]"}


def _skip(node: dict, part: Any) -> bool:
    if not isinstance(part, str):
        return False
    tags = {node.get(k) for k in ("type", "rule", "distribution")}
    return (
        part in tags
        or part in _TYPE_MARKERS
        or part.startswith(("function-", "tagged-union", "literal["))
        or part[:1].isupper()
        or "[" in part
    )


def _data_path(data: Any, loc: tuple) -> tuple:
    """pydantic's ``loc`` includes union tags (``'margin_hike'``); keep only the real keys."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            if part not in node:  # pydantic spells a date key 2026-01-30 as 'datetime.date(2026, 1, 30)'
                part = next((k for k in node if not isinstance(k, str) and part in (repr(k), str(k))), part)
            if part in node:
                path.append(part)
                node = node[part]
            elif not _skip(node, part):
                path.append(part)  # a missing or unknown key
                node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


def _clean(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def _did_you_mean(word: str, options) -> str | None:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def validation_problems(root: type, doc: Document, exc: ValidationError) -> list[Problem]:
    problems = []
    seen = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _data_path(doc.data, loc)
        kind = err["type"]
        msg = _clean(err["msg"])
        hint = None
        found, has_found = err.get("input"), True
        if kind == "extra_forbidden":
            parent = _type_at(root, doc.data, path[:-1])
            allowed = list(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
            msg = f"unknown key {path[-1]!r}"
            hint = _did_you_mean(path[-1], allowed)
            if allowed:
                hint = (hint + " " if hint else "") + f"allowed here: {', '.join(allowed)}"
            has_found = False
        elif kind == "missing":
            msg = f"required key {path[-1]!r} is missing"
            has_found = False
        elif kind == "union_tag_invalid":
            ctx = err.get("ctx", {})
            tags = re.findall(r"'([^']+)'", ctx.get("expected_tags", ""))
            field = ctx.get("discriminator", "type").strip("'")
            tag = ctx.get("tag")
            msg = f"unknown {field} {tag!r}; expected one of {', '.join(tags)}"
            hint = _did_you_mean(tag, tags)
            path = path + (field,) if field not in path[-1:] else path
            has_found = False
        elif kind == "union_tag_not_found":
            field = err.get("ctx", {}).get("discriminator", "type").strip("'")
            msg = f"missing the {field!r} key that says which kind this is"
            has_found = False
        key = (path, msg)
        if key in seen:
            continue
        seen.add(key)
        if has_found and isinstance(found, (dict, list)):
            has_found = False
        problems.append(doc.problem(path, msg, found=found, has_found=has_found, hint=hint))
    return problems
