"""Replay: the position book and the behavioural flows along an observed price path.

``replay(scenario, prices, start, end)`` runs the scenario's leveraged book and flows along real
closes instead of a simulated path, and reconstructs what the model implies step by step: long
and short liquidations, open interest, who traded, the funding rate and the book's margin stress.
:meth:`ReplayResult.compare_facts` sets them beside reported figures (a facts file such as
``../shared/facts/feb-2026-deleveraging.yaml``).

What runs. The kernel is the simulation's (:func:`engine.nb.kernel.simulate_nb`) with the price
given: at every step the observed close replaces the exogenous move, and the impact coefficients
are 0, so the flows and the liquidations are computed and recorded but do not move the price (the
observed path already holds their effect). Everything else runs as simulated: the initial book,
funding payments moving bankruptcy prices, margin hikes (top-ups and cuts), liquidations when the
price between two closes reaches a trigger (the path between them is the straight line: no wick
is drawn; all crossed cells in one round, each at its trigger), bad debt, the
insurance fund and ADL, circuit breakers, positions closing (holding time, stop-loss and
take-profit, realised vol of the observed returns, funding) and new ones replacing them, momentum
traders, ETF flows scheduled and reflexive, miners, dealers.
A shock's effect on the price (drift, vol, jumps, macro factor, depth, resilience) is superseded by
the observed path; its effect on the book and flows stays.

Randomness. The kernel's draws only move the price, which replay overwrites: a replay does not
depend on the seed's path streams, and runs one path. What the seed decides at compile time (the
daily flows of a generated ETF run) is drawn as for a simulation.

Time. ``prices`` are closes indexed like exchange candles, by the *start* of each interval (the
00:00 row of an hourly file closes at 01:00), as :func:`engine.history.data.load_ohlcv` returns them.
Step ``t`` of the replay is row ``t`` of the window: it starts at the row's time and ends at its
close; the book starts at the close of the row before the window (the scenario's ``spot_usd`` is
replaced by it). The window is ``[start, end)`` in row times: a date alone means 00:00 UTC for
``start`` and the end of that day for ``end``; without them, the scenario's horizon
(``horizon.start`` and ``horizon.duration``; ``end`` alone keeps ``horizon.start``, ``start``
alone keeps the duration). The horizon becomes the window at the data's step, so the scenario's
events (shock starts, ETF days, margin schedule) must fall inside it.

Margin stress, per step at its close (:func:`engine.nb.book.stress_nb`):

* ``near_liquidation_share``: the share of open interest whose liquidation price is within 5% of
  the price (a 5% move against it liquidates it; crossed but paused positions count too);
  ``long_near_liquidation_usd`` and ``short_near_liquidation_usd`` are the amounts;
* ``long_leverage`` / ``short_leverage``: a side's notional over its equity (margin left at the
  price, ``size * (S - P_b)`` for longs, ``size * (P_b - S)`` for shorts, fees ignored), the
  side's aggregate effective leverage (NaN when its equity is not positive);
* ``long_over_4x_usd`` / ``short_over_4x_usd``: the notional above 4x effective leverage.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import write_with
from .._format import usd_2f
from .data import ISO_DATE, fact_day, load_facts

__all__ = ["replay", "ReplayResult", "render_replay", "FLOW_COLUMNS"]

# the flows the table keeps (USD, sell < 0); liquidations have their own columns
FLOW_COLUMNS = {"etf": "etf_flow_usd", "deleveraging": "deleveraging_flow_usd", "dealers": "dealer_flow_usd",
                "miners": "miner_flow_usd", "momentum": "momentum_flow_usd",
                "new_positions": "new_positions_flow_usd", "forced": "forced_flow_usd", "margin_cuts": "margin_cut_usd"}


def _bound(value, what: str, *, end: bool) -> pd.Timestamp | None:
    """A window bound as a UTC time; a date alone is that day's 00:00 (start) or the next day's (end)."""
    if value is None:
        return None
    whole_day = False
    if isinstance(value, datetime):
        ts = pd.Timestamp(value)
    elif isinstance(value, date):
        ts, whole_day = pd.Timestamp(value), True
    else:
        text = str(value).strip()
        whole_day = bool(ISO_DATE.fullmatch(text))
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise ValueError(f"{what}: expected a date or a time (UTC) like 2026-02-05 or 2026-02-05T14:00, "
                             f"got {text!r}") from None
        if ts is pd.NaT:
            raise ValueError(f"{what}: expected a date or a time, got {text!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts + pd.Timedelta(days=1) if whole_day and end else ts


def _step_of(prices: pd.Series) -> pd.Timedelta:
    step = prices.attrs.get("step")
    if step is None:
        step = pd.Series(prices.index).diff().mode().iloc[0]
    return pd.Timedelta(step)


def _window(prices: pd.Series, scenario, start, end):
    """The rows replayed, the close before them, the step, and a description of where the window came from."""
    if not isinstance(prices, pd.Series) or not isinstance(prices.index, pd.DatetimeIndex):
        raise ValueError("prices: expected a pandas Series of closes indexed by time (engine.history.data.load_ohlcv)")
    if len(prices) < 3:
        raise ValueError(f"prices: {len(prices)} rows, at least 3 needed")
    if prices.index.tz is None:
        prices = prices.tz_localize("UTC")
    step = _step_of(prices)
    if not pd.Timedelta(minutes=1) <= step <= pd.Timedelta(days=1) or step % pd.Timedelta(minutes=1):
        raise ValueError(f"prices: rows every {step}, expected whole minutes between 1 minute and 1 day")
    lo = _bound(start, "start", end=False)
    hi = _bound(end, "end", end=True)
    source = "--start/--end" if start is not None or end is not None else "the scenario's horizon"
    if lo is None:
        lo = pd.Timestamp(scenario.horizon.start).tz_convert("UTC")
    if hi is None:
        hi = lo + pd.Timedelta(scenario.horizon.duration)
    if hi <= lo:
        raise ValueError(f"the window {lo:%Y-%m-%d %H:%M} .. {hi:%Y-%m-%d %H:%M} UTC is empty")
    index = prices.index
    first, last = index[0], index[-1]
    covered = f"the data's closes cover {first + step:%Y-%m-%d %H:%M} .. {last + step:%Y-%m-%d %H:%M} UTC"
    if lo < index[1]:
        raise ValueError(f"the window ({source}) starts at {lo:%Y-%m-%d %H:%M} UTC, but the book needs the close "
                         f"before the window's first step and {covered} (the first row only gives the start price)")
    if hi > last + step:
        raise ValueError(f"the window ({source}) ends at {hi:%Y-%m-%d %H:%M} UTC, after the data's last close; "
                         f"{covered}")
    inside = (index >= lo) & (index < hi)
    k = int(np.argmax(inside))
    n = int(inside.sum())
    if n < 2:
        raise ValueError(f"the window ({source}) {lo:%Y-%m-%d %H:%M} .. {hi:%Y-%m-%d %H:%M} UTC holds {n} rows of "
                         "the data, at least 2 needed")
    rows = prices.iloc[k:k + n]
    gaps = np.flatnonzero(np.asarray(rows.index[1:] - rows.index[:-1]) != step.to_timedelta64())
    if gaps.size:
        raise ValueError(f"prices: rows are not regular in time at {rows.index[gaps[0]]} (a gap or a different "
                         "step): read the file with engine.history.data.load_ohlcv, which fills missing rows")
    values = rows.to_numpy(dtype=np.float64)
    before = float(prices.iloc[k - 1])
    if not (np.isfinite(values).all() and (values > 0).all() and math.isfinite(before) and before > 0):
        raise ValueError("prices: the window holds a missing, zero or negative close")
    return rows, before, step


def _replayed_scenario(scenario, rows: pd.Series, spot: float, step: pd.Timedelta):
    """The scenario over the window: horizon = the rows at the data's step, spot = the close before,
    one path. Validated again, so events outside the window are reported."""
    from ..errors import ScenarioError
    from ..scenario.loader import load_scenario, source_data

    data = source_data(scenario)
    minutes = int(step / pd.Timedelta(minutes=1))
    data["horizon"] = {"start": rows.index[0].strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": f"{minutes * len(rows)}m",
                       "step": f"{minutes}m"}
    data.setdefault("market", {})["spot_usd"] = spot
    data["n_paths"] = 1
    try:
        return load_scenario(data)
    except ScenarioError as exc:
        end = rows.index[-1] + step
        problems = "; ".join(f"{p.key}: {p.message}" if p.path else p.message for p in exc.problems)
        raise ValueError(f"{scenario.name}: the replay window {rows.index[0]:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} "
                         f"UTC does not fit the scenario: {problems}") from None


def replay(scenario, prices: pd.Series, start=None, end=None, *, overrides=()) -> ReplayResult:
    """Run the scenario's book and flows along the observed ``prices`` (see the module docstring).

    ``scenario`` is a :class:`engine.Scenario` or a scenario file (``overrides`` are ``--set``
    strings for a file). ``prices`` are closes indexed by candle start time, regular in time.
    Raises :class:`ValueError` with a message for the user when the window and the data or the
    scenario do not fit.
    """
    from ..compile.compiler import compile_scenario
    from ..compile.layout import Driver
    from ..simulate import bridge_reach, prepare, run_prepared

    if isinstance(scenario, (str, Path)):
        from ..scenario.loader import load_scenario

        scenario = load_scenario(scenario, overrides)
    rows, spot, step = _window(prices, scenario, start, end)
    replayed = _replayed_scenario(scenario, rows, spot, step)
    compiled = compile_scenario(replayed, n_paths=1)
    prep = prepare(compiled)
    drivers = prep.drivers.copy()
    # flows and liquidations do not move an observed price, and the path between two closes is
    # the straight line: no excursion is sampled (the lowest price of a step is its lower close)
    drivers[:, [Driver.SQRT_COEF, Driver.LINEAR_COEF, Driver.PERMANENT_COEF]] = 0.0
    drivers[:, Driver.BRIDGE] = np.inf
    drivers[:, Driver.REACH] = bridge_reach(drivers[:, Driver.BRIDGE])
    drivers[:, Driver.REACH_LOG] = np.log(drivers[:, Driver.REACH])
    prep = dataclasses.replace(prep, drivers=drivers, replay=np.log(rows.to_numpy(dtype=np.float64)))
    result = run_prepared(prep, replayed, n_jobs=1, keep_steps=True)
    return ReplayResult(replayed, rows.astype(np.float64), spot, step, result, int(prices.attrs.get("filled", 0)))


@dataclass
class ReplayResult:
    """What :func:`replay` reconstructs.

    * ``table``: one row per step, indexed by the step's start (UTC), values at its close: the
      observed ``price``; ``long_liquidations_usd``, ``short_liquidations_usd``;
      ``open_interest_usd`` (long plus short notional at the close) and each side's;
      ``funding_rate`` (per funding interval, set by the book at the step's start); the flows
      by who traded (:data:`FLOW_COLUMNS`, USD, sell < 0); the margin stress measures of the
      module docstring.
    * ``daily``: the same by UTC day.
    * ``totals``: the path's summary (liquidations, bad debt, ADL, flows, open interest).
    * :meth:`compare_facts`: model against reported figures.
    """

    scenario: object  # the replayed scenario (horizon = the window, spot = the close before it)
    prices: pd.Series  # the closes replayed
    start_price: float
    step: pd.Timedelta
    simulation: object  # the one-path SimulationResult behind the table
    filled: int = 0  # rows of the data file filled with the previous close (load_ohlcv)

    @property
    def start(self) -> pd.Timestamp:
        return self.prices.index[0]

    @property
    def end(self) -> pd.Timestamp:
        return self.prices.index[-1] + self.step

    @cached_property
    def table(self) -> pd.DataFrame:
        from ..nb.kernel import STRESS_FIELDS

        sim = self.simulation
        raw = sim._raw  # the replay's own output: the book's margin stress, which only a replay keeps
        stress = pd.DataFrame(raw["stress"], columns=list(STRESS_FIELDS), index=sim.timeline)
        frame = pd.DataFrame(index=sim.timeline)
        frame["price"] = self.prices.to_numpy()
        # from the flow records (float64; the per-step arrays are float32): one path, so its own values
        frame["long_liquidations_usd"] = -sim.flows["long_liquidations"].to_numpy() + 0.0
        frame["short_liquidations_usd"] = sim.flows["short_liquidations"].to_numpy()
        frame["open_interest_usd"] = stress["long_open_interest_usd"] + stress["short_open_interest_usd"]
        frame["long_open_interest_usd"] = stress["long_open_interest_usd"]
        frame["short_open_interest_usd"] = stress["short_open_interest_usd"]
        frame["funding_rate"] = raw["funding"][0].astype(np.float64)
        for flow, column in FLOW_COLUMNS.items():
            frame[column] = sim.flows[flow].to_numpy()
        oi = frame["open_interest_usd"].to_numpy()
        near = (stress["long_near_liquidation_usd"] + stress["short_near_liquidation_usd"]).to_numpy()
        frame["near_liquidation_share"] = np.divide(near, oi, out=np.zeros_like(oi), where=oi > 0)
        frame["long_near_liquidation_usd"] = stress["long_near_liquidation_usd"]
        frame["short_near_liquidation_usd"] = stress["short_near_liquidation_usd"]
        for side in ("long", "short"):
            notional = stress[f"{side}_open_interest_usd"].to_numpy()
            equity = stress[f"{side}_equity_usd"].to_numpy()
            frame[f"{side}_leverage"] = np.divide(notional, equity, out=np.full_like(notional, np.nan),
                                                  where=equity > 0)
        frame["long_over_4x_usd"] = stress["long_over_4x_usd"]
        frame["short_over_4x_usd"] = stress["short_over_4x_usd"]
        return frame

    @cached_property
    def daily(self) -> pd.DataFrame:
        """By UTC day: the last close, liquidations summed, open interest at the day's last close
        and its change over the day (from the previous day's, or the window's start), and the
        stress measures at the day's last close."""
        t = self.table
        day = t.index.floor("D")
        grouped = t.groupby(day)
        out = pd.DataFrame({
            "close": grouped["price"].last(),
            "long_liquidations_usd": grouped["long_liquidations_usd"].sum(),
            "short_liquidations_usd": grouped["short_liquidations_usd"].sum(),
            "open_interest_usd": grouped["open_interest_usd"].last(),
        })
        previous = out["open_interest_usd"].shift(1)
        previous.iloc[0] = self.totals["open_interest_start_usd"]
        out["open_interest_change"] = out["open_interest_usd"] / previous - 1.0
        for column in ("near_liquidation_share", "long_leverage", "short_leverage", "funding_rate"):
            out[column] = grouped[column].last()
        out["steps"] = grouped["price"].size()
        out.index.name = "date"
        return out

    @cached_property
    def totals(self) -> dict:
        row = self.simulation.per_path.iloc[0]
        keys = ("long_liquidations_usd", "short_liquidations_usd", "peak_step_liquidations_usd",
                "open_interest_start_usd", "open_interest_end_usd", "open_interest_change", "etf_flow_usd",
                "deleveraging_flow_usd", "momentum_flow_usd", "new_positions_flow_usd", "margin_cut_usd", "forced_flow_usd", "dealer_flow_usd",
                "miner_sales_usd", "bad_debt_usd", "adl_usd", "insurance_fund_end_usd", "min_funding_rate",
                "max_funding_rate", "paused_steps")
        return {k: float(row[k]) for k in keys}

    # ------------------------------------------------------------------ the facts
    def open_interest_at(self, when: pd.Timestamp) -> float | None:
        """Open interest at the close ``when`` (a step's end), the start included; None outside the window."""
        if when == self.start:
            return self.totals["open_interest_start_usd"]
        row = when - self.step
        if row < self.start or row >= self.end:
            return None
        return float(self.table.at[row, "open_interest_usd"])

    def day_total(self, column: str, day: pd.Timestamp) -> float | None:
        """``column`` summed over the UTC day's steps; None unless the whole day is in the window."""
        if day < self.start or day + pd.Timedelta(days=1) > self.end:
            return None
        t = self.table
        return float(t.loc[(t.index >= day) & (t.index < day + pd.Timedelta(days=1)), column].sum())

    def compare_facts(self, facts) -> pd.DataFrame:
        """Model against the facts file's dated figures inside the window, one row each.

        * ``derivatives.futures_open_interest_usd``: open interest at the end of each dated day
          (UTC), and its change between consecutive dated days;
        * ``derivatives.liquidations_usd``: the day's liquidations on the entry's ``side`` (both
          sides without one);
        * ``price.daily``: the data's open (the previous day's last close) and close against the
          reported ones (``kind`` "data": a check that the data and the facts agree, not the model).

        Columns: ``fact``, ``kind``, ``unit`` ("usd" or "ratio"), ``model``, ``observed``,
        ``difference`` (model - observed), ``relative`` (model / observed - 1, for levels).
        """
        facts = load_facts(facts) if not isinstance(facts, dict) else facts
        rows = []
        derivatives = facts.get("derivatives") or {}
        one_day = pd.Timedelta(days=1)
        levels = []
        for entry in derivatives.get("futures_open_interest_usd") or []:
            day = fact_day(entry.get("date"))
            model = None if day is None else self.open_interest_at(day + one_day)
            if model is not None:
                levels.append((day, model, float(entry["usd"])))
                rows.append(_row(f"open interest, end of {day:%Y-%m-%d}", "model", "usd", model, float(entry["usd"])))
        for (d0, m0, o0), (d1, m1, o1) in itertools.pairwise(levels):
            rows.append(_row(f"open interest change, {d0:%m-%d} -> {d1:%m-%d}", "model", "ratio",
                             m1 / m0 - 1.0 if m0 > 0 else math.nan, o1 / o0 - 1.0))
        for entry in derivatives.get("liquidations_usd") or []:
            day = fact_day(entry.get("date"))
            side = entry.get("side")
            if day is None or side not in (None, "long", "short"):
                continue
            columns = [f"{side}_liquidations_usd"] if side else ["long_liquidations_usd", "short_liquidations_usd"]
            totals = [self.day_total(c, day) for c in columns]
            if None not in totals:
                rows.append(_row(f"{side + ' ' if side else ''}liquidations on {day:%Y-%m-%d}", "model", "usd",
                                 sum(totals), float(entry["usd"])))
        for entry in (facts.get("price") or {}).get("daily") or []:
            day = fact_day(entry.get("date"))
            if day is None:
                continue
            for key, when in (("open", day), ("close", day + one_day)):
                if key in entry and self.start <= when <= self.end:
                    price = self.start_price if when == self.start else float(self.table.at[when - self.step, "price"])
                    rows.append(_row(f"{key} on {day:%Y-%m-%d}", "data", "usd", price, float(entry[key])))
        columns = ["fact", "kind", "unit", "model", "observed", "difference", "relative"]
        return pd.DataFrame(rows, columns=columns)

    # ------------------------------------------------------------------ output
    def to_dict(self, facts=None, *, comparison: pd.DataFrame | None = None) -> dict:
        """The ``cascade replay --json`` object; with ``facts`` (a file or its loaded mapping) or their
        :meth:`compare_facts` table already made (``comparison``), the comparison under ``"facts"``."""
        daily = self.daily.reset_index()
        daily["date"] = daily["date"].dt.strftime("%Y-%m-%d")
        out = {"scenario": self.scenario.name, "start": self.start.isoformat(), "end": self.end.isoformat(),
               "steps": len(self.prices), "step_minutes": int(self.step / pd.Timedelta(minutes=1)),
               "filled": self.filled, "start_price": self.start_price, "totals": self.totals,
               "daily": _records(daily)}
        if comparison is None and facts is not None:
            comparison = self.compare_facts(facts)
        if comparison is not None:
            out["facts"] = _records(comparison)
        return out

    def write(self, folder: str | Path, facts=None, *, comparison: pd.DataFrame | None = None) -> list[Path]:
        """The per-step table (``replay_steps.parquet`` and ``.csv``), ``replay_daily.csv``,
        ``replay_facts.csv`` (with ``facts``, a file or its loaded mapping, or their :meth:`compare_facts`
        table already made: ``comparison``) and the replayed ``scenario.yaml``, each written atomically."""
        from ..scenario.canonical import dump_scenario

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        steps = self.table.reset_index()
        writes = {
            "replay_steps.parquet": lambda p: steps.to_parquet(p, index=False),
            "replay_steps.csv": lambda p: steps.to_csv(p, index=False),
            "replay_daily.csv": lambda p: self.daily.to_csv(p),
            "scenario.yaml": lambda p: Path(p).write_text(dump_scenario(self.scenario), encoding="utf-8"),
        }
        if comparison is None and facts is not None:
            comparison = self.compare_facts(facts)
        if comparison is not None:
            writes["replay_facts.csv"] = lambda p: comparison.to_csv(p, index=False)
        written = []
        for name, write in writes.items():
            written.append(write_with(folder / name, write))
        return written


def _row(fact: str, kind: str, unit: str, model: float, observed: float) -> dict:
    relative = model / observed - 1.0 if unit == "usd" and observed else math.nan
    return {"fact": fact, "kind": kind, "unit": unit, "model": model, "observed": observed,
            "difference": model - observed, "relative": relative}


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for record in frame.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()})
    return out


