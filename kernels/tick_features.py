"""Per-tick feature kernels (spec §2.1–2.3): each a body for :func:`kernels.per_tick.run_per_tick`.

Every body is a factory ``make(jit)`` returning the element function compiled with ``jit``
(``numba.njit`` or ``numba.cuda.jit(device=True)``), so helpers are compiled for the same target.
Bodies read and write element ``i`` only (or a block ``i``), in a fixed order, so that the CPU and
the GPU compute the same numbers and a result never depends on where the input arrays begin.

NaN marks "unknown" (no valid book, warm-up) and propagates; nothing is forward-filled.
"""

from __future__ import annotations

import math

MAD_TO_SIGMA = 1.4826


def _plain(body):
    """Factory of a body that calls no helper."""

    def make(jit):
        return jit(body)

    make.__name__ = body.__name__
    return make


# -- grid aggregation of trades ---------------------------------------------------------------------
def _trade_sums(i, arrays, params):
    """Dollar volume and impact notionals of the trades of tick ``i``.

    arrays: ``trade_start`` (int64[n + 1], first trade of each tick), trade ``price``, ``notional``,
    ``is_sell`` (aggressor sold), tick ``bid_prev``/``ask_prev`` (best quotes at ``t − Δ``), and the
    outputs ``dollar_volume``, ``impact_sell_notional``, ``impact_buy_notional``.
    params: ``(theta,)``, the impact threshold as a fraction of price.

    A sell is an impact trade when ``price < bid_prev·(1 − θ)`` strictly; a buy when
    ``price > ask_prev·(1 + θ)``. Impact notionals are NaN when the previous quote is unknown.
    """
    (trade_start, price, notional, is_sell, bid_prev, ask_prev,
     dollar_volume, impact_sell_notional, impact_buy_notional) = arrays
    theta = params[0]
    sell_threshold = bid_prev[i] * (1.0 - theta)
    buy_threshold = ask_prev[i] * (1.0 + theta)
    volume = 0.0
    sell = 0.0
    buy = 0.0
    for trade in range(trade_start[i], trade_start[i + 1]):
        volume += notional[trade]
        if is_sell[trade]:
            if price[trade] < sell_threshold:
                sell += notional[trade]
        elif price[trade] > buy_threshold:
            buy += notional[trade]
    dollar_volume[i] = volume
    impact_sell_notional[i] = math.nan if math.isnan(sell_threshold) else sell
    impact_buy_notional[i] = math.nan if math.isnan(buy_threshold) else buy


trade_sums = _plain(_trade_sums)


def _side_sums(i, arrays, params):
    """Sell-side and buy-side notional of the rows of tick ``i`` (liquidation orders).

    arrays: ``row_start`` (int64[n + 1]), row ``notional``, ``is_sell``, outputs ``sell_notional``,
    ``buy_notional``. params: unused (empty tuple).
    """
    row_start, notional, is_sell, sell_notional, buy_notional = arrays
    sell = 0.0
    buy = 0.0
    for row in range(row_start[i], row_start[i + 1]):
        if is_sell[row]:
            sell += notional[row]
        else:
            buy += notional[row]
    sell_notional[i] = sell
    buy_notional[i] = buy


side_sums = _plain(_side_sums)


def _realized_variance(i, arrays, params):
    """RV of tick ``i``: sum of squared log returns of ``n`` sub-sampled mids inside (t − Δ, t].

    arrays: ``sub_mid`` (float64[n_ticks·n + 1]; index ``i·n + j`` is the mid at ``t_i − Δ + jΔ/n``),
    output ``rv``. params: ``(n,)``.
    """
    sub_mid, rv = arrays
    count = params[0]
    total = 0.0
    for j in range(i * count + 1, i * count + count + 1):
        step = math.log(sub_mid[j] / sub_mid[j - 1])
        total += step * step
    rv[i] = total


realized_variance = _plain(_realized_variance)


