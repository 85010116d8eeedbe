"""The simulated market of one symbol: an L2 book, trades, open interest, mark price, liquidations.

Model (numba, one event loop per symbol):

* A latent log fair price follows a Brownian motion (daily volatility from
  :class:`~.calibration.MarketProfile`) plus the price paths of planted episodes (:mod:`.episodes`).
* Time advances in control steps (50 ms at ``rate_scale=1``). At each step market makers cancel stale
  quotes (bids above / asks below the fair reference) and requote the touch one tick around fair,
  ``widen`` ticks further out under liquidity stress.
* Poisson limit-order *refreshes* (drawn per diff interval) set levels at a distance from the reference drawn
  from the measured distance shares of depth-diff levels, to a size drawn from the measured depth
  profile (or delete them, with the profile's vacancy share); *touch churn* adds to or cancels part of
  the best levels; aggressive orders arrive as a self-exciting (Hawkes) process, pick a side from a
  pull towards fair plus the episode's one-sided pressure, and walk the book (each level filled
  against several makers, one trade print and one book update per fill). During violent episodes
  sweeping market orders take most of a 5-25 bps band of the book at one timestamp (Poisson, on
  the exchange clock: ``rate_scale`` leaves them alone). In forced episodes they are liquidation
  orders and print ``forceOrder`` messages (at most one per 1000 ms, as Binance pushes them); in
  violent informed episodes they are block orders that print nothing, and makers learn rather
  than withdraw: each sweep leaves a liquidity shock of :data:`INFORMED_SHOCK` (the cascade's
  withdrawal at full stress is 1) that decays with :data:`INFORMED_RECOVERY_MS`, and
  :data:`REPOST_DELAY_MS` after it they re-post the swept band around the new reference with the
  profile's occupancy and sizes.
* At all times, background block orders (Poisson at the measured rate of impact ticks, exchange
  clock) take a 5-15 bps band of one side at one timestamp: the isolated impact prints of a real
  market, with no liquidation print and no liquidity shock; and lone liquidations (nominal rate)
  print a ``forceOrder`` for an ordinary market order.
* Every book change takes a new update id (ids advance at the measured rate per second); a change of
  the top of book emits a book ticker with that id; changed levels are batched into one depth diff
  per diff interval (``U`` first id, ``u`` last id, ``pu`` previous ``u``). When a batch changed the
  top and its last update did not, a book ticker with ``u`` = the diff's ``u`` is added, so a book
  ticker always matches the book after each diff that moved the top.
* Open interest is a planned level (episodes move it) plus trade-driven noise, polled every 5 s; the
  mark price stream ticks every 1 s with an index premium and a funding rate near 1e-4.
* Receive time = exchange ``E`` + fixed skew (-1.27 s, measured) + exponential latency, made
  monotone, as one websocket connection delivers messages in order.

The loop writes :mod:`.messages` rows; the writers turn them into files.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kernels.jit import njit

from . import calibration as cal
from .book import (ASK, BID, LADDER_SIZE, NO_ASK, NO_BID, copy_side, depth_between, mark_dirty,
                   new_ladder, next_ask_at_or_above, next_bid_at_or_below, set_level, top_of_book)
from .episodes import KIND_FORCED, liquidity_stress, oi_offset, pressure, price_offset
from .messages import (AVG_PRICE_TICK_SCALE, BOOK_TICKER, DEPTH_DIFF, FORCE_ORDER, MARK_PRICE,
                       MESSAGE_DTYPE, OPEN_INTEREST, PRICE_E8, SNAPSHOT, TRADE, push_message)
from .rng import exponential, heavy_tailed, next_u64, normal, poisson, uniform

DAY_MS = 86_400_000
#: The simulation starts this long after 00:00 UTC (exchange time) so that the first receive time,
#: 1.27 s behind, still falls in the first day.
START_LEAD_MS = 1_400
#: The REST depth snapshot is taken this many diff intervals after the start (a few diffs come
#: before it, as in the captures).
SNAPSHOT_AFTER_DIFFS = 5.5
#: Levels per side in the initial book: a little under the snapshot's 1000, leaving room for the
#: few quotes added before the snapshot is taken.
SEED_LEVELS = cal.SNAPSHOT_LEVELS - 20
#: Simulated exchange time per chunk handed to the writers.
CHUNK_MS = 60_000
#: Room kept free in the output tables before each control step (a sweep of thousands of levels).
MESSAGE_MARGIN = 250_000
FUNDING_PERIOD_MS = 8 * 3_600_000
#: Aggressive orders never walk further than this from the touch (fraction of price).
MAX_WALK = 0.005
#: Sweeping orders (liquidations, informed blocks) sweep this band of the book (fraction of price).
SWEEP_BAND = (0.0005, 0.0025)
#: Background block orders (any time, either side: the isolated impact prints of a real market) take
#: this band of the book, so that most of their fills print beyond a few bps of the prior touch.
BLOCK_BAND = (0.0005, 0.0015)
#: Lone liquidations outside episodes, per hour (nominal: the captures have no liquidation stream;
#: Binance's BTCUSDT ``forceOrder`` stream prints a few to tens an hour on ordinary days).
BACKGROUND_LIQUIDATIONS_PER_HOUR = 20.0
#: Liquidity shock of one informed sweep (as a share of a cascade's full stress) and its decay time
#: constant (ms); the delay (ms) after which makers re-post the swept levels near the touch at the
#: new price, out to at most this distance (fraction of price).
INFORMED_SHOCK = 0.5
INFORMED_RECOVERY_MS = 1_500.0
REPOST_DELAY_MS = 750.0
REPOST_REACH = 0.00075
#: Spread widening at full liquidity stress (fraction of price), and depth left at full stress.
STRESS_WIDEN = 0.0003
STRESS_DEPTH_LEFT = 0.2
#: Hawkes branching ratio and kernel decay of aggressive orders.
HAWKES_BRANCHING = 0.7
HAWKES_DECAY_MS = 400.0
#: Share of each fill that opens or closes positions at random (open-interest noise), and the
#: per-step pull of that noise back to 0.
OI_NOISE_SHARE = 0.3
OI_NOISE_KEEP = 0.9995
_TABLE_MASK = (1 << cal.QUANTILE_TABLE_BITS) - 1

PARAMS_DTYPE = np.dtype([
    ("tick", np.float64), ("tick_e8", np.int64), ("control_ms", np.float64),
    ("diff_interval_ms", np.float64), ("refresh_per_ms", np.float64), ("touch_per_ms", np.float64),
    ("order_per_ms", np.float64), ("order_median_lots", np.float64), ("size_sigma", np.float64),
    ("tail_alpha", np.float64), ("fills_per_level", np.float64), ("level_median_lots", np.float64),
    ("vol_per_sqrt_ms", np.float64), ("ids_per_ms", np.float64), ("skew_ns", np.int64),
    ("latency_mean_ns", np.float64), ("widen_max_ticks", np.float64), ("tilt_ticks", np.float64),
    ("block_per_ms", np.float64), ("liquidation_per_ms", np.float64),
])

STATE_DTYPE = np.dtype([
    ("t_ms", np.float64), ("origin_ms", np.int64), ("end_ms", np.float64), ("x_walk", np.float64),
    ("base_tick", np.int64), ("best_bid", np.int64), ("best_ask", np.int64),
    ("update_id", np.int64), ("last_update_ms", np.float64), ("last_diff_u", np.int64),
    ("batch_first_id", np.int64), ("batch_stamp", np.int64), ("batch_count", np.int64),
    ("batch_moved_top", np.int64), ("last_ticker_u", np.int64), ("quiet_top", np.int64),
    ("next_flush_ms", np.float64), ("next_mark_ms", np.float64), ("next_oi_ms", np.float64),
    ("snapshot_ms", np.float64), ("next_touch_ms", np.float64),
    ("next_order_ms", np.float64), ("next_sweep_ms", np.float64), ("next_repost_ms", np.float64),
    ("next_block_ms", np.float64), ("next_liquidation_ms", np.float64),
    ("hawkes_excess", np.float64), ("hawkes_ms", np.float64), ("hawkes_bound", np.float64),
    ("trade_id", np.int64), ("oi_noise_lots", np.float64), ("oi_base_lots", np.float64),
    ("oi_target_lots", np.float64), ("funding", np.float64), ("premium", np.float64),
    ("last_force_ms", np.float64), ("last_local_ns", np.int64), ("next_day_ns", np.int64),
    ("episode", np.int64), ("ref_bid", np.int64), ("ref_ask", np.int64), ("depth_scale", np.float64),
    ("buy_probability", np.float64), ("order_rate", np.float64), ("order_scale", np.float64),
    ("sweep_rate", np.float64), ("sweep_side", np.int64), ("sweep_prints", np.int64),
    ("last_sweep_ms", np.float64), ("repost_side", np.int64), ("repost_ticks", np.int64),
])


@dataclass
class Simulation:
    """All mutable arrays of one symbol's simulation (numba needs them as separate arguments)."""

    params: np.ndarray
    state: np.ndarray
    episodes: np.ndarray
    qty: np.ndarray
    stamp: np.ndarray
    dirty: np.ndarray
    rng: np.ndarray
    messages: np.ndarray
    level_price: np.ndarray
    level_qty: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class Chunk:
    """Messages of one simulated chunk, in receive-time order (views valid until the next chunk)."""

    messages: np.ndarray
    level_price: np.ndarray
    level_qty: np.ndarray


