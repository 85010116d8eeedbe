"""Event-driven maker-execution simulator (spec §5, §8.5–8.6, §9.2): one scenario per element.

A *scenario* is one parameter set (a row of ``inputs.scenario``) trading every activation (a Mode A
entry) of one symbol-day. :func:`simulate` is a :func:`kernels.per_tick.per_tick` body: element
``s`` runs scenario ``s`` from the first activation to the last, so the CPU runs scenarios in
parallel over its cores (``prange``) and the GPU one scenario per thread, from the same code; the
market arrays are shared and read-only. :func:`scripted_orders` drives the same fill engine with a
given order list (cross-checks, hand-computed tests).

Market (built by :mod:`gpu_lpi.sim.market`): per activation ``a`` a *window* of market events
``ev_*[a_ev0[a]:a_ev1[a]]`` (trades and L2 level updates after the window's start, time-ordered,
trades before level updates at one time), the best bid and ask after each event (ticks, -1
unknown), an index of level quantities ``lv_*[a_lv0[a]:a_lv1[a]]`` sorted by (side, price, event)
whose entries at event ``a_ev0[a] − 1`` are the book at the window's start, and the strategy's
view on its alpha ticks ``tk_*[a_tk0[a]:a_tk1[a]]`` (the first tick is the entry). The quantity at
a price as of event ``i`` is a binary search (:func:`_level_qty`), so no scenario keeps a book of
its own and a scenario's cost is that of the windows it trades, not of the day.

Time. The strategy decides at alpha ticks: tick ``t`` is seen at ``t + feed latency`` (its data
are as of ``t``) and an order sent then reaches the exchange an order latency later; a cancel
likewise. At one time, market events come before our arrivals (an order arriving at ``t`` does not
trade against prints at ``t``), arrivals before decisions.

Fill models (``fill_model``):

* ``TRADE_THROUGH`` -- a bid fills, all of it, only when a sell-aggressor trade prints strictly
  below its price (spec §5.2, first clause); an ask mirrored.
* ``QUEUE_RISK_AVERSE`` -- also at its price: the queue ahead is the displayed quantity at the
  price when the order arrives; trades at the price reduce it and, once it is through, fill the
  order (partially where ``partial`` is 1: by the traded quantity beyond the queue; fully
  otherwise; trades must exceed the queue by more than a millionth of a lot, so the float residue
  of sizes that add up to it exactly fills nothing). Where the level shrinks by more than the trades printed at it since its last
  update, the difference is cancellations; none is credited to the queue ahead, which is only
  capped at the level's new quantity (spec §5.2, second clause).
* ``QUEUE_PROB`` -- as above with a share ``f(ahead)/(f(ahead) + f(behind))`` of each cancellation
  taken from the queue ahead, ``f(x) = x**queue_power`` (1: cancellations spread evenly over the
  queue; larger: orders near the front are less likely to cancel).

Taker orders walk the book at their arrival, level by level from the touch, up to ``max_walk``
levels; quantity beyond the levels the book shows is filled at the last level walked.

Post-only: a maker order that would cross on arrival is rejected.

Latency (``feed_kind``/``order_kind``): ``CONSTANT`` ``a`` ms; ``UNIFORM`` in ``[a, b]`` ms, drawn
per decision or order from a counter-based generator (:func:`_uniform`: the same draws on both
targets); ``FROM_DATA``: the capture's ``local_ts − ts`` at the last event (``a`` ms where the
source has none). Each is multiplied by ``1 + activity·max(0, rate/rate_ref − 1)``: the trailing
one-second event rate against the day's mean, since latency rises in crashes.

Strategy (spec §8.5–8.6), per activation, where the scenario is flat and has no orders: layered
maker orders at the touch and ``layer_ticks`` behind it (bids after a sell cascade) sized
``layer_frac`` of ``min(capital·|target_w|, max_position)``. While entry quotes rest, they are
cancelled where ``z(Π) > z_pi_max`` (toxicity gate) or the spread exceeds ``max_spread_bps`` and
re-quoted at the new touch when both clear; they are cancelled for good ``quote_ttl_s`` after the
entry or when the signal's target falls below the entry's (its exit, or the crash filter's cut).
With a position: σ-stop (``dir·ln(mid/entry) < −stop_sigma·σ``) and time stop (``time_stop_s``
after the entry) exit by a taker order; take profit (the faded side's LPI below ``tp_lpi``, or
``tp_bps`` of markout) by a maker order at the touch, turned into a taker order after
``exit_timeout_s``. An exit cancels the entry quotes. A position still open at the window's end is
closed at the last mid with the taker fee (reason ``EXIT_WINDOW_END``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from kernels.jit import njit
from kernels.per_tick import per_tick

INF = 1 << 62
#: Level keys: ``side * SIDE_STRIDE + price in ticks`` (side 0 bid, 1 ask).
SIDE_STRIDE = 1 << 40
#: ``ev_kind``.
TRADE, LEVEL = 0, 1
#: ``fill_model``.
TRADE_THROUGH, QUEUE_RISK_AVERSE, QUEUE_PROB = 0, 1, 2
#: Latency kinds.
CONSTANT, UNIFORM, FROM_DATA = 0, 1, 2
#: Slot states.
FREE, PENDING, LIVE = 0, 1, 2
#: ``or_kind``.
ENTRY, EXIT_MAKER, EXIT_TAKER, SCRIPTED = 0, 1, 2, 3
#: ``or_status``.
OPEN, FILLED, CANCELLED, REJECTED, EXPIRED = 0, 1, 2, 3, 4
#: ``ep_status``.
EP_BUSY, EP_NO_BOOK, EP_NO_FILL, EP_TRADED = 0, 1, 2, 3
#: ``ep_reason`` (how a traded episode ended).
EXIT_NONE, EXIT_TP_LPI, EXIT_TP_TARGET, EXIT_SIGMA, EXIT_TIME, EXIT_WINDOW_END = 0, 1, 2, 3, 4, 5
#: Entry layers.
N_LAYERS = 3

#: Columns of ``inputs.scenario`` (float64[n_scenarios, N_SCENARIO_COLUMNS]).
SCENARIO_COLUMNS = (
    "fill_model", "queue_power", "partial", "feed_kind", "feed_a_ms", "feed_b_ms", "order_kind",
    "order_a_ms", "order_b_ms", "activity", "layer_ticks_0", "layer_ticks_1", "layer_ticks_2",
    "layer_frac_0", "layer_frac_1", "layer_frac_2", "capital", "max_position", "maker_fee",
    "taker_fee", "z_pi_max", "max_spread_bps", "quote_ttl_s", "tp_lpi", "tp_bps", "exit_timeout_s",
    "time_stop_s", "stop_sigma", "seed", "max_walk")
(P_FILL_MODEL, P_QUEUE_POWER, P_PARTIAL, P_FEED_KIND, P_FEED_A, P_FEED_B, P_ORDER_KIND, P_ORDER_A,
 P_ORDER_B, P_ACTIVITY, P_LAYER_TICKS, _, _, P_LAYER_FRAC, _, _, P_CAPITAL, P_MAX_POSITION,
 P_MAKER_FEE, P_TAKER_FEE, P_Z_PI_MAX, P_MAX_SPREAD_BPS, P_QUOTE_TTL_S, P_TP_LPI, P_TP_BPS,
 P_EXIT_TIMEOUT_S, P_TIME_STOP_S, P_STOP_SIGMA, P_SEED, P_MAX_WALK) = range(len(SCENARIO_COLUMNS))
N_SCENARIO_COLUMNS = len(SCENARIO_COLUMNS)
NS_PER_S = 1_000_000_000
#: Quantities closer than this many lots are equal (sums of trade sizes carry float residue).
QTY_TOLERANCE = 1e-6
_MODULUS = 2147483647


class Market(NamedTuple):
    """Market windows and the strategy's view (module docstring); with the scenarios' parameters."""

    ev_ts: np.ndarray      #: int64 exchange time
    ev_kind: np.ndarray    #: int8 TRADE / LEVEL
    ev_side: np.ndarray    #: int8 trade: 0 seller aggressor (hits bids), 1 buyer; level: 0 bid, 1 ask
    ev_price: np.ndarray   #: int64 price in ticks
    ev_qty: np.ndarray     #: float64 trade quantity, or the level's new quantity (0 deletes)
    ev_bid: np.ndarray     #: int64 best bid after the event (ticks; -1 unknown)
    ev_ask: np.ndarray     #: int64 best ask after the event
    ev_delay: np.ndarray   #: int64 ``local_ts − ts`` in ns (-1 unknown)
    ev_rate: np.ndarray    #: float64 events in the trailing second
    lv_key: np.ndarray     #: int64 side·SIDE_STRIDE + price, sorted within a window
    lv_ev: np.ndarray      #: int64 event index from which the level holds ``lv_qty``
    lv_qty: np.ndarray     #: float64
    a_ev0: np.ndarray      #: int64 per activation: its window's events, level index and ticks
    a_ev1: np.ndarray
    a_lv0: np.ndarray
    a_lv1: np.ndarray
    a_tk0: np.ndarray
    a_tk1: np.ndarray
    a_bid0: np.ndarray     #: int64 best bid and ask at the window's start
    a_ask0: np.ndarray
    a_delay0: np.ndarray   #: int64 and float64: ``ev_delay`` and ``ev_rate`` at the window's start
    a_rate0: np.ndarray
    a_dir: np.ndarray      #: int8 +1 buy (fade a sell cascade), -1 sell
    a_w: np.ndarray        #: float64 |target_w| at entry
    a_sigma: np.ndarray    #: float64 σ at entry (fraction of price)
    tk_ts: np.ndarray      #: int64 alpha tick times
    tk_lpi_down: np.ndarray
    tk_lpi_up: np.ndarray
    tk_z_pi: np.ndarray
    tk_spread_bps: np.ndarray
    tk_target_w: np.ndarray
    scenario: np.ndarray   #: float64[n_scenarios, N_SCENARIO_COLUMNS]


class Script(NamedTuple):
    """Orders of :func:`scripted_orders`, sorted by arrival: when each reaches the exchange, when
    its cancel does (INF: never), side (+1 buy, -1 sell), price (ticks), quantity, taker (0/1)."""

    arrive: np.ndarray
    cancel: np.ndarray
    side: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    taker: np.ndarray


class ScriptedMarket(NamedTuple):
    """A :class:`Market` (one window, activation 0) and a :class:`Script`, flat for the launcher."""

    ev_ts: np.ndarray
    ev_kind: np.ndarray
    ev_side: np.ndarray
    ev_price: np.ndarray
    ev_qty: np.ndarray
    ev_bid: np.ndarray
    ev_ask: np.ndarray
    lv_key: np.ndarray
    lv_ev: np.ndarray
    lv_qty: np.ndarray
    a_ev0: np.ndarray
    a_ev1: np.ndarray
    a_lv0: np.ndarray
    a_lv1: np.ndarray
    a_bid0: np.ndarray
    a_ask0: np.ndarray
    scenario: np.ndarray
    arrive: np.ndarray
    cancel: np.ndarray
    side: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    taker: np.ndarray


class Outputs(NamedTuple):
    """Per scenario ``s``: fills ``fl_*[s*fill_cap + f]`` (``n_fills[s]`` of them), orders
    ``or_*[s*order_cap + n]``, per (scenario, activation) ``ep_*[s*n_act + a]``; ``overflow[s]``
    is 1 where a capacity was too small (rerun larger); ``ac_*``, ``rq`` and ``sl_*`` are scratch."""

    fl_ts: np.ndarray       #: int64
    fl_price: np.ndarray    #: float64 (price, not ticks: a taker fill's average)
    fl_qty: np.ndarray      #: float64 signed (+ bought)
    fl_maker: np.ndarray    #: int8
    fl_order: np.ndarray    #: int64 order number within the scenario
    n_fills: np.ndarray
    or_act: np.ndarray      #: int64 activation
    or_kind: np.ndarray     #: int8 ENTRY / EXIT_MAKER / EXIT_TAKER / SCRIPTED
    or_side: np.ndarray     #: int8
    or_price: np.ndarray    #: float64 limit price (NaN for takers)
    or_qty: np.ndarray
    or_filled: np.ndarray
    or_submit: np.ndarray   #: int64 sent (strategy clock)
    or_arrive: np.ndarray   #: int64 reached the exchange
    or_end: np.ndarray      #: int64 filled / cancelled / rejected (INF: still open)
    or_status: np.ndarray   #: int8
    n_orders: np.ndarray
    ep_status: np.ndarray   #: int8 EP_*
    ep_reason: np.ndarray   #: int8 EXIT_*
    ep_entry_qty: np.ndarray
    ep_entry_cost: np.ndarray  #: Σ qty·price of entry fills
    ep_exit_qty: np.ndarray
    ep_exit_cost: np.ndarray
    ep_fees: np.ndarray     #: fees paid (negative: rebates), quote currency
    ep_start: np.ndarray    #: int64 entry decision (seen by the strategy)
    ep_end: np.ndarray      #: int64 flat with no orders
    ep_max_pos: np.ndarray  #: largest |position|
    overflow: np.ndarray    #: int8
    ac_pos: np.ndarray      #: float64 position of the scenario (scratch)
    rq: np.ndarray          #: float64[n_scenarios*N_LAYERS] entry quantity to re-quote (scratch)
    sl_state: np.ndarray    #: int8[n_scenarios*n_slots] FREE / PENDING / LIVE
    sl_order: np.ndarray    #: int64 order number
    sl_side: np.ndarray     #: int8
    sl_price: np.ndarray    #: int64 ticks
    sl_rem: np.ndarray      #: float64 quantity left
    sl_ahead: np.ndarray    #: float64 queue ahead
    sl_level: np.ndarray    #: float64 the level's last quantity seen
    sl_traded: np.ndarray   #: float64 traded at the level since its last update
    sl_arrive: np.ndarray   #: int64
    sl_cancel: np.ndarray   #: int64 cancel arrival (INF: none)
    sl_taker: np.ndarray    #: int8
    sl_layer: np.ndarray    #: int8 entry layer (-1 other)


class Params(NamedTuple):
    tick_size: float
    lot_size: float
    contract_size: float
    rate_ref: float      #: the day's mean events per second (latency activity)
    n_slots: int         #: live orders a scenario can hold
    fill_cap: int        #: fills per scenario
    order_cap: int       #: orders per scenario
    n_act: int


# -- market lookups ---------------------------------------------------------------------------------

@njit(refcounts=False)
def _lower_bound(keys, lo, hi, key):
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(refcounts=False)
def _upper_bound(keys, lo, hi, key):
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] <= key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(refcounts=False)
def _qty_in_group(m, g0, g1, at):
    """Quantity of the level whose index entries are ``[g0, g1)`` as of event ``at`` (0: none yet)."""
    last = _upper_bound(m.lv_ev, g0, g1, at)
    if last == g0:
        return 0.0
    return m.lv_qty[last - 1]


@njit(refcounts=False)
def _level_qty(m, a, level_side, price, at):
    """Displayed quantity at ``price`` (ticks) on ``level_side`` as of event ``at`` of window ``a``."""
    key = level_side * SIDE_STRIDE + price
    g0 = _lower_bound(m.lv_key, m.a_lv0[a], m.a_lv1[a], key)
    g1 = _upper_bound(m.lv_key, g0, m.a_lv1[a], key)
    return _qty_in_group(m, g0, g1, at)


@njit(refcounts=False)
def _top(m, a, at):
    """Best bid and ask (ticks, -1 unknown) as of event ``at`` (``a_ev0 − 1``: the window's start)."""
    if at < m.a_ev0[a]:
        return m.a_bid0[a], m.a_ask0[a]
    return m.ev_bid[at], m.ev_ask[at]


@njit(refcounts=False)
def _walk(m, a, buy, qty, at, max_levels):
    """Take ``qty`` from the book as of event ``at``: (average price in ticks, levels walked), the
    average NaN where the side is empty. Quantity beyond what ``max_levels`` levels show is priced
    at the last level walked."""
    lo, hi = m.a_lv0[a], m.a_lv1[a]
    bid, ask = _top(m, a, at)
    left = qty
    cost = 0.0
    levels = 0
    last_price = -1
    if buy:
        if ask < 0:
            return math.nan, 0
        g0 = _lower_bound(m.lv_key, lo, hi, SIDE_STRIDE + ask)
        while g0 < hi and left > 0.0 and levels < max_levels:
            key = m.lv_key[g0]
            g1 = _upper_bound(m.lv_key, g0, hi, key)
            available = _qty_in_group(m, g0, g1, at)
            if available > 0.0:
                take = min(available, left)
                last_price = key - SIDE_STRIDE
                cost += take * last_price
                left -= take
                levels += 1
            g0 = g1
        if last_price < 0:
            last_price = ask
    else:
        if bid < 0:
            return math.nan, 0
        g1 = _upper_bound(m.lv_key, lo, hi, bid)
        while g1 > lo and left > 0.0 and levels < max_levels:
            key = m.lv_key[g1 - 1]
            g0 = _lower_bound(m.lv_key, lo, g1, key)
            available = _qty_in_group(m, g0, g1, at)
            if available > 0.0:
                take = min(available, left)
                last_price = key
                cost += take * last_price
                left -= take
                levels += 1
            g1 = g0
        if last_price < 0:
            last_price = bid
    cost += left * last_price
    return cost / qty, levels


@njit(refcounts=False)
def _uniform(seed, s, counter):
    """A uniform draw in (0, 1) from (seed, scenario, counter): Park–Miller steps in int64, so the
    CPU and the GPU draw the same numbers without 64-bit overflow."""
    x = seed % (_MODULUS - 1) + 1
    x = (x * 48271 + s % _MODULUS) % _MODULUS
    x = (x * 48271) % _MODULUS
    x = (x * 48271 + counter % _MODULUS) % _MODULUS
    x = (x * 48271) % _MODULUS
    x = (x * 48271) % _MODULUS
    return x / _MODULUS


@njit(refcounts=False)
def _latency(m, p, s, a, at, order, k):
    """Feed (``order`` 0) or order-entry (1) latency in ns of scenario ``s`` at alpha tick ``k``,
    market conditions as of event ``at`` of window ``a`` (module docstring)."""
    first = P_ORDER_KIND if order == 1 else P_FEED_KIND
    kind = np.int64(m.scenario[s, first])
    low, high = m.scenario[s, first + 1], m.scenario[s, first + 2]
    if at < m.a_ev0[a]:
        delay, rate = m.a_delay0[a], m.a_rate0[a]
    else:
        delay, rate = m.ev_delay[at], m.ev_rate[at]
    if kind == UNIFORM:
        base = (low + (high - low) * _uniform(np.int64(m.scenario[s, P_SEED]), s, 2 * k + order)) * 1e6
    elif kind == FROM_DATA and delay >= 0:
        base = float(delay)
    else:
        base = low * 1e6
    activity = m.scenario[s, P_ACTIVITY]
    if activity > 0.0 and p.rate_ref > 0.0:
        base *= 1.0 + activity * max(0.0, rate / p.rate_ref - 1.0)
    return np.int64(base)


# -- the fill engine (slots of one scenario) ----------------------------------------------------------

@njit(refcounts=False)
def _add_order(o, p, s, a, kind, side, price, qty, submit, arrive):
    """Record a new order; its number, or -1 (and ``overflow``) past the capacity."""
    n = o.n_orders[s]
    if n >= p.order_cap:
        o.overflow[s] = 1
        return -1
    row = s * p.order_cap + n
    o.or_act[row] = a
    o.or_kind[row] = kind
    o.or_side[row] = side
    o.or_price[row] = price * p.tick_size if price >= 0 else math.nan
    o.or_qty[row] = qty
    o.or_filled[row] = 0.0
    o.or_submit[row] = submit
    o.or_arrive[row] = arrive
    o.or_end[row] = INF
    o.or_status[row] = OPEN
    o.n_orders[s] = n + 1
    return n


@njit(refcounts=False)
def _submit(o, p, s, a, kind, side, price, qty, submit, arrive, taker, layer):
    """Send an order (a free slot and an order record); the slot, or -1 where none is free."""
    base = s * p.n_slots
    for j in range(base, base + p.n_slots):
        if o.sl_state[j] == FREE:
            n = _add_order(o, p, s, a, kind, side, price, qty, submit, arrive)
            if n < 0:
                return -1
            o.sl_state[j] = PENDING
            o.sl_order[j] = n
            o.sl_side[j] = side
            o.sl_price[j] = price
            o.sl_rem[j] = qty
            o.sl_ahead[j] = 0.0
            o.sl_level[j] = 0.0
            o.sl_traded[j] = 0.0
            o.sl_arrive[j] = arrive
            o.sl_cancel[j] = INF
            o.sl_taker[j] = taker
            o.sl_layer[j] = layer
            return j
    o.overflow[s] = 1
    return -1


@njit(refcounts=False)
def _close_slot(o, p, s, j, status, ts):
    row = s * p.order_cap + o.sl_order[j]
    o.or_status[row] = status
    o.or_end[row] = ts
    o.sl_state[j] = FREE


@njit(refcounts=False)
def _fill(o, p, s, e, j, ts, price, qty, maker, fee_rate, cap_at_position):
    """Fill ``qty`` of slot ``j`` at ``price`` (a price, not ticks); exit orders never flip the
    position (``cap_at_position``). Returns the quantity filled."""
    side = o.sl_side[j]
    if cap_at_position:
        qty = min(qty, abs(o.ac_pos[s]))
    qty = min(qty, o.sl_rem[j])
    if qty <= 0.0:
        return 0.0
    f = o.n_fills[s]
    if f >= p.fill_cap:
        o.overflow[s] = 1
        return 0.0
    row = s * p.fill_cap + f
    o.fl_ts[row] = ts
    o.fl_price[row] = price
    o.fl_qty[row] = side * qty
    o.fl_maker[row] = maker
    o.fl_order[row] = o.sl_order[j]
    o.n_fills[s] = f + 1
    order_row = s * p.order_cap + o.sl_order[j]
    o.or_filled[order_row] += qty
    o.ac_pos[s] += side * qty
    notional = qty * price * p.contract_size
    o.ep_fees[e] += fee_rate * notional
    if o.or_kind[order_row] == ENTRY or o.or_kind[order_row] == SCRIPTED:
        o.ep_entry_qty[e] += qty
        o.ep_entry_cost[e] += qty * price
    else:
        o.ep_exit_qty[e] += qty
        o.ep_exit_cost[e] += qty * price
    o.ep_max_pos[e] = max(o.ep_max_pos[e], abs(o.ac_pos[s]))
    o.sl_rem[j] -= qty
    if o.sl_rem[j] <= 1e-12 * max(1.0, qty):
        _close_slot(o, p, s, j, FILLED, ts)
    return qty


@njit(refcounts=False)
def _on_event(m, o, p, s, e, i, model, power, partial, maker_fee, capped):
    """Apply market event ``i`` to the resting orders of scenario ``s``."""
    kind, side, price, qty, ts = m.ev_kind[i], m.ev_side[i], m.ev_price[i], m.ev_qty[i], m.ev_ts[i]
    base = s * p.n_slots
    for j in range(base, base + p.n_slots):
        if o.sl_state[j] != LIVE or o.sl_taker[j] == 1:
            continue
        buy = o.sl_side[j] > 0
        limit = o.sl_price[j]
        cap = capped and o.or_kind[s * p.order_cap + o.sl_order[j]] != ENTRY
        if kind == TRADE:
            if (buy and side != 0) or (not buy and side != 1):
                continue
            through = price < limit if buy else price > limit
            if through:
                _fill(o, p, s, e, j, ts, limit * p.tick_size, o.sl_rem[j], 1, maker_fee, cap)
            elif price == limit and model != TRADE_THROUGH:
                o.sl_traded[j] += qty
                ahead = o.sl_ahead[j] - qty
                if abs(ahead) <= QTY_TOLERANCE * p.lot_size:
                    ahead = 0.0     # float residue of trades that add up to the queue exactly
                if ahead < 0.0:
                    amount = min(-ahead, o.sl_rem[j]) if partial == 1 else o.sl_rem[j]
                    ahead = 0.0
                    _fill(o, p, s, e, j, ts, limit * p.tick_size, amount, 1, maker_fee, cap)
                o.sl_ahead[j] = ahead
        elif model != TRADE_THROUGH and price == limit and side == (0 if buy else 1):
            before = o.sl_level[j]
            cancelled = (before - qty) - o.sl_traded[j]
            ahead = o.sl_ahead[j]
            if cancelled > 0.0 and model == QUEUE_PROB and ahead > 0.0:
                behind = max(before - ahead, 0.0)
                front = ahead ** power
                back = behind ** power
                ahead -= cancelled * front / (front + back)
            o.sl_ahead[j] = max(min(ahead, qty), 0.0)
            o.sl_level[j] = qty
            o.sl_traded[j] = 0.0


@njit(refcounts=False)
def _next_action(o, p, s):
    """(slot, time) of the scenario's next arrival or cancel arrival; (-1, INF) where none."""
    best, when = -1, INF
    base = s * p.n_slots
    for j in range(base, base + p.n_slots):
        state = o.sl_state[j]
        if state == PENDING:
            t = min(o.sl_arrive[j], o.sl_cancel[j])
        elif state == LIVE:
            t = o.sl_cancel[j]
        else:
            continue
        if t < when:
            best, when = j, t
    return best, when


@njit(refcounts=False)
def _act(m, o, p, s, e, a, j, t, at, max_walk, maker_fee, taker_fee, capped):
    """Slot ``j``'s action at ``t`` with the book as of event ``at``: its order arrives (a maker
    order rests or is rejected, a taker order walks the book) or its cancel does. Returns the
    quantity a cancel took off the book (to re-quote), else 0."""
    if o.sl_state[j] == LIVE or o.sl_cancel[j] <= o.sl_arrive[j]:
        left = o.sl_rem[j]
        _close_slot(o, p, s, j, CANCELLED, t)
        return left
    buy = o.sl_side[j] > 0
    bid, ask = _top(m, a, at)
    order_row = s * p.order_cap + o.sl_order[j]
    cap = capped and o.or_kind[order_row] != ENTRY
    if o.sl_taker[j] == 1:
        qty = abs(o.ac_pos[s]) if cap else o.sl_rem[j]
        if qty <= 0.0:          # flat already (a maker exit filled while this order was in flight)
            _close_slot(o, p, s, j, CANCELLED, t)
            return 0.0
        average, _ = _walk(m, a, buy, qty, at, max_walk)
        if math.isnan(average):
            _close_slot(o, p, s, j, REJECTED, t)
            return 0.0
        o.sl_rem[j] = qty
        o.or_qty[order_row] = qty
        _fill(o, p, s, e, j, t, average * p.tick_size, qty, 0, taker_fee, cap)
        return 0.0
    limit = o.sl_price[j]
    crosses = (ask >= 0 and limit >= ask) if buy else (bid >= 0 and limit <= bid)
    if crosses or (bid < 0 and ask < 0):
        left = o.sl_rem[j]
        _close_slot(o, p, s, j, REJECTED, t)
        return left
    level = _level_qty(m, a, 0 if buy else 1, limit, at)
    o.sl_state[j] = LIVE
    o.sl_ahead[j] = level
    o.sl_level[j] = level
    o.sl_traded[j] = 0.0
    return 0.0


@njit(refcounts=False)
def _cancel(o, p, s, j, arrive):
    if o.sl_cancel[j] > arrive:
        o.sl_cancel[j] = arrive


@njit(refcounts=False)
def _expire_all(o, p, s, t):
    base = s * p.n_slots
    for j in range(base, base + p.n_slots):
        if o.sl_state[j] != FREE:
            _close_slot(o, p, s, j, EXPIRED, t)


# -- the strategy -------------------------------------------------------------------------------------

@njit(refcounts=False)
def _view(m, a, t):
    """Index of the last event of window ``a`` at or before ``t`` (``a_ev0 − 1`` if none)."""
    return _upper_bound(m.ev_ts, m.a_ev0[a], m.a_ev1[a], t) - 1


@njit(refcounts=False)
def _quote_entry(m, o, p, s, a, layer, qty, at, submit, arrive):
    """Send the entry layer ``layer`` for ``qty`` at the touch as of event ``at`` minus its offset."""
    bid, ask = _top(m, a, at)
    offset = np.int64(m.scenario[s, P_LAYER_TICKS + layer])
    if m.a_dir[a] > 0:
        if bid < 0:
            return
        price = bid - offset
    else:
        if ask < 0:
            return
        price = ask + offset
    _submit(o, p, s, a, ENTRY, m.a_dir[a], price, qty, submit, arrive, 0, layer)


@njit(refcounts=False)
def _live_kind(o, p, s, kind):
    """Whether scenario ``s`` has an order of ``kind`` pending or resting."""
    base = s * p.n_slots
    for j in range(base, base + p.n_slots):
        if o.sl_state[j] != FREE and o.or_kind[s * p.order_cap + o.sl_order[j]] == kind:
            return True
    return False


@njit(refcounts=False)
def _cancel_kind(o, p, s, kind, arrive):
    base = s * p.n_slots
    for j in range(base, base + p.n_slots):
        if o.sl_state[j] != FREE and o.or_kind[s * p.order_cap + o.sl_order[j]] == kind:
            _cancel(o, p, s, j, arrive)


@njit(refcounts=False)
def _any_slot(o, p, s):
    base = s * p.n_slots
    for j in range(base, base + p.n_slots):
        if o.sl_state[j] != FREE:
            return True
    return False


@njit(refcounts=False)
def _episode(m, o, p, s, a, start):
    """Trade activation ``a`` for scenario ``s``, its entry seen at ``start``; returns the time the
    scenario is flat with no orders again."""
    row = m.scenario[s]
    e = s * p.n_act + a
    model = np.int64(row[P_FILL_MODEL])
    power = row[P_QUEUE_POWER]
    partial = np.int64(row[P_PARTIAL])
    maker_fee, taker_fee = row[P_MAKER_FEE], row[P_TAKER_FEE]
    max_walk = np.int64(row[P_MAX_WALK])
    direction = m.a_dir[a]
    o.ep_start[e] = start
    o.ep_end[e] = start
    o.ac_pos[s] = 0.0
    for layer in range(N_LAYERS):
        o.rq[s * N_LAYERS + layer] = 0.0
    k0, k1 = m.a_tk0[a], m.a_tk1[a]
    i, i1 = m.a_ev0[a], m.a_ev1[a]

    bid0, ask0 = m.a_bid0[a], m.a_ask0[a]
    if bid0 < 0 or ask0 < 0:
        o.ep_status[e] = EP_NO_BOOK
        return start
    mid0 = 0.5 * (bid0 + ask0) * p.tick_size
    notional = min(row[P_CAPITAL] * m.a_w[a], row[P_MAX_POSITION])
    total = notional / (mid0 * p.contract_size)
    target = 0.0
    arrive = start + _latency(m, p, s, a, i - 1, 1, k0)
    for layer in range(N_LAYERS):
        qty = math.floor(total * row[P_LAYER_FRAC + layer] / p.lot_size + 1e-9) * p.lot_size
        if qty > 0.0:
            target += qty
            _quote_entry(m, o, p, s, a, layer, qty, i - 1, start, arrive)
    if target <= 0.0:
        o.ep_status[e] = EP_NO_FILL
        return start
    o.ep_status[e] = EP_NO_FILL
    entry_open = True      # entry quotes may still be sent
    gated = False
    exiting = EXIT_NONE
    taker_phase = False
    maker_since = start
    k = k0 + 1
    decide = INF
    if k < k1:
        decide = max(start, m.tk_ts[k] + _latency(m, p, s, a, _view(m, a, m.tk_ts[k]), 0, k))
    now = start
    while True:
        t_event = m.ev_ts[i] if i < i1 else INF
        j, t_slot = _next_action(o, p, s)
        t_decide = decide if k < k1 else INF
        if t_event >= INF and t_slot >= INF and t_decide >= INF:
            break
        capped = True
        if t_event <= t_slot and t_event <= t_decide:
            now = t_event
            _on_event(m, o, p, s, e, i, model, power, partial, maker_fee, capped)
            i += 1
        elif t_slot <= t_decide:
            now = t_slot
            kind = o.or_kind[s * p.order_cap + o.sl_order[j]]
            layer = o.sl_layer[j]
            left = _act(m, o, p, s, e, a, j, t_slot, i - 1, max_walk, maker_fee, taker_fee, capped)
            if kind == ENTRY and left > 0.0 and layer >= 0:
                o.rq[s * N_LAYERS + layer] += left
        else:
            now = t_decide
            tick_ts = m.tk_ts[k]
            at = _view(m, a, tick_ts)
            send = now + _latency(m, p, s, a, at, 1, k)
            position = o.ac_pos[s]
            bid, ask = _top(m, a, at)
            if entry_open and exiting == EXIT_NONE:
                cut = abs(m.tk_target_w[k]) < m.a_w[a] * (1.0 - 1e-9)
                toxic = m.tk_z_pi[k] > row[P_Z_PI_MAX] or m.tk_spread_bps[k] > row[P_MAX_SPREAD_BPS]
                if cut or now - start >= np.int64(row[P_QUOTE_TTL_S] * NS_PER_S):
                    entry_open = False
                    _cancel_kind(o, p, s, ENTRY, send)
                elif toxic:
                    if not gated:
                        gated = True
                        _cancel_kind(o, p, s, ENTRY, send)
                else:
                    gated = False
                    for layer in range(N_LAYERS):
                        left = o.rq[s * N_LAYERS + layer]
                        if left > 0.5 * p.lot_size:
                            o.rq[s * N_LAYERS + layer] = 0.0
                            _quote_entry(m, o, p, s, a, layer, left, at, now, send)
            if position != 0.0 and bid >= 0 and ask >= 0:
                entry_price = o.ep_entry_cost[e] / o.ep_entry_qty[e]
                move = direction * math.log(0.5 * (bid + ask) * p.tick_size / entry_price)
                level = m.tk_lpi_down[k] if direction > 0 else m.tk_lpi_up[k]
                if not taker_phase:
                    before = exiting
                    if move < -row[P_STOP_SIGMA] * m.a_sigma[a]:
                        exiting, taker_phase = EXIT_SIGMA, True
                    elif now - start >= np.int64(row[P_TIME_STOP_S] * NS_PER_S):
                        exiting, taker_phase = EXIT_TIME, True
                    elif exiting == EXIT_NONE and level < row[P_TP_LPI]:
                        exiting, maker_since = EXIT_TP_LPI, now
                    elif exiting == EXIT_NONE and row[P_TP_BPS] > 0.0 and move * 1e4 >= row[P_TP_BPS]:
                        exiting, maker_since = EXIT_TP_TARGET, now
                    elif exiting != EXIT_NONE and now - maker_since >= np.int64(
                            row[P_EXIT_TIMEOUT_S] * NS_PER_S):
                        taker_phase = True
                    if before == EXIT_NONE and exiting != EXIT_NONE:
                        entry_open = False
                        _cancel_kind(o, p, s, ENTRY, send)
                    if taker_phase:
                        _cancel_kind(o, p, s, EXIT_MAKER, send)
                if taker_phase:
                    if not _live_kind(o, p, s, EXIT_TAKER):
                        _submit(o, p, s, a, EXIT_TAKER, -direction, -1, abs(position), now, send, 1, -1)
                elif exiting != EXIT_NONE and not _live_kind(o, p, s, EXIT_MAKER):
                    _submit(o, p, s, a, EXIT_MAKER, -direction, ask if direction > 0 else bid,
                            abs(position), now, send, 0, -1)
            k += 1
            if k < k1:
                decide = max(now, m.tk_ts[k] + _latency(m, p, s, a, _view(m, a, m.tk_ts[k]), 0, k))
        if o.overflow[s] == 1:
            break
        if o.ac_pos[s] == 0.0 and not entry_open and not _any_slot(o, p, s):
            break
    if o.ep_entry_qty[e] > 0.0:
        o.ep_status[e] = EP_TRADED
        o.ep_reason[e] = exiting
    if o.ac_pos[s] != 0.0:
        _expire_all(o, p, s, now)
        last = i1 - 1
        bid, ask = _top(m, a, last)
        mid = 0.5 * (bid + ask) * p.tick_size
        qty = abs(o.ac_pos[s])
        o.ep_exit_qty[e] += qty
        o.ep_exit_cost[e] += qty * mid
        o.ep_fees[e] += taker_fee * qty * mid * p.contract_size
        o.ac_pos[s] = 0.0
        o.ep_reason[e] = EXIT_WINDOW_END
    else:
        _expire_all(o, p, s, now)
    o.ep_end[e] = now
    return now


@per_tick(parallel=True)
def simulate(s, m: Market, o: Outputs, p: Params):
    """Scenario ``s`` over every activation, in time order: an activation seen while the scenario
    still holds a position or orders is skipped (``EP_BUSY``)."""
    free_at = -INF
    for a in range(p.n_act):
        k0 = m.a_tk0[a]
        start = m.tk_ts[k0] + _latency(m, p, s, a, m.a_ev0[a] - 1, 0, k0)
        if start < free_at:
            o.ep_status[s * p.n_act + a] = EP_BUSY
            continue
        free_at = _episode(m, o, p, s, a, start)
        if o.overflow[s] == 1:
            return


@per_tick
def scripted_orders(s, m: ScriptedMarket, o: Outputs, p: Params):
    """Run the orders of the script (window 0) through the fill engine of scenario ``s``'s
    parameters (fill model, queue power, partial fills; fees are charged, latency is the
    script's: its times are arrivals at the exchange)."""
    row = m.scenario[s]
    model = np.int64(row[P_FILL_MODEL])
    power = row[P_QUEUE_POWER]
    partial = np.int64(row[P_PARTIAL])
    maker_fee, taker_fee = row[P_MAKER_FEE], row[P_TAKER_FEE]
    max_walk = np.int64(row[P_MAX_WALK])
    e = s * p.n_act
    i, i1 = m.a_ev0[0], m.a_ev1[0]
    n = 0
    count = m.arrive.size
    while True:
        t_event = m.ev_ts[i] if i < i1 else INF
        j, t_slot = _next_action(o, p, s)
        t_new = m.arrive[n] if n < count else INF
        if t_event >= INF and t_slot >= INF and t_new >= INF:
            break
        if t_event <= t_slot and t_event <= t_new:
            _on_event(m, o, p, s, e, i, model, power, partial, maker_fee, False)
            i += 1
        elif t_slot <= t_new:
            _act(m, o, p, s, e, 0, j, t_slot, i - 1, max_walk, maker_fee, taker_fee, False)
        else:
            j = _submit(o, p, s, 0, SCRIPTED, m.side[n], m.price[n], m.qty[n], m.arrive[n],
                        m.arrive[n], m.taker[n], -1)
            if j < 0:
                return
            o.sl_cancel[j] = m.cancel[n]
            n += 1
        if o.overflow[s] == 1:
            return
    _expire_all(o, p, s, INF)