def _usd(x: float) -> str:
    return usd_2f(x)


def _signed_usd(x: float) -> str:
    return ("+" if x > 0 else "") + _usd(x)


def render_replay(result: ReplayResult, data=None, facts=None, comparison: pd.DataFrame | None = None) -> str:
    """The ``cascade replay`` text: the window, a daily table, the totals and the facts comparison."""
    t = result.totals
    step = result.step
    step_text = f"{int(step / pd.Timedelta(hours=1))}h" if step % pd.Timedelta(hours=1) == pd.Timedelta(0) \
        else f"{int(step / pd.Timedelta(minutes=1))}m"
    filled = f", {result.filled} missing rows filled" if result.filled else ""
    lines = [(f"{data or 'prices'}: {len(result.prices)} steps of {step_text}, {result.start:%Y-%m-%d %H:%M} .. "
              f"{result.end:%Y-%m-%d %H:%M} UTC{filled}"),
             (f"scenario {result.scenario.name}: its book ({_usd(t['open_interest_start_usd'])} open interest) starts "
              f"at {result.start_price:,.0f}, the close before the window; its flows and shocks act as simulated, "
              "the price is the data's"), ""]
    header = (f"{'date':<10} {'close':>9} {'long liq':>9} {'short liq':>9} {'open int':>9} {'OI chg':>7} "
              f"{'near liq':>8} {'long lev':>8}")
    lines += [header, "-" * len(header)]
    for day, row in result.daily.iterrows():
        lev = row["long_leverage"]
        lines.append(f"{day:%Y-%m-%d} {row['close']:>9,.0f} {_usd(row['long_liquidations_usd']):>9} "
                     f"{_usd(row['short_liquidations_usd']):>9} {_usd(row['open_interest_usd']):>9} "
                     f"{row['open_interest_change']:>+7.1%} {row['near_liquidation_share']:>8.1%} "
                     f"{(f'{lev:.2f}' if math.isfinite(lev) else '-'):>8}")
    lines += ["",
              ("near liq: share of open interest within 5% of its liquidation price; long lev: longs' notional over "
               "their margin equity (both at the day's last close)"),
              (f"total: long liquidations {_usd(t['long_liquidations_usd'])}, short {_usd(t['short_liquidations_usd'])}; "
               f"open interest {_usd(t['open_interest_start_usd'])} -> {_usd(t['open_interest_end_usd'])} "
               f"({t['open_interest_change']:+.1%}); positions closed {_usd(t['deleveraging_flow_usd'])}, new "
               f"positions {_usd(t['new_positions_flow_usd'])}, margin cuts {_usd(t['margin_cut_usd'])}; bad debt {_usd(t['bad_debt_usd'])}, ADL {_usd(t['adl_usd'])}")]
    if facts is None:
        lines += ["", "no facts file to compare with (give --facts FILE)"]
        return "\n".join(lines)
    comparison = result.compare_facts(facts) if comparison is None else comparison
    lines += ["", f"facts: {facts} (model vs observed; 'data' rows check the price file against the facts)"]
    if comparison.empty:
        lines.append("no dated fact falls inside the window")
        return "\n".join(lines)
    width = max(len(f) for f in comparison["fact"]) + 7
    lines.append(f"{'fact':<{width}} {'model':>9} {'observed':>9}  difference")
    for _, r in comparison.iterrows():
        label = r["fact"] + (" (data)" if r["kind"] == "data" else "")
        if r["unit"] == "ratio":
            cells = (f"{r['model']:+.1%}", f"{r['observed']:+.1%}", f"{r['difference'] * 100:+.1f} pp")
        elif r["kind"] == "data":
            cells = (f"{r['model']:,.0f}", f"{r['observed']:,.0f}", f"{r['difference']:+,.0f} ({r['relative']:+.1%})")
        else:
            cells = (_usd(r["model"]), _usd(r["observed"]), f"{_signed_usd(r['difference'])} ({r['relative']:+.0%})")
        lines.append(f"{label:<{width}} {cells[0]:>9} {cells[1]:>9}  {cells[2]}")
    return "\n".join(lines)