# --------------------------------------------------------------------------------------------------
# clock and message emission


@njit
def _abs_ms(state, t_ms):
    return state.origin_ms + np.int64(math.floor(t_ms))


@njit
def _write_snapshot(state, qty, level_price, level_qty, counts):
    """Copy the best levels of both sides to the level table; return (start, bids, asks)."""
    start = counts[1]
    bids = copy_side(qty, BID, state.best_bid, cal.SNAPSHOT_LEVELS, level_price, level_qty, start)
    asks = copy_side(qty, ASK, state.best_ask, cal.SNAPSHOT_LEVELS, level_price, level_qty, start + bids)
    level_price[start:start + bids + asks] += state.base_tick
    counts[1] += bids + asks
    return start, bids, asks


@njit
def _receive_time(state, params, qty, rng, messages, level_price, level_qty, counts, event_ms):
    """Receive time of a message sent at ``event_ms``; at a UTC-day crossing first log the book.

    The day-start book (a ``SNAPSHOT`` row with f4 = 0) is what Tardis writes at the top of each
    day's incremental_book_L2 file.
    """
    latency = np.int64(exponential(rng, params.latency_mean_ns))
    earliest = state.last_local_ns + 1 + np.int64(uniform(rng) * 2000.0)
    local_ns = max(earliest, event_ms * 1_000_000 + params.skew_ns + latency)
    if local_ns >= state.next_day_ns:
        start, bids, asks = _write_snapshot(state, qty, level_price, level_qty, counts)
        last_ms = _abs_ms(state, state.last_update_ms)
        push_message(messages, counts, SNAPSHOT, event_ms, last_ms, local_ns, state.update_id, start,
                     bids, asks, 0, 0)
        state.next_day_ns += DAY_MS * 1_000_000
    state.last_local_ns = local_ns
    return local_ns


