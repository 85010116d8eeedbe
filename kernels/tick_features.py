"""Per-tick feature kernels (spec §2.1–2.3): bodies of :func:`kernels.per_tick.per_tick` kernels.

Each kernel ``k`` is called as ``k(count, inputs, outputs, params, target)`` with the named tuples
defined next to its body (``inputs``/``outputs``: arrays; ``params``: scalars). Helpers are compiled
with :func:`kernels.jit.njit`; a GPU kernel calling them compiles them as device functions. Bodies
read and write element ``i`` only (or a block ``i``), in a fixed order, so that the CPU and the GPU
compute the same numbers and a result never depends on where the input arrays begin.

NaN marks "unknown" (no valid book, warm-up) and propagates; nothing is forward-filled.
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import NamedTuple

import numpy as np

from kernels.jit import njit
from kernels.per_tick import per_tick

MAD_TO_SIGMA = 1.4826


class NoParams(NamedTuple):
    """Parameters of a body that has none."""


# -- grid aggregation of trades ---------------------------------------------------------------------
class TradeSumsInputs(NamedTuple):
    trade_start: np.ndarray  #: int64[n + 1]: trades ``trade_start[i]:trade_start[i + 1]`` are tick i's
    price: np.ndarray
    notional: np.ndarray
    is_sell: np.ndarray  #: bool: the aggressor sold
    bid_prev: np.ndarray  #: best bid at ``t − Δ`` (NaN: unknown)
    ask_prev: np.ndarray  #: best ask at ``t − Δ``


class TradeSums(NamedTuple):
    dollar_volume: np.ndarray
    impact_sell_notional: np.ndarray
    impact_buy_notional: np.ndarray


class ImpactThreshold(NamedTuple):
    theta: float  #: the impact threshold as a fraction of price


@per_tick
def trade_sums(i, inputs: TradeSumsInputs, outputs: TradeSums, params: ImpactThreshold):
    """Dollar volume and impact notionals of the trades of tick ``i``.

    A sell is an impact trade when ``price < bid_prev·(1 − θ)`` strictly; a buy when
    ``price > ask_prev·(1 + θ)``. Impact notionals are NaN when the previous quote is unknown.
    """
    sell_threshold = inputs.bid_prev[i] * (1.0 - params.theta)
    buy_threshold = inputs.ask_prev[i] * (1.0 + params.theta)
    volume = 0.0
    sell = 0.0
    buy = 0.0
    for trade in range(inputs.trade_start[i], inputs.trade_start[i + 1]):
        notional = inputs.notional[trade]
        volume += notional
        if inputs.is_sell[trade]:
            if inputs.price[trade] < sell_threshold:
                sell += notional
        elif inputs.price[trade] > buy_threshold:
            buy += notional
    outputs.dollar_volume[i] = volume
    outputs.impact_sell_notional[i] = math.nan if math.isnan(sell_threshold) else sell
    outputs.impact_buy_notional[i] = math.nan if math.isnan(buy_threshold) else buy


class SideRows(NamedTuple):
    row_start: np.ndarray  #: int64[n + 1]: rows ``row_start[i]:row_start[i + 1]`` are tick i's
    notional: np.ndarray
    is_sell: np.ndarray  #: bool


class SideSums(NamedTuple):
    sell_notional: np.ndarray
    buy_notional: np.ndarray


@per_tick
def side_sums(i, inputs: SideRows, outputs: SideSums, params: NoParams):
    """Sell-side and buy-side notional of the rows of tick ``i`` (liquidation orders)."""
    sell = 0.0
    buy = 0.0
    for row in range(inputs.row_start[i], inputs.row_start[i + 1]):
        if inputs.is_sell[row]:
            sell += inputs.notional[row]
        else:
            buy += inputs.notional[row]
    outputs.sell_notional[i] = sell
    outputs.buy_notional[i] = buy


# -- flow sums over a short trailing window -----------------------------------------------------------
class FlowInputs(NamedTuple):
    """Per-tick flows (NaN: not covered)."""

    dollar_volume: np.ndarray
    impact_sell_notional: np.ndarray
    impact_buy_notional: np.ndarray
    liq_sell_notional: np.ndarray
    liq_buy_notional: np.ndarray


class FlowSums(NamedTuple):
    """The flows of :class:`FlowInputs` summed over the trailing flow window, same order."""

    flow_dollar_volume: np.ndarray
    flow_impact_sell: np.ndarray
    flow_impact_buy: np.ndarray
    flow_liq_sell: np.ndarray
    flow_liq_buy: np.ndarray


class FlowWindow(NamedTuple):
    ticks: int  #: ticks in the flow window (the current one included), >= 1


@njit
def _trailing_sum(values, i, ticks):
    """``values[i − ticks + 1] + … + values[i]`` added in that order; NaN if one is NaN or the
    window starts before the series."""
    if i + 1 < ticks:
        return math.nan
    total = 0.0
    for j in range(i - ticks + 1, i + 1):
        total += values[j]
    return total


@per_tick
def flow_sums(i, inputs: FlowInputs, outputs: FlowSums, params: FlowWindow):
    """Each flow summed over ticks ``i − ticks + 1 .. i``, directly (no running sum), so a value
    depends only on its own ticks: the same bits whatever the series' start."""
    ticks = params.ticks
    outputs.flow_dollar_volume[i] = _trailing_sum(inputs.dollar_volume, i, ticks)
    outputs.flow_impact_sell[i] = _trailing_sum(inputs.impact_sell_notional, i, ticks)
    outputs.flow_impact_buy[i] = _trailing_sum(inputs.impact_buy_notional, i, ticks)
    outputs.flow_liq_sell[i] = _trailing_sum(inputs.liq_sell_notional, i, ticks)
    outputs.flow_liq_buy[i] = _trailing_sum(inputs.liq_buy_notional, i, ticks)


