"""Fixtures shared by every test module: where things are, a tiny valid scenario, a YAML writer,
the headless browser and plotly for report tests."""

from __future__ import annotations

import copy
import os
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (the folder holding ``engine/`` and ``scenarios/``)."""
SCENARIOS = ROOT / "scenarios"
"""The shipped scenario library."""
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
"""Market data shared between projects; not part of this repository and possibly absent."""

TINY_SCENARIO = {
    "name": "tiny",
    "description": "A minimal valid scenario: two days, hourly steps, a small book.",
    "seed": 7,
    "n_paths": 64,
    "horizon": {"start": "2026-01-29T00:00:00Z", "duration": "2d", "step": "1h"},
    "market": {
        "spot_usd": "88.5k",
        "perpetuals": {
            "long": {"notional_usd": "38B"},
            "short": {"notional_usd": "23B"},
        },
    },
}


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def scenarios_dir() -> Path:
    return SCENARIOS


@pytest.fixture
def tiny_scenario() -> dict:
    """Raw data of a minimal valid scenario (as a YAML file would hold it); a fresh copy per test.

    Horizon 2026-01-29 00:00 UTC + 2d at 1h (48 steps), 64 paths, no shocks, one venue ``all``.
    """
    return copy.deepcopy(TINY_SCENARIO)


@pytest.fixture
def write_yaml(tmp_path):
    """``write_yaml("name.yaml", content) -> Path`` in ``tmp_path``.

    ``content`` is YAML text (dedented, so triple-quoted blocks may be indented) or a mapping,
    which is dumped as YAML. Sub-folders in ``name`` are created.
    """

    def write(name: str, content) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            text = textwrap.dedent(content).lstrip("\n")
        else:
            text = yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (relative to the repository root), or skip the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data is absent: no shared market data next to this checkout ({SHARED_DATA})")
    return SHARED_DATA


@pytest.fixture(scope="session")
def hourly(shared_data) -> Path:
    """The hourly Binance BTCUSDT closes the calibration reads (``../shared/data``)."""
    return shared_data / "btc_hourly_binance_BTCUSDT_2025-03-05_2026-04-05.csv"


@pytest.fixture(scope="session")
def facts(shared_data) -> Path:
    """``../shared/facts/feb-2026-deleveraging.yaml``, the observed figures of February 2026."""
    path = shared_data.parent / "facts" / "feb-2026-deleveraging.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _unavailable(reason: str) -> None:
    """Skip the test, except on CI (``CI=true``), where a missing tool must fail, not pass silently."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless Chromium executable (``$CASCADE_CHROMIUM`` or found on PATH).

    Skips the test when there is none, except on CI (``CI=true``), where it fails:
    ``.ci/run`` installs Chromium, so a missing browser there is a broken setup.
    """
    from engine.results.browser import find_chromium

    path = find_chromium()
    if path is None:
        _unavailable("no Chromium found: install it (apt-get install chromium) or set CASCADE_CHROMIUM")
    return path


@pytest.fixture(scope="session")
def plotly_io():
    """``plotly.io``, to build real report pages; skip without plotly (fail on CI, like ``chromium``)."""
    try:
        import plotly.io
    except ImportError:
        _unavailable("plotly is not installed")
    return plotly.io
