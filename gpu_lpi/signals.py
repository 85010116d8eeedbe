"""Signals of the feature engine (spec §3, §4, §8.3–8.6; DESIGN.md §4 step 6): state, exhaustion,
events, direction and target positions, per tick.

:func:`add_signals` runs on the columns of one chunk (:func:`gpu_lpi.features.features_from_inputs`,
history ticks included) and adds:

=====================  =========================================================================
forced_down, forced_up FORCED state of each side (bool): within the last ``state_hold_s``, its
                       impact flow was high and forced flow was confirmed within
                       ``state_onset_s`` of each other
state (int8)           of the *active side* (the side whose episode starts at the tick -- both: the
                       side the price moved to over ``rollover_peak_s`` --, else the side with the
                       larger LPI): 1 FORCED, 0 INFORMED, -1 warming up (its z(FSI)
                       or LPI unknown)
side (int8)            active side: -1 down (sell cascade), +1 up (buy squeeze), 0 unknown
cond_panic, ...        the five exhaustion conditions of the active side (bool): ``cond_panic``,
                       ``cond_rollover``, ``cond_oi_flush``, ``cond_liquidity``, ``cond_divergence``
exhaustion (bool)      all five (spec §8.4)
event (bool)           an episode starts: a side's price pattern (panic, rollover, liquidity,
                       divergence) holds and did not in the ``refractory_s`` before (episodes
                       are per side: a bounce inside a sell cascade does not mask its exhaustion)
dir (int8)             ``-side``: the fade of the active side's move (+1 buy after a sell cascade)
sigma                  realized volatility over the time stop (fraction of price): σ of sizing
target_w               Mode A target (spec §4.2): opened at an event that is FORCED and exhausted,
                       ``dir·w_max·tanh((P − lpi_hi)/2)/σ_bps`` with P the LPI's peak over
                       ``rollover_peak_s`` (the panic faded), held until LPI < lpi_exit, the
                       time stop or the σ-stop (:func:`kernels.signals.mode_a_positions`); where
                       no Mode A position is open and the state is INFORMED, Mode B's target
exit_reason (int8)     0, or at the tick a position closes: 1 LPI exit, 2 time stop, 3 σ-stop
=====================  =========================================================================

Decisions where the spec is open, each measured in bench/RESULTS.md:

* **Confirmation of forced flow** (spec §4.1, §8.3): ``z(FSI) > z_fsi_hi`` and, by the feeds the
  symbol has, a liquidation spike ``z(liq) > z_liq_hi`` where a liquidation feed exists (spec §1.1:
  explicit liquidation data is primary, inference a fallback), else ``z(ΔOI) > z_oi_hi`` (OI). With
  both feeds OI still confirms the exhaustion (``cond_oi_flush``): open interest moves for many
  reasons (a repricing's new positions, hedges, expiries), and a small OI dip during an informed
  repricing's sweeps would otherwise make it FORCED. Without either feed the spec's fallback ("persistent one-sided order flow without
  OI drops → INFORMED") cannot separate a cascade from a repricing -- both are one-sided. The proxy
  is the mechanism that does: forced sellers are price-insensitive and hit a book that market
  makers are withdrawing from, so a cascade's impact flow comes with a *liquidity shock*,
  ``z(LDR) > z_proxy_hi`` (wide spread and thin depth against their norms); an informed trader's
  flow meets makers who re-quote at the new level. Where the book has no depth (trades-only), the
  shock is read from the price impact per dollar, ``z(Π) > z_proxy_hi``. run.json records which path
  each symbol used (:func:`state_path`). Measured limit: a lone block trade is impact flow that eats
  the depth it hits, a liquidity shock as well, so on markets with a real market's background flow
  the proxy's Mode A precision is 0.07-0.23 (bench/RESULTS.md): it finds cascades, it does not
  confirm them.
* **The state starts at an onset and is held**: an *onset* of forced flow is ``z(FSI) > z_fsi_hi``
  and the confirmation within ``state_onset_s`` (default 5 s) of each other (not necessarily at the
  same tick: a sweep and the liquidation prints behind it fall in different ticks, seconds apart at
  most). A side is FORCED for ``state_hold_s`` (default 120 s) after an onset. The onset must be
  one: real markets print lone liquidations and isolated impact trades all day (the generator's
  background flow), and "both within the last 120 s" made FORCED of a lone liquidation followed a
  minute later by an unrelated block trade (planted seed 7: a Mode A event outside every cascade;
  with the onset rule precision 1.00 on seeds 1-8). By the time a cascade exhausts its
  impact flow has by definition died down, so ``z(FSI) > z_fsi_hi`` at the exhaustion tick itself
  would contradict the exhaustion it is meant to qualify; the state is the episode's, not the last
  tick's. The hold spans an episode (``refractory_s``, 120 s): a cascade's liquidation waves come
  first and its exhaustion up to a minute or more after the last one, in a grind where the
  book stays thin and the impact flow is low (planted seeds 1-5: 30 s missed the exhaustion of 2
  of 11 cascades, 60 s one of them, 120 s none; no fade at any value).
* **Conditions without their feed**: ``cond_oi_flush`` is true where the symbol has no OI feed, and
  ``cond_liquidity`` where the book has no depth (not applicable, not failed); a NaN input of a feed
  that exists makes its condition false.
* **Panic occurred** (spec §3.1 "Panic occurred: LPI_t > LPI^hi") is read over the rollover's peak
  window: the LPI's maximum over the last ``rollover_peak_s`` is above ``lpi_hi``, and the LPI is
  still above ``lpi_exit``. Exhaustion is the moment the pressure drops; where the book refills in
  one update the LPI falls from the panic to below ``lpi_hi`` in one tick, and "LPI_t > lpi_hi at
  the exhaustion tick" together with the rollover's "at most half the peak" leaves no tick at all
  (planted seed 1: one of four cascades, LPI 6.3 -> 1.9 at its bottom). Above ``lpi_exit``: below it
  Mode A's take-profit would close the trade as it opens; the episode is over. The **size** is
  therefore the panic's, ``h(P)`` of that peak P (above ``lpi_hi`` at every entry), not of the LPI
  at entry, which may be below ``lpi_hi`` (and ``h`` negative).
* **Rollover** ``ΔLPI < 0`` for the last ``rollover_k`` ticks is read as "``LPI_t`` below each of
  its last K values" (``LPI_t < LPI_{t-j-1}``, ``j = 0..K-1``), not tick over tick: the inputs of
  the LPI update less often than every tick (a book or flow window that did not change repeats its
  value), so K strictly falling ticks in a row almost never hold while the pressure is clearly
  falling (planted seed 1: recall 0.25 -> 0.75 with the other rules unchanged, bench/RESULTS.md).
  The rollover also needs the LPI to have come off its recent peak: while it is above ``lpi_hi``, at
  most ``rollover_from_peak`` (0.5) times its maximum over the last ``rollover_peak_s`` (30 s). The
  LPI of a cascade plateaus at a high, noisy level while the liquidations last; dips in that plateau
  are noise, not selling that exhausts, and taken alone they fired ~10-40 s before the bottom in the
  planted cascades. ``rollover_from_peak = 1`` drops the peak test.
* **Liquidity reformation** ``Δz(LDR) < 0`` is over the same K ticks (one tick of a book that did
  not change is not "worsening") *and* the book has refilled: ``z(LDR)`` at most
  ``rollover_from_peak`` (0.5) times its maximum over ``rollover_peak_s`` -- the same "half its
  peak" as the pressure's rollover, for the depletion of the book. A multi-wave cascade has lulls
  between its waves where the impact flow stops, the LPI halves and the price still makes new lows
  -- every other condition holds -- but the makers have not come back: the book stays as thin as at
  the peak (z(LDR) ~ 0.8-0.9 of its peak in the planted lulls) and the next wave takes the price
  lower (30 s markouts of -37..-76 bps). At the bottom the makers re-quote and z(LDR) collapses;
  that is the reformation the spec asks for ("depth stops worsening, spread stops widening"), read
  as a level, not a one-tick sign. ``rollover_from_peak = 1`` drops the refill test too (the spec's
  one-sign rule).
* **Divergence** ("price makes a new low but LPI does not", τ in ``[divergence_min_s,
  divergence_max_s]``) holds for *some* τ of the range: the mid is beyond its value τ ago and the
  LPI below its value then. At the bottom the price is flat for a moment -- that is what the bottom
  is -- so "beyond its value at every τ" fails exactly where the book refills (planted seeds 1-8
  with every τ: recall 0-0.75 on four of them, against 1.0). Since the divergence of each side can
  then hold at one tick (for different τ), where both sides start an episode at once the active side
  is the one the price moved to over ``rollover_peak_s`` (spec §4.2 ``dir = −sign(r)``; a panic
  thins the whole book, so both sides' LPI rise).
* **One decision per episode**: the event is the episode's first candidate tick; its state and its
  OI flush decide whether Mode A trades it. Later candidates of the same episode (within
  ``refractory_s`` of another) open nothing.
* **Size** is fixed at entry: ``h`` of the current LPI is negative below ``lpi_hi``, so re-sizing
  with it would flip the position while the LPI decays towards ``lpi_exit``.
* **Crash filter** (spec §8.6) is applied by the run after the leader's chunks
  (:func:`apply_crash_filter`): it joins the leader's ``forced_down`` by tick time.

Chunking: every signal at ``t`` depends on at most :attr:`FeatureParams.signal_lookback_ticks`
ticks before it (:mod:`kernels.signals`), which the chunk's history covers, so chunked runs equal
unchunked ones and truncating data after ``t`` changes nothing at ``t``.
"""