class SubsampledMids(NamedTuple):
    sub_mid: np.ndarray  #: float64[n_ticks·n + 1]; index ``i·n + j`` is the mid at ``t_i − Δ + jΔ/n``


class RealizedVariance(NamedTuple):
    rv: np.ndarray


class Subsamples(NamedTuple):
    subsamples: int  #: ``n``, mids per tick


@per_tick
def realized_variance(i, inputs: SubsampledMids, outputs: RealizedVariance, params: Subsamples):
    """RV of tick ``i``: sum of squared log returns of ``n`` sub-sampled mids inside (t − Δ, t]."""
    count = params.subsamples
    total = 0.0
    for j in range(i * count + 1, i * count + count + 1):
        step = math.log(inputs.sub_mid[j] / inputs.sub_mid[j - 1])
        total += step * step
    outputs.rv[i] = total


# -- trailing-window mean and standard deviation ----------------------------------------------------
# Moments are carried as (count, mean, m2): the number of valid values, their mean and the sum of
# their squared deviations from it. Welford's update within a block, and sums shifted by a mean of the
# window across blocks, keep them accurate whatever the series' level (a raw sum of squares loses the
# spread of values near 1e6 to cancellation).
@njit
def _welford_add(count, mean, m2, value):
    """Moments after adding one valid value."""
    count += 1.0
    delta = value - mean
    mean += delta / count
    m2 += delta * (value - mean)
    return count, mean, m2


@njit
def _accumulate(count, reference, shifted_sum, squares, other_count, other_mean, other_m2):
    """Add a part's moments to sums of ``x − reference`` and ``(x − reference)²`` over a window.

    The reference is the mean of the first non-empty part, so the sums stay of the order of the
    window's spread (no cancellation on series far from zero) and no division is needed per part.
    """
    if other_count == 0.0:
        return count, reference, shifted_sum, squares
    if count == 0.0:
        return other_count, other_mean, 0.0, other_m2
    offset = other_mean - reference
    return (count + other_count, reference, shifted_sum + other_count * offset,
            squares + other_m2 + other_count * offset * offset)


