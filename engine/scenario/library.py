"""Where the shipped libraries are: scenarios (``scenarios/``), hedging programmes (``strategies/``)
and baselines, in a checkout or installed from a wheel; a scenario found by its bare name.
Listing and describing them is :mod:`.catalog`'s (it loads files; this module loads none)."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

__all__ = ["scenarios_dir", "shipped_dir", "find_scenario", "on_disk"]

SHARE = Path("share") / "cascade-engine"
"""Where a wheel installs the shipped libraries, under the installation's data path
(``<venv>/share/cascade-engine/``: ``scenarios/``, ``strategies/``, ``results/baselines/``)."""


def shipped_dir() -> Path | None:
    """The folder holding the shipped ``scenarios/``, ``strategies/`` and ``results/baselines/``:
    the checkout the package runs from (an editable install), else what a wheel installed under
    the environment's data path (or the user's, for ``pip install --user``); ``None`` if neither."""
    checkout = Path(__file__).resolve().parents[2]
    candidates = [checkout]
    for scheme in (None, f"{os.name}_user"):
        try:
            data = sysconfig.get_path("data", scheme) if scheme else sysconfig.get_path("data")
        except KeyError:
            continue
        candidates.append(Path(data) / SHARE)
    candidates.append(Path(sys.prefix) / SHARE)
    return next((c for c in candidates if (c / "scenarios").is_dir() and (c / "strategies").is_dir()), None)


def scenarios_dir() -> Path:
    """``$CASCADE_SCENARIOS``, else ``./scenarios``, else the shipped library (:func:`shipped_dir`)."""
    env = os.environ.get("CASCADE_SCENARIOS")
    if env:
        return Path(env)
    here = Path.cwd() / "scenarios"
    if here.is_dir():
        return here
    shipped = shipped_dir()
    return shipped / "scenarios" if shipped is not None else here


def find_scenario(name: str) -> Path | None:
    """A scenario named by its file's stem (``feb-2026-deleveraging``), looked up as ``cascade list``
    lists them: in :func:`scenarios_dir`, then its ``history/`` and ``ci/``; ``None`` when ``name``
    is a path or no file has that stem."""
    if not name or any(sep in name for sep in ("/", os.sep)) or name.endswith((".yaml", ".yml")):
        return None
    root = scenarios_dir()
    for folder in (root, root / "history", root / "ci"):
        if on_disk(folder / f"{name}.yaml", file=True):
            return folder / f"{name}.yaml"
    return None


def on_disk(path: str | Path, *, file: bool = False) -> bool:
    """Whether ``path`` names something on disk (with ``file``, a regular file); a name the
    system refuses (too long, a NUL) names nothing."""
    try:
        return Path(path).is_file() if file else Path(path).exists()
    except (OSError, ValueError):
        return False
