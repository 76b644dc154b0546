"""The shipped libraries described: every scenario and strategy file in one line (``cascade list``),
and the note ``validate`` and ``show`` give a scenario that leaves the calibrated mechanics at
the schema's defaults."""

from __future__ import annotations

import functools
from pathlib import Path

from .library import scenarios_dir

__all__ = ["list_scenarios", "list_strategies", "uncalibrated_note", "CALIBRATION"]


def list_scenarios(directory: str | Path | None = None) -> list[tuple[Path, str, str]]:
    """Every scenario of a library, ``history/`` and ``ci/`` ones included (``cascade list``).

    Parameters
    ----------
    directory : str or pathlib.Path, optional
        The library's folder; default: ``scenarios/`` under the current folder, else the shipped
        library (a checkout's, or a wheel's under ``<venv>/share/cascade-engine/``).

    Returns
    -------
    list of (pathlib.Path, str, str)
        ``(path, name, one-line description)`` per file, in folder order. A file that does not
        load is listed with its error as the description, so nothing broken is hidden.

    Raises
    ------
    InvalidParameterError
        ``directory`` is not an existing folder.

    Examples
    --------
    >>> import engine
    >>> names = [name for _, name, _ in engine.list_scenarios()]
    >>> "feb-2026-deleveraging" in names and "ci-calm" in names
    True
    """
    from .._params import check_path
    from ..errors import ScenarioError, invalid_parameter
    from .loader import load_scenario

    root = check_path("list_scenarios", "directory", directory, optional=True) or scenarios_dir()
    if directory is not None and not root.is_dir():
        raise invalid_parameter("list_scenarios", "directory", "an existing folder", directory)
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
    from .loader import load_strategy_file
    from .strategy_files import library_dirs

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


CALIBRATION = Path("calibration") / "feb-2026.yaml"
"""The calibrated market parameters, under the scenario library (``cascade calibrate`` writes it)."""


def uncalibrated_note(scenario, path: str | Path) -> str | None:
    """A note when ``scenario``, loaded from the file ``path``, sets none of the market keys the
    shipped calibration fits (in its file, through ``extends`` or by ``--set``): its mechanics
    (impact, the book's leverage, the traders' behaviour, volatility clustering) then take the
    schema's defaults, which no data fitted. ``None`` when it sets some, or when there is no
    calibration file to compare with (or no file the scenario was loaded from)."""
    parameters = scenarios_dir() / CALIBRATION
    doc = getattr(scenario, "_source", None)  # the loader's Document: which keys came from where
    if doc is None or not parameters.is_file():
        return None
    here = Path.cwd()
    shown = parameters.relative_to(here) if parameters.is_absolute() and parameters.is_relative_to(here) else parameters
    fitted = _fitted_keys(str(parameters), parameters.stat().st_mtime_ns)
    if any(key in fitted for key in doc.origins):
        return None
    return (f"{path}: uses uncalibrated market mechanics: it sets none of the keys fitted in "
            f"{shown} (impact, the book's leverage, the traders' behaviour, volatility clustering), "
            f"so they take the schema's defaults, which no data fitted; add `extends: <path to it>` to "
            "start from the calibrated market")


@functools.lru_cache(maxsize=4)
def _fitted_keys(path: str, _mtime_ns: int) -> frozenset:
    """The key paths the calibration file sets (read once per process, again if it changes)."""
    import yaml

    return frozenset(_leaves(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}))


def _leaves(data: dict, prefix: tuple = ()):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,)