class Series(NamedTuple):
    values: np.ndarray  #: NaN = gap; length a multiple of the block, blocks aligned by the caller


class BlockMoments(NamedTuple):
    """In-block running moments of a series' valid values, both ways, and whole-block moments."""

    prefix_count: np.ndarray  #: moments from the block's first element to ``j`` (length of values)
    prefix_mean: np.ndarray
    prefix_m2: np.ndarray
    suffix_count: np.ndarray  #: moments from ``j`` to the block's last element (length of values)
    suffix_mean: np.ndarray
    suffix_m2: np.ndarray
    block_count: np.ndarray  #: the whole block's moments, one per block (contiguous: a window
    block_mean: np.ndarray  #: reads them for every block it covers)
    block_m2: np.ndarray


class Block(NamedTuple):
    block: int  #: block length


@per_tick
def block_moments(b, inputs: Series, outputs: BlockMoments, params: Block):
    """In-block running moments of the valid (non-NaN) values of block ``b``, both ways."""
    values = inputs.values
    block = params.block
    count = 0.0
    mean = 0.0
    m2 = 0.0
    for j in range(b * block, (b + 1) * block):
        if not math.isnan(values[j]):
            count, mean, m2 = _welford_add(count, mean, m2, values[j])
        outputs.prefix_count[j] = count
        outputs.prefix_mean[j] = mean
        outputs.prefix_m2[j] = m2
    outputs.block_count[b] = count
    outputs.block_mean[b] = mean
    outputs.block_m2[b] = m2
    count = 0.0
    mean = 0.0
    m2 = 0.0
    for j in range((b + 1) * block - 1, b * block - 1, -1):
        if not math.isnan(values[j]):
            count, mean, m2 = _welford_add(count, mean, m2, values[j])
        outputs.suffix_count[j] = count
        outputs.suffix_mean[j] = mean
        outputs.suffix_m2[j] = m2


WindowStatsInputs = namedtuple("WindowStatsInputs", ("values", *BlockMoments._fields))
WindowStatsInputs.__doc__ = """The series of :func:`block_moments` and the fields of its outputs."""


class MeanStd(NamedTuple):
    mean: np.ndarray  #: one per tick
    std: np.ndarray


class WindowParams(NamedTuple):
    window: int  #: window length in ticks
    block: int  #: block length of the moments
    min_periods: int  #: fewest valid values for an output
    lead: int  #: tick ``i`` sits at position ``i + lead`` of ``values`` (before: NaN padding)


@per_tick
def window_stats(i, inputs: WindowStatsInputs, outputs: MeanStd, params: WindowParams):
    """Mean and population standard deviation of the valid values of each trailing window.

    The window of tick ``i`` covers ``i − window + 1 .. i`` (clipped at tick 0).

    A window spanning several blocks adds up, in block order, the moments of the suffix of its first
    block, of the whole blocks between and of the prefix of its last block (:func:`_accumulate`). A
    window inside one block reads the block's prefix moments when it starts at the block's start or
    at the series' start (positions before are NaN padding), and is summed directly otherwise
    (windows shorter than a block only). Each part depends only on the window's own values
    and on absolute block boundaries, so the result does not depend on where the series starts
    (chunked = unchunked) nor on values after tick ``i`` (prefix invariance), bit for bit.
    """
    values = inputs.values
    moments = inputs  # the BlockMoments fields
    block = params.block
    lead = params.lead
    last = i + lead
    first = max(last - params.window + 1, lead)
    first_block = first // block
    last_block = last // block
    count = 0.0
    average = 0.0
    m2 = 0.0
    if first_block == last_block and (first == lead or first % block == 0):
        count = moments.prefix_count[last]        # positions before ``lead`` are NaN padding
        average = moments.prefix_mean[last]
        m2 = moments.prefix_m2[last]
    elif first_block == last_block:
        for j in range(first, last + 1):
            if not math.isnan(values[j]):
                count, average, m2 = _welford_add(count, average, m2, values[j])
    else:
        count = moments.suffix_count[first]
        reference = moments.suffix_mean[first]
        shifted_sum = 0.0
        squares = moments.suffix_m2[first]
        for b in range(first_block + 1, last_block):
            count, reference, shifted_sum, squares = _accumulate(
                count, reference, shifted_sum, squares, moments.block_count[b],
                moments.block_mean[b], moments.block_m2[b])
        count, reference, shifted_sum, squares = _accumulate(
            count, reference, shifted_sum, squares,
            moments.prefix_count[last], moments.prefix_mean[last], moments.prefix_m2[last])
        if count > 0.0:
            average = reference + shifted_sum / count
            m2 = squares - shifted_sum * (shifted_sum / count)
    if count < params.min_periods or count == 0.0:
        outputs.mean[i] = math.nan
        outputs.std[i] = math.nan
        return
    outputs.mean[i] = average
    outputs.std[i] = math.sqrt(max(m2 / count, 0.0))


