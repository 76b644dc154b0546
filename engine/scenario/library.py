"""The shipped scenario library (``scenarios/``): find it and describe each file in one line."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["scenarios_dir", "list_scenarios"]


def scenarios_dir() -> Path:
    """``$CASCADE_SCENARIOS``, else ``./scenarios``, else the checkout the package was installed from."""
    env = os.environ.get("CASCADE_SCENARIOS")
    if env:
        return Path(env)
    here = Path.cwd() / "scenarios"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "scenarios"


def list_scenarios(directory: str | Path | None = None) -> list[tuple[Path, str, str]]:
    """``(path, name, one-line description)`` for every scenario, ``history/`` and ``ci/`` ones included.

    A file that does not load is listed with its error as the description, so ``cascade list``
    never hides a broken scenario.
    """
    from ..errors import ScenarioError
    from .loader import load_scenario

    root = Path(directory) if directory else scenarios_dir()
    rows = []
    for path in sorted(root.glob("*.yaml")) + sorted(root.glob("history/*.yaml")) + sorted(root.glob("ci/*.yaml")):
        try:
            scenario = load_scenario(path)
            rows.append((path, scenario.name, scenario.summary_line))
        except ScenarioError as exc:
            rows.append((path, "?", f"INVALID: {exc.problems[0]}"))
    return rows
