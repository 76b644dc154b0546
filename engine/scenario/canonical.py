"""A scenario as canonical YAML (``cascade show``) and the JSON Schema for editors (``cascade schema``)."""

from __future__ import annotations

import yaml

__all__ = ["dump_scenario", "scenario_json_schema", "to_plain"]


def to_plain(scenario) -> dict:
    """Every field, defaults included, in the friendly units the loader reads back; ``limits``
    only when there are some (they change no number, and a scenario without them keeps the
    canonical text, and so the hashes, it had before they existed)."""
    plain = _number_keys(scenario.model_dump(mode="json"), scenario.model_dump())
    if not plain.get("limits", True):
        del plain["limits"]
    return plain


def _number_keys(plain, python):
    """JSON mode turns number keys (``weights: {3: 20%}``) into text; put the numbers back."""
    if isinstance(plain, dict) and isinstance(python, dict):
        return {
            (key if isinstance(key, (int, float)) and not isinstance(key, bool) else text):
                _number_keys(value, python[key])
            for (text, value), key in zip(plain.items(), python)
        }
    if isinstance(plain, list) and isinstance(python, (list, tuple)):
        return [_number_keys(a, b) for a, b in zip(plain, python)]
    return plain


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_scenario(scenario) -> str:
    """Canonical YAML of a resolved scenario: ``extends`` merged, overrides applied, defaults shown.

    Parameters
    ----------
    scenario : Scenario
        A loaded scenario (:func:`engine.load_scenario`).

    Returns
    -------
    str
        YAML text; loading it gives back an equal scenario (``cascade show`` prints it).

    Raises
    ------
    InvalidParameterError
        ``scenario`` is not a loaded :class:`~engine.scenario.schema.Scenario`.

    Examples
    --------
    >>> import engine, pathlib, tempfile
    >>> calm = engine.load_scenario("scenarios/ci/ci-calm.yaml")
    >>> text = engine.dump_scenario(calm)
    >>> text.splitlines()[0]
    '# ci-calm: resolved by cascade-engine (extends merged, defaults filled in)'
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     copy = pathlib.Path(tmp, "calm.yaml")
    ...     _ = copy.write_text(text)
    ...     engine.load_scenario(copy) == calm
    True
    """
    from .._params import check_scenario

    check_scenario("dump_scenario", "scenario", scenario, path=False)
    header = f"# {scenario.name}: resolved by cascade-engine (extends merged, defaults filled in)\n"
    return header + yaml.dump(to_plain(scenario), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


DRAFTS = {"2020-12": "https://json-schema.org/draft/2020-12/schema", "7": "http://json-schema.org/draft-07/schema#"}


def to_draft7(node):
    """A draft 2020-12 schema as draft-07 says the same (yaml-language-server, and editors built
    on it, validate up to draft-07): ``$defs`` -> ``definitions`` (and the ``$ref`` pointing there),
    ``prefixItems`` -> ``items`` as a list (a closed tuple: ``additionalItems: false``)."""
    if isinstance(node, list):
        return [to_draft7(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$defs":
            out["definitions"] = to_draft7(value)
        elif key == "$ref" and isinstance(value, str):
            out["$ref"] = value.replace("#/$defs/", "#/definitions/")
        elif key == "prefixItems":
            out["items"] = to_draft7(value)
            if node.get("items", True) is False:
                out["additionalItems"] = False
        elif key == "items" and "prefixItems" in node:
            continue
        else:
            out[key] = to_draft7(value)
    return out


def scenario_json_schema(draft: str = "2020-12") -> dict:
    """JSON Schema of scenario files, ``extends`` and ``overrides`` included.

    Parameters
    ----------
    draft : {"2020-12", "7"}
        The JSON Schema draft: 2020-12, or 7 for tools that stop at draft-07, as
        yaml-language-server does (:func:`to_draft7`).

    Returns
    -------
    dict
        The schema (``cascade schema`` prints it as JSON).

    Raises
    ------
    InvalidParameterError
        An unknown ``draft``.

    Examples
    --------
    >>> import engine
    >>> schema = engine.scenario_json_schema(draft="7")
    >>> schema["$schema"], "definitions" in schema, "$defs" in schema
    ('http://json-schema.org/draft-07/schema#', True, False)
    >>> sorted(schema["required"])
    ['horizon', 'market', 'name']
    """
    from .._params import check_choice
    from .schema import Scenario

    check_choice("scenario_json_schema", "draft", draft, tuple(DRAFTS))

    schema = Scenario.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://cascade-engine.dev/scenario.schema.json"
    schema.setdefault("properties", {})["extends"] = {
        "description": "Path (relative to this file) of a scenario to extend, or a list of them.",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    schema["properties"]["overrides"] = {
        "description": "Key paths (as --set takes them) -> values, applied after the extends merge.",
        "type": "object",
    }
    # `key+` appends to the parent's list of the same name
    schema["patternProperties"] = {r"^[a-z_]+\+$": {"type": "array"}}
    strategies = schema["properties"]["strategies"]
    strategies["items"] = {"anyOf": [strategies["items"], USE_SCHEMA]}
    _add_bounds(schema, _models(Scenario))
    if draft == "7":
        schema = to_draft7(schema)
        schema["$schema"] = DRAFTS["7"]
    return schema


USE_SCHEMA = {  # a strategies: item naming a strategy file (engine.scenario.strategy_files)
    "type": "object",
    "properties": {"use": {"type": "string", "description": "A strategy file: a library name "
                           "(strategies/NAME.yaml here or in a parent folder) or a path relative to this file."}},
    "required": ["use"],
    "additionalProperties": False,
}

_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def _models(root) -> list:
    """Every pydantic model reachable from ``root``'s field annotations."""
    import typing

    from pydantic import BaseModel

    seen: list = []

    def walk(tp):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp not in seen:
                seen.append(tp)
                for field in tp.model_fields.values():
                    walk(field.annotation)
                    for meta in field.metadata:
                        walk(meta)
        for arg in typing.get_args(tp):
            walk(arg)

    walk(root)
    return seen


def _number_branches(prop: dict):
    if prop.get("type") in ("number", "integer"):
        yield prop
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in prop.get(key, []):
            yield from _number_branches(sub)


def _add_bounds(schema: dict, models: list) -> None:
    """Our unit types publish their own schema, which drops pydantic's bounds: put them back on
    the numeric branch, so editors flag ``n_paths: 0`` or ``depth_multiplier: -1`` as you type."""
    targets = [schema, *schema.get("$defs", {}).values()]
    for model in models:
        names = set(model.model_fields)
        for target in targets:
            if target.get("title") != model.__name__ or set(target.get("properties", {})) - {"extends", "overrides"} != names:
                continue
            for name, field in model.model_fields.items():
                bounds = {key: getattr(meta, attr) for meta in field.metadata
                          for attr, key in _BOUNDS.items() if getattr(meta, attr, None) is not None}
                if bounds:
                    for branch in _number_branches(target["properties"][name]):
                        branch.update(bounds)
