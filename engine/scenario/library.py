"""The shipped libraries: scenarios (``scenarios/``) and hedging programmes (``strategies/``):
find them and describe each file in one line (``cascade list``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["scenarios_dir", "list_scenarios", "list_strategies"]


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


def list_strategies(directory: str | Path | None = None) -> list[tuple[Path, str, str]]:
    """``(path, name, first line of its description)`` of every strategy file a scenario in
    ``directory`` (default: the scenario folder) can ``use:`` by name: ``strategies/*.yaml`` in that
    folder, its parents, then the current directory, the first file of each name (the order
    :func:`~engine.scenario.strategy_files.library_dirs` looks in). A file that does not load is
    listed with its error as the description."""
    from ..errors import ScenarioError
    from .strategy_files import library_dirs, load_strategy_file

    rows, seen = [], set()
    for folder in library_dirs(Path(directory) if directory else scenarios_dir()):
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                rows.append((path, path.stem, load_strategy_file(path).summary_line))
            except ScenarioError as exc:
                rows.append((path, path.stem, f"INVALID: {exc.problems[0]}"))
    return rows
