"""A book brought from a file: a positions CSV or Deribit's positions export, as the scenario's portfolio.

A risk manager's book reaches the engine two ways: ``portfolio: {positions_csv: FILE}`` in a
scenario (the path relative to the file that says it), or ``cascade run SCENARIO --book FILE``
(a positions CSV, or the JSON result of Deribit's ``private/get_positions``), which replaces the
scenario's positions. Both end as an ordinary :class:`~.schema.Portfolio` in the loaded scenario,
so the resolved scenario (``cascade show``, a run folder's ``scenario.yaml``) holds the parsed
book and a rerun never needs the file again.

Reading takes two steps, so that every problem is located in the file that has it:

1. :func:`read_book` reads the file (a regular file of at most :data:`MAX_BYTES`) and checks each
   row or entry on its own: a known instrument, a positive size, a side, the columns its kind
   needs and none that it does not use. It keeps :class:`Position` records that know where they
   came from (file, row or entry, column or field).
2. :meth:`Book.apply` builds the portfolio against the validated scenario: option expiries after
   ``horizon.start``, dated futures expiring no earlier than the horizon's end, venues among the
   scenario's, and every perp row merged into the one perp position the valuation holds (one
   cross-margined account: net size, entry price weighted by signed size, margins added, leverage =
   entry notional / margin).

The CSV layout and the Deribit mapping are in ``docs/book.md``; the problems are
:class:`~engine.errors.Problem` records, raised together as one :class:`~engine.errors.ScenarioError`.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .._files import read_regular_bytes
from ..errors import Problem, ScenarioError
from .units import UnitError, parse_amount, parse_timestamp

__all__ = ["Book", "Position", "MAX_BYTES", "COLUMNS", "read_book", "take_book", "book_of"]

MAX_BYTES = 10 * 1024**2
"""The largest book file read (10 MB): a book of thousands of positions is a fraction of it."""

MAX_PROBLEMS = 20  # problems listed from one file before it stops looking

COLUMNS = {
    "instrument": "spot, perp or option",
    "side": "long or short; buy or sell",
    "size_btc": "size in BTC, above 0 (side gives the sign)",
    "entry_price_usd": "perps: entry price (empty: market.spot_usd)",
    "leverage": "perps: leverage at entry (or margin_usd)",
    "margin_usd": "perps: margin posted, USD (or leverage)",
    "venue": "perps: one of the scenario's venues (empty: the first)",
    "strike_usd": "options: strike",
    "expiry": "options: expiry, ISO date or time (UTC)",
    "option_type": "options: put or call",
}
"""The positions CSV's columns and what each holds (``docs/book.md``)."""

REQUIRED = ("instrument", "side", "size_btc")
INSTRUMENTS = ("spot", "perp", "option")
_SIDES = {"long": 1.0, "buy": 1.0, "short": -1.0, "sell": -1.0}
_USED_BY = {"entry_price_usd": "perp", "leverage": "perp", "margin_usd": "perp", "venue": "perp",
            "strike_usd": "option", "expiry": "option", "option_type": "option"}
_WHY_EMPTY = {
    "entry_price_usd": "PnL counts from the book's value at horizon.start, so the cost of spot or an option "
                       "changes no figure",
    "venue": "a venue sets a perp's margin schedule; spot and options have none",
    "leverage": "only perps are margined",
    "margin_usd": "only perps are margined",
}
_VENUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Position:
    """One row of a positions CSV or one entry of a Deribit export, checked on its own."""

    instrument: str  # "spot", "perp" or "option"
    size_btc: float  # signed: long > 0
    file: str
    line: int | None  # CSV: the row's line (the header is line 1, as a spreadsheet numbers rows)
    key: tuple  # Deribit: the entry's key path, e.g. ("result", 2); CSV: ()
    label: str  # "row 4", "result[2] (BTC-PERPETUAL)"
    fields: dict = field(default_factory=dict)  # our field -> the file's column or field name
    entry_price_usd: float | None = None
    leverage: float | None = None
    margin_usd: float | None = None
    venue: str | None = None
    strike_usd: float | None = None
    expiry: datetime | None = None
    option_type: str | None = None
    settles: datetime | None = None  # a dated future's expiry

    def problem(self, name: str, message: str) -> Problem:
        """A problem located at this position's ``name`` field (its column or Deribit field)."""
        return Problem(message, self.file, self.line, None, self.key + (self.fields.get(name, name),))


