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
# Moments are carried as (count, mean, m2): the number of valid values, their mean and the sum of
# their squared deviations from it. Welford's update within a block, and sums shifted by a mean of the
# window across blocks, keep them accurate whatever the series' level (a raw sum of squares loses the
# spread of values near 1e6 to cancellation).
def _welford_add(count, mean, m2, value):
    """Moments after adding one valid value."""
    count += 1.0
    delta = value - mean
    mean += delta / count
    m2 += delta * (value - mean)
    return count, mean, m2


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


def block_moments(jit):
    """Body: in-block running moments of the valid (non-NaN) values of block ``b``, both ways.

    arrays: ``values`` (length a multiple of the block), outputs ``prefix_count``, ``prefix_mean``,
    ``prefix_m2`` (moments of the block's values from its first element to ``j``),
    ``suffix_count``, ``suffix_mean``, ``suffix_m2`` (from ``j`` to the block's last element), all of
    the length of ``values``, and ``block_count``, ``block_mean``, ``block_m2``, the whole block's
    moments (one per block, contiguous: a window reads them for every block it covers).
    params: ``(block,)``.
    """
    welford_add = jit(_welford_add)

    def body(b, arrays, params):
        (values, prefix_count, prefix_mean, prefix_m2, suffix_count, suffix_mean, suffix_m2,
         block_count, block_mean, block_m2) = arrays
        block = params[0]
        count = 0.0
        mean = 0.0
        m2 = 0.0
        for j in range(b * block, (b + 1) * block):
            if not math.isnan(values[j]):
                count, mean, m2 = welford_add(count, mean, m2, values[j])
            prefix_count[j] = count
            prefix_mean[j] = mean
            prefix_m2[j] = m2
        block_count[b] = count
        block_mean[b] = mean
        block_m2[b] = m2
        count = 0.0
        mean = 0.0
        m2 = 0.0
        for j in range((b + 1) * block - 1, b * block - 1, -1):
            if not math.isnan(values[j]):
                count, mean, m2 = welford_add(count, mean, m2, values[j])
            suffix_count[j] = count
            suffix_mean[j] = mean
            suffix_m2[j] = m2

    return jit(body)


def window_stats(jit):
    """Body: mean and population standard deviation of the valid values of each trailing window.

    arrays: ``values`` and the nine outputs of :func:`block_moments`, then outputs ``mean`` and
    ``std`` (one per tick). params: ``(window, block, min_periods, lead)``: tick ``i`` sits at
    position ``i + lead`` of ``values``, whose blocks are aligned on absolute tick numbers by the
    caller (positions before ``lead`` are NaN padding). The window of tick ``i`` covers
    ``i − window + 1 .. i`` (clipped at tick 0).

    A window spanning several blocks adds up, in block order, the moments of the suffix of its first
    block, of the whole blocks between and of the prefix of its last block (:func:`_accumulate`). A
    window inside one block reads the block's prefix moments when it starts at the block's start or
    at the series' start (positions before are NaN padding), and is summed directly otherwise
    (windows shorter than a block only). Each part depends only on the window's own values
    and on absolute block boundaries, so the result does not depend on where the series starts
    (chunked = unchunked) nor on values after tick ``i`` (prefix invariance), bit for bit.
    """
    welford_add = jit(_welford_add)
    accumulate = jit(_accumulate)

    def body(i, arrays, params):
        (values, prefix_count, prefix_mean, prefix_m2, suffix_count, suffix_mean, suffix_m2,
         block_count, block_mean, block_m2, mean, std) = arrays
        window, block, min_periods, lead = params
        last = i + lead
        first = max(last - window + 1, lead)
        first_block = first // block
        last_block = last // block
        count = 0.0
        average = 0.0
        m2 = 0.0
        if first_block == last_block and (first == lead or first % block == 0):
            count = prefix_count[last]        # positions before ``lead`` are NaN padding
            average = prefix_mean[last]
            m2 = prefix_m2[last]
        elif first_block == last_block:
            for j in range(first, last + 1):
                if not math.isnan(values[j]):
                    count, average, m2 = welford_add(count, average, m2, values[j])
        else:
            count = suffix_count[first]
            reference = suffix_mean[first]
            shifted_sum = 0.0
            squares = suffix_m2[first]
            for b in range(first_block + 1, last_block):
                count, reference, shifted_sum, squares = accumulate(
                    count, reference, shifted_sum, squares, block_count[b], block_mean[b],
                    block_m2[b])
            count, reference, shifted_sum, squares = accumulate(
                count, reference, shifted_sum, squares,
                prefix_count[last], prefix_mean[last], prefix_m2[last])
            if count > 0.0:
                average = reference + shifted_sum / count
                m2 = squares - shifted_sum * (shifted_sum / count)
        if count < min_periods or count == 0.0:
            mean[i] = math.nan
            std[i] = math.nan
            return
        mean[i] = average
        std[i] = math.sqrt(max(m2 / count, 0.0))

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
    params: ``(eps, std_floor_ratio)``; a ratio of 0 (with ``std`` 0) gives the plain MAD scale.
    NaN where any input is NaN.
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
