"""Feature and LPI parameters (spec §8.1), one frozen record validated once.

Every spec §8.1 parameter is a field under its snake_case name, with the spec's starting value as
default; the extra fields are the choices the spec leaves open (windows, lags, floors), each
documented below. A job spec's ``[params]`` table (and ``[grid] tick_ms``) is turned into a
:class:`FeatureParams` by :meth:`FeatureParams.from_mapping`, which rejects unknown keys and
out-of-range values with a :class:`~gpu_lpi.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from gpu_lpi.errors import ConfigError, reject_unknown_keys

NS_PER_MS = 1_000_000
MS_PER_HOUR = 3_600_000
#: Most ticks of history a chunk may load before its first tick (its windows' reach): with the
#: pieces of at most ``gpu_lpi.features.MAX_PIECE_TICKS`` ticks this bounds a chunk's memory.
MAX_HISTORY_TICKS = 1 << 21
#: Parameters read only by the signals (:mod:`gpu_lpi.signals`) and the crash filter, after the
#: features: parameter sets that differ in these alone share their features
#: (:func:`gpu_lpi.features.compute_feature_variants`).
SIGNAL_FIELDS = frozenset({
    "lpi_hi", "lpi_exit", "rollover_k", "rollover_from_peak", "rollover_peak_s", "time_stop_s",
    "stop_sigma", "z_fsi_hi", "z_oi_hi", "z_liq_hi", "z_proxy_hi", "state_hold_s", "state_onset_s",
    "divergence_min_s",
    "divergence_max_s", "refractory_s", "w_max", "sigma_window_s", "crash_leader", "crash_scale", "mode_b"})


@dataclass(frozen=True)
class FeatureParams:
    """Parameters of the per-tick features, robust z-scores and LPI.

    Attributes
    ----------
    tick_ms : int, default 250
        Alpha tick Δ in milliseconds (spec: 250, or 100 for top pairs); must divide one day.
    eta_bps : float, default 10
        Depth band η in basis points: D_bid(η) sums bid levels priced at or above ``b·(1 − η)``.
    theta_bps : float, default 5
        Impact threshold θ in basis points (spec: 3–8): a sell-aggressor trade is an impact trade
        when its price is strictly below ``b_{t−Δ}·(1 − θ)`` (buy side: strictly above
        ``a_{t−Δ}·(1 + θ)``).
    window_hours : float, default 2
        Robust window W of the z-scores (spec: 2–24 h). Two hours is the spec's short end: it adapts
        fastest to intraday regime changes and keeps the history a chunk must load small. Values
        below 2 h are accepted for short captures.
    min_periods_s : float, default 300
        Fewest seconds of valid ticks a trailing window needs before a rolling statistic (z-score,
        ADV$, mean depth, σ_ΔOI) is defined; capped at the window length. Warm-up ticks are NaN.
    lpi_hi, lpi_exit : float, default 3.0, 1.2
        Panic level and take-profit level of the LPI (spec §3, §8.6). Panic occurred: the LPI's
        maximum over ``rollover_peak_s`` is above ``lpi_hi`` and the LPI still above ``lpi_exit``
        (see :mod:`gpu_lpi.signals`); Mode A is sized from that maximum.
    rollover_k : int, default 3
        Rollover requirement K in ticks (spec §8.4).
    rollover_from_peak, rollover_peak_s : float, default 0.5, 30
        The rollover also needs the LPI (while above ``lpi_hi``) at most ``rollover_from_peak``
        times its maximum over the last ``rollover_peak_s``: a dip in a cascade's noisy plateau is
        not a rollover; and liquidity reformation needs z(LDR) at most ``rollover_from_peak``
        times its maximum over the same window: the book has refilled, not only paused in
        thinning (a lull between waves of a cascade leaves it thin). See :mod:`gpu_lpi.signals`;
        1 drops both peak tests.
    time_stop_s : float, default 120
        Time stop T_max in seconds (spec §8.6).
    stop_sigma : float, default 2.5
        Max adverse move stop in σ (spec §8.6).
    w1, w2, w3 : float, default 0.5, 0.3, 0.2
        LPI weights of z(FSI), z(LDR) and z(Π) (spec §2.3).
    kappa : float, default 0.5
        OI flush amplifier κ of ``g(ΔOI) = 1 + κ·tanh(ΔOI/σ_ΔOI)``; in [0, 1] so that g >= 0.
    z_fsi_hi, z_oi_hi : float, default 2.0, 1.5
        FORCED-state thresholds on z(FSI) and z(ΔOI) (spec §8.3).
    z_liq_hi : float, default 2.0
        A liquidation-feed spike: z of the side's liquidation notional (over the flow window) above
        this confirms forced flow (spec §8.3 "or liquidation feed spike"; the feed, where there is
        one, comes first: see :mod:`gpu_lpi.signals`). Under the default non-zero scale the scale
        comes from the lone liquidations a market prints all day; 2, as ``z_fsi_hi``, keeps a lone
        small liquidation that happens to land next to a block trade from starting FORCED (planted
        seed 3: a $9k liquidation at z 1.2, 3.5 s after a block buy, made a Mode A event; 2 and 3
        changed nothing else on seeds 3 and 7).
    z_proxy_hi : float, default 2.0
        Without OI and liquidation feeds, forced flow is confirmed by a liquidity shock,
        z(LDR) above this (z(Π) where the book has no depth); see :mod:`gpu_lpi.signals`.
    state_hold_s : float, default 120
        A side is FORCED for ``state_hold_s`` after an onset of forced flow (see
        :mod:`gpu_lpi.signals`: an exhausting cascade's impact flow has died down; the hold spans an
        episode, ``refractory_s``).
    state_onset_s : float, default 5
        An onset of forced flow: high impact flow and a confirmation of forced flow within
        ``state_onset_s`` of each other (a sweep and the liquidation prints behind it land in
        different ticks, seconds apart at most; a lone liquidation a minute before an unrelated
        block trade is no cascade). The smallest value (one tick) is the spec as written: both at
        the same tick. ``state_onset_s = 120, state_hold_s = 0, z_liq_hi = 1`` is this engine's
        rule before 2026-12-02 (both anywhere within the last 120 s).
    divergence_min_s, divergence_max_s : float, default 1, 3
        The divergence test's range of τ (spec §8.4): for some tick-multiple τ in it, the mid is
        beyond its value τ ago (lower after a sell cascade) while the LPI is below its value τ ago.
    refractory_s : float, default 120
        One event per episode: an exhaustion candidate starts an episode (an event) only when no
        candidate occurred in the ``refractory_s`` before it.
    w_max : float, default 10
        Mode A size ``w = dir·w_max·h(LPI)/σ`` with σ the realized volatility over the time stop in
        basis points: ``|w|·σ <= w_max``, so ``w_max`` is the risk budget in bps of a σ-move.
    sigma_window_s : float, default 300
        Trailing window of the realized variance behind σ (the sizing and the σ-stop).
    crash_leader : str, default "BTCUSDT"
        Market-wide crash filter (spec §8.6): while this symbol is itself FORCED on its down side,
        other symbols' long targets are scaled by ``crash_scale``. Off where the leader is not one
        of the job's symbols (run.json says so); "" turns it off.
    crash_scale : float, default 0.5
        Factor on long Mode A targets while the leader is in a FORCED down cascade (0: flat).
    mode_b : str, default "flat"
        Mode B (spec §4.2, INFORMED state): ``"flat"``, or a plug-in trend rule
        ``"package.module:function"`` (see :func:`gpu_lpi.signals.load_mode_b`).
    adv_window_hours : float, default 2
        Trailing window of ADV$ (mean dollar volume per second over valid ticks, current tick
        included). Defaults to the robust window so a chunk needs no extra history.
    depth_window_hours : float, default 2
        Trailing window of the mean depth in LDR's denominator.
    oi_lag_s : float, default 60
        Δ_OI of ``ΔOI_t = OI_{t−Δ_OI} − OI_t`` (OI carried forward from its last update).
    oi_max_age_s : float, default 900
        An OI value older than this is missing (a capture gap, not a flat OI).
    oi_ewma_halflife_s : float, default 0
        Half-life of the optional exponential smoothing of OI at its update times (0: off). The
        smoothing weights only updates within 4 half-lives, so it needs finite history.
    book_max_age_s : float, default 60
        A tick whose latest book update is older than this has no valid book (capture gaps).
    rv_subsamples : int, default 5
        Number n of sub-intervals of Δ for RV_t = Σ r_{t,i}² (mids at ``t − Δ + iΔ/n``).
    pi_eps_adv_fraction : float, default 0.1
        ε of ``Π = |r|/(V$ + ε)`` as a fraction of the mean dollar volume per tick (ADV$·Δ):
        a fixed dollar ε would make Π incomparable across symbols; ticks without trades then give
        ``Π = |r|/ε``, large but finite.
    eps : float, default 1e-12
        ε added to the robust scale (spec §2.3) and to σ_ΔOI.
    std_floor_ratio : float, default 0.05
        Floor of the robust scale as a fraction of the window's standard deviation, with
        ``z_scale = "mad_std_floor"`` only; see :func:`gpu_lpi.robust.robust_z`.
    z_scale : {"nonzero_mad", "double_mad", "mad_std_floor", "mad"}, default "nonzero_mad"
        Denominator of every robust z (:func:`gpu_lpi.robust.robust_z`; the choice and its figures
        in :mod:`gpu_lpi.lpi`): ``"nonzero_mad"`` = 1.4826 × the median of the deviations from the
        window's median of its values that are neither 0 nor the median (unit scale on sparse flow
        features too); ``"double_mad"`` = 1.4826 × the MAD of the tick's side of the median
        (selectable, not the default); ``"mad"`` = the spec's plain ``1.4826·MAD + ε``;
        ``"mad_std_floor"`` = the former default, the MAD floored at ``std_floor_ratio`` × the
        window's standard deviation.
    flow_window_s : float, default 2
        Trailing window T of the flow features in seconds (rounded to whole ticks, at least one):
        FSI's impact notional (and its ADV$·T scale), Π's return and dollar volume, and the
        liquidation notionals behind ``z_liq_sell``/``z_liq_buy`` are taken over ``(t − T, t]`` at
        every tick. A 250 ms sum is zero at most ticks and spiky; ``flow_window_s = tick_ms/1000``
        is the spec's per-tick form. The columns ``r``, ``dollar_volume``, ``v_impact`` and the
        liquidation notionals stay per tick.
    z_ldr_transform : {"log", "none"}, default "log"
        ``"log"``: z(LDR) is the robust z of ``ln LDR`` (LDR > 0 is a product of ratios whose calm
        values are tightly clustered while a cascade multiplies them by 10²–10⁵, so its plain z runs
        into the thousands); ``"none"``: of LDR itself (the spec's form). The ``ldr`` column is LDR.
    implied_quote_max_age_s : float, default 10
        Stores with trades only (book source ``trades``, :mod:`gpu_lpi.book_at_ticks`): the implied
        bid (ask) at ``t`` is the price of the latest seller- (buyer-) aggressor market trade with
        ``ts <= t``; there is no quote at ``t`` when either trade is older than this. Liquid
        perpetuals trade on both sides every second; ten seconds keeps the quotes through a
        one-sided cascade (the side not trading keeps its last price) and drops them in a quiet
        market or a capture gap.
    """

    tick_ms: int = 250
    eta_bps: float = 10.0
    theta_bps: float = 5.0
    window_hours: float = 2.0
    min_periods_s: float = 300.0
    lpi_hi: float = 3.0
    lpi_exit: float = 1.2
    rollover_k: int = 3
    rollover_from_peak: float = 0.5
    rollover_peak_s: float = 30.0
    time_stop_s: float = 120.0
    stop_sigma: float = 2.5
    w1: float = 0.5
    w2: float = 0.3
    w3: float = 0.2
    kappa: float = 0.5
    z_fsi_hi: float = 2.0
    z_oi_hi: float = 1.5
    z_liq_hi: float = 2.0
    z_proxy_hi: float = 2.0
    state_hold_s: float = 120.0
    state_onset_s: float = 5.0
    divergence_min_s: float = 1.0
    divergence_max_s: float = 3.0
    refractory_s: float = 120.0
    w_max: float = 10.0
    sigma_window_s: float = 300.0
    crash_leader: str = "BTCUSDT"
    crash_scale: float = 0.5
    mode_b: str = "flat"
    adv_window_hours: float = 2.0
    depth_window_hours: float = 2.0
    oi_lag_s: float = 60.0
    oi_max_age_s: float = 900.0
    oi_ewma_halflife_s: float = 0.0
    book_max_age_s: float = 60.0
    rv_subsamples: int = 5
    pi_eps_adv_fraction: float = 0.1
    eps: float = 1e-12
    std_floor_ratio: float = 0.05
    z_scale: str = "nonzero_mad"
    flow_window_s: float = 2.0
    z_ldr_transform: str = "log"
    implied_quote_max_age_s: float = 10.0

    def __post_init__(self) -> None:
        for field in fields(self):
            _check(field.name, getattr(self, field.name))
        if (86_400_000 % self.tick_ms) != 0:
            raise ConfigError(f"params.tick_ms: expected a divisor of one day in ms, got {self.tick_ms}")
        if self.lpi_exit >= self.lpi_hi:
            raise ConfigError(f"params.lpi_exit: expected less than lpi_hi={self.lpi_hi}, got {self.lpi_exit}")
        if self.divergence_max_s < self.divergence_min_s:
            raise ConfigError(f"params.divergence_max_s: expected at least divergence_min_s="
                              f"{self.divergence_min_s}, got {self.divergence_max_s}")
        if self.divergence_ticks[0] > self.divergence_ticks[1]:
            raise ConfigError(f"params.divergence_min_s: no multiple of the tick ({self.tick_ms} ms) "
                              f"lies in [{self.divergence_min_s}, {self.divergence_max_s}] s")
        if self.history_ticks > MAX_HISTORY_TICKS:
            raise ConfigError(
                f"params.window_hours: the windows (window_hours={self.window_hours}, adv_window_hours="
                f"{self.adv_window_hours}, depth_window_hours={self.depth_window_hours}) at tick_ms="
                f"{self.tick_ms} need {self.history_ticks:,} ticks of history; at most "
                f"{MAX_HISTORY_TICKS:,} (e.g. 24 h windows at 100 ms) keep a chunk's memory bounded")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "params") -> "FeatureParams":
        """Build from a job spec table; unknown keys raise :class:`ConfigError` naming the key."""
        reject_unknown_keys(where, values, {field.name for field in fields(cls)}, "parameter")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def feature_key(self) -> tuple:
        """The parameters the features depend on (all but :data:`SIGNAL_FIELDS`), as a key."""
        return tuple((name, value) for name, value in sorted(self.to_dict().items())
                     if name not in SIGNAL_FIELDS)

    # -- derived quantities, in ticks or fractions -------------------------------------------------
    @property
    def tick_ns(self) -> int:
        return self.tick_ms * NS_PER_MS

    def hours_to_ticks(self, hours: float) -> int:
        return max(1, int(round(hours * MS_PER_HOUR / self.tick_ms)))

    @property
    def window_ticks(self) -> int:
        """W in ticks: ``window_hours·3600·1000/tick_ms``."""
        return self.hours_to_ticks(self.window_hours)

    @property
    def flow_ticks(self) -> int:
        """Ticks k of the flow window: ``flow_window_s`` rounded to whole ticks, at least 1."""
        return max(1, int(round(self.flow_window_s * 1000 / self.tick_ms)))

    def min_periods_for(self, window_ticks: int) -> int:
        """``min_periods_s`` in ticks, at least 1 and at most ``window_ticks``."""
        return min(window_ticks, max(1, math.ceil(self.min_periods_s * 1000 / self.tick_ms)))

    def seconds_to_ticks(self, seconds: float) -> int:
        """Whole ticks in ``seconds`` (rounded), at least 1."""
        return max(1, int(round(seconds * 1000 / self.tick_ms)))

    @property
    def refractory_ticks(self) -> int:
        """``refractory_s`` in whole ticks (rounded; 0 allowed: every candidate starts an episode)."""
        return int(round(self.refractory_s * 1000 / self.tick_ms))

    @property
    def divergence_ticks(self) -> tuple[int, int]:
        """The divergence test's τ range in ticks: the tick multiples in ``[min_s, max_s]``."""
        return (max(1, math.ceil(self.divergence_min_s * 1000 / self.tick_ms - 1e-9)),
                math.floor(self.divergence_max_s * 1000 / self.tick_ms + 1e-9))

    @property
    def signal_lookback_ticks(self) -> int:
        """Ticks before a tick that its signals read (:mod:`gpu_lpi.signals`).

        A position at ``t`` depends on an entry at most ``time_stop`` ticks before; an entry is an
        episode start (``refractory`` ticks of candidates before it), each candidate reads
        ``max(K, τ_max, rollover_peak)`` ticks of LPI, z(LDR) and mid, the entry's state reads
        ``state_hold + state_onset`` ticks and its σ ``sigma_window`` ticks of RV.
        """
        pattern = max(self.rollover_k + 1, self.divergence_ticks[1],
                      self.seconds_to_ticks(self.rollover_peak_s))
        return (self.seconds_to_ticks(self.time_stop_s)
                + max(self.refractory_ticks + pattern,
                      self.seconds_to_ticks(self.state_hold_s) + self.seconds_to_ticks(self.state_onset_s),
                      self.seconds_to_ticks(self.sigma_window_s)))

    @property
    def history_ticks(self) -> int:
        """Ticks a chunk must load before its start so its values equal an unchunked run's.

        A z-score at ``t`` reads W ticks of its feature, and the feature at the oldest of them reads
        its own trailing window (ADV$, mean depth, σ_ΔOI over W, or the flow window's k ticks and
        the mid k ticks back), plus one tick for ``r`` and the previous quotes of the impact
        thresholds; the signals read :attr:`signal_lookback_ticks` of those z-scores.
        """
        feature_lookback = max(self.window_ticks, self.hours_to_ticks(self.adv_window_hours),
                               self.hours_to_ticks(self.depth_window_hours), self.flow_ticks)
        return self.window_ticks + feature_lookback + 1 + self.signal_lookback_ticks


def _check(name: str, value: Any) -> None:
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ConfigError(f"params.{name}: expected one of {list(_CHOICES[name])}, got {value!r}")
        return
    rule = _RULES[name]
    kind, low, high, open_low = rule
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"params.{name}: expected a string, got {value!r}")
        return
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"params.{name}: expected an integer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"params.{name}: expected a number, got {value!r}")
    if not math.isfinite(value) or value < low or (open_low and value == low) or value > high:
        bracket = "(" if open_low else "["
        raise ConfigError(f"params.{name}: expected a value in {bracket}{low}, {high}], got {value!r}")