@dataclass(frozen=True)
class Book:
    """The positions read from one file, and where they came from."""

    file: str  # as shown in messages (relative to the current directory when given so)
    sha256: str  # of the bytes read
    format: str  # "csv" or "deribit"
    via: str  # "--book" or "portfolio.positions_csv"
    positions: tuple[Position, ...]
    skipped: tuple[str, ...] = ()  # flat Deribit entries (direction "zero" or size 0)

    def manifest(self) -> dict:
        """The run folder manifest's ``book`` record (the parsed book itself is in scenario.yaml)."""
        return {"file": self.file, "sha256": self.sha256, "format": self.format, "via": self.via,
                "positions": len(self.positions), "skipped": list(self.skipped)}

    def describe(self) -> str:
        """``positions.csv (csv, 5 positions, sha256 3f2a...)``: one line for the terminal."""
        skipped = f", {len(self.skipped)} flat skipped" if self.skipped else ""
        return (f"{self.file} ({'Deribit export' if self.format == 'deribit' else 'CSV'}, "
                f"{len(self.positions)} positions{skipped}, sha256 {self.sha256[:12]})")

    def apply(self, scenario):
        """``scenario`` with its portfolio built from these positions (its ``cash_usd`` kept)."""
        cash = scenario.portfolio.cash_usd if scenario.portfolio is not None else 0.0
        return scenario.model_copy(update={"portfolio": self.portfolio(scenario, cash)})

    def portfolio(self, scenario, cash_usd: float = 0.0):
        """The :class:`~.schema.Portfolio` of these positions in ``scenario``; raises
        :class:`ScenarioError` with every problem found."""
        from .schema import HeldOption, Portfolio

        problems: list[Problem] = []
        start, end = scenario.horizon.start, scenario.horizon.end
        spot = 0.0
        options = []
        for p in self.positions:
            if p.instrument == "spot":
                spot += p.size_btc
            elif p.instrument == "option":
                if p.expiry <= start:
                    name = f"{_instrument(p)}: " if p.key else ""  # a Deribit entry: its instrument
                    problems.append(p.problem("expiry", f"{name}expiry {_when(p.expiry)} is not after horizon.start "
                                                        f"{_when(start)}: the option has expired"))
                    continue
                options.append(HeldOption(kind=p.option_type, strike_usd=p.strike_usd, expiry=p.expiry,
                                          size_btc=p.size_btc))
            elif p.settles is not None and p.settles < end:
                problems.append(p.problem("settles", f"{_instrument(p)} expires {_when(p.settles)}, before the "
                                                     f"horizon ends ({_when(end)}): a dated future is held as a "
                                                     "perp until the horizon ends, and this one would settle "
                                                     "inside it; take it out of the book or shorten the horizon"))
        perp = self._perp([p for p in self.positions if p.instrument == "perp"], scenario, problems)
        if problems:
            raise ScenarioError(problems[:MAX_PROBLEMS])
        return Portfolio(spot_btc=spot, cash_usd=cash_usd, perp=perp, options=options)

    def _perp(self, rows: list[Position], scenario, problems: list[Problem]):
        """The perp rows as one cross-margined position, or ``None``."""
        from .schema import PerpPosition

        if not rows:
            return None
        venues = list(scenario.market.perpetuals.venues)
        for p in rows:
            if p.venue is not None and p.venue not in venues:
                hint = difflib.get_close_matches(p.venue, venues, n=1)
                problems.append(p.problem("venue", f"unknown venue {p.venue!r}; the scenario's venues: "
                                                   f"{', '.join(venues)}" + (f" (did you mean {hint[0]!r}?)"
                                                                              if hint else "")))
        for p in rows[1:]:
            if p.venue != rows[0].venue:
                names = ", ".join(repr(v) if v else "the default (first) venue" for v in (rows[0].venue, p.venue))
                problems.append(p.problem("venue", f"perp positions {rows[0].label} and {p.label} are on different "
                                                   f"venues ({names}): the book holds one perp account, "
                                                   "cross-margined on one venue; stress them in two runs"))
                return None
        venue = rows[0].venue
        if venue is None and self.format == "deribit" and "deribit" in venues:
            venue = "deribit"
        if len(rows) == 1:  # as written: its entry price may stay null (market.spot_usd)
            p = rows[0]
            entry = p.entry_price_usd
            leverage = p.leverage if p.leverage is not None else (
                abs(p.size_btc) * (entry or scenario.market.spot_usd) / p.margin_usd)
            return self._checked(rows, p.size_btc, leverage, entry, venue, problems, PerpPosition)
        spot = scenario.market.spot_usd
        net = math.fsum(p.size_btc for p in rows)
        if abs(net) <= 1e-12 * math.fsum(abs(p.size_btc) for p in rows):
            return None  # a flat account: its locked-in PnL is a constant no figure depends on
        entries = [p.entry_price_usd if p.entry_price_usd is not None else spot for p in rows]
        entry = math.fsum(p.size_btc * e for p, e in zip(rows, entries)) / net
        margin = math.fsum(p.margin_usd if p.margin_usd is not None else abs(p.size_btc) * e / p.leverage
                           for p, e in zip(rows, entries))
        if entry <= 0:
            problems.append(rows[0].problem("entry_price_usd", f"perp positions {_labels(rows)} net to "
                                            f"{net:+.6g} BTC at an entry price of {entry:,.2f}, weighted by signed "
                                            "size: the long and short rows almost cancel; net them in the file"))
            return None
        leverage = abs(net) * entry / margin
        if all(p.entry_price_usd is None for p in rows):
            entry = None  # every row at market.spot_usd: say so, as a single row would
        return self._checked(rows, net, leverage, entry, venue, problems, PerpPosition)

    @staticmethod
    def _checked(rows, size, leverage, entry, venue, problems, model):
        if not 1.0 <= leverage <= 200.0:
            which = "leverage" if rows[0].leverage is not None else "margin_usd"
            what = f"perp position {rows[0].label}" if len(rows) == 1 else f"the perp account of {_labels(rows)}"
            problems.append(rows[0].problem(which, f"{what} has leverage {leverage:.4g}x (entry notional over margin); "
                                                   "the valuation takes 1x to 200x"))
            return None
        return model(size_btc=size, leverage=leverage, entry_price_usd=entry, venue=venue)


