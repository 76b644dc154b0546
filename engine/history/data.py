"""Real data read from disk, as untrusted input: price histories (OHLCV files) and facts files.

:func:`load_ohlcv` reads the closes of a CSV file, finding its time and close columns among the
usual names; it fills a missing row with the previous close (counted), and refuses, naming the
line, times that go back, a repeated time with another close, or a gap too long to fill.
:func:`load_facts` reads a facts file (the observed figures of an event,
``../shared/facts/*.yaml``); :func:`default_facts` finds the one named after a scenario.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["load_ohlcv", "load_facts", "default_facts", "fact_day", "ISO_DATE", "TIME_COLUMNS", "CLOSE_COLUMNS", "MAX_GAP_STEPS"]


TIME_COLUMNS = ("timestamp", "time", "date", "datetime", "open_time", "Date", "Time", "Timestamp")


CLOSE_COLUMNS = ("close", "Close", "price", "Price", "adj_close", "Adj Close")


MAX_GAP_STEPS = 30  # a gap longer than this many median spacings is refused, not filled


def load_ohlcv(path: str | Path, time_column: str | None = None, close_column: str | None = None):
    """Closes indexed by UTC time from a CSV (the Binance and Bitstamp layouts of ``../shared/data``,
    or any file with a time and a close column, named or found among the usual names). Rows must
    be regular in time: the step is the most common spacing, and a missing row is filled with the
    previous close (the count is in ``attrs["filled"]``)."""
    import pandas as pd

    from .._files import read_csv_frame

    path = Path(path)
    raw = read_csv_frame(path, "a price history")
    tcol = time_column or next((c for c in TIME_COLUMNS if c in raw.columns), None)
    ccol = close_column or next((c for c in CLOSE_COLUMNS if c in raw.columns), None)
    for given, found, what, names in ((time_column, tcol, "time", TIME_COLUMNS), (close_column, ccol, "close", CLOSE_COLUMNS)):
        if found is None or found not in raw.columns:
            wanted = f"column {given!r}" if given else f"one of the columns {', '.join(names)}"
            raise ValueError(f"{path}: expected {wanted} for the {what}, found columns {list(raw.columns)}")
    times = pd.to_datetime(raw[tcol], utc=True, errors="coerce")
    close = pd.to_numeric(raw[ccol], errors="coerce")
    bad = times.isna() | close.isna() | ~np.isfinite(close.to_numpy(float, na_value=np.nan)) | (close <= 0)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # the header is line 1
        raise ValueError(f"{path}:{line}: {tcol}={raw[tcol].iloc[line - 2]!r}, {ccol}={raw[ccol].iloc[line - 2]!r}: "
                         f"expected a time in column {tcol!r} and a finite positive close in column {ccol!r}")
    series, notes = _checked_series(path, pd.DatetimeIndex(times), close.to_numpy(float), tcol)
    if len(series) < 3:
        raise ValueError(f"{path}: {len(series)} rows, at least 3 needed")
    step = pd.Series(series.index).diff().mode().iloc[0]
    regular = series.reindex(pd.date_range(series.index[0], series.index[-1], freq=step)).ffill()
    regular.attrs["filled"] = int(len(regular) - len(series))
    regular.attrs["step"] = step
    regular.attrs["notes"] = notes
    return regular


def _checked_series(path: Path, times, close: np.ndarray, tcol: str):
    """The closes as a series in time order, after the checks of a file's rows (lines counted from
    the header, line 1): times never go back; a repeated time with the same close is dropped (a
    note), with another close refused naming both lines; no gap longer than ``MAX_GAP_STEPS``
    times the median spacing (a row far from the rest would fill years of rows).
    Returns ``(series, notes)``."""
    import pandas as pd

    lines = np.arange(len(close)) + 2
    back = np.flatnonzero(np.diff(times.asi8) < 0)
    if back.size:
        i = int(back[0])
        raise ValueError(f"{path}:{lines[i + 1]}: {tcol} {times[i + 1]} is earlier than line {lines[i]}'s "
                         f"{times[i]}: expected rows in increasing time")
    notes = []
    same = np.flatnonzero(np.diff(times.asi8) == 0)
    if same.size:
        differ = same[close[same] != close[same + 1]]
        if differ.size:
            i = int(differ[0])
            raise ValueError(f"{path}:{lines[i + 1]}: {tcol} {times[i + 1]} repeats line {lines[i]} with another "
                             f"close ({close[i + 1]!r} against {close[i]!r}): expected one close per time")
        notes.append(f"{path}: {same.size} repeated row(s) with the same time and close dropped "
                     f"(first at line {lines[same[0] + 1]})")
        keep = np.ones(len(close), dtype=bool)
        keep[same + 1] = False
        times, close, lines = times[keep], close[keep], lines[keep]
    gaps = np.diff(times.asi8)
    if gaps.size >= 2:
        median = float(np.median(gaps))
        far = np.flatnonzero(gaps > MAX_GAP_STEPS * median)
        if far.size:
            i = int(far[0])
            raise ValueError(f"{path}:{lines[i + 1]}: {tcol} {times[i + 1]} comes {times[i + 1] - times[i]} after "
                             f"line {lines[i]}, more than {MAX_GAP_STEPS} times the median spacing "
                             f"({pd.Timedelta(int(median), 'ns')}): expected a regular series (split the file at the gap)")
    return pd.Series(close, index=times, name="close"), notes


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def load_facts(path: str | Path) -> dict:
    """A facts file (YAML mapping) such as ``../shared/facts/feb-2026-deleveraging.yaml``."""
    import yaml

    from .._files import read_data_bytes

    path = Path(path)
    raw = read_data_bytes(path, 4 * 1024**2, "a facts file")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not readable YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping of facts")
    return data


def fact_day(value) -> pd.Timestamp | None:
    """A fact's date as 00:00 UTC of that day; None for approximate dates ("2025-10-early")."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return pd.Timestamp(value, tz="UTC")
    if isinstance(value, str) and ISO_DATE.fullmatch(value.strip()):
        return pd.Timestamp(value.strip(), tz="UTC")
    return None


def default_facts(scenario_name: str, data: str | Path | None = None) -> Path | None:
    """The facts file named after the scenario: beside the data folder (``<data>/../../facts/``,
    as in ``../shared``), or in ``../shared/facts/`` from the current folder; None if neither exists."""
    candidates = []
    if data is not None:
        candidates.append(Path(data).resolve().parent.parent / "facts" / f"{scenario_name}.yaml")
    candidates.append(Path("..") / "shared" / "facts" / f"{scenario_name}.yaml")
    return next((p for p in candidates if p.is_file()), None)