# -- features, robust z, LPI ------------------------------------------------------------------------
class TickFeatureInputs(NamedTuple):
    bid: np.ndarray  #: top of book, NaN where invalid
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    depth_bid: np.ndarray  #: depth within η
    depth_ask: np.ndarray
    flow_dollar_volume: np.ndarray  #: V$ and impact notionals over the flow window
    flow_impact_sell: np.ndarray
    flow_impact_buy: np.ndarray
    adv: np.ndarray  #: ADV$ in $/s
    mean_depth_bid: np.ndarray
    mean_depth_ask: np.ndarray
    d_oi: np.ndarray  #: OI drop (NaN: no OI feed)
    sigma_doi: np.ndarray


class TickFeatures(NamedTuple):
    mid: np.ndarray
    spread: np.ndarray
    microprice: np.ndarray
    log_return: np.ndarray
    fsi: np.ndarray
    fsi_up: np.ndarray
    ldr: np.ndarray
    ldr_up: np.ndarray
    pi: np.ndarray


class TickFeatureParams(NamedTuple):
    tick_s: float  #: Δ in seconds
    flow_ticks: int  #: ticks k of the flow window (FSI's and Π's trades, Π's return)
    kappa: float
    eps: float
    pi_eps_adv_fraction: float


@per_tick
def tick_features(i, inputs: TickFeatureInputs, outputs: TickFeatures, params: TickFeatureParams):
    """Mid, spread, microprice, log return, FSI, LDR and Π of tick ``i`` (spec §2.1–2.2).

    Over the flow window of ``k`` ticks (``T = k·Δ``; ``k = 1`` is the spec's per-tick form):
    ``FSI = ΣV_impact/(ADV$·T + ε)·g``, ``g = 1 + κ·tanh(ΔOI/(σ_ΔOI + ε))`` (1 where ΔOI or σ_ΔOI
    is unknown: no OI feed); ``Π = |ln(m_t/m_{t−T})|/(ΣV$ + f·ADV$·T + ε)``. ``LDR = (s/m)/(D/mean
    D)``; the log return ``r`` is over one tick.
    """
    bid, ask, eps = inputs.bid, inputs.ask, params.eps
    middle = 0.5 * (bid[i] + ask[i])
    width = ask[i] - bid[i]
    outputs.mid[i] = middle
    outputs.spread[i] = width
    outputs.microprice[i] = ((ask[i] * inputs.bid_qty[i] + bid[i] * inputs.ask_qty[i])
                             / (inputs.bid_qty[i] + inputs.ask_qty[i]))
    change = math.nan
    if i > 0:
        change = math.log(middle / (0.5 * (bid[i - 1] + ask[i - 1])))
    outputs.log_return[i] = change
    k = params.flow_ticks
    flow_change = math.nan
    if i >= k:
        flow_change = math.log(middle / (0.5 * (bid[i - k] + ask[i - k])))
    amplifier = 1.0
    if not (math.isnan(inputs.d_oi[i]) or math.isnan(inputs.sigma_doi[i])):
        amplifier = 1.0 + params.kappa * math.tanh(inputs.d_oi[i] / (inputs.sigma_doi[i] + eps))
    volume_per_window = inputs.adv[i] * params.tick_s * k
    outputs.fsi[i] = inputs.flow_impact_sell[i] / (volume_per_window + eps) * amplifier
    outputs.fsi_up[i] = inputs.flow_impact_buy[i] / (volume_per_window + eps) * amplifier
    relative_spread = width / middle
    outputs.ldr[i] = relative_spread / (inputs.depth_bid[i] / inputs.mean_depth_bid[i])
    outputs.ldr_up[i] = relative_spread / (inputs.depth_ask[i] / inputs.mean_depth_ask[i])
    outputs.pi[i] = abs(flow_change) / (inputs.flow_dollar_volume[i]
                                        + params.pi_eps_adv_fraction * volume_per_window + eps)