# -- trailing-window mean and standard deviation ----------------------------------------------------
def _block_prefix(b, arrays, params):
    """In-block running count, sum and sum of squares of the valid (non-NaN) values of block ``b``.

    arrays: ``values`` (length a multiple of the block), outputs ``count_prefix``, ``sum_prefix``,
    ``square_prefix`` (same length) and ``count_total``, ``sum_total``, ``square_total`` (one per
    block). params: ``(block,)``.
    """
    values, count_prefix, sum_prefix, square_prefix, count_total, sum_total, square_total = arrays
    block = params[0]
    count = 0.0
    total = 0.0
    square = 0.0
    for j in range(b * block, (b + 1) * block):
        value = values[j]
        if not math.isnan(value):
            count += 1.0
            total += value
            square += value * value
        count_prefix[j] = count
        sum_prefix[j] = total
        square_prefix[j] = square
    count_total[b] = count
    sum_total[b] = total
    square_total[b] = square


block_prefix = _plain(_block_prefix)


def _window_total(prefix, totals, first, last, block):
    """Sum of elements ``first..last`` from in-block prefix sums, in a fixed block order."""
    first_block = first // block
    last_block = last // block
    before = 0.0
    if first % block != 0:
        before = prefix[first - 1]
    if first_block == last_block:
        return prefix[last] - before
    total = totals[first_block] - before
    for b in range(first_block + 1, last_block):
        total += totals[b]
    return total + prefix[last]


def window_stats(jit):
    """Body: mean and population standard deviation of the valid values of each trailing window.

    arrays: the six outputs of :data:`block_prefix`, then outputs ``mean`` and ``std``.
    params: ``(window, block, min_periods)``. The window of tick ``i`` covers ``i − window + 1 .. i``
    (clipped at 0). Blocks are aligned on absolute tick numbers by the caller, so every sum is formed
    from the same partial sums whatever the first loaded tick: results do not depend on where a
    chunk starts (chunked = unchunked, bit for bit).
    """
    window_total = jit(_window_total)

    def body(i, arrays, params):
        (count_prefix, sum_prefix, square_prefix, count_total, sum_total, square_total,
         mean, std) = arrays
        window, block, min_periods = params
        first = max(i - window + 1, 0)
        count = window_total(count_prefix, count_total, first, i, block)
        if count < min_periods or count == 0.0:
            mean[i] = math.nan
            std[i] = math.nan
            return
        average = window_total(sum_prefix, sum_total, first, i, block) / count
        variance = window_total(square_prefix, square_total, first, i, block) / count - average * average
        mean[i] = average
        std[i] = math.sqrt(max(variance, 0.0))

    return jit(body)