from __future__ import annotations

import importlib

import numpy as np

from gpu_lpi.device import to_device, to_host
from gpu_lpi.errors import ConfigError
from gpu_lpi.params import FeatureParams
from gpu_lpi.robust import trailing_mean_std
from kernels import signals as kernels
from kernels.per_tick import empty_record

CONDITIONS = ("cond_panic", "cond_rollover", "cond_oi_flush", "cond_liquidity", "cond_divergence")
#: Signal columns of the feature table, in order.
SIGNAL_COLUMNS = ("forced_down", "forced_up", "state", "side", *CONDITIONS, "exhaustion", "event",
                  "dir", "sigma", "target_w", "exit_reason")
BOOL_COLUMNS = frozenset({"forced_down", "forced_up", *CONDITIONS, "exhaustion", "event"})
INT8_COLUMNS = frozenset({"state", "side", "dir", "exit_reason"})
STATE_FORCED, STATE_INFORMED, STATE_WARMING = 1, 0, -1
#: State paths (run.json ``state_path``) by the feeds a symbol has.
_PATHS = {kernels.CONFIRM_OI: "oi", kernels.CONFIRM_LIQUIDATIONS: "liquidations",
          kernels.CONFIRM_PROXY: "proxy"}


def confirm_path(has_oi: bool, has_liquidations: bool) -> int:
    """The :mod:`kernels.signals` ``CONFIRM_*`` code of a symbol's feeds: the liquidation feed
    where there is one (spec §1.1: explicit liquidation data first), else OI, else the proxy."""
    if has_liquidations:
        return kernels.CONFIRM_LIQUIDATIONS
    return kernels.CONFIRM_OI if has_oi else kernels.CONFIRM_PROXY


