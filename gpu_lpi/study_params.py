"""Event-study settings: the job spec's ``[study]`` table (spec §9.1, DESIGN.md §5).

::

    [study]
    horizons_s = [0.5, 1, 2, 5, 30, 120]   # markout horizons after the decision time
    latency_ms = 100                        # decision time = event tick + latency (spec: 50-150 ms)
    fill_reference = "mid"                  # or "touch": the bid for a buy, the ask for a sell
    maker_fee_bps = 2.0                     # Binance USD-M futures, regular tier: 0.02 % maker
    taker_fee_bps = 5.0                     #   and 0.05 % taker
    funding_high = 0.0003                   # funding regime: rate > this is "high_positive",
    funding_low = 0.0                       #   rate < this "negative", else "neutral"
    answer_horizon_s = 30                   # the horizon of the verdict (one of horizons_s;
                                            #   default: the one closest to 30 s)
    ci_level = 0.95
    regression_max_rows = 1000000           # per symbol: ticks of the drift regression (thinned)

At most :data:`MAX_HORIZONS` horizons, distinct to 6 significant digits (each names the column
:func:`markout_column`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from gpu_lpi.errors import ConfigError, reject_unknown_keys

#: The verdict's default horizon: the spec's holding times are 30-180 s (time stop 120 s).
ANSWER_HORIZON_S = 30.0
#: At most this many horizons: each is a column of every event and a row of every group.
MAX_HORIZONS = 1000


@dataclass(frozen=True)
class StudyParams:
    """Settings of the event study (see the module docstring).

    Attributes
    ----------
    horizons_s : tuple of float
    latency_ms : float
    fill_reference : {"mid", "touch"}
    maker_fee_bps, taker_fee_bps : float
    funding_high, funding_low : float
        Funding-rate thresholds of the regimes (rate per funding interval, 0.0001 = 0.01 %).
    answer_horizon_s : float, optional
        One of ``horizons_s``; default the horizon closest to :data:`ANSWER_HORIZON_S`.
    ci_level : float
    regression_max_rows : int
    """

    horizons_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 30.0, 120.0)
    latency_ms: float = 100.0
    fill_reference: str = "mid"
    maker_fee_bps: float = 2.0
    taker_fee_bps: float = 5.0
    funding_high: float = 0.0003
    funding_low: float = 0.0
    answer_horizon_s: float | None = None
    ci_level: float = 0.95
    regression_max_rows: int = 1_000_000

    def __post_init__(self) -> None:
        horizons = self.horizons_s
        if (not isinstance(horizons, (list, tuple)) or not horizons
                or not all(_is_number(h) and 0 < h <= 86_400 for h in horizons)):
            raise ConfigError(f"study.horizons_s: expected a non-empty list of seconds in (0, 86400], "
                              f"got {horizons!r}")
        if len(horizons) > MAX_HORIZONS:
            raise ConfigError(f"study.horizons_s: expected at most {MAX_HORIZONS} horizons, got {len(horizons)}")
        if len(set(horizons)) != len(horizons):
            raise ConfigError(f"study.horizons_s: repeated horizons in {list(horizons)}")
        names = [markout_column(h) for h in horizons]
        if len(set(names)) != len(names):
            raise ConfigError(f"study.horizons_s: expected horizons distinct to 6 significant digits "
                              f"(each names a column markout_bps_<h>), got {list(horizons)}")
        object.__setattr__(self, "horizons_s", tuple(float(h) for h in sorted(horizons)))
        if self.answer_horizon_s is None:
            closest = min(self.horizons_s, key=lambda h: (abs(h - ANSWER_HORIZON_S), h))
            object.__setattr__(self, "answer_horizon_s", closest)
        for name, low, high in (("latency_ms", 0.0, 60_000.0), ("maker_fee_bps", -100.0, 100.0),
                                ("taker_fee_bps", -100.0, 100.0), ("funding_high", -1.0, 1.0),
                                ("funding_low", -1.0, 1.0), ("answer_horizon_s", 0.0, 86_400.0),
                                ("ci_level", 0.5, 0.999)):
            value = getattr(self, name)
            if not _is_number(value) or not low <= value <= high:
                raise ConfigError(f"study.{name}: expected a number in [{low}, {high}], got {value!r}")
        if self.fill_reference not in ("mid", "touch"):
            raise ConfigError(f"study.fill_reference: expected \"mid\" or \"touch\", got {self.fill_reference!r}")
        if self.funding_low > self.funding_high:
            raise ConfigError(f"study.funding_low: expected at most funding_high={self.funding_high}, "
                              f"got {self.funding_low}")
        if float(self.answer_horizon_s) not in self.horizons_s:
            raise ConfigError(f"study.answer_horizon_s: expected one of horizons_s {list(self.horizons_s)}, "
                              f"got {self.answer_horizon_s!r}")
        rows = self.regression_max_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 100:
            raise ConfigError(f"study.regression_max_rows: expected an integer >= 100, got {rows!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "StudyParams":
        """Build from a job spec's ``[study]`` table; unknown keys raise :class:`ConfigError`."""
        reject_unknown_keys("study", values, {field.name for field in fields(cls)})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["horizons_s"] = list(self.horizons_s)
        return values

    @property
    def cost_bps(self) -> float:
        """Cost of the verdict: a maker entry and a taker exit (the time and σ stops cross)."""
        return self.maker_fee_bps + self.taker_fee_bps


def markout_column(horizon_s: float) -> str:
    """Name of the markout column of a horizon: ``markout_bps_0.5``, ``markout_bps_30``."""
    return f"markout_bps_{horizon_s:g}"


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