def _labels(rows: list[Position]) -> str:
    labels = [p.label for p in rows]
    return ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else labels[0]


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _instrument(p: Position) -> str:
    return p.label.split("(", 1)[-1].rstrip(")") if "(" in p.label else p.label


# ----------------------------------------------------------------------------- files
def _read_bytes(path: Path, shown: str, via: str) -> bytes:
    """The file's bytes, if it is a regular file of at most ``MAX_BYTES`` (a FIFO is never opened
    for a blocking read); messages name where the file was given (``--book`` or the key)."""
    return read_regular_bytes(path, MAX_BYTES, f"a book ({via})", shown)


def _text(data: bytes, shown: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ScenarioError(Problem(f"not UTF-8 text (byte {exc.start}); save it as UTF-8", shown, line)) from None


def read_book(path: str | Path, *, via: str = "--book", kind: str | None = None) -> Book:
    """Read a positions CSV (``.csv``) or a Deribit positions export (``.json``); ``kind`` forces
    ``"csv"``. Raises :class:`ScenarioError` with the problems found, located."""
    path = Path(path)
    shown = os.path.normpath(str(path))
    suffix = path.suffix.lower()
    kind = kind or {".csv": "csv", ".json": "deribit"}.get(suffix)
    if kind is None:
        raise ScenarioError(Problem(f"a book is a positions CSV (.csv) or a Deribit positions export (.json); "
                                    f"got a {suffix or 'file without extension'}", shown))
    if kind == "csv" and suffix != ".csv":
        raise ScenarioError(Problem("positions_csv names a positions CSV (.csv); a Deribit export (.json) "
                                    "goes through cascade run --book", shown))
    data = _read_bytes(path, shown, via)
    digest = hashlib.sha256(data).hexdigest()
    text = _text(data, shown)
    if kind == "csv":
        positions, skipped = _read_csv(text, shown), ()
    else:
        positions, skipped = _read_deribit(text, shown)
    return Book(shown, digest, kind, via, tuple(positions), tuple(skipped))


# ----------------------------------------------------------------------------- the CSV
class _Bad(Exception):
    def __init__(self, column: str | None, message: str):
        super().__init__(message)
        self.column = column
        self.message = message


def _number(cells: dict, column: str, *, positive: bool = True) -> float | None:
    text = cells.get(column, "")
    if text == "":
        return None
    try:
        value = parse_amount(text)
    except UnitError:
        raise _Bad(column, f"must be a number like 5, 0.25 or 62000, got {text!r}") from None
    if positive and value <= 0:
        raise _Bad(column, f"must be above 0, got {text!r}" + (" (the side column gives the sign)"
                                                              if column == "size_btc" else ""))
    return value


def _header(rows, shown: str) -> tuple[list[str], int]:
    for line, cells in rows:
        if any(c.strip() for c in cells):
            names = [c.strip().lower() for c in cells]
            problems = []
            seen = set()
            for name in names:
                if name == "":
                    problems.append(Problem("a column without a name", shown, line))
                elif name not in COLUMNS:
                    hint = difflib.get_close_matches(name, list(COLUMNS), n=1)
                    problems.append(Problem(f"unknown column {name!r}", shown, line, None, (name,),
                                            hint=(f"did you mean {hint[0]!r}? " if hint else "")
                                            + f"columns: {', '.join(COLUMNS)}"))
                elif name in seen:
                    problems.append(Problem(f"column {name!r} appears twice", shown, line, None, (name,)))
                seen.add(name)
            for name in REQUIRED:
                if name not in names:
                    problems.append(Problem(f"missing column {name!r} ({COLUMNS[name]})", shown, line, None, (name,)))
            if problems:
                raise ScenarioError(problems)
            return names, line
    raise ScenarioError(Problem(f"empty: a positions CSV starts with a header row naming its columns "
                                f"({', '.join(REQUIRED)}, ...)", shown, 1))


def _read_csv(text: str, shown: str) -> list[Position]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    try:
        for cells in reader:
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise ScenarioError(Problem(f"not a readable CSV: {exc}", shown, reader.line_num)) from None
    names, header_line = _header(rows, shown)
    positions, problems = [], []
    for line, cells in rows:
        if line <= header_line or not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            problems.append(Problem(f"row {line} has {len(cells)} fields, the header {len(names)}", shown, line))
            continue
        values = {name: cell.strip() for name, cell in zip(names, cells)}
        try:
            positions.append(_csv_position(values, names, shown, line, header_line))
        except _Bad as bad:
            problems.append(Problem(bad.message, shown, line, None, (bad.column,) if bad.column else ()))
        except ScenarioError:
            raise  # a column the row needs is missing: one problem, at the header
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise ScenarioError(problems)
    if not positions:
        raise ScenarioError(Problem("no positions: the file has a header and no rows", shown, header_line))
    return positions


def _csv_position(values: dict, names: list[str], shown: str, line: int, header_line: int) -> Position:
    instrument = values["instrument"].lower()
    if instrument not in INSTRUMENTS:
        hint = " (cash is portfolio.cash_usd in the scenario)" if instrument == "cash" else ""
        raise _Bad("instrument", f"unknown instrument {values['instrument']!r}; expected one of "
                                 f"{', '.join(INSTRUMENTS)}{hint}")
    side = values["side"].lower()
    if side not in _SIDES:
        raise _Bad("side", f"side must be long, short, buy or sell, got {values['side']!r}")
    size = _number(values, "size_btc")
    if size is None:
        raise _Bad("size_btc", "size_btc is empty; give the size in BTC, above 0")
    for column, used_by in _USED_BY.items():
        if used_by != instrument and values.get(column, ""):
            why = _WHY_EMPTY.get(column, f"{column} belongs to {used_by} rows")
            article = "an" if instrument[0] in "aeiou" else "a"
            raise _Bad(column, f"{column} is for {used_by} rows; leave it empty on {article} {instrument} row ({why})")
    p = dict(instrument=instrument, size_btc=_SIDES[side] * size, file=shown, line=line, key=(),
             label=f"row {line}")
    if instrument == "spot":
        if _SIDES[side] < 0:
            raise _Bad("side", "spot is held long; a short is a perp row (side short)")
        return Position(**p)
    if instrument == "perp":
        if "leverage" not in names and "margin_usd" not in names:
            raise ScenarioError(Problem("missing column 'leverage' (or 'margin_usd'): perp rows need one, "
                                        f"row {line} is a perp", shown, header_line, None, ("leverage",)))
        leverage, margin = _number(values, "leverage"), _number(values, "margin_usd")
        if (leverage is None) == (margin is None):
            raise _Bad("leverage", "a perp row gives leverage or margin_usd, one of them"
                       + ("; both are set" if leverage is not None else "; both are empty"))
        venue = values.get("venue", "") or None
        if venue is not None and not _VENUE.match(venue):
            raise _Bad("venue", f"venue must be a name like binance or cross_margined, got {venue!r}")
        return Position(**p, entry_price_usd=_number(values, "entry_price_usd"), leverage=leverage,
                        margin_usd=margin, venue=venue)
    for column in ("strike_usd", "expiry", "option_type"):
        if column not in names:
            raise ScenarioError(Problem(f"missing column {column!r}: option rows need strike_usd, expiry and "
                                        f"option_type, row {line} is an option", shown, header_line, None, (column,)))
        if values[column] == "":
            raise _Bad(column, f"{column} is empty; an option row needs it ({COLUMNS[column].split(': ')[1]})")
    kind = values["option_type"].lower()
    if kind not in ("put", "call"):
        raise _Bad("option_type", f"option_type must be put or call, got {values['option_type']!r}")
    try:
        expiry = parse_timestamp(values["expiry"])
    except UnitError as exc:
        raise _Bad("expiry", str(exc)) from None
    return Position(**p, strike_usd=_number(values, "strike_usd"), expiry=expiry, option_type=kind)


# ----------------------------------------------------------------------------- Deribit
_MONTHS = {m: i + 1 for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                                           "NOV", "DEC"))}
_FUTURE = re.compile(r"^BTC-(?:PERPETUAL|(\d{1,2})([A-Z]{3})(\d{2}))$")
_OPTION = re.compile(r"^BTC-(\d{1,2})([A-Z]{3})(\d{2})-(\d+)-([CP])$")
DERIBIT_EXPIRY_HOUR = 8  # Deribit's futures and options expire at 08:00 UTC