def state_path(has_oi: bool, has_liquidations: bool, has_depth: bool) -> str:
    """How a symbol's FORCED state is confirmed: ``liquidations``, ``oi``, or ``proxy (liquidity
    shock: z(LDR))`` / ``proxy (impact per dollar: z(Π))`` without depth."""
    path = _PATHS[confirm_path(has_oi, has_liquidations)]
    if path != "proxy":
        return path
    return "proxy (liquidity shock: z(LDR))" if has_depth else "proxy (impact per dollar: z(Π))"


def add_signals(columns: dict, params: FeatureParams, xp, target: str, *, block_origin: int,
                has_oi: bool, has_liquidations: bool, has_depth: bool) -> None:
    """Add the signal columns (module docstring) to a chunk's feature ``columns`` (in place).

    Parameters
    ----------
    columns : dict of arrays
        The chunk's features on the device of ``xp``, every loaded tick (history first).
    params : FeatureParams
    xp : module
        ``numpy`` or ``cupy``.
    target : {"cpu", "gpu"}
    block_origin : int
        Absolute tick number of the first loaded tick (for the exact trailing σ).
    has_oi, has_liquidations, has_depth : bool
        Which feeds the symbol has (see :func:`state_path`).
    """
    count = columns["mid"].size
    nan = xp.full(count, np.nan)
    path = confirm_path(has_oi, has_liquidations)
    first, last = params.divergence_ticks
    sides = {}
    for side, suffix, liquidation in ((-1.0, "", "z_liq_sell"), (1.0, "_up", "z_liq_buy")):
        lpi = columns["lpi_down" if side < 0 else "lpi_up"]
        outputs = empty_record(kernels.SideConditions, count, xp)
        kernels.side_conditions(count, kernels.SideInputs(
            lpi=lpi, z_fsi=columns[f"z_fsi{suffix}"], z_ldr=columns[f"z_ldr{suffix}"],
            z_doi=columns["z_doi"], z_liq=columns.get(liquidation, nan), z_pi=columns["z_pi"],
            mid=columns["mid"]), outputs, kernels.SideParams(
            side=side, lpi_hi=float(params.lpi_hi), lpi_exit=float(params.lpi_exit),
            rollover_k=int(params.rollover_k),
            z_fsi_hi=float(params.z_fsi_hi), z_oi_hi=float(params.z_oi_hi),
            z_liq_hi=float(params.z_liq_hi), z_proxy_hi=float(params.z_proxy_hi),
            confirm_path=int(path), has_oi=int(has_oi), has_depth=int(has_depth),
            divergence_first=int(first), divergence_last=int(last),
            peak_ticks=params.seconds_to_ticks(params.rollover_peak_s),
            from_peak=float(params.rollover_from_peak)), target)
        sides[side] = outputs
    down, up = sides[-1.0], sides[1.0]
    lpi_down, lpi_up = columns["lpi_down"], columns["lpi_up"]
    refractory = kernels.Refractory(params.refractory_ticks)
    events = {}
    for side, conditions in ((-1.0, down), (1.0, up)):
        starts = empty_record(kernels.EpisodeStarts, count, xp)
        kernels.episode_starts(count, kernels.Candidates(conditions.candidate), starts, refractory, target)
        events[side] = starts.event == 1.0
    # the active side: the side of an event where one starts, else the side with the larger LPI
    larger = (lpi_down >= lpi_up) | (xp.isnan(lpi_up) & ~xp.isnan(lpi_down))
    both = events[-1.0] & events[1.0]
    is_down = xp.where(events[-1.0] != events[1.0], events[-1.0],
                       xp.where(both, _moved_down(columns["mid"], down.peak, up.peak, params, xp),
                                larger))
    known = ~(xp.isnan(lpi_down) & xp.isnan(lpi_up))

    def active(name):
        return xp.where(is_down, getattr(down, name), getattr(up, name)) == 1.0

    hold = params.seconds_to_ticks(params.state_hold_s)
    onset = params.seconds_to_ticks(params.state_onset_s)
    for name, conditions in (("forced_down", down), ("forced_up", up)):
        onsets = held(conditions.impact == 1.0, onset, xp) & held(conditions.confirmed == 1.0, onset, xp)
        columns[name] = held(onsets, hold, xp)
    warm = active("warm") & known
    forced = xp.where(is_down, columns["forced_down"], columns["forced_up"])
    columns["state"] = xp.where(warm, forced.astype(np.int8), np.int8(STATE_WARMING)).astype(np.int8)
    columns["side"] = xp.where(known, xp.where(is_down, -1, 1), 0).astype(np.int8)
    for name in CONDITIONS:
        columns[name] = active(name.removeprefix("cond_")) & known
    candidate = active("candidate") & known
    columns["event"] = xp.where(is_down, events[-1.0], events[1.0])
    columns["exhaustion"] = candidate & columns["cond_oi_flush"]
    columns["dir"] = (-columns["side"]).astype(np.int8)
    columns["sigma"] = _sigma(columns["rv"], params, target, block_origin)
    entry = columns["event"] & columns["exhaustion"] & (columns["state"] == STATE_FORCED)
    positions = empty_record(kernels.Positions, count, xp)
    kernels.mode_a_positions(1, kernels.PositionInputs(
        entry=entry.astype(np.float64), direction=columns["dir"].astype(np.float64),
        lpi_down=lpi_down, lpi_up=lpi_up, peak_down=down.peak, peak_up=up.peak, mid=columns["mid"],
        sigma=columns["sigma"]), positions,
        kernels.PositionParams(lpi_hi=float(params.lpi_hi), lpi_exit=float(params.lpi_exit),
                               time_stop=params.seconds_to_ticks(params.time_stop_s),
                               stop_sigma=float(params.stop_sigma), w_max=float(params.w_max)),
        target)
    columns["target_w"] = positions.target_w
    columns["exit_reason"] = positions.exit_reason.astype(np.int8)


