"""What the calibration fits: each parameter's scenario key, its box and scale (the table is
``parameters.yaml`` beside this module), and the fan-coverage goal the objective holds the real
path to. :mod:`.fit` searches over them, :mod:`.identify` measures how well the facts pin them
down."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Parameter", "PARAMETERS", "PARAMETERS_FILE", "COVERAGE_GOAL", "COVERAGE_SCALE", "read_parameters"]


COVERAGE_GOAL = 0.90  # share of real hours inside the 5-95% fan
COVERAGE_SCALE = 0.02  # each 2 points below the goal cost as much as one target missed by its scale


@dataclass(frozen=True)
class Parameter:
    name: str
    key: str  # scenario key path, as --set takes it
    low: float
    high: float
    log: bool
    meaning: str
    unit: str = ""  # a duration key's unit ("h": the fit's value is hours, the scenario's "<value>h")
    default: bool = True  # fitted unless --params names the set; False: only when asked for

    def encode(self, value: float, digits: int = 12):
        """The value as the scenario key takes it."""
        return f"{value:.{digits}g}{self.unit}" if self.unit else value

    def decode(self, value) -> float:
        """A scenario key's value in the fit's unit."""
        if self.unit:
            from ..scenario.units import parse_duration

            return parse_duration(value).total_seconds() / 3600.0 / _HOURS_PER[self.unit]
        return float(value)

    def to_unit(self, value: float) -> float:
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))


PARAMETERS_FILE = Path(__file__).with_name("parameters.yaml")
_KEYS = {"key", "box", "log", "meaning", "unit", "default"}
_HOURS_PER = {"h": 1.0, "d": 24.0}  # a duration parameter's unit, in hours
_UNITS = {"", *_HOURS_PER}


def read_parameters(path: Path = PARAMETERS_FILE) -> dict[str, Parameter]:
    """The parameters of ``path`` (``parameters.yaml`` beside this module: data, not code; its
    header says what each field means), in the file's order; a malformed entry is refused naming
    the file, the entry and the field, with what was expected and what was found."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the parameter table: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: expected a mapping of parameter names to entries, got {type(raw).__name__}")
    out = {}
    for name, entry in raw.items():
        where = f"{path}: {name}"
        if not isinstance(entry, dict) or not {"key", "box", "log", "meaning"} <= set(entry) or set(entry) - _KEYS:
            raise ValueError(f"{where}: expected the keys key, box, log, meaning (unit, default optional), "
                             f"got {sorted(entry) if isinstance(entry, dict) else entry!r}")
        for field, ok, expected in (
                ("key", isinstance(entry["key"], str) and entry["key"].strip() != "", "a scenario key path"),
                ("meaning", isinstance(entry["meaning"], str), "text"),
                ("log", isinstance(entry["log"], bool), "true or false"),
                ("default", isinstance(entry.get("default", True), bool), "true or false"),
                ("unit", entry.get("unit", "") in _UNITS, f"one of {sorted(u for u in _UNITS if u)} or none")):
            if not ok:
                raise ValueError(f"{where}: {field}: expected {expected}, got {entry.get(field)!r}")
        box = entry["box"]
        if not (isinstance(box, list) and len(box) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in box)
                and box[0] < box[1] and (box[0] > 0 or not entry["log"])):
            raise ValueError(f"{where}: box: expected [low, high], finite numbers with low < high (and low > 0 on a "
                             f"log scale), got {box!r}")
        out[name] = Parameter(name, entry["key"], float(box[0]), float(box[1]), entry["log"], entry["meaning"],
                              entry.get("unit", ""), entry.get("default", True))
    return out


PARAMETERS: dict[str, Parameter] = read_parameters()
