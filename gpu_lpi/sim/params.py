"""Simulator settings: the job spec's ``[sim]`` table (spec §5, §8.5–8.6, §9.2).

::

    [sim]
    fill_model = "queue_risk_averse"   # "trade_through", "queue_risk_averse" or "queue_prob"
    queue_power = 2.0                  # queue_prob: share of cancels ahead = a^n / (a^n + b^n)
    partial_fills = true
    feed_latency = "constant"          # "constant", "uniform" or "data" (the capture's local_ts - ts)
    feed_latency_ms = 50.0             #   (uniform: from feed_latency_ms to feed_latency_max_ms)
    feed_latency_max_ms = 150.0
    order_latency = "uniform"          # order entry and cancel latency, the same kinds
    order_latency_ms = 50.0
    order_latency_max_ms = 150.0
    latency_activity = 0.05            # latency × (1 + this·max(0, rate/mean rate − 1)): ×3.5 at 50× the mean
    layer_ticks = [0, 1, 2]            # entry bids at b, b − 1 tick, b − 2 ticks
    layer_fractions = [0.5, 0.3, 0.2]  #   with these shares of the size
    capital_usd = 100000.0             # size = min(capital·|target_w|, max_position_usd)
    max_position_usd = 50000.0         # inventory cap per symbol
    maker_fee_bps = 2.0                # negative: a rebate
    taker_fee_bps = 5.0
    z_pi_max = 3.0                     # toxicity gate: entry quotes pulled while z(Π) > this
    max_spread_bps = 20.0              #   or while the spread is wider than this
    quote_ttl_s = 10.0                 # entry quotes cancelled for good this long after the entry
    tp_lpi = 1.2                       # take profit when the faded side's LPI < this (default: lpi_exit)
    tp_bps = 0.0                       #   or a markout of this many bps (0: off)
    exit_timeout_s = 5.0               # a maker exit not done by then becomes a taker order
    time_stop_s = 120.0                # default: [params] time_stop_s
    stop_sigma = 2.5                   # default: [params] stop_sigma
    max_walk_levels = 1000             # a taker order walks at most this many levels
    seed = 0                           # latency draws
    band_bps = 500.0                   # book levels kept around the touch

    [sim.fees.ETHUSDT]                 # per-symbol fees (bps), overriding the two above
    maker_fee_bps = -0.5
    taker_fee_bps = 4.0

A list for any scenario setting (all but ``band_bps`` and ``fees``) makes a grid: every
combination is a *scenario* of the same run, simulated in one launch (one GPU thread each).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

import numpy as np

from gpu_lpi.errors import ConfigError, reject_unknown_keys
from kernels import maker_sim as k

FILL_MODELS = {"trade_through": k.TRADE_THROUGH, "queue_risk_averse": k.QUEUE_RISK_AVERSE,
               "queue_prob": k.QUEUE_PROB}
LATENCY_KINDS = {"constant": k.CONSTANT, "uniform": k.UNIFORM, "data": k.FROM_DATA}
#: At most this many scenarios per run (each is a thread and a block of outputs).
MAX_SCENARIOS = 100_000
#: Settings that are not scenario settings (one value per run).
RUN_SETTINGS = ("band_bps", "fees")


@dataclass(frozen=True)
class SimParams:
    """One scenario's settings (see the module docstring; ``None``: the job's ``[params]`` value)."""

    fill_model: str = "queue_risk_averse"
    queue_power: float = 2.0
    partial_fills: bool = True
    feed_latency: str = "constant"
    feed_latency_ms: float = 50.0
    feed_latency_max_ms: float = 150.0
    order_latency: str = "uniform"
    order_latency_ms: float = 50.0
    order_latency_max_ms: float = 150.0
    latency_activity: float = 0.05
    layer_ticks: tuple = (0, 1, 2)
    layer_fractions: tuple = (0.5, 0.3, 0.2)
    capital_usd: float = 100_000.0
    max_position_usd: float = 50_000.0
    maker_fee_bps: float = 2.0
    taker_fee_bps: float = 5.0
    z_pi_max: float = 3.0
    max_spread_bps: float = 20.0
    quote_ttl_s: float = 10.0
    tp_lpi: float | None = None
    tp_bps: float = 0.0
    exit_timeout_s: float = 5.0
    time_stop_s: float | None = None
    stop_sigma: float | None = None
    max_walk_levels: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("fill_model", self.fill_model, FILL_MODELS)
        _choice("feed_latency", self.feed_latency, LATENCY_KINDS)
        _choice("order_latency", self.order_latency, LATENCY_KINDS)
        if not isinstance(self.partial_fills, bool):
            raise ConfigError(f"sim.partial_fills: expected true or false, got {self.partial_fills!r}")
        for name, low, high in (("queue_power", 0.0, 100.0), ("feed_latency_ms", 0.0, 60_000.0),
                                ("feed_latency_max_ms", 0.0, 60_000.0), ("order_latency_ms", 0.0, 60_000.0),
                                ("order_latency_max_ms", 0.0, 60_000.0), ("latency_activity", 0.0, 100.0),
                                ("capital_usd", 0.0, 1e15), ("max_position_usd", 0.0, 1e15),
                                ("maker_fee_bps", -100.0, 100.0), ("taker_fee_bps", -100.0, 100.0),
                                ("z_pi_max", -1e9, 1e9), ("max_spread_bps", 0.0, 1e6),
                                ("quote_ttl_s", 0.0, 86_400.0), ("tp_bps", 0.0, 1e6),
                                ("exit_timeout_s", 0.0, 86_400.0)):
            _number(name, getattr(self, name), low, high)
        for name in ("tp_lpi", "time_stop_s", "stop_sigma"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), -1e9 if name == "tp_lpi" else 0.0, 1e9)
        for name, low, high in (("max_walk_levels", 1, 10**7), ("seed", 0, 2**31 - 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"sim.{name}: expected an integer in [{low}, {high}], got {value!r}")
        for low_name in ("feed_latency", "order_latency"):
            if (getattr(self, low_name) == "uniform"
                    and getattr(self, f"{low_name}_max_ms") < getattr(self, f"{low_name}_ms")):
                raise ConfigError(f"sim.{low_name}_max_ms: expected at least {low_name}_ms "
                                  f"({getattr(self, f'{low_name}_ms')}), got {getattr(self, f'{low_name}_max_ms')}")
        ticks, shares = self.layer_ticks, self.layer_fractions
        if (not isinstance(ticks, (list, tuple)) or not 1 <= len(ticks) <= k.N_LAYERS
                or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= 10**6 for t in ticks)):
            raise ConfigError(f"sim.layer_ticks: expected 1 to {k.N_LAYERS} non-negative integers "
                              f"(ticks behind the touch), got {ticks!r}")
        if (not isinstance(shares, (list, tuple)) or len(shares) != len(ticks)
                or not all(_is_number(f) and f >= 0 for f in shares) or not 0 < sum(shares) <= 1 + 1e-9):
            raise ConfigError(f"sim.layer_fractions: expected {len(ticks)} non-negative shares "
                              f"(one per layer) summing to at most 1, got {shares!r}")
        object.__setattr__(self, "layer_ticks", tuple(ticks))
        object.__setattr__(self, "layer_fractions", tuple(float(f) for f in shares))

    def resolved(self, params) -> "SimParams":
        """The settings with the job's ``[params]`` defaults filled in."""
        return replace(self, tp_lpi=params.lpi_exit if self.tp_lpi is None else self.tp_lpi,
                       time_stop_s=params.time_stop_s if self.time_stop_s is None else self.time_stop_s,
                       stop_sigma=params.stop_sigma if self.stop_sigma is None else self.stop_sigma)

    def row(self, fees: tuple[float, float] | None = None) -> np.ndarray:
        """The kernel's scenario row (:data:`kernels.maker_sim.SCENARIO_COLUMNS`)."""
        maker, taker = fees if fees is not None else (self.maker_fee_bps, self.taker_fee_bps)
        ticks = list(self.layer_ticks) + [0] * (k.N_LAYERS - len(self.layer_ticks))
        shares = list(self.layer_fractions) + [0.0] * (k.N_LAYERS - len(self.layer_fractions))
        values = {
            "fill_model": FILL_MODELS[self.fill_model], "queue_power": self.queue_power,
            "partial": float(self.partial_fills), "feed_kind": LATENCY_KINDS[self.feed_latency],
            "feed_a_ms": self.feed_latency_ms, "feed_b_ms": self.feed_latency_max_ms,
            "order_kind": LATENCY_KINDS[self.order_latency], "order_a_ms": self.order_latency_ms,
            "order_b_ms": self.order_latency_max_ms, "activity": self.latency_activity,
            **{f"layer_ticks_{i}": ticks[i] for i in range(k.N_LAYERS)},
            **{f"layer_frac_{i}": shares[i] for i in range(k.N_LAYERS)},
            "capital": self.capital_usd, "max_position": self.max_position_usd,
            "maker_fee": maker * 1e-4, "taker_fee": taker * 1e-4, "z_pi_max": self.z_pi_max,
            "max_spread_bps": self.max_spread_bps, "quote_ttl_s": self.quote_ttl_s,
            "tp_lpi": _or_nan(self.tp_lpi), "tp_bps": self.tp_bps, "exit_timeout_s": self.exit_timeout_s,
            "time_stop_s": _or_nan(self.time_stop_s), "stop_sigma": _or_nan(self.stop_sigma),
            "seed": self.seed, "max_walk": self.max_walk_levels}
        return np.array([float(values[name]) for name in k.SCENARIO_COLUMNS])

    @property
    def window_s(self) -> float:
        """Longest an episode can last after its entry decision: quotes, holding, exit."""
        return max(self.quote_ttl_s, self.time_stop_s or 0.0) + self.exit_timeout_s + 5.0


