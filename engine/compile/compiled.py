"""``CompiledScenario``: the frozen arrays a simulation reads. No pydantic, no YAML past this point."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields

import numpy as np

from . import layout

__all__ = ["CompiledScenario", "OptionBook", "PortfolioArrays", "RngPlan", "OutputPlan"]


@dataclass(frozen=True)
class OptionBook:
    """Option open interest by (kind, strike, expiry) over time."""

    kind: np.ndarray  # (k,) int8: layout.OPTION_PUT / OPTION_CALL
    strike_usd: np.ndarray  # (k,)
    expiry_years: np.ndarray  # (k,) from horizon.start
    expiry_step: np.ndarray  # (k,) int64: step containing the expiry (n_steps if after the horizon)
    open_interest_btc: np.ndarray  # (n_steps, k): OI during each step


@dataclass(frozen=True)
class PortfolioArrays:
    spot_btc: float
    cash_usd: float
    perp_size_btc: float  # signed
    perp_leverage: float  # 0 when there is no perp
    perp_entry_usd: float
    perp_venue: int
    perp_mmr: float  # the perp's maintenance rate: its tier's at its notional (maintenance amount included)
    option_kind: np.ndarray  # (j,) int8
    option_strike_usd: np.ndarray
    option_expiry_years: np.ndarray
    option_size_btc: np.ndarray  # signed


@dataclass(frozen=True)
class RngPlan:
    """Random streams: one per fixed-size block of paths, so chunking never changes a number.

    Block ``b`` covers paths ``[b*block_size, (b+1)*block_size)`` and is seeded by
    ``block_seeds[b]``, drawn from ``numpy.random.SeedSequence(seed, spawn_key=(b,))``.
    """

    seed: int
    n_paths: int
    block_size: int
    block_seeds: np.ndarray  # (n_blocks, 2) uint64


@dataclass(frozen=True)
class OutputPlan:
    quantiles: np.ndarray  # percentiles in (0, 100)
    price_levels_usd: np.ndarray
    sample_paths: int
    report: bool
    figures: bool


@dataclass(frozen=True)
class CompiledScenario:
    """Everything a kernel needs, as arrays on the step timeline (see :mod:`engine.compile.layout`)."""

    name: str
    timeline: np.ndarray  # (n_steps,) datetime64[ns], UTC step starts
    step_seconds: float
    params: np.ndarray  # (N_PARAMS,)
    steps: np.ndarray  # (N_STEP_FIELDS, n_steps)
    venue_names: tuple[str, ...]
    venue_steps: np.ndarray  # (N_VENUE_FIELDS, n_venues, n_steps)
    book_bankruptcy_usd: np.ndarray  # (n_cells,)
    book_long_btc: np.ndarray  # (n_rows, n_cells): a row per (venue, size class), layout.ROW_FIELDS
    book_short_btc: np.ndarray  # (n_rows, n_cells)
    book_long_entry_usd: np.ndarray  # (n_rows, n_cells): size x entry price
    book_short_entry_usd: np.ndarray  # (n_rows, n_cells)
    book_rows: np.ndarray  # (n_rows, N_ROW_FIELDS)
    new_leverage: np.ndarray  # (3, N_NEW_NODES): new longs', new shorts' and momentum's leverage nodes
    options: OptionBook
    portfolio: PortfolioArrays | None
    rng: RngPlan
    outputs: OutputPlan
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self):
        for value in _arrays(self):
            value.flags.writeable = False

    # ------------------------------------------------------------------ access by name
    @property
    def n_steps(self) -> int:
        return self.steps.shape[1]

    @property
    def n_paths(self) -> int:
        return self.rng.n_paths

    @property
    def n_venues(self) -> int:
        return len(self.venue_names)

    def step(self, name: str) -> np.ndarray:
        """A per-step driver by name, e.g. ``step("DEPTH_MULT")``."""
        return self.steps[getattr(layout.Step, name)]

    def venue(self, name: str, venue: str | int = 0) -> np.ndarray:
        """A per-venue, per-step array by name, e.g. ``venue("IMR", "cme")``."""
        v = venue if isinstance(venue, int) else self.venue_names.index(venue)
        return self.venue_steps[getattr(layout.Venue, name), v]

    def param(self, name: str) -> float:
        return float(self.params[getattr(layout.Param, name)])

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """SHA-256 over every array and scalar: equal fingerprints, equal simulations."""
        digest = hashlib.sha256(self.name.encode())
        for value in _leaves(self):
            if isinstance(value, np.ndarray):
                digest.update(str(value.dtype).encode() + str(value.shape).encode())
                digest.update(np.ascontiguousarray(value).tobytes())
            else:
                digest.update(repr(value).encode())
        return digest.hexdigest()

    def describe(self) -> str:
        """A readable summary of the compiled arrays (``cascade show --compiled``)."""
        lines = [
            f"compiled {self.name}: {self.n_steps} steps of {self.step_seconds / 60:g} min from "
            f"{np.datetime_as_string(self.timeline[0], unit='m')}Z, {self.n_paths} paths "
            f"({self.rng.block_seeds.shape[0]} RNG blocks of {self.rng.block_size})",
            "",
            f"{'driver':<24}{'min':>14}{'mean':>14}{'max':>14}  first change",
        ]
        for name in layout.STEP_FIELDS:
            lines.append(_row(name, self.step(name), self.timeline))
        for v, venue in enumerate(self.venue_names):
            lines.append(f"\nvenue {venue}")
            for name in layout.VENUE_FIELDS:
                lines.append(_row(name, self.venue_steps[getattr(layout.Venue, name), v], self.timeline))
        spot = self.param("SPOT0")
        long_btc, short_btc = self.book_long_btc.sum(), self.book_short_btc.sum()
        lines += [
            "",
            f"book: {self.book_rows.shape[0]} rows (venue x margin tier), {self.book_bankruptcy_usd.size} cells "
            f"{self.book_bankruptcy_usd[0]:,.0f}.."
            f"{self.book_bankruptcy_usd[-1]:,.0f} USD; long {long_btc:,.0f} BTC "
            f"({long_btc * spot / 1e9:,.2f}B), short {short_btc:,.0f} BTC ({short_btc * spot / 1e9:,.2f}B)",
            f"options: {self.options.kind.size} strikes/expiries, "
            f"OI at start {self.options.open_interest_btc[0].sum() if self.n_steps else 0:,.0f} BTC",
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _row(name: str, values: np.ndarray, timeline: np.ndarray) -> str:
    changed = np.flatnonzero(values != values[0])
    first = np.datetime_as_string(timeline[changed[0]], unit="m") + "Z" if changed.size else "-"
    return f"{name:<24}{values.min():>14.6g}{values.mean():>14.6g}{values.max():>14.6g}  {first}"


def _leaves(obj):
    for f in fields(obj):
        value = getattr(obj, f.name)
        if hasattr(value, "__dataclass_fields__"):
            yield from _leaves(value)
        else:
            yield value


def _arrays(obj):
    return [v for v in _leaves(obj) if isinstance(v, np.ndarray)]