def _moved_down(mid, peak_down, peak_up, params: FeatureParams, xp):
    """Where both sides start an episode at once: True where the one to fade is the sell side.

    A thin book lifts both sides' LPI in one panic, and the divergence of each side can hold
    for different τ. The panic is on the side the price moved to over the peak window (spec
    §4.2 ``dir = −sign(r)``): down where the mid is below its value ``rollover_peak_s`` ago;
    where it is not known or equal, the side with the larger LPI peak.
    """
    shift = params.seconds_to_ticks(params.rollover_peak_s)
    before = xp.full(mid.size, np.nan)
    if mid.size > shift:
        before[shift:] = mid[:-shift]
    return xp.where((mid < before) | (mid > before), mid < before, peak_down >= peak_up)


def held(flags, ticks: int, xp):
    """True where ``flags`` held at some tick of the last ``ticks`` (current included).

    Counted exactly with integer prefix sums: the count over ``(i − ticks, i]`` does not depend on
    where the series starts.
    """
    counts = xp.concatenate([xp.zeros(1, dtype=np.int64), xp.cumsum(flags, dtype=np.int64)])
    index = xp.arange(flags.size)
    return counts[index + 1] - counts[xp.maximum(index + 1 - ticks, 0)] > 0


def _sigma(rv, params: FeatureParams, target: str, block_origin: int):
    """Realized volatility over the time stop: ``sqrt(mean RV per tick · T_max/Δ)``."""
    window = params.seconds_to_ticks(params.sigma_window_s)
    mean_rv, _ = trailing_mean_std(rv, window, params.min_periods_for(window), device=target,
                                   block_origin=block_origin)
    return (mean_rv * params.seconds_to_ticks(params.time_stop_s)) ** 0.5