# name -> (type, low, high, low bound excluded)
_RULES: dict[str, tuple[type, float, float, bool]] = {
    "tick_ms": (int, 1, 60_000, False),
    "eta_bps": (float, 0.0, 1000.0, True),
    "theta_bps": (float, 0.0, 1000.0, False),
    "window_hours": (float, 0.0, 168.0, True),
    "min_periods_s": (float, 0.0, 604_800.0, False),
    "lpi_hi": (float, -100.0, 100.0, False),
    "lpi_exit": (float, -100.0, 100.0, False),
    "rollover_k": (int, 1, 10_000, False),
    "rollover_from_peak": (float, 0.0, 1.0, True),
    "rollover_peak_s": (float, 0.0, 3600.0, True),
    "time_stop_s": (float, 0.0, 86_400.0, True),
    "stop_sigma": (float, 0.0, 100.0, True),
    "w1": (float, -10.0, 10.0, False),
    "w2": (float, -10.0, 10.0, False),
    "w3": (float, -10.0, 10.0, False),
    "kappa": (float, 0.0, 1.0, False),
    "z_fsi_hi": (float, -100.0, 100.0, False),
    "z_oi_hi": (float, -100.0, 100.0, False),
    "z_liq_hi": (float, -100.0, 100.0, False),
    "z_proxy_hi": (float, -100.0, 100.0, False),
    "state_hold_s": (float, 0.0, 3600.0, False),
    "state_onset_s": (float, 0.0, 3600.0, False),
    "divergence_min_s": (float, 0.0, 600.0, True),
    "divergence_max_s": (float, 0.0, 600.0, True),
    "refractory_s": (float, 0.0, 86_400.0, False),
    "w_max": (float, 0.0, 1e9, True),
    "sigma_window_s": (float, 0.0, 86_400.0, True),
    "crash_leader": (str, 0, 0, False),
    "crash_scale": (float, 0.0, 1.0, False),
    "mode_b": (str, 0, 0, False),
    "adv_window_hours": (float, 0.0, 168.0, True),
    "depth_window_hours": (float, 0.0, 168.0, True),
    "oi_lag_s": (float, 0.0, 86_400.0, True),
    "oi_max_age_s": (float, 0.0, 7 * 86_400.0, True),
    "oi_ewma_halflife_s": (float, 0.0, 86_400.0, False),
    "book_max_age_s": (float, 0.0, 86_400.0, True),
    "rv_subsamples": (int, 1, 1000, False),
    "pi_eps_adv_fraction": (float, 0.0, 1e6, True),
    "eps": (float, 0.0, 1.0, False),
    "std_floor_ratio": (float, 0.0, 1.0, True),
    "flow_window_s": (float, 0.0, 3600.0, True),
    "implied_quote_max_age_s": (float, 0.0, 3_600.0, True),
}
# name -> the values allowed (strings of a fixed set)
_CHOICES: dict[str, tuple[str, ...]] = {
    "z_scale": ("nonzero_mad", "double_mad", "mad_std_floor", "mad"),
    "z_ldr_transform": ("log", "none"),
}