@njit
def _emit(state, params, qty, rng, messages, level_price, level_qty, counts, kind, event_ms, trade_ms,
          f0, f1, f2, f3, f4, f5):
    local_ns = _receive_time(state, params, qty, rng, messages, level_price, level_qty, counts, event_ms)
    push_message(messages, counts, kind, event_ms, trade_ms, local_ns, f0, f1, f2, f3, f4, f5)


@njit
def _emit_book_ticker(state, params, qty, rng, messages, level_price, level_qty, counts, event_ms,
                      trade_ms):
    """A book ticker of the current top; none while a side is empty (Binance's stream has no way to
    say so, and the store rejects a zero best quantity)."""
    bid, bid_qty, ask, ask_qty = top_of_book(state, qty)
    if bid_qty == 0 or ask_qty == 0:
        return
    _emit(state, params, qty, rng, messages, level_price, level_qty, counts, BOOK_TICKER, event_ms,
          trade_ms, state.update_id, bid + state.base_tick, bid_qty, ask + state.base_tick, ask_qty, 0)
    state.last_ticker_u = state.update_id


@njit
def _emit_rest_snapshot(state, params, qty, rng, messages, level_price, level_qty, counts):
    trade_ms = _abs_ms(state, state.t_ms)
    event_ms = trade_ms + 8
    local_ns = _receive_time(state, params, qty, rng, messages, level_price, level_qty, counts, event_ms)
    start, bids, asks = _write_snapshot(state, qty, level_price, level_qty, counts)
    push_message(messages, counts, SNAPSHOT, event_ms, trade_ms, local_ns, state.update_id, start, bids,
                 asks, 1, 0)
    state.snapshot_ms = -1.0


# --------------------------------------------------------------------------------------------------
# book updates and depth diffs


@njit
def _apply_update(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts,
                  side, index, new_qty):
    """One exchange book update: new id, level change, book ticker if the top moved."""
    if qty[side, index] == new_qty:
        return
    bid0, bid_qty0, ask0, ask_qty0 = top_of_book(state, qty)
    elapsed = max(state.t_ms - state.last_update_ms, 0.0)
    state.update_id += 1 + np.int64(params.ids_per_ms * elapsed * 2.0 * uniform(rng))
    state.last_update_ms = state.t_ms
    if state.batch_count == 0:
        state.batch_first_id = state.update_id
    set_level(state, qty, side, index, new_qty)
    mark_dirty(state, stamp, dirty, side, index)
    bid1, bid_qty1, ask1, ask_qty1 = top_of_book(state, qty)
    if bid1 != bid0 or bid_qty1 != bid_qty0 or ask1 != ask0 or ask_qty1 != ask_qty0:
        state.batch_moved_top = 1
        if state.quiet_top == 0:
            now_ms = _abs_ms(state, state.t_ms)
            _emit_book_ticker(state, params, qty, rng, messages, level_price, level_qty, counts, now_ms, now_ms)
        else:
            state.quiet_top = 2
    if 0.0 <= state.snapshot_ms <= state.t_ms:
        _emit_rest_snapshot(state, params, qty, rng, messages, level_price, level_qty, counts)