class RobustZInputs(NamedTuple):
    x: np.ndarray
    median: np.ndarray  #: window median and MAD of ``x``
    mad: np.ndarray
    std: np.ndarray  #: window standard deviation (0 with a zero ratio)


class RobustZ(NamedTuple):
    z: np.ndarray
    scale: np.ndarray


class RobustZParams(NamedTuple):
    eps: float
    std_floor_ratio: float  #: 0 (with ``std`` 0) gives the plain MAD scale


@per_tick
def robust_z(i, inputs: RobustZInputs, outputs: RobustZ, params: RobustZParams):
    """Robust z of tick ``i``: ``(x − median)/(scale + ε)``, ``scale = max(1.4826·MAD, r·std)``
    (``mad`` may be the non-zero MAD, :mod:`kernels.wavelet_matrix`).

    NaN where any input is NaN.
    """
    x, median, mad, std = inputs.x[i], inputs.median[i], inputs.mad[i], inputs.std[i]
    if math.isnan(x) or math.isnan(median) or math.isnan(mad) or math.isnan(std):
        outputs.z[i] = math.nan
        outputs.scale[i] = math.nan
        return
    spread = max(MAD_TO_SIGMA * mad, params.std_floor_ratio * std)
    outputs.scale[i] = spread
    outputs.z[i] = (x - median) / (spread + params.eps)


class LpiInputs(NamedTuple):
    z_fsi: np.ndarray
    z_ldr: np.ndarray
    z_pi: np.ndarray


class Lpi(NamedTuple):
    lpi: np.ndarray


class LpiWeights(NamedTuple):
    w1: float
    w2: float
    w3: float


@per_tick
def lpi_combination(i, inputs: LpiInputs, outputs: Lpi, params: LpiWeights):
    """LPI of tick ``i`` (spec §2.3): ``w1·z(FSI) + w2·z(LDR) + w3·z(Π)``."""
    outputs.lpi[i] = (params.w1 * inputs.z_fsi[i] + params.w2 * inputs.z_ldr[i]
                      + params.w3 * inputs.z_pi[i])


# -- open interest ------------------------------------------------------------------------------------
class OpenInterest(NamedTuple):
    ts: np.ndarray  #: int64 update times
    oi: np.ndarray


class SmoothedOpenInterest(NamedTuple):
    smoothed: np.ndarray


class EwmaParams(NamedTuple):
    halflife_ns: float
    support_ns: int


@per_tick
def oi_ewma(u, inputs: OpenInterest, outputs: SmoothedOpenInterest, params: EwmaParams):
    """Exponentially weighted OI at update ``u`` over the updates within ``support_ns`` before it.

    The finite support makes the value independent of how much history was loaded.
    """
    ts, oi = inputs.ts, inputs.oi
    weighted = 0.0
    weights = 0.0
    v = u
    while v >= 0 and ts[u] - ts[v] < params.support_ns:
        if not math.isnan(oi[v]):
            weight = math.exp(-math.log(2.0) * (ts[u] - ts[v]) / params.halflife_ns)
            weighted += weight * oi[v]
            weights += weight
        v -= 1
    outputs.smoothed[u] = weighted / weights if weights > 0.0 else math.nan