# -- features, robust z, LPI ------------------------------------------------------------------------
def _tick_features(i, arrays, params):
    """Mid, spread, microprice, log return, FSI, LDR and Π of tick ``i`` (spec §2.1–2.2).

    arrays (inputs): ``bid``, ``ask``, ``bid_qty``, ``ask_qty`` (top of book, NaN where invalid),
    ``depth_bid``, ``depth_ask`` (within η), ``dollar_volume``, ``impact_sell_notional``,
    ``impact_buy_notional``, ``adv`` ($/s), ``mean_depth_bid``, ``mean_depth_ask``, ``d_oi`` (OI
    drop), ``sigma_doi``; (outputs): ``mid``, ``spread``, ``microprice``, ``log_return``, ``fsi``,
    ``fsi_up``, ``ldr``, ``ldr_up``, ``pi``.
    params: ``(tick_s, kappa, eps, pi_eps_adv_fraction)``.

    ``FSI = V_impact/(ADV$·Δ + ε)·g``, ``g = 1 + κ·tanh(ΔOI/(σ_ΔOI + ε))`` (1 where ΔOI or σ_ΔOI is
    unknown: no OI feed); ``LDR = (s/m)/(D/mean D)``; ``Π = |r|/(V$ + f·ADV$·Δ + ε)``.
    """
    (bid, ask, bid_qty, ask_qty, depth_bid, depth_ask, dollar_volume, impact_sell_notional,
     impact_buy_notional, adv, mean_depth_bid, mean_depth_ask, d_oi, sigma_doi,
     mid, spread, microprice, log_return, fsi, fsi_up, ldr, ldr_up, pi) = arrays
    tick_s, kappa, eps, pi_eps_adv_fraction = params
    middle = 0.5 * (bid[i] + ask[i])
    width = ask[i] - bid[i]
    mid[i] = middle
    spread[i] = width
    microprice[i] = (ask[i] * bid_qty[i] + bid[i] * ask_qty[i]) / (bid_qty[i] + ask_qty[i])
    change = math.nan
    if i > 0:
        change = math.log(middle / (0.5 * (bid[i - 1] + ask[i - 1])))
    log_return[i] = change
    amplifier = 1.0
    if not (math.isnan(d_oi[i]) or math.isnan(sigma_doi[i])):
        amplifier = 1.0 + kappa * math.tanh(d_oi[i] / (sigma_doi[i] + eps))
    volume_per_tick = adv[i] * tick_s
    fsi[i] = impact_sell_notional[i] / (volume_per_tick + eps) * amplifier
    fsi_up[i] = impact_buy_notional[i] / (volume_per_tick + eps) * amplifier
    relative_spread = width / middle
    ldr[i] = relative_spread / (depth_bid[i] / mean_depth_bid[i])
    ldr_up[i] = relative_spread / (depth_ask[i] / mean_depth_ask[i])
    pi[i] = abs(change) / (dollar_volume[i] + pi_eps_adv_fraction * volume_per_tick + eps)


tick_features = _plain(_tick_features)


def _robust_z(i, arrays, params):
    """Robust z of tick ``i``: ``(x − median)/(scale + ε)``, ``scale = max(1.4826·MAD, r·std)``.

    arrays: ``x``, window ``median``, ``mad``, ``std``, outputs ``z`` and ``scale``.
    params: ``(eps, std_floor_ratio)``. NaN where any input is NaN.
    """
    x, median, mad, std, z, scale = arrays
    eps, std_floor_ratio = params
    if math.isnan(x[i]) or math.isnan(median[i]) or math.isnan(mad[i]) or math.isnan(std[i]):
        z[i] = math.nan
        scale[i] = math.nan
        return
    spread = max(MAD_TO_SIGMA * mad[i], std_floor_ratio * std[i])
    scale[i] = spread
    z[i] = (x[i] - median[i]) / (spread + eps)


robust_z = _plain(_robust_z)


def _weighted_sum(i, arrays, params):
    """LPI of tick ``i`` (spec §2.3): ``w1·z(FSI) + w2·z(LDR) + w3·z(Π)``.

    arrays: ``z_fsi``, ``z_ldr``, ``z_pi``, output ``lpi``. params: ``(w1, w2, w3)``.
    """
    z_fsi, z_ldr, z_pi, lpi = arrays
    w1, w2, w3 = params
    lpi[i] = w1 * z_fsi[i] + w2 * z_ldr[i] + w3 * z_pi[i]


lpi_combination = _plain(_weighted_sum)


# -- open interest ------------------------------------------------------------------------------------
def _ewma_at_updates(u, arrays, params):
    """Exponentially weighted OI at update ``u`` over the updates within ``support_ns`` before it.

    arrays: update ``ts`` (int64), ``oi``, output ``smoothed``. params: ``(halflife_ns, support_ns)``.
    The finite support makes the value independent of how much history was loaded.
    """
    ts, oi, smoothed = arrays
    halflife_ns, support_ns = params
    weighted = 0.0
    weights = 0.0
    v = u
    while v >= 0 and ts[u] - ts[v] < support_ns:
        if not math.isnan(oi[v]):
            weight = math.exp(-math.log(2.0) * (ts[u] - ts[v]) / halflife_ns)
            weighted += weight * oi[v]
            weights += weight
        v -= 1
    smoothed[u] = weighted / weights if weights > 0.0 else math.nan


oi_ewma = _plain(_ewma_at_updates)
