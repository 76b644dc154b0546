"""Key paths, as ``--set`` and ``sweep.parameters`` write them: ``shocks[etf_run].total_usd``.

:func:`split_path` reads one into its parts; :func:`set_path` sets a value there in a scenario's
plain data (lists are indexed by position or by an item's ``id``, ``name``, ``rule`` or
``type``). The one place that walks a key path: the loader (``--set``), the semantic checks, the
sweeps, the reverse stress test and the calibration all call these. :func:`strategy_key` reads a
sweep's ``strategies[LABEL].field`` key the way the sweeps match it to one strategy.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import format_path

__all__ = ["split_path", "set_path", "strategy_key"]


_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def split_path(text: str) -> tuple:
    """``'shocks[etf_run].total_usd'`` -> ``('shocks', 'etf_run', 'total_usd')``; ``[2]`` -> ``2``."""
    error = f"cannot read key path {text!r}; write it like market.spot_usd or shocks[0].start"
    parts: list = []
    pos = 0
    for match in _TOKEN.finditer(text):
        name, index = match.groups()
        gap = text[pos:match.start()]  # a name after the first needs a '.', an [index] nothing
        if gap != ("." if parts and name is not None else ""):
            raise ValueError(error)
        if name is not None:
            parts.append(name)
        else:
            parts.append(int(index) if re.fullmatch(r"-?\d+", index) else index)
        pos = match.end()
    if pos != len(text) or not parts:
        raise ValueError(error)
    return tuple(parts)


def _list_index(items: list, key, done: tuple) -> int:
    if isinstance(key, int):
        if not -len(items) <= key < len(items):
            raise KeyError(f"{_fmt(done)} has {len(items)} items; index {key} is out of range")
        return key % len(items)
    for i, item in enumerate(items):
        if isinstance(item, dict) and key in (item.get("id"), item.get("name"), item.get("rule"), item.get("type")):
            return i
    labels = [str(it.get("id") or it.get("name") or it.get("rule") or it.get("type"))
              for it in items if isinstance(it, dict)]
    raise KeyError(f"{_fmt(done)} has no item {key!r}; items: {', '.join(labels) or 'none'}")


def _fmt(path: tuple) -> str:
    return format_path(path) or "<top>"


def set_path(data: dict, path: tuple, value: Any, *, create: bool = True) -> tuple:
    """Set ``value`` at ``path`` in nested dicts/lists; returns the concrete (indexed) path."""
    node: Any = data
    concrete: tuple = ()
    for i, key in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            key = _list_index(node, key, concrete)
        elif isinstance(node, dict):
            if key not in node:  # 'shocks[x].daily_flows_usd.2026-02-04' names a date key
                key = next((k for k in node if str(k) == str(key)), key)
            if key not in node:
                if not create:
                    raise KeyError(f"{_fmt(concrete + (key,))} is not set in this scenario")
                if not last and isinstance(path[i + 1], int):
                    raise KeyError(f"{_fmt(concrete + (key,))} is not set in this scenario, "
                                   f"so it has no item [{path[i + 1]}]")
                if not last:
                    node[key] = {}
        else:
            raise KeyError(f"{_fmt(concrete)} is a value, not a section; cannot set {key!r} inside it")
        concrete += (key,)
        if last:
            node[key] = value
        else:
            node = node[key]
    return concrete


def strategy_key(key: str) -> tuple[str, str] | None:
    """``'strategies[put].costs.fee_rate'`` -> ``('put', 'costs.fee_rate')``: the strategy label
    (its name, or its rule) a sweep key names and the field path inside that strategy; ``None``
    for a key outside ``strategies[...]``. The label ends at the first ``].``."""
    if not key.startswith("strategies["):
        return None
    label, _, rest = key[len("strategies["):].partition("].")
    return label, rest