def _deribit_date(day: str, month: str, year: str) -> datetime | None:
    if month not in _MONTHS:
        return None
    try:
        return datetime(2000 + int(year), _MONTHS[month], int(day), DERIBIT_EXPIRY_HOUR, tzinfo=timezone.utc)
    except ValueError:
        return None


def _entries(data, shown: str) -> tuple[list, tuple]:
    if isinstance(data, list):
        return data, ()
    if isinstance(data, dict):
        if "error" in data:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise ScenarioError(Problem(f"an error response, not positions: {message!r}", shown, None, None,
                                        ("error",)))
        if "result" in data:
            if not isinstance(data["result"], list):
                raise ScenarioError(Problem("result must be the list of positions, got a "
                                            f"{type(data['result']).__name__}", shown, None, None, ("result",)))
            return data["result"], ("result",)
    raise ScenarioError(Problem("expected the JSON-RPC response of private/get_positions "
                                '({"jsonrpc": "2.0", "result": [...]}) or its result list, got a '
                                f"{type(data).__name__}" + (f" with keys {', '.join(map(str, data))}"
                                                            if isinstance(data, dict) else ""), shown))


def _read_deribit(text: str, shown: str) -> tuple[list[Position], list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(Problem(f"not valid JSON: {exc.msg}", shown, exc.lineno, exc.colno)) from None
    entries, prefix = _entries(data, shown)
    positions, skipped, problems = [], [], []
    for i, entry in enumerate(entries):
        try:
            position = _deribit_position(entry, shown, prefix + (i,))
        except _Bad as bad:
            problems.append(Problem(bad.message, shown, None, None, prefix + (i,) + ((bad.column,) if bad.column else ())))
        else:
            if position is None:
                skipped.append(f"{_key(prefix + (i,))} ({entry.get('instrument_name')})")
            else:
                positions.append(position)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise ScenarioError(problems)
    if not positions:
        raise ScenarioError(Problem("no open positions" + (f": every entry is flat ({len(skipped)})" if skipped
                                                           else ": the list is empty"), shown))
    return positions, skipped


def _key(path: tuple) -> str:
    from ..errors import format_path

    return format_path(path) or "[]"


def _field(entry: dict, name: str, *, required: bool = True):
    if name not in entry or entry[name] is None:
        if required:
            raise _Bad(name, f"missing field {name!r}")
        return None
    return entry[name]


def _json_number(entry: dict, name: str, *, required: bool = True) -> float | None:
    value = _field(entry, name, required=required)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(name, f"{name} must be a number, got {value!r}")
    return float(value)


def _deribit_position(entry, shown: str, key: tuple) -> Position | None:
    if not isinstance(entry, dict):
        raise _Bad(None, f"a position is a JSON object, got {type(entry).__name__}")
    name = _field(entry, "instrument_name")
    if not isinstance(name, str):
        raise _Bad("instrument_name", f"instrument_name must be text, got {name!r}")
    currency = name.split("-", 1)[0]
    if currency != "BTC":
        extra = " (linear contracts settled in another currency are not read)" if currency.startswith("BTC_") else ""
        raise _Bad("instrument_name", f"{name}: only BTC instruments are read, the scenario's underlying is "
                                      f"BTC{extra}; export BTC positions (currency BTC)")
    kind = _field(entry, "kind")
    if kind not in ("future", "option"):
        raise _Bad("kind", f"{name}: kind {kind!r} is not read; expected future or option")
    direction = _field(entry, "direction")
    if direction not in ("buy", "sell", "zero"):
        raise _Bad("direction", f"{name}: direction must be buy, sell or zero, got {direction!r}")
    size = _json_number(entry, "size")
    if direction == "zero" or size == 0.0:
        return None
    sign = 1.0 if direction == "buy" else -1.0
    if size * sign < 0:
        raise _Bad("size", f"{name}: size {size:g} contradicts direction {direction!r}")
    label = f"{_key(key)} ({name})"
    common = dict(file=shown, line=None, key=key, label=label)
    if kind == "option":
        m = _OPTION.match(name)
        if not m:
            raise _Bad("instrument_name", f"{name}: kind is option, but the name is not an option's "
                                          "(BTC-27FEB26-60000-P)")
        expiry = _deribit_date(*m.group(1, 2, 3))
        if expiry is None:
            raise _Bad("instrument_name", f"{name}: {m.group(1)}{m.group(2)}{m.group(3)} is not a date")
        return Position("option", sign * abs(size), **common, fields={"expiry": "instrument_name",
                                                                       "size_btc": "size"},
                        strike_usd=float(m.group(4)), expiry=expiry, option_type="call" if m.group(5) == "C" else "put")
    m = _FUTURE.match(name)
    if not m:
        raise _Bad("instrument_name", f"{name}: kind is future, but the name is not a future's "
                                      "(BTC-PERPETUAL or BTC-27MAR26)")
    settles = None
    if m.group(1) is not None:
        settles = _deribit_date(*m.group(1, 2, 3))
        if settles is None:
            raise _Bad("instrument_name", f"{name}: {m.group(1)}{m.group(2)}{m.group(3)} is not a date")
    size_btc = _json_number(entry, "size_currency")
    if size_btc == 0.0 or size_btc * sign < 0:
        raise _Bad("size_currency", f"{name}: size_currency {size_btc:g} (BTC) does not match size {size:g} (USD) "
                                    f"and direction {direction!r}")
    entry_price = _json_number(entry, "average_price")
    if entry_price <= 0:
        raise _Bad("average_price", f"{name}: average_price must be above 0, got {entry_price:g}")
    margin_btc = _json_number(entry, "initial_margin")
    if margin_btc <= 0:
        raise _Bad("initial_margin", f"{name}: initial_margin must be above 0 (BTC), got {margin_btc:g}")
    index = _json_number(entry, "index_price")
    if index <= 0:
        raise _Bad("index_price", f"{name}: index_price must be above 0, got {index:g}")
    return Position("perp", sign * abs(size_btc), **common,
                    fields={"size_btc": "size_currency", "entry_price_usd": "average_price", "margin_usd":
                            "initial_margin", "settles": "instrument_name", "venue": "instrument_name"},
                    entry_price_usd=entry_price, margin_usd=margin_btc * index, settles=settles)


# ----------------------------------------------------------------------------- the loader's side
def take_book(doc, book: str | Path | None = None) -> Book | None:
    """Read the book a scenario document names (``portfolio.positions_csv``), or ``book`` (``--book``),
    which replaces the scenario's positions; take those keys out of the raw data (``cash_usd``
    stays) so that the scenario validates without them and :meth:`Book.apply` fills them in."""
    portfolio = doc.data.get("portfolio")
    if book is not None:
        cash = portfolio.get("cash_usd") if isinstance(portfolio, dict) else None
        result = read_book(book, via="--book")
        doc.data["portfolio"] = {} if cash is None else {"cash_usd": cash}
        return result
    if not isinstance(portfolio, dict) or portfolio.get("positions_csv") is None:
        return None
    where = ("portfolio", "positions_csv")
    name = portfolio["positions_csv"]
    if not isinstance(name, str) or not name.strip():
        raise ScenarioError(doc.problem(where, "positions_csv must be the path of a positions CSV, relative to "
                                               "this file", found=name, has_found=True))
    origin = doc.locate(where)[0]
    # positions a parent file typed are replaced; the same file typing both is a contradiction
    typed = [key for key in ("spot_btc", "perp", "options") if key in portfolio
             and doc.locate(("portfolio", key))[0] == origin]
    if typed:
        raise ScenarioError(doc.problem(where, f"positions_csv gives every position of the book; {', '.join(typed)} "
                                               "cannot be set beside it (put them in the file; cash_usd may stay)"))
    for key in ("spot_btc", "perp", "options"):
        portfolio.pop(key, None)
    base = Path(origin).parent if origin and Path(origin).is_file() else Path(".")
    path = base / name
    if not path.exists():
        raise ScenarioError(doc.problem(where, f"positions file not found (looked for {os.path.normpath(path)})"))
    result = read_book(path, via="portfolio.positions_csv", kind="csv")
    del portfolio["positions_csv"]
    return result


def book_of(scenario) -> Book | None:
    """The book file a loaded scenario's portfolio was read from, or ``None`` (typed in YAML)."""
    return getattr(scenario, "_book", None)