def load_mode_b(spec: str):
    """The Mode B rule named by ``params.mode_b``: None for ``"flat"``, else the function
    ``"package.module:function"``.

    The function is called as ``rule(frame)`` with a pandas DataFrame of one chunk's ticks (the
    feature and signal columns, history ticks first, ``ts`` included) and returns one target per
    row; it is used at INFORMED ticks without a Mode A position. It must read only rows at or
    before each tick (no look-ahead) for the run's results to be exact under chunking.

    Raises
    ------
    ConfigError
        When the name is malformed or does not import.
    """
    if spec == "flat":
        return None
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ConfigError(f"params.mode_b: expected \"flat\" or \"package.module:function\", got {spec!r}")
    try:
        rule = getattr(importlib.import_module(module_name), function_name)
    except Exception as err:      # a plug-in's module may raise anything while it is imported
        raise ConfigError(f"params.mode_b: cannot load {spec!r} ({type(err).__name__}: {err})") from None
    if not callable(rule):
        raise ConfigError(f"params.mode_b: {spec!r} is not a function")
    return rule


def apply_mode_b(columns: dict, rule, times: np.ndarray, xp) -> None:
    """Mode B targets at INFORMED ticks without a Mode A position (in place); see :func:`load_mode_b`."""
    import pandas as pd

    frame = pd.DataFrame({name: to_host(values) for name, values in columns.items()
                          if getattr(values, "ndim", 0) == 1 and values.size == times.size})
    frame.insert(0, "ts", times)
    try:
        targets = np.asarray(rule(frame), dtype=np.float64)
    except Exception as err:      # the plug-in's own failure, named as such
        raise ConfigError(f"params.mode_b: the rule raised {type(err).__name__}: {err}") from None
    if targets.shape != (times.size,):
        raise ConfigError(f"params.mode_b: the rule returned shape {targets.shape}, expected ({times.size},)")
    informed_flat = to_host((columns["state"] == STATE_INFORMED) & (columns["target_w"] == 0.0))
    if not np.isfinite(targets[informed_flat]).all():
        raise ConfigError("params.mode_b: the rule returned a target that is not a finite number "
                          "at an INFORMED tick (targets must be finite; return 0 for flat)")
    columns["target_w"] = xp.where(to_device(informed_flat, xp), to_device(np.where(informed_flat, targets, 0.0), xp),
                                   columns["target_w"])


def apply_crash_filter(target_w: np.ndarray, leader_forced_down: np.ndarray, scale: float) -> np.ndarray:
    """Long targets scaled by ``scale`` at ticks where the leader is FORCED on its down side."""
    return np.where(leader_forced_down & (target_w > 0.0), target_w * scale, target_w)