@dataclass(frozen=True)
class SimSpec:
    """The ``[sim]`` table: the scenario grid, the book band and per-symbol fees."""

    scenarios: tuple = ()
    grid: dict = field(default_factory=dict)
    band_bps: float = 500.0
    fees: dict = field(default_factory=dict)   # symbol -> (maker_bps, taker_bps)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> "SimSpec":
        """Parse a ``[sim]`` table; raises :class:`ConfigError` naming the bad field."""
        known = {f.name for f in fields(SimParams)} | set(RUN_SETTINGS)
        reject_unknown_keys("sim", table, known)
        band = table.get("band_bps", 500.0)
        _number("band_bps", band, 1.0, 10_000.0)
        fees = _fees(table.get("fees", {}))
        settings = {name: value for name, value in table.items() if name not in RUN_SETTINGS}
        grid = {name: tuple(value) for name, value in settings.items() if _is_grid(name, value)}
        for name, values in grid.items():
            if not values:
                raise ConfigError(f"sim.{name}: a grid needs at least one value")
            if len(set(map(repr, values))) != len(values):
                raise ConfigError(f"sim.{name}: repeated values in {list(values)}")
        count = math.prod(len(v) for v in grid.values())
        if count > MAX_SCENARIOS:
            raise ConfigError(f"sim: the grid has {count:,} scenarios; at most {MAX_SCENARIOS:,} are allowed")
        fixed = {name: value for name, value in settings.items() if name not in grid}
        scenarios = []
        for values in itertools.product(*grid.values()):
            combination = dict(zip(grid, values))
            try:
                scenarios.append(SimParams(**_tuples({**fixed, **combination})))
            except ConfigError as err:
                where = ", ".join(f"{n}={v!r}" for n, v in combination.items())
                raise ConfigError(f"{err} (in the scenario {where})" if where else str(err)) from None
        return cls(tuple(scenarios), grid, float(band), fees)

    def __post_init__(self) -> None:
        if not self.scenarios:
            object.__setattr__(self, "scenarios", (SimParams(),))

    def resolved(self, params) -> "SimSpec":
        """The spec with every scenario's ``[params]`` defaults filled in (:meth:`SimParams.resolved`)."""
        return replace(self, scenarios=tuple(s.resolved(params) for s in self.scenarios))

    def fees_for(self, symbol: str, scenario: SimParams) -> tuple[float, float]:
        return self.fees.get(symbol, (scenario.maker_fee_bps, scenario.taker_fee_bps))

    def to_dict(self) -> dict:
        return {"grid": {n: list(v) for n, v in self.grid.items()}, "band_bps": self.band_bps,
                "fees": {s: {"maker_fee_bps": m, "taker_fee_bps": t} for s, (m, t) in self.fees.items()},
                "scenario_0": asdict(self.scenarios[0]), "n_scenarios": len(self.scenarios)}


