"""Validation settings: the job spec's ``[cv]`` table (spec §9.3, DESIGN.md §4 step 9).

::

    [cv]                     # an example; the defaults are those of ValidationParams
    n_folds = 6              # time blocks N of the purged cross-validation
    test_folds = 2           # k test blocks per split: 1 = purged K-fold; >= 2 = combinatorial
                             #   purged CV, C(N, k) splits forming C(N-1, k-1) backtest paths
    embargo_fraction = 0.01  # embargo after each test block, as a fraction of the time covered,
    # embargo_s = 600        #   or in seconds (one of the two)
    horizon_s = 30           # the objective: markout at this horizon of [study] horizons_s
                             #   (default: the study's answer horizon)
    cost = "verdict"         # cost line: "verdict" (maker entry + taker exit), "maker" or "taker"
                             #   (round trips of [study] maker_fee_bps / taker_fee_bps)
    metric = "sharpe"        # how a trial is chosen: "sharpe", "mean_bps" or "t_stat"
    min_events = 5           # a trial with fewer returns in a training set cannot be chosen there
    stability_floor = 0.5    # θ ± 2 bps passes where performance keeps at least this share
    alpha = 0.05             # MinTRL confidence and the multiple-testing level

Every sweep is validated (``RUN/validation.json``): without ``[cv]`` with these defaults, so that
no sweep goes without its trial count and Deflated Sharpe ratio.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from gpu_lpi.errors import ConfigError, reject_unknown_keys
from gpu_lpi.study_params import StudyParams

METRICS = ("sharpe", "mean_bps", "t_stat")
COSTS = ("verdict", "maker", "taker")
#: Most time blocks (C(N, k) splits are evaluated in the client).
MAX_FOLDS = 20
#: Most splits of the combinatorial purged CV.
MAX_SPLITS = 5_000


@dataclass(frozen=True)
class ValidationParams:
    """Settings of the validation (module docstring); checked on construction."""

    n_folds: int = 5
    test_folds: int = 1
    embargo_fraction: float | None = None
    embargo_s: float | None = None
    horizon_s: float | None = None
    cost: str = "verdict"
    metric: str = "sharpe"
    min_events: int = 5
    stability_floor: float = 0.5
    alpha: float = 0.05

    def __post_init__(self) -> None:
        for name, low, high in (("n_folds", 2, MAX_FOLDS), ("test_folds", 1, MAX_FOLDS - 1),
                                ("min_events", 2, 1_000_000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"cv.{name}: expected a whole number in [{low}, {high}], got {value!r}")
        if self.test_folds >= self.n_folds:
            raise ConfigError(f"cv.test_folds: expected fewer than n_folds={self.n_folds}, got {self.test_folds}")
        if math.comb(self.n_folds, self.test_folds) > MAX_SPLITS:
            raise ConfigError(f"cv.test_folds: C({self.n_folds}, {self.test_folds}) = "
                              f"{math.comb(self.n_folds, self.test_folds):,} splits; at most {MAX_SPLITS:,}")
        if self.embargo_fraction is not None and self.embargo_s is not None:
            raise ConfigError("cv.embargo_s: set the embargo either in seconds or as embargo_fraction, not both")
        for name, low, high in (("embargo_fraction", 0.0, 0.5), ("embargo_s", 0.0, 86_400.0 * 365),
                                ("horizon_s", 0.0, 86_400.0), ("stability_floor", 0.0, 1.0),
                                ("alpha", 1e-6, 0.5)):
            value = getattr(self, name)
            if value is not None and (not _is_number(value) or not low <= value <= high):
                raise ConfigError(f"cv.{name}: expected a number in [{low}, {high}], got {value!r}")
        for name, allowed in (("cost", COSTS), ("metric", METRICS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"cv.{name}: expected one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], study: StudyParams) -> "ValidationParams":
        """Build from a job spec's ``[cv]`` table; ``horizon_s`` must be one of the study's."""
        reject_unknown_keys("cv", values, {field.name for field in fields(cls)})
        params = cls(**values)
        if params.horizon_s is not None and float(params.horizon_s) not in study.horizons_s:
            raise ConfigError(f"cv.horizon_s: expected one of [study] horizons_s {list(study.horizons_s)}, "
                              f"got {params.horizon_s!r}")
        return params

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def horizon(self, study: StudyParams) -> float:
        """The objective horizon: ``horizon_s``, else the study's answer horizon."""
        return float(self.horizon_s) if self.horizon_s is not None else float(study.answer_horizon_s)

    def cost_bps(self, study: StudyParams) -> float:
        """The cost line taken off every return."""
        return {"verdict": study.cost_bps, "maker": 2 * study.maker_fee_bps,
                "taker": 2 * study.taker_fee_bps}[self.cost]

    def embargo_ns(self, span_ns: int) -> int:
        """The embargo for data covering ``span_ns``: ``embargo_s``, else ``embargo_fraction`` of the
        span (default 1 %)."""
        if self.embargo_s is not None:
            return int(round(self.embargo_s * 1e9))
        fraction = 0.01 if self.embargo_fraction is None else self.embargo_fraction
        return int(round(fraction * span_ns))


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
