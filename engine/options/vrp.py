"""The variance risk premium measured from data: what options quote over what the market then did.

``market.options.variance_risk_premium`` is the ratio of ATM implied vol to the realised vol over
the option's tenor, minus 1 (implied vols carry a premium: option sellers are paid for bearing
crash risk). :func:`measure` reads it from the option-chain snapshots in ``../shared/data/options/``:
for each snapshot, the fitted 30-day ATM vol (:func:`engine.options.surface.fit_surface`) against
the realised vol of BTC's daily closes over the 30 days that followed, and averages the ratios.

Two snapshots (14 and 21 May 2020) are all the data holds, so the default is a rough estimate,
and it is high: 85% and 84% implied against 62% and 56% realised (ratios 1.37 and 1.51, mean
1.44). The quote of 29 January 2026 the flagship starts from (55% against 34% realised over the
prior 30 days, ../shared/facts) is of the same order. Override it per scenario.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["measure", "VrpObservation", "DEFAULT_VRP", "TENOR_DAYS"]

TENOR_DAYS = 30
DEFAULT_VRP = 0.44  # measure() on ../shared/data, rounded (tests/test_options.py recomputes it)

_SNAPSHOT_GLOB = "options/deribit_btc_options_chain_snapshot_*.csv"
_DAILY = "btc_daily_binance_BTCUSDT_2019-03-08_2026-04-05.csv"


@dataclass(frozen=True)
class VrpObservation:
    snapshot: str
    day: str
    atm_iv: float  # fitted ATM implied vol at the 30-day tenor
    realised_vol: float  # annualised vol of daily log returns over the next 30 days
    ratio: float  # atm_iv / realised_vol


def measure(data_dir: str | Path) -> tuple[float, list[VrpObservation]]:
    """``(mean ratio - 1, the observations)`` from the chain snapshots and daily closes in ``data_dir``."""
    import pandas as pd

    from .surface import fit_surface, load_deribit_chain

    data_dir = Path(data_dir)
    daily = pd.read_csv(data_dir / _DAILY, usecols=["timestamp", "close"])
    close = pd.Series(daily["close"].to_numpy(float), index=pd.to_datetime(daily["timestamp"], utc=True))
    log_returns = np.log(close).diff()
    out = []
    for path in sorted(data_dir.glob(_SNAPSHOT_GLOB)):
        chain = load_deribit_chain(path)
        atm = float(fit_surface(chain).surface.atm)
        taken = pd.to_datetime(pd.read_csv(path, usecols=["timestamp"])["timestamp"].median(), unit="ms", utc=True)
        day = taken.normalize()
        after = log_returns[(log_returns.index > day) & (log_returns.index <= day + pd.Timedelta(days=TENOR_DAYS))]
        if len(after) < TENOR_DAYS - 1:
            continue
        realised = float(after.std() * np.sqrt(365.25))
        out.append(VrpObservation(path.name, str(day.date()), atm, realised, atm / realised))
    if not out:
        raise ValueError(f"{data_dir}: no option-chain snapshot with 30 days of daily closes after it")
    return float(np.mean([o.ratio for o in out]) - 1.0), out