@njit
def _flush_diff(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    """Apply the limit-order refreshes of the interval, then emit the pending levels as one diff.

    Refreshes are drawn in bulk (Poisson count per diff interval) rather than one by one: they are
    most of the book's updates, and only their batch is visible in the diff stream. They start once
    the REST snapshot is out, so that no deep level set before it is missing from it.
    """
    if state.snapshot_ms < 0.0:
        for _ in range(poisson(rng, params.refresh_per_ms * params.diff_interval_ms)):
            _refresh(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts)
    if state.batch_count > 0:
        event_ms = _abs_ms(state, state.t_ms)
        trade_ms = _abs_ms(state, state.last_update_ms)
        local_ns = _receive_time(state, params, qty, rng, messages, level_price, level_qty, counts,
                                 event_ms)
        keys = np.sort(dirty[:state.batch_count])
        start = counts[1]
        bids = 0
        for j in range(keys.size):
            side = keys[j] // LADDER_SIZE
            index = keys[j] % LADDER_SIZE
            level_price[start + j] = index + state.base_tick
            level_qty[start + j] = qty[side, index]
            bids += 1 - side
        counts[1] += keys.size
        push_message(messages, counts, DEPTH_DIFF, event_ms, trade_ms, local_ns, state.batch_first_id,
                     state.update_id, state.last_diff_u, start, bids, keys.size - bids)
        if state.batch_moved_top == 1 and state.last_ticker_u != state.update_id:
            _emit_book_ticker(state, params, qty, rng, messages, level_price, level_qty, counts, event_ms,
                              trade_ms)
        state.last_diff_u = state.update_id
        state.batch_stamp += 1
        state.batch_count = 0
        state.batch_moved_top = 0
    state.next_flush_ms += params.diff_interval_ms


# --------------------------------------------------------------------------------------------------
# order flow


@njit
def _walk_book(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, side,
               size, limit):
    """Fill an aggressive order of ``size`` lots against ``side`` up to ladder index ``limit``.

    Returns ``(filled lots, sum of fill lots * absolute ticks, last fill lots)``.
    """
    filled = 0
    notional_ticks = 0.0
    last_fill = 0
    now_ms = _abs_ms(state, state.t_ms)
    while filled < size:
        index = state.best_bid if side == BID else state.best_ask
        if index == NO_BID or index == NO_ASK or (index < limit if side == BID else index > limit):
            break
        take = min(size - filled, qty[side, index])
        makers = 1 + poisson(rng, params.fills_per_level - 1.0)
        while take > 0:
            piece = take if makers <= 1 else min(take, 1 + np.int64(take * uniform(rng) * 2.0 / makers))
            makers -= 1
            state.trade_id += 1
            _emit(state, params, qty, rng, messages, level_price, level_qty, counts, TRADE, now_ms, now_ms,
                  state.trade_id, index + state.base_tick, piece, 1 if side == BID else 0, 0, 0)
            _apply_update(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts,
                          side, index, qty[side, index] - piece)
            take -= piece
            filled += piece
            last_fill = piece
            notional_ticks += piece * float(index + state.base_tick)
            state.oi_noise_lots += OI_NOISE_SHARE * piece * (1.0 if uniform(rng) < 0.5 else -1.0)
    return filled, notional_ticks, last_fill


@njit
def _walk_limit(state, side, fraction):
    """Ladder index ``fraction`` of the price away from the best level of ``side``."""
    best = state.best_bid if side == BID else state.best_ask
    ticks = np.int64(fraction * (best + state.base_tick))
    return best - ticks if side == BID else best + ticks


@njit
def _aggressive_order(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    """A market order of heavy-tailed size on the side the flow picks; returns ``(side, filled lots,
    sum of fill lots * absolute ticks, last fill lots, limit index)`` (0 lots where the side is empty)."""
    side = ASK if uniform(rng) < state.buy_probability else BID
    if (side == BID and state.best_bid == NO_BID) or (side == ASK and state.best_ask == NO_ASK):
        return side, 0, 0.0, 0, 0
    median = params.order_median_lots * state.order_scale
    size = max(1, np.int64(min(heavy_tailed(rng, median, params.size_sigma, params.tail_alpha),
                               1000.0 * median)))
    limit = _walk_limit(state, side, MAX_WALK)
    filled, notional_ticks, last_fill = _walk_book(state, params, qty, stamp, dirty, rng, messages,
                                                   level_price, level_qty, counts, side, size, limit)
    return side, filled, notional_ticks, last_fill, limit


@njit
def _print_force_order(state, params, qty, rng, messages, level_price, level_qty, counts, side, filled,
                       notional_ticks, last_fill, limit):
    """The ``forceOrder`` of a liquidation that filled ``filled`` lots, where Binance pushes one: at
    most one per :data:`~.calibration.FORCE_ORDER_PERIOD_MS` per symbol (the others are not seen)."""
    now_ms = _abs_ms(state, state.t_ms)
    if filled > 0 and now_ms - state.last_force_ms >= cal.FORCE_ORDER_PERIOD_MS:
        average = np.int64(round(notional_ticks / filled * AVG_PRICE_TICK_SCALE))
        _emit(state, params, qty, rng, messages, level_price, level_qty, counts, FORCE_ORDER,
              now_ms + 1 + np.int64(uniform(rng) * 5.0), now_ms, 1 if side == BID else 0, filled,
              limit + state.base_tick, average, last_fill, 0)
        state.last_force_ms = now_ms


@njit
def _background_liquidation(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    """A lone liquidation (Poisson at :data:`BACKGROUND_LIQUIDATIONS_PER_HOUR`, exchange clock): an
    ordinary market order, sized and sided as the order flow's, that prints a ``forceOrder``."""
    side, filled, notional_ticks, last_fill, limit = _aggressive_order(
        state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts)
    _print_force_order(state, params, qty, rng, messages, level_price, level_qty, counts, side, filled,
                       notional_ticks, last_fill, limit)


@njit
def _take_band(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, side, band):
    """A market order on ``side`` takes 60-100 % of the depth out to a distance drawn in ``band``
    (fraction of price) at one timestamp.

    Returns ``(filled lots, sum of fill lots * absolute ticks, last fill lots, best index before,
    limit index)``; nothing is filled where the side is empty.
    """
    best = state.best_bid if side == BID else state.best_ask
    if best == NO_BID or best == NO_ASK:
        return 0, 0.0, 0, best, best
    limit = _walk_limit(state, side, band[0] + (band[1] - band[0]) * uniform(rng))
    size = max(1, np.int64(depth_between(qty, side, best, limit) * (0.6 + 0.4 * uniform(rng))))
    filled, notional_ticks, last_fill = _walk_book(state, params, qty, stamp, dirty, rng, messages,
                                                   level_price, level_qty, counts, side, size, limit)
    return filled, notional_ticks, last_fill, best, limit


@njit
def _schedule_repost(state, side, best, limit):
    """Makers re-post the band taken between ``best`` and ``limit`` :data:`REPOST_DELAY_MS` from now."""
    state.next_repost_ms = min(state.next_repost_ms, state.t_ms + REPOST_DELAY_MS)
    state.repost_side = side
    reach = min(abs(best - limit), np.int64(REPOST_REACH * (best + state.base_tick)))
    state.repost_ticks = max(state.repost_ticks, reach)


@njit
def _sweep(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    """A market order sweeps most of a :data:`SWEEP_BAND` band of the book at one timestamp.

    A liquidation order (``sweep_prints``) prints a ``forceOrder``, at most one per second as Binance
    pushes them; an informed block order prints nothing, shocks liquidity and has makers re-post
    the band :data:`REPOST_DELAY_MS` later.
    """
    side = state.sweep_side
    filled, notional_ticks, last_fill, best, limit = _take_band(
        state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, side, SWEEP_BAND)
    if best == NO_BID or best == NO_ASK:
        return
    if state.sweep_prints == 0:
        state.last_sweep_ms = state.t_ms
        _schedule_repost(state, side, best, limit)
        return
    _print_force_order(state, params, qty, rng, messages, level_price, level_qty, counts, side, filled,
                       notional_ticks, last_fill, limit)


@njit
def _block(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    """A background block order takes a :data:`BLOCK_BAND` band of one side (chosen by the order
    flow's current buy probability) at one timestamp.

    Blocks arrive at the profile's ``impact_blocks_per_hour`` (Poisson, exchange clock) at all
    times, as the isolated impact prints of a real market do: they print no ``forceOrder`` and
    leave no liquidity shock; makers re-post the band as after an informed block. Without them the
    robust scale of the impact features would come from the planted episodes alone.
    """
    side = ASK if uniform(rng) < state.buy_probability else BID
    filled, _, _, best, limit = _take_band(state, params, qty, stamp, dirty, rng, messages, level_price,
                                           level_qty, counts, side, BLOCK_BAND)
    if filled > 0:
        _schedule_repost(state, side, best, limit)


@njit
def _repost(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    """Makers re-post the swept levels near the touch: empty levels from the reference out to the
    sweep's depth (at most :data:`REPOST_REACH`) get the profile's occupancy and sizes (scaled by the
    current depth)."""
    side = state.repost_side
    reach = min(state.repost_ticks, cal.OCCUPANCY_BY_DISTANCE.size - 1)
    for distance in range(reach + 1):
        index = state.ref_bid - distance if side == BID else state.ref_ask + distance
        if index < 0 or index >= LADDER_SIZE or qty[side, index] > 0:
            continue
        if (side == BID and index >= state.best_ask) or (side == ASK and index <= state.best_bid):
            continue
        word = next_u64(rng)
        if float(word & np.uint64(0xFFFFF)) / 1048576.0 < cal.OCCUPANCY_BY_DISTANCE[distance]:
            _apply_update(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, side,
                          index, _level_size(params, state, cal.SIZE_BY_DISTANCE[distance], word,
                                             cal.LEVEL_SIZE_MULTIPLIER))
    state.next_repost_ms = np.inf
    state.repost_ticks = 0


@njit
def _level_size(params, state, size_multiple, word, multipliers):
    """Level size in lots: profile median times a lognormal multiplier from ``multipliers`` (a quantile
    table) picked by the top bits of ``word``."""
    multiplier = multipliers[np.int64(word >> np.uint64(64 - cal.QUANTILE_TABLE_BITS))]
    return max(1, np.int64(params.level_median_lots * size_multiple * state.depth_scale * multiplier))


@njit
def _refresh(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    """A limit order arrives at, or leaves, a level at a calibrated distance from the reference.

    One random word drives it: low bits pick the distance, the next bit the side, the middle bits
    whether the level is occupied, the top bits its size.
    """
    word = next_u64(rng)
    distance = cal.REFRESH_DISTANCE[np.int64(word & np.uint64(_TABLE_MASK))]
    side = BID if (word >> np.uint64(cal.QUANTILE_TABLE_BITS)) & np.uint64(1) == 0 else ASK
    index = state.ref_bid - distance if side == BID else state.ref_ask + distance
    if index < 0 or index >= LADDER_SIZE:
        return
    if (side == BID and index >= state.best_ask) or (side == ASK and index <= state.best_bid):
        return
    occupancy_draw = float((word >> np.uint64(20)) & np.uint64(0xFFFFF)) / 1048576.0
    new_qty = 0
    if occupancy_draw < cal.OCCUPANCY_BY_DISTANCE[distance]:
        new_qty = _level_size(params, state, cal.SIZE_BY_DISTANCE[distance], word, cal.LEVEL_SIZE_MULTIPLIER)
    _apply_update(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, side,
                  index, new_qty)


@njit
def _touch_churn(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    """A maker adds to, or cancels part of, the best level of one side."""
    side = BID if uniform(rng) < 0.5 else ASK
    index = state.best_bid if side == BID else state.best_ask
    if index == NO_BID or index == NO_ASK:
        return
    change = max(1, np.int64(params.order_median_lots * math.exp(params.size_sigma * normal(rng))))
    new_qty = qty[side, index] + change if uniform(rng) < 0.5 else max(1, qty[side, index] - change)
    _apply_update(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, side,
                  index, new_qty)


# --------------------------------------------------------------------------------------------------
# slow streams


@njit
def _mid_ticks(state):
    return 0.5 * (state.best_bid + state.best_ask) + state.base_tick


@njit
def _mark_price(state, params, qty, rng, messages, level_price, level_qty, counts):
    now_ms = _abs_ms(state, state.t_ms)
    state.premium = 0.97 * state.premium + 2e-5 * normal(rng)
    state.funding += 0.001 * (1e-4 - state.funding) + 1e-6 * normal(rng)
    mark = np.int64(round(_mid_ticks(state))) * params.tick_e8
    index = np.int64(round(mark * (1.0 - state.premium)))
    settle = np.int64(round(index * (1.0 + 3e-5 * normal(rng))))
    next_funding = (now_ms // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
    _emit(state, params, qty, rng, messages, level_price, level_qty, counts, MARK_PRICE, now_ms, now_ms, mark,
          index, settle, np.int64(round(state.funding * PRICE_E8)), next_funding, 0)
    state.next_mark_ms += cal.MARK_PRICE_PERIOD_MS


@njit
def _open_interest(state, params, qty, rng, messages, level_price, level_qty, counts):
    now_ms = _abs_ms(state, state.t_ms)
    oi_lots = np.int64(round(state.oi_target_lots + state.oi_noise_lots))
    _emit(state, params, qty, rng, messages, level_price, level_qty, counts, OPEN_INTEREST,
          now_ms + 2 + np.int64(uniform(rng) * 20.0), now_ms, oi_lots, 0, 0, 0, 0, 0)
    state.next_oi_ms += cal.OPEN_INTEREST_POLL_MS


# --------------------------------------------------------------------------------------------------
# control steps


@njit
def _fold_finished_episodes(state, episodes, now_ms):
    """Make the lasting effects of finished episodes part of the random walk and the OI level."""
    while state.episode < episodes.size and now_ms >= episodes[state.episode].end_ms:
        finished = episodes[state.episode]
        state.x_walk += price_offset(finished, finished.end_ms)
        state.oi_base_lots *= 1.0 + finished.oi_change
        state.episode += 1


@njit
def _set_regime(state, params, episodes, now_ms):
    """Fair reference, liquidity and flow of this control step, from the active episode if any."""
    offset = stress = push = oi_change = direction = sweeps = 0.0
    forced = violent = False
    if state.episode < episodes.size and now_ms >= episodes[state.episode].start_ms:
        episode = episodes[state.episode]
        offset = price_offset(episode, now_ms)
        push = pressure(episode, now_ms)
        stress = liquidity_stress(episode, now_ms)
        oi_change = oi_offset(episode, now_ms)
        direction = episode.direction
        forced = episode.kind == KIND_FORCED
        violent = episode.violent == 1
        sweeps = episode.sweeps_per_s / 1000.0 * push
        if violent and not forced:
            stress = INFORMED_SHOCK * math.exp(-(state.t_ms - state.last_sweep_ms) / INFORMED_RECOVERY_MS)
    fair = math.exp(state.x_walk + offset) / params.tick - state.base_tick
    widen = np.int64(round(stress * params.widen_max_ticks))
    state.ref_bid = np.int64(math.floor(fair)) - widen
    state.ref_ask = np.int64(math.floor(fair)) + 1 + widen
    state.depth_scale = 1.0 - (1.0 - STRESS_DEPTH_LEFT) * stress
    mid = _mid_ticks(state) - state.base_tick if state.best_bid != NO_BID and state.best_ask != NO_ASK else fair
    tilt = 0.35 * math.tanh((fair - mid) / params.tilt_ticks)
    bias = direction * push * (0.45 if violent else 0.3)
    state.buy_probability = min(max(0.5 + tilt + bias, 0.03), 0.97)
    state.order_rate = params.order_per_ms * (1.0 + (5.0 if violent else 1.0) * push)
    state.order_scale = 1.0 + (2.0 if violent else 0.5) * push
    state.sweep_rate = sweeps
    state.sweep_side = BID if direction < 0 else ASK
    state.sweep_prints = 1 if forced else 0
    state.oi_target_lots = state.oi_base_lots * (1.0 + oi_change)


@njit
def _requote(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    """Cancel quotes on the wrong side of the reference and quote the touch at the reference.

    The market makers' cancels and new quotes of one step are one action: a single book ticker
    shows its result (``quiet_top`` is 1 while it runs, 2 once it has moved the top).
    """
    state.quiet_top = 1
    while state.best_bid != NO_BID and state.best_bid > state.ref_bid:
        _apply_update(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, BID,
                      state.best_bid, 0)
    while state.best_ask != NO_ASK and state.best_ask < state.ref_ask:
        _apply_update(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, ASK,
                      state.best_ask, 0)
    touch = cal.DEPTH_PROFILE[0, 1]
    if state.best_bid < state.ref_bid and 0 <= state.ref_bid < state.best_ask:
        _apply_update(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, BID,
                      state.ref_bid, _level_size(params, state, touch, next_u64(rng), cal.TOUCH_SIZE_MULTIPLIER))
    if state.best_ask > state.ref_ask and state.best_bid < state.ref_ask < LADDER_SIZE:
        _apply_update(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts, ASK,
                      state.ref_ask, _level_size(params, state, touch, next_u64(rng), cal.TOUCH_SIZE_MULTIPLIER))
    if state.quiet_top == 2:
        now_ms = _abs_ms(state, state.t_ms)
        _emit_book_ticker(state, params, qty, rng, messages, level_price, level_qty, counts, now_ms, now_ms)
    state.quiet_top = 0


@njit
def _next_arrival(rng, now, rate):
    return now + exponential(rng, 1.0 / rate) if rate > 0.0 else np.inf


@njit
def _draw_order_candidate(state, rng, now):
    """Next candidate of the Hawkes order process (Ogata thinning; the bound holds until an arrival)."""
    state.hawkes_excess *= math.exp(-(now - state.hawkes_ms) / HAWKES_DECAY_MS)
    state.hawkes_ms = now
    state.hawkes_bound = state.order_rate * (1.0 - HAWKES_BRANCHING) + state.hawkes_excess
    state.next_order_ms = _next_arrival(rng, now, state.hawkes_bound)


@njit
def _order_arrives(state, rng):
    """Thin the candidate at ``state.t_ms``; on acceptance excite the intensity."""
    state.hawkes_excess *= math.exp(-(state.t_ms - state.hawkes_ms) / HAWKES_DECAY_MS)
    state.hawkes_ms = state.t_ms
    intensity = state.order_rate * (1.0 - HAWKES_BRANCHING) + state.hawkes_excess
    accepted = uniform(rng) * state.hawkes_bound < intensity
    if accepted:
        state.hawkes_excess += HAWKES_BRANCHING / HAWKES_DECAY_MS
    return accepted


@njit
def _control_step(state, params, episodes, qty, stamp, dirty, rng, messages, level_price, level_qty, counts):
    start = state.t_ms
    stop = start + params.control_ms
    now_ms = _abs_ms(state, start)
    _fold_finished_episodes(state, episodes, now_ms)
    state.x_walk += params.vol_per_sqrt_ms * math.sqrt(params.control_ms) * normal(rng)
    state.oi_noise_lots *= OI_NOISE_KEEP
    _set_regime(state, params, episodes, now_ms)
    _requote(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts)
    state.next_touch_ms = _next_arrival(rng, start, params.touch_per_ms)
    state.next_sweep_ms = _next_arrival(rng, start, state.sweep_rate)
    state.next_block_ms = _next_arrival(rng, start, params.block_per_ms)
    state.next_liquidation_ms = _next_arrival(rng, start, params.liquidation_per_ms)
    _draw_order_candidate(state, rng, start)
    while True:
        now = min(state.next_flush_ms, state.next_touch_ms, state.next_order_ms, state.next_sweep_ms,
                  state.next_block_ms, state.next_liquidation_ms, state.next_repost_ms, state.next_mark_ms,
                  state.next_oi_ms)
        if now >= stop:
            break
        state.t_ms = now
        if now == state.next_flush_ms:
            _flush_diff(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts)
        elif now == state.next_mark_ms:
            _mark_price(state, params, qty, rng, messages, level_price, level_qty, counts)
        elif now == state.next_oi_ms:
            _open_interest(state, params, qty, rng, messages, level_price, level_qty, counts)
        elif now == state.next_touch_ms:
            _touch_churn(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts)
            state.next_touch_ms = _next_arrival(rng, now, params.touch_per_ms)
        elif now == state.next_sweep_ms:
            _sweep(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts)
            state.next_sweep_ms = _next_arrival(rng, now, state.sweep_rate)
        elif now == state.next_block_ms:
            _block(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts)
            state.next_block_ms = _next_arrival(rng, now, params.block_per_ms)
        elif now == state.next_liquidation_ms:
            _background_liquidation(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty,
                                    counts)
            state.next_liquidation_ms = _next_arrival(rng, now, params.liquidation_per_ms)
        elif now == state.next_repost_ms:
            _repost(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty, counts)
        else:
            if _order_arrives(state, rng):
                _aggressive_order(state, params, qty, stamp, dirty, rng, messages, level_price, level_qty,
                                  counts)
            _draw_order_candidate(state, rng, now)
    state.t_ms = stop


@njit
def simulate_until(state_array, params_array, episodes, qty, stamp, dirty, rng, messages, level_price,
                   level_qty, counts, stop_ms):
    """Run control steps until ``stop_ms`` (sim time) or until the output tables are nearly full.

    Returns
    -------
    bool
        True when ``stop_ms`` was reached, False when it stopped early to let the caller drain the
        tables (calling again resumes exactly where it stopped).
    """
    state = state_array[0]
    params = params_array[0]
    while state.t_ms < stop_ms:
        if (counts[0] + MESSAGE_MARGIN > messages.size
                or counts[1] + MESSAGE_MARGIN + 2 * cal.SNAPSHOT_LEVELS > level_price.size):
            return False
        _control_step(state, params, episodes, qty, stamp, dirty, rng, messages, level_price, level_qty,
                      counts)
    return True


@njit
def _seed_book(state_array, params_array, qty, rng):
    """Fill both sides from the depth profile around the fair price (no messages).

    Each side gets :data:`SEED_LEVELS` levels, so that the REST snapshot (1000 levels) holds every
    level of the book; later levels all appear in diffs, so a replay from the snapshot knows the
    whole book.
    """
    state = state_array[0]
    params = params_array[0]
    fair = math.exp(state.x_walk) / params.tick - state.base_tick
    state.ref_bid = np.int64(math.floor(fair))
    state.ref_ask = state.ref_bid + 1
    state.depth_scale = 1.0
    for side in (BID, ASK):
        seeded = 0
        distance = 0
        while seeded < SEED_LEVELS and distance < cal.OCCUPANCY_BY_DISTANCE.size:
            index = state.ref_bid - distance if side == BID else state.ref_ask + distance
            if 0 <= index < LADDER_SIZE and uniform(rng) < cal.OCCUPANCY_BY_DISTANCE[distance]:
                qty[side, index] = _level_size(params, state, cal.SIZE_BY_DISTANCE[distance], next_u64(rng),
                                               cal.LEVEL_SIZE_MULTIPLIER)
                seeded += 1
            distance += 1
    state.best_bid = next_bid_at_or_below(qty, LADDER_SIZE - 1)
    state.best_ask = next_ask_at_or_above(qty, 0)


# --------------------------------------------------------------------------------------------------
# Python driver


def _params(profile: cal.MarketProfile, tick: float, lot: float, rate_scale: float) -> np.ndarray:
    params = np.zeros(1, dtype=PARAMS_DTYPE)
    ticks_per_price = profile.price / tick
    params["tick"] = tick
    params["tick_e8"] = round(tick * 1e8)
    params["control_ms"] = min(cal.CONTROL_MS / rate_scale, cal.MAX_CONTROL_MS)
    params["diff_interval_ms"] = min(profile.diff_interval_ms / rate_scale, params["control_ms"][0])
    params["refresh_per_ms"] = profile.level_updates_per_s * cal.REFRESH_PER_LEVEL_UPDATE * rate_scale / 1000
    params["touch_per_ms"] = profile.touch_updates_per_s * rate_scale / 1000
    params["order_per_ms"] = profile.trades_per_s / profile.trades_per_order * rate_scale / 1000
    params["order_median_lots"] = profile.trade_size_median / lot * cal.ORDER_TO_TRADE_SIZE
    params["size_sigma"] = profile.trade_size_sigma
    params["tail_alpha"] = profile.trade_tail_alpha
    params["fills_per_level"] = profile.trades_per_order
    params["level_median_lots"] = profile.trade_size_median / lot
    params["vol_per_sqrt_ms"] = profile.volatility_per_day / math.sqrt(DAY_MS)
    params["ids_per_ms"] = profile.update_ids_per_s / 1000
    params["skew_ns"] = cal.LOCAL_CLOCK_SKEW_NS
    params["latency_mean_ns"] = cal.LOCAL_LATENCY_MEAN_NS
    params["widen_max_ticks"] = max(2.0, STRESS_WIDEN * ticks_per_price)
    params["tilt_ticks"] = max(2.0, 1e-4 * ticks_per_price)
    params["block_per_ms"] = profile.impact_blocks_per_hour / 3_600_000
    params["liquidation_per_ms"] = BACKGROUND_LIQUIDATIONS_PER_HOUR / 3_600_000
    return params


def _initial_state(profile: cal.MarketProfile, params: np.ndarray, lot: float, first_day_ms: int,
                   days: int, rng: np.ndarray) -> np.ndarray:
    state = np.zeros(1, dtype=STATE_DTYPE)
    center_tick = round(profile.price / params["tick"][0])
    start = START_LEAD_MS
    state["t_ms"] = start
    state["origin_ms"] = first_day_ms
    state["end_ms"] = days * DAY_MS + START_LEAD_MS
    state["x_walk"] = math.log(profile.price)
    state["base_tick"] = max(1, center_tick - LADDER_SIZE // 2)
    state["update_id"] = 1_000_000_000 + int(rng[0] % np.uint64(1_000_000_000))
    state["last_update_ms"] = start
    state["last_diff_u"] = state["update_id"]
    state["last_ticker_u"] = state["update_id"]
    state["next_flush_ms"] = start + params["diff_interval_ms"][0]
    state["next_mark_ms"] = math.ceil(start / cal.MARK_PRICE_PERIOD_MS) * cal.MARK_PRICE_PERIOD_MS
    state["next_oi_ms"] = math.ceil(start / cal.OPEN_INTEREST_POLL_MS) * cal.OPEN_INTEREST_POLL_MS
    state["snapshot_ms"] = start + SNAPSHOT_AFTER_DIFFS * params["diff_interval_ms"][0]
    state["trade_id"] = 100_000_000 + int(rng[0] % np.uint64(100_000_000))
    state["oi_base_lots"] = profile.open_interest / lot
    state["funding"] = 1e-4
    state["last_force_ms"] = -1e18
    state["last_sweep_ms"] = -1e18
    state["next_repost_ms"] = np.inf
    state["last_local_ns"] = first_day_ms * 1_000_000
    state["next_day_ns"] = (first_day_ms + DAY_MS) * 1_000_000
    return state


def new_simulation(profile: cal.MarketProfile, tick: float, lot: float, first_day_ms: int, days: int,
                   episodes: np.ndarray, rng: np.ndarray, rate_scale: float) -> Simulation:
    """Set up one symbol's simulation with a seeded book.

    Parameters
    ----------
    profile : MarketProfile
        Calibrated constants of the symbol.
    tick, lot : float
        Tick size and lot size (contract size is irrelevant here: quantities are in lots).
    first_day_ms : int
        00:00 UTC of the first day, ms since the epoch.
    days : int
        Number of whole UTC days to simulate.
    episodes : numpy.ndarray
        Planned episodes (:data:`~.episodes.EPISODE_DTYPE`), in time order.
    rng : numpy.ndarray
        Generator state (:func:`~.rng.new_state`), advanced in place.
    rate_scale : float
        Multiplier of all event rates (1 = calibrated rates).

    Returns
    -------
    Simulation
    """
    params = _params(profile, tick, lot, rate_scale)
    state = _initial_state(profile, params, lot, first_day_ms, days, rng)
    qty, stamp = new_ladder()
    per_chunk = (profile.trades_per_s + profile.book_ticker_per_s + 1000.0 / profile.diff_interval_ms) \
        * CHUNK_MS / 1000 * rate_scale
    message_capacity = int(4 * per_chunk) + 4 * MESSAGE_MARGIN
    level_capacity = int(4 * profile.level_updates_per_s * CHUNK_MS / 1000 * rate_scale) + 4 * MESSAGE_MARGIN
    simulation = Simulation(params, state, episodes, qty, stamp, np.zeros(2 * LADDER_SIZE, dtype=np.int64),
                            rng, np.zeros(message_capacity, dtype=MESSAGE_DTYPE),
                            np.zeros(level_capacity, dtype=np.int64), np.zeros(level_capacity, dtype=np.int64),
                            np.zeros(2, dtype=np.int64))
    _seed_book(state, params, qty, rng)
    return simulation


def run_chunks(simulation: Simulation) -> Iterator[Chunk]:
    """Run the simulation to its end, yielding the messages chunk by chunk.

    Parameters
    ----------
    simulation : Simulation
        From :func:`new_simulation`.

    Yields
    ------
    Chunk
        Views of the output tables; they are overwritten by the next chunk.
    """
    sim = simulation
    end_ms = float(sim.state["end_ms"][0])
    while sim.state["t_ms"][0] < end_ms:
        stop_ms = min(float(sim.state["t_ms"][0]) + CHUNK_MS, end_ms)
        simulate_until(sim.state, sim.params, sim.episodes, sim.qty, sim.stamp, sim.dirty, sim.rng,
                       sim.messages, sim.level_price, sim.level_qty, sim.counts, stop_ms)
        yield Chunk(sim.messages[:sim.counts[0]], sim.level_price[:sim.counts[1]],
                    sim.level_qty[:sim.counts[1]])
        sim.counts[:] = 0
