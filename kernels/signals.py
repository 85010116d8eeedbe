"""Per-tick signal kernels (spec §3, §4, §8.3–8.6): bodies of :func:`kernels.per_tick.per_tick` kernels.

Each kernel ``k`` is called as ``k(count, inputs, outputs, params, target)`` with the named tuples
defined next to its body. Flags are written as 0.0 / 1.0 (the records are float64 arrays, made by
:func:`kernels.per_tick.empty_record`); the caller turns them into booleans.

* :func:`side_conditions` -- one side of the market at tick ``i`` (``side = -1``: a sell cascade,
  ``+1``: a buy squeeze): the FORCED state, the five exhaustion conditions and the LPI's recent
  peak. Element-wise; reads at most ``max(rollover_k, divergence_last, peak_ticks)`` ticks back.
* :func:`episode_starts` -- the first exhaustion candidate after ``refractory`` ticks without one.
  Element-wise; reads ``refractory`` ticks back, only at candidate ticks.
* :func:`mode_a_positions` -- the target position of Mode A, a scan (one thread walks the series:
  the position at ``i`` depends on the entry and the exits before it).

NaN inputs make a condition false (nothing is known), except where the caller says that a feed does
not exist at all (``has_oi``, ``has_depth``, ``confirm_path``): then the condition is not applicable.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from kernels.per_tick import per_tick

#: ``confirm_path`` values: what confirms that impact flow is forced (spec §4.1, §8.3).
CONFIRM_OI, CONFIRM_LIQUIDATIONS, CONFIRM_PROXY = 0, 1, 2
#: ``exit_reason`` values of :func:`mode_a_positions`.
EXIT_NONE, EXIT_LPI, EXIT_TIME, EXIT_SIGMA = 0, 1, 2, 3


class SideInputs(NamedTuple):
    lpi: np.ndarray  #: the side's LPI
    z_fsi: np.ndarray  #: the side's z(FSI)
    z_ldr: np.ndarray  #: the side's z(LDR)
    z_doi: np.ndarray  #: z(ΔOI) (NaN without an OI feed)
    z_liq: np.ndarray  #: the side's z(liquidation notional) (NaN without a liquidation feed)
    z_pi: np.ndarray  #: z(Π)
    mid: np.ndarray


class SideConditions(NamedTuple):
    impact: np.ndarray  #: z(FSI) > z_fsi_hi
    confirmed: np.ndarray  #: forced flow confirmed (liquidation spike, OI drop or the proxy)
    panic: np.ndarray  #: the LPI was above lpi_hi within the peak window and is above lpi_exit
    rollover: np.ndarray  #: LPI below each of its last K values, and off its recent peak
    oi_flush: np.ndarray  #: z(ΔOI) > z_oi_hi (1 where no OI feed exists)
    liquidity: np.ndarray  #: z(LDR) fell over K ticks and came off its recent peak (1 without depth)
    divergence: np.ndarray  #: for some τ in range, price beyond its value τ ago, the LPI below it
    candidate: np.ndarray  #: panic, rollover, liquidity and divergence (the price pattern)
    warm: np.ndarray  #: the state is defined (z(FSI) and the LPI are known)
    peak: np.ndarray  #: the LPI's maximum over the peak window (NaN skipped; NaN where none is known)


class SideParams(NamedTuple):
    side: float  #: -1.0 down (sell cascade), +1.0 up (buy squeeze)
    lpi_hi: float
    lpi_exit: float  #: panic needs the LPI still above the take-profit level
    rollover_k: int
    z_fsi_hi: float
    z_oi_hi: float
    z_liq_hi: float
    z_proxy_hi: float  #: threshold of the no-OI, no-liquidation proxy (z(LDR), or z(Π) without depth)
    confirm_path: int  #: CONFIRM_*
    has_oi: int  #: 1 when the symbol has an OI feed
    has_depth: int  #: 1 when the book has depth (LDR is defined)
    divergence_first: int  #: τ range in ticks, inclusive
    divergence_last: int
    peak_ticks: int  #: the recent peak: the LPI's (and z(LDR)'s) maximum over this many ticks
    from_peak: float  #: rollover: LPI <= from_peak·(its peak); reformation: z(LDR) <= from_peak·(its peak)


@per_tick
def side_conditions(i, inputs: SideInputs, outputs: SideConditions, params: SideParams):
    """State and exhaustion conditions of one side at tick ``i`` (spec §3.1, §4.1, §8.3–8.4).

    * FORCED (the caller holds each part for a while and combines them): ``impact``, ``z(FSI) >
      z_fsi_hi``, and ``confirmed``, a confirmation of forced flow: a liquidation spike
      ``z(liq) > z_liq_hi`` where a liquidation feed exists, else ``z(ΔOI) > z_oi_hi`` (OI feed),
      else the proxy: a liquidity shock ``z(LDR) > z_proxy_hi`` (``z(Π)`` where the book has no
      depth).
    * ``peak``: the LPI's maximum over the last ``peak_ticks`` (current included, NaN skipped).
      Panic occurred: ``peak > lpi_hi`` and ``LPI_t > lpi_exit``; rollover ``LPI_t < LPI_{t-j-1}``
      for ``j = 0..K-1`` (below each of its last K values) and, while ``LPI_t > lpi_hi``,
      ``LPI_t <= from_peak·peak``; OI flush ``z(ΔOI_t) > z_oi_hi``; liquidity reformation
      ``z(LDR_t) < z(LDR_{t-K})`` and ``z(LDR_t)`` at most ``from_peak`` times its maximum over the
      last ``peak_ticks`` (the book has refilled, NaN skipped); divergence: for some ``τ`` in
      ``[divergence_first, divergence_last]`` ticks, the mid is beyond its value ``τ`` ago in the
      side's direction (lower for a sell cascade) while ``LPI_t < LPI_{t-τ}``.
    """
    lpi = inputs.lpi
    mid = inputs.mid
    level = lpi[i]
    z_fsi = inputs.z_fsi[i]
    outputs.warm[i] = 0.0 if (math.isnan(level) or math.isnan(z_fsi)) else 1.0
    oi_high = inputs.z_doi[i] > params.z_oi_hi
    if params.confirm_path == CONFIRM_LIQUIDATIONS:
        confirmed = inputs.z_liq[i] > params.z_liq_hi
    elif params.confirm_path == CONFIRM_OI:
        confirmed = oi_high
    elif params.has_depth == 1:
        confirmed = inputs.z_ldr[i] > params.z_proxy_hi
    else:
        confirmed = inputs.z_pi[i] > params.z_proxy_hi
    outputs.impact[i] = 1.0 if z_fsi > params.z_fsi_hi else 0.0
    outputs.confirmed[i] = 1.0 if confirmed else 0.0
    peak = -math.inf
    for j in range(max(i - params.peak_ticks + 1, 0), i + 1):
        if lpi[j] > peak:
            peak = lpi[j]
    outputs.peak[i] = peak if peak > -math.inf else math.nan
    panic = peak > params.lpi_hi and level > params.lpi_exit
    k = params.rollover_k
    rollover = i >= k and (level <= params.lpi_hi or level <= params.from_peak * peak)
    for j in range(k):
        if not (i - j - 1 >= 0 and level < lpi[i - j - 1]):
            rollover = False
    if params.has_oi == 1:
        oi_flush = oi_high
    else:
        oi_flush = True
    if params.has_depth == 1:
        z_ldr = inputs.z_ldr
        depletion = z_ldr[i]
        liquidity = i >= k and depletion < z_ldr[i - k]
        if liquidity:           # the refill is read only where it can matter
            deepest = depletion
            for j in range(max(i - params.peak_ticks + 1, 0), i):
                if z_ldr[j] > deepest:
                    deepest = z_ldr[j]
            liquidity = depletion <= params.from_peak * deepest
    else:
        liquidity = True
    divergence = False
    if i >= params.divergence_last and not math.isnan(mid[i]):
        for tau in range(params.divergence_first, params.divergence_last + 1):
            if params.side * (mid[i] - mid[i - tau]) > 0.0 and level < lpi[i - tau]:
                divergence = True
                break
    outputs.panic[i] = 1.0 if panic else 0.0
    outputs.rollover[i] = 1.0 if rollover else 0.0
    outputs.oi_flush[i] = 1.0 if oi_flush else 0.0
    outputs.liquidity[i] = 1.0 if liquidity else 0.0
    outputs.divergence[i] = 1.0 if divergence else 0.0
    outputs.candidate[i] = 1.0 if (panic and rollover and liquidity and divergence) else 0.0


class Candidates(NamedTuple):
    candidate: np.ndarray  #: 1.0 where an exhaustion candidate (either side) is active


class EpisodeStarts(NamedTuple):
    event: np.ndarray


class Refractory(NamedTuple):
    ticks: int  #: a candidate starts an episode when none occurred in the ``ticks`` before


@per_tick
def episode_starts(i, inputs: Candidates, outputs: EpisodeStarts, params: Refractory):
    """1.0 at tick ``i`` when it is a candidate and none of the ``ticks`` before it is."""
    candidate = inputs.candidate
    start = candidate[i] == 1.0
    if start:
        for j in range(max(i - params.ticks, 0), i):
            if candidate[j] == 1.0:
                start = False
                break
    outputs.event[i] = 1.0 if start else 0.0


class PositionInputs(NamedTuple):
    entry: np.ndarray  #: 1.0 at a Mode A entry tick (an episode start, FORCED and exhausted)
    direction: np.ndarray  #: +1.0 buy / -1.0 sell at entry ticks
    lpi_down: np.ndarray
    lpi_up: np.ndarray
    peak_down: np.ndarray  #: the LPI's recent peak per side (:func:`side_conditions`), for the size
    peak_up: np.ndarray
    mid: np.ndarray
    sigma: np.ndarray  #: volatility over the time stop, as a fraction of price


class Positions(NamedTuple):
    target_w: np.ndarray
    exit_reason: np.ndarray  #: EXIT_* at the tick a position closes, else EXIT_NONE


class PositionParams(NamedTuple):
    lpi_hi: float
    lpi_exit: float
    time_stop: int  #: T_max in ticks
    stop_sigma: float
    w_max: float


@per_tick
def mode_a_positions(b, inputs: PositionInputs, outputs: Positions, params: PositionParams):
    """Mode A target position at every tick (spec §4.2, §8.6), one scan (``b`` = 0, ``count`` = 1).

    An entry at tick ``e`` opens ``w = dir·w_max·h(P_e)/σ_e`` (σ in basis points, ``h(L) =
    tanh((L − lpi_hi)/2)``, ``P_e`` the recent peak of the faded side's LPI: the panic the entry
    fades, above ``lpi_hi`` at every entry) and replaces any open position. The position is held
    at that size and closed at the first later tick where the side's LPI is below
    ``lpi_exit`` (take profit), ``time_stop`` ticks have passed, or the mid has moved against it by
    more than ``stop_sigma·σ_e`` (``dir·ln(m/m_e) < −stop_sigma·σ_e``). An entry without a known
    σ, mid or peak opens nothing. A position at ``i`` depends only on ticks ``i − time_stop .. i``: any
    earlier entry has timed out, so a scan started anywhere gives the same positions from
    ``time_stop`` ticks on.
    """
    count = inputs.mid.size
    open_since = -1
    weight = 0.0
    direction = 0.0
    entry_mid = 0.0
    entry_sigma = 0.0
    for i in range(count):
        reason = 0.0
        if inputs.entry[i] == 1.0:
            sign = inputs.direction[i]
            panic = inputs.peak_down[i] if sign > 0.0 else inputs.peak_up[i]
            sigma = inputs.sigma[i]
            if sigma > 0.0 and not math.isnan(inputs.mid[i]) and not math.isnan(panic):
                open_since = i
                direction = sign
                entry_mid = inputs.mid[i]
                entry_sigma = sigma
                weight = (sign * params.w_max * math.tanh((panic - params.lpi_hi) / 2.0)
                          / (sigma * 1e4))
        elif open_since >= 0:
            level = inputs.lpi_down[i] if direction > 0.0 else inputs.lpi_up[i]
            if level < params.lpi_exit:
                reason = 1.0
            elif i - open_since >= params.time_stop:
                reason = 2.0
            elif direction * math.log(inputs.mid[i] / entry_mid) < -params.stop_sigma * entry_sigma:
                reason = 3.0
            if reason != 0.0:
                open_since = -1
                weight = 0.0
        outputs.target_w[i] = weight if open_since >= 0 else 0.0
        outputs.exit_reason[i] = reason