def scenario_table(spec: SimSpec):
    """One row per scenario: its id and the values of the grid's settings."""
    import pandas as pd

    rows = [{"scenario": i, **{n: _plain(getattr(s, n)) for n in spec.grid}} for i, s in enumerate(spec.scenarios)]
    return pd.DataFrame(rows)


def _is_grid(name: str, value) -> bool:
    """A list of values is a grid; for the layer settings, which are lists, a list of lists."""
    if name in ("layer_ticks", "layer_fractions"):
        return isinstance(value, list) and bool(value) and isinstance(value[0], list)
    return isinstance(value, list)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _tuples(values: dict) -> dict:
    return {n: tuple(v) if isinstance(v, list) else v for n, v in values.items()}


def _fees(table) -> dict:
    if not isinstance(table, Mapping):
        raise ConfigError(f"sim.fees: expected a table of symbols, got {table!r}")
    out = {}
    for symbol, entry in table.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"sim.fees.{symbol}: expected a table with maker_fee_bps and taker_fee_bps")
        reject_unknown_keys(f"sim.fees.{symbol}", entry, {"maker_fee_bps", "taker_fee_bps"})
        maker = entry.get("maker_fee_bps", SimParams.maker_fee_bps)
        taker = entry.get("taker_fee_bps", SimParams.taker_fee_bps)
        _number(f"fees.{symbol}.maker_fee_bps", maker, -100.0, 100.0)
        _number(f"fees.{symbol}.taker_fee_bps", taker, -100.0, 100.0)
        out[symbol] = (float(maker), float(taker))
    return out


def _or_nan(value):
    return math.nan if value is None else value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(name: str, value, low: float, high: float) -> None:
    if not _is_number(value) or not low <= value <= high:
        raise ConfigError(f"sim.{name}: expected a number in [{low:g}, {high:g}], got {value!r}")


def _choice(name: str, value, options: Mapping) -> None:
    if value not in options:
        raise ConfigError(f"sim.{name}: expected one of {sorted(options)}, got {value!r}")
