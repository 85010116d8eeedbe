"""hftbacktest 2.4.4 driven from the tick store: the simulator's cross-check and speed anchor (issue 9).

hftbacktest is optional (``pip install --no-deps hftbacktest==2.4.4``: its metadata pins
``numpy<2.3`` while this project pins numpy 2.4.6; it runs with 2.4.6). Three pieces:

:func:`store_events`
    A symbol's ``depth_diff`` and market trades over a range as hftbacktest's event arrays, one
    array per ``chunk_s`` of exchange time (hftbacktest takes a list and reads one at a time, so
    memory is that of a chunk). The book starts at the latest snapshot at or before ``start_ns``
    (the first in the range where there is none);
    a snapshot is a full clear (``DEPTH_CLEAR_EVENT``, no side) and its levels
    (``DEPTH_SNAPSHOT_EVENT``); diffs older than the snapshot (``u < lastUpdateId``) are skipped,
    as :mod:`kernels.book_replay` does. At one exchange time trades come before depth updates,
    the order of :mod:`gpu_lpi.sim.market` (hftbacktest's own Binance converter keeps the
    collector's receive order). ``local_ts`` is the capture's receive time shifted by one
    constant so that no feed latency is negative (hftbacktest's ``correct_local_timestamp``) and
    made non-decreasing in exchange order (a running maximum), so every event is both an exchange
    and a local event and chunks can be cut anywhere; receive-order swaps between the trade and
    depth streams (a few ms) are lost, which changes no fill: fills are decided on exchange time.
:func:`run_hftbacktest`
    A scripted order list (the columns of :func:`gpu_lpi.sim.scripted.simulate_orders`) through
    hftbacktest's ``NoPartialFillExchange`` (its default exchange: an order fills all at once) with
    ``RiskAdverseQueueModel`` and a constant order-entry latency (response latency 0).
:func:`quoting_loop_seconds`
    hftbacktest's wall time for one configuration of a 100 ms quoting loop (a bid and an ask at
    the touch, re-quoted every 100 ms where the touch moved), the anchor of ``bench/bench_sim.py``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from gpu_lpi.book import last_snapshot_ts
from gpu_lpi.schema import TRADE_KIND_MARKET
from gpu_lpi.store import TickStore
from kernels.maker_sim import TRADE

try:
    import hftbacktest as hbt
    from hftbacktest import (BUY_EVENT, DEPTH_CLEAR_EVENT, DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, EXCH_EVENT,
                             FILLED, GTX, LIMIT, LOCAL_EVENT, NEW, SELL_EVENT, TRADE_EVENT)
    from hftbacktest.binding import event_dtype
except ImportError:  # the cross-check and the anchor are skipped without it
    hbt = None

NS_PER_S = 1_000_000_000
#: Exchange seconds per event array (a full-rate BTCUSDT hour is a few million events).
CHUNK_S = 3600
#: Elapse step of hftbacktest's run to the end of the data.
_END_STEP_NS = 60 * NS_PER_S
QUEUE_MODELS = ("risk_averse",)


# -- events -------------------------------------------------------------------------------------------

def _depth_events(d: dict, snapshot_id: int) -> tuple[dict, int]:
    """Event columns of ``depth_diff`` rows (storage order) and the snapshot id after them."""
    ts, seq_last, snap = d["ts"], d["seq_last"], d["is_snapshot"].astype(bool)
    first = np.ones(ts.size, bool)
    first[1:] = (ts[1:] != ts[:-1]) | (seq_last[1:] != seq_last[:-1]) | (snap[1:] != snap[:-1])
    message = np.cumsum(first) - 1
    msg_snap = snap[first]
    msg_seq = seq_last[first]
    # the id of the latest snapshot at or before each message (the carried one before the first)
    ids = np.where(msg_snap, msg_seq, -1)
    if ids.size:
        ids[0] = ids[0] if msg_snap[0] else snapshot_id
        ids = np.maximum.accumulate(ids)
    keep_msg = msg_snap | ((ids >= 0) & (msg_seq >= ids))
    keep = keep_msg[message] & (d["side"] >= 0)
    side_flag = np.where(d["side"] == 0, BUY_EVENT, SELL_EVENT).astype(np.uint64)
    kind = np.where(snap, DEPTH_SNAPSHOT_EVENT, DEPTH_EVENT).astype(np.uint64)
    cols = {"ev": kind | side_flag, "ts": ts, "local": d["local_ts"], "px": d["price"], "qty": d["qty"]}
    cols = {k: v[keep] for k, v in cols.items()}
    # one full clear before each snapshot message kept
    clear_rows = np.flatnonzero(keep & first & snap)
    clear_at = np.searchsorted(np.flatnonzero(keep), clear_rows)
    cols = {"ev": np.insert(cols["ev"], clear_at, np.uint64(DEPTH_CLEAR_EVENT)),
            "ts": np.insert(cols["ts"], clear_at, ts[clear_rows]),
            "local": np.insert(cols["local"], clear_at, d["local_ts"][clear_rows]),
            "px": np.insert(cols["px"], clear_at, np.nan), "qty": np.insert(cols["qty"], clear_at, 0.0)}
    return cols, int(ids[-1]) if ids.size else snapshot_id


def _trade_events(t: dict) -> dict:
    market = t["kind"] == TRADE_KIND_MARKET
    flag = np.where(t["is_buyer_maker"][market], SELL_EVENT, BUY_EVENT).astype(np.uint64)
    return {"ev": np.uint64(TRADE_EVENT) | flag, "ts": t["ts"][market], "local": t["local_ts"][market],
            "px": t["price"][market], "qty": t["qty"][market]}


def _feed_offset(store: TickStore, symbol: str, start: int, end: int) -> int:
    """The constant that makes ``local_ts + offset >= ts`` for every row of the range (0 without
    receive times)."""
    worst = 0
    for table in ("trades", "depth_diff"):
        for batch in store.iter_batches(table, symbol, start, end, columns=["ts", "local_ts"]):
            local = batch.column("local_ts").to_numpy(zero_copy_only=False)
            ts = batch.column("ts").to_numpy()
            real = local > 0
            if real.any():
                worst = max(worst, int((ts[real] - local[real]).max()))
    return worst


def store_events(store_root, symbol: str, start_ns: int, end_ns: int, chunk_s: int = CHUNK_S) -> Iterator[np.ndarray]:
    """hftbacktest event arrays of ``symbol`` from its last snapshot at or before ``start_ns`` to
    ``end_ns`` (exclusive), one per ``chunk_s`` of exchange time (module docstring)."""
    store = TickStore(store_root)
    begin = last_snapshot_ts(store, symbol, int(start_ns))
    if begin is None:  # the capture starts inside the range: from its first snapshot
        rows = store.read_arrays("depth_diff", symbol, int(start_ns), int(end_ns), columns=["ts", "is_snapshot"])
        snapshots = rows["ts"][rows["is_snapshot"].astype(bool)]
        begin = int(snapshots[0]) if snapshots.size else None
    if begin is None:
        raise ValueError(f"{symbol}: no depth_diff snapshot at or before {np.datetime64(int(start_ns), 'ns')}")
    offset = _feed_offset(store, symbol, begin, end_ns)
    snapshot_id, last_local = -1, np.iinfo(np.int64).min
    for lo in range(begin, int(end_ns), chunk_s * NS_PER_S):
        hi = min(lo + chunk_s * NS_PER_S, int(end_ns))
        depth, snapshot_id = _depth_events(store.read_arrays("depth_diff", symbol, lo, hi), snapshot_id)
        trades = _trade_events(store.read_arrays("trades", symbol, lo, hi))
        cols = {k: np.concatenate([trades[k], depth[k]]) for k in depth}
        is_depth = np.concatenate([np.zeros(trades["ts"].size, np.int8), np.ones(depth["ts"].size, np.int8)])
        order = np.lexsort((is_depth, cols["ts"]))   # stable: rows of one message keep their order
        out = np.empty(order.size, event_dtype)
        out["ev"] = cols["ev"][order] | np.uint64(EXCH_EVENT | LOCAL_EVENT)
        out["exch_ts"] = cols["ts"][order]
        local = np.where(cols["local"][order] > 0, cols["local"][order] + offset, out["exch_ts"])
        local = np.maximum(np.maximum.accumulate(np.maximum(local, out["exch_ts"])), last_local)
        out["local_ts"] = local
        out["px"], out["qty"] = cols["px"][order], cols["qty"][order]
        out["order_id"], out["ival"], out["fval"] = 0, 0, 0.0
        if out.size:
            last_local = int(local[-1])
            yield out


# -- the backtester -----------------------------------------------------------------------------------

def _backtest(events: list[np.ndarray], latency_ns: int, tick_size: float, lot_size: float,
              contract_size: float = 1.0, inverse: bool = False, queue: str = "risk_averse"):
    if queue not in QUEUE_MODELS:
        raise ValueError(f"queue: expected one of {QUEUE_MODELS}, got {queue!r}")
    asset = hbt.BacktestAsset().data(list(events))
    asset = asset.inverse_asset(contract_size) if inverse else asset.linear_asset(contract_size)
    asset = (asset.constant_order_latency(int(latency_ns), 0).risk_adverse_queue_model()
             .no_partial_fill_exchange().trading_value_fee_model(0.0, 0.0)
             .tick_size(tick_size).lot_size(lot_size).last_trades_capacity(0))
    return hbt.HashMapMarketDepthBacktest([asset])


@njit
def _collect(bt, out_id, out_ts, out_px, out_qty, out_maker, n):
    """Record the filled orders (exchange time of the fill) and drop inactive ones."""
    values = bt.orders(0).values()
    while values.has_next():
        order = values.get()
        if order.status == FILLED and n < out_id.size:
            out_id[n] = order.order_id
            out_ts[n] = order.exch_timestamp
            out_px[n] = order.exec_price
            out_qty[n] = order.exec_qty
            out_maker[n] = order.arr[0].maker
            n += 1
    bt.clear_inactive_orders(0)
    return n


@njit
def _scripted(bt, at, action, ids, side, price, qty, out_id, out_ts, out_px, out_qty, out_maker):
    """Submit (``action`` 0) and cancel (1) at local times ``at`` (sorted); then run to the end."""
    bt.elapse(0)
    n = 0
    for k in range(at.size):
        now = bt.current_timestamp
        if at[k] > now and bt.elapse(at[k] - now) != 0:
            break
        n = _collect(bt, out_id, out_ts, out_px, out_qty, out_maker, n)
        if action[k] == 0:
            if side[k] > 0:
                bt.submit_buy_order(0, ids[k], price[k], qty[k], GTX, LIMIT, False)
            else:
                bt.submit_sell_order(0, ids[k], price[k], qty[k], GTX, LIMIT, False)
        else:
            order = bt.orders(0).get(ids[k])
            if order is not None and order.status == NEW and order.req == 0:
                bt.cancel(0, ids[k], False)
    while bt.elapse(_END_STEP_NS) == 0:
        n = _collect(bt, out_id, out_ts, out_px, out_qty, out_maker, n)
    return _collect(bt, out_id, out_ts, out_px, out_qty, out_maker, n)


def run_hftbacktest(events: list[np.ndarray], orders: pd.DataFrame, latency_ns: int, tick_size: float,
                    lot_size: float, queue: str = "risk_averse", contract_size: float = 1.0,
                    inverse: bool = False) -> pd.DataFrame:
    """Fills of a scripted order list in hftbacktest (columns as in
    :func:`gpu_lpi.sim.scripted.simulate_orders`: ``order_id``, ``submit_ts``, ``side``, ``price``,
    ``qty``, ``cancel_ts``; post-only limit orders, GTX).

    Returns
    -------
    pandas.DataFrame
        ``order_id``, ``ts`` (exchange time of the fill), ``price``, ``qty``, ``maker``; by order id.
    """
    n = len(orders)
    cancel = orders["cancel_ts"].to_numpy(np.int64)
    has_cancel = cancel >= 0
    at = np.concatenate([orders["submit_ts"].to_numpy(np.int64), cancel[has_cancel]])
    action = np.concatenate([np.zeros(n, np.int8), np.ones(int(has_cancel.sum()), np.int8)])
    ids = np.concatenate([orders["order_id"].to_numpy(np.uint64), orders["order_id"].to_numpy(np.uint64)[has_cancel]])
    pick = np.concatenate([np.arange(n), np.flatnonzero(has_cancel)])
    sequence = np.lexsort((action, at))
    side = orders["side"].to_numpy(np.int8)[pick][sequence]
    price = orders["price"].to_numpy(np.float64)[pick][sequence]
    qty = orders["qty"].to_numpy(np.float64)[pick][sequence]
    bt = _backtest(events, latency_ns, tick_size, lot_size, contract_size, inverse, queue)
    out = (np.zeros(n, np.uint64), np.zeros(n, np.int64), np.zeros(n), np.zeros(n), np.zeros(n, np.bool_))
    try:
        count = _scripted(bt, at[sequence], action[sequence], ids[sequence], side, price, qty, *out)
    finally:
        bt.close()
    fills = pd.DataFrame({"order_id": out[0][:count].astype(np.int64), "ts": out[1][:count],
                          "price": out[2][:count], "qty": out[3][:count], "maker": out[4][:count]})
    return fills.sort_values("order_id", ignore_index=True)


# -- the speed anchor ---------------------------------------------------------------------------------

@njit
def _quoting_loop(bt, step_ns, qty, end_ts):
    """A bid and an ask at the touch, re-quoted every ``step_ns`` where the touch moved, until
    ``end_ts`` (the data's last time: with orders in flight hftbacktest never reports the end of
    the data); returns the number of steps."""
    bid_id, ask_id, next_id = np.uint64(0), np.uint64(0), np.uint64(1)
    bid_tick, ask_tick = -1, -1
    steps = 0
    while bt.elapse(step_ns) == 0 and bt.current_timestamp < end_ts:
        steps += 1
        depth = bt.depth(0)
        best_bid, best_ask = depth.best_bid_tick, depth.best_ask_tick
        orders = bt.orders(0)
        if best_bid != bid_tick or bid_id not in orders:
            if bid_id in orders and orders.get(bid_id).cancellable:
                bt.cancel(0, bid_id, False)
            bid_id, next_id = next_id, next_id + 1
            bt.submit_buy_order(0, bid_id, best_bid * depth.tick_size, qty, GTX, LIMIT, False)
            bid_tick = best_bid
        if best_ask != ask_tick or ask_id not in orders:
            if ask_id in orders and orders.get(ask_id).cancellable:
                bt.cancel(0, ask_id, False)
            ask_id, next_id = next_id, next_id + 1
            bt.submit_sell_order(0, ask_id, best_ask * depth.tick_size, qty, GTX, LIMIT, False)
            ask_tick = best_ask
        bt.clear_inactive_orders(0)
    return steps


def quoting_loop_seconds(events: list, tick_size: float, lot_size: float, latency_ns: int = 100_000_000,
                         step_ns: int = 100_000_000, rows: int | None = None) -> dict:
    """hftbacktest's wall time for one configuration of the 100 ms quoting loop over ``events``
    (event arrays or ``.npz`` paths; ``rows``: their event count, counted where arrays), compilation
    excluded: the loop is compiled on a short prefix first."""
    load = (lambda e: e) if isinstance(events[0], np.ndarray) else (lambda e: np.load(e)["data"])
    first, end_ts = load(events[0])[:1000].copy(), int(load(events[-1])["local_ts"].max())
    warm = _backtest([first], latency_ns, tick_size, lot_size)
    _quoting_loop(warm, step_ns, lot_size, int(first["local_ts"].max()))
    warm.close()
    bt = _backtest(events, latency_ns, tick_size, lot_size)
    begin = time.perf_counter()
    steps = _quoting_loop(bt, step_ns, lot_size, end_ts)
    seconds = time.perf_counter() - begin
    bt.close()
    rows = int(sum(e.size for e in events)) if rows is None else rows
    return {"seconds": seconds, "event_rows": rows, "steps": steps, "rows_per_s": rows / seconds}


def write_event_files(store_root, symbol: str, start_ns: int, end_ns: int, folder) -> list[str]:
    """:func:`store_events` written as uncompressed ``.npz`` files (key ``data``) under ``folder``,
    one per chunk: hftbacktest reads them one at a time, so a day never sits in memory at once."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, chunk in enumerate(store_events(store_root, symbol, start_ns, end_ns)):
        paths.append(str(folder / f"{symbol}-{k:04d}.npz"))
        np.savez(paths[-1], data=chunk)
    return paths


def hftbacktest_day_seconds(store_root, symbol: str, day, work=None) -> dict:
    """hftbacktest's single-configuration time for the 100 ms quoting loop over one store day of
    ``symbol`` (``day``: a date or ``YYYY-MM-DD``), its data in hourly event files under ``work``
    (default: a temporary folder, removed after); also the conversion time and the event rows."""
    start = int(np.datetime64(str(day), "ns").astype(np.int64))
    end = start + 86_400 * NS_PER_S
    info = TickStore(store_root).symbol_info(symbol)
    with tempfile.TemporaryDirectory(dir=work) as folder:
        begin = time.perf_counter()
        paths = write_event_files(store_root, symbol, start, end, folder)
        convert = time.perf_counter() - begin
        rows = sum(int(np.load(p, mmap_mode="r")["data"].shape[0]) for p in paths)
        result = quoting_loop_seconds(paths, float(info["tick_size"]), float(info["lot_size"]), rows=rows)
    return {**result, "convert_seconds": convert}


# -- the cross-check ----------------------------------------------------------------------------------

def cross_check_orders(store_root, symbol: str, start_ns: int, end_ns: int, n_orders: int = 400,
                       seed: int = 0, life_s: tuple[float, float] = (1.0, 5.0)) -> pd.DataFrame:
    """A seeded script of post-only orders: at uniform random times in ``[start_ns, end_ns)``, a
    bid (or an ask) at the touch of the store's ``book_ticker`` then, or 1 or 2 ticks behind it,
    for 1-5 lots, cancelled ``life_s`` seconds later (uniform)."""
    store = TickStore(store_root)
    info = store.symbol_info(symbol)
    tick, lot = float(info["tick_size"]), float(info["lot_size"])
    quotes = store.read_arrays("book_ticker", symbol, int(start_ns) - 60 * NS_PER_S, int(end_ns),
                               columns=["ts", "bid", "ask"])
    rng = np.random.default_rng(seed)
    submit = np.sort(rng.integers(int(start_ns), int(end_ns), n_orders))
    at = np.searchsorted(quotes["ts"], submit, side="right") - 1
    side = np.where(rng.random(n_orders) < 0.5, 1, -1).astype(np.int8)
    behind = rng.integers(0, 3, n_orders)
    touch = np.where(side > 0, quotes["bid"][at], quotes["ask"][at])
    price = np.round(touch / tick - side * behind) / round(1.0 / tick)  # the decimal price's double
    life = rng.uniform(*life_s, n_orders)
    return pd.DataFrame({"order_id": np.arange(1, n_orders + 1), "submit_ts": submit, "side": side,
                         "price": price, "qty": rng.integers(1, 6, n_orders) * lot,
                         "cancel_ts": submit + (life * NS_PER_S).astype(np.int64)})


def compare_fills(ours: pd.DataFrame, theirs: pd.DataFrame, tick_size: float) -> pd.DataFrame:
    """One row per order filled by either: ``ts``/``price``/``qty`` of each (NaN where it did not
    fill) and ``same`` (filled by both at one exchange time, price and quantity)."""
    keys = ["order_id", "ts", "price", "qty"]
    exact = {"ts": "Int64"}  # times stay integers (NaN would make them float64, 256 ns steps)
    both = ours[keys].astype(exact).merge(theirs[keys].astype(exact), on="order_id", how="outer",
                                          suffixes=("_ours", "_hbt"))
    both["same"] = ((both["ts_ours"] == both["ts_hbt"]).fillna(False).astype(bool)
                    & (np.round(both["price_ours"] / tick_size) == np.round(both["price_hbt"] / tick_size))
                    & np.isclose(both["qty_ours"], both["qty_hbt"]))
    return both.sort_values("order_id", ignore_index=True)


#: Why a fill differs (:func:`explain_differences`).
BOOK_CROSS, QUEUE_RESIDUE, UNEXPLAINED = "book_cross", "queue_residue", "unexplained"


def explain_differences(compared: pd.DataFrame, orders: pd.DataFrame, market) -> pd.Series:
    """The reason for each differing row of :func:`compare_fills` (index: its rows), by rule:

    * ``book_cross``: hftbacktest filled first, at the exchange time of a depth update after which
      the opposite best was at or through the order's price (its ``NoPartialFillExchange`` fills a
      resting order when the book crosses it; ours fills on prints only), and ours filled later at
      the same price and quantity, or not at all (no print reached it before its cancel);
    * ``queue_residue``: ours filled first, at a time when trades printed at the order's price,
      and hftbacktest later at the same price and quantity (its ``RiskAdverseQueueModel`` fills
      only when the trades exceed the queue ahead by half a lot; ours when the queue ahead, a
      float sum, goes below 0, which rounding noise does where the trades equal it);
    * ``unexplained``: anything else.

    ``market`` is the :class:`gpu_lpi.sim.market.MarketWindows` of ours (events and the best bid
    and ask after each).
    """
    rows = compared[~compared["same"]].merge(orders[["order_id", "side", "price"]], on="order_id")
    tick = market.tick_size
    reasons = []
    for r in rows.itertuples():
        ours_filled, hbt_filled = not pd.isna(r.ts_ours), not pd.isna(r.ts_hbt)
        filled_both = ours_filled and hbt_filled and np.isclose(r.qty_ours, r.qty_hbt)
        level = round(r.price / tick)
        reason = UNEXPLAINED
        if hbt_filled and (not ours_filled or (filled_both and r.ts_hbt < r.ts_ours)):
            last = np.searchsorted(market.ev_ts, r.ts_hbt, side="right") - 1
            opposite = market.ev_ask[last] if r.side > 0 else market.ev_bid[last]
            crossed = opposite >= 0 and (opposite <= level if r.side > 0 else opposite >= level)
            reason = BOOK_CROSS if crossed else UNEXPLAINED
        elif filled_both and r.ts_ours < r.ts_hbt:
            at = slice(*np.searchsorted(market.ev_ts, [r.ts_ours, r.ts_ours + 1]))
            printed = ((market.ev_kind[at] == TRADE) & (market.ev_price[at] == level)).any()
            reason = QUEUE_RESIDUE if printed else UNEXPLAINED
        reasons.append(reason)
    return pd.Series(reasons, index=compared.index[~compared["same"]], dtype=object)


def capture_windows(store_root, symbol: str, max_gap_s: float = 60.0) -> list[tuple[int, int]]:
    """``(first snapshot, last depth row + 1)`` of each contiguous capture of ``symbol`` (runs of
    ``depth_diff`` with no silence longer than ``max_gap_s``) that holds a snapshot."""
    d = TickStore(store_root).read_arrays("depth_diff", symbol, columns=["ts", "is_snapshot"])
    ts, snap = d["ts"], d["is_snapshot"].astype(bool)
    cut = np.flatnonzero(np.diff(ts) > max_gap_s * NS_PER_S) + 1
    windows = []
    for lo, hi in zip(np.r_[0, cut], np.r_[cut, ts.size]):
        first = np.flatnonzero(snap[lo:hi])
        if first.size:
            windows.append((int(ts[lo + first[0]]), int(ts[hi - 1]) + 1))
    return windows


def cross_check(store_root, symbol: str, window: tuple[int, int], n_orders: int = 400, seed: int = 0,
                latency_ms: float = 100.0) -> dict:
    """Ours (:func:`gpu_lpi.sim.scripted.simulate_orders`, ``queue_risk_averse``, no partial
    fills) against hftbacktest on one capture window: the same seeded orders (from 2 s after the
    window's snapshot to 10 s before its end) and constant order latency."""
    from gpu_lpi.sim.scripted import load_market, simulate_orders

    info = TickStore(store_root).symbol_info(symbol)
    tick, lot = float(info["tick_size"]), float(info["lot_size"])
    start, end = window
    orders = cross_check_orders(store_root, symbol, start + 2 * NS_PER_S, end - 10 * NS_PER_S, n_orders, seed)
    events = list(store_events(store_root, symbol, start, end))
    theirs = run_hftbacktest(events, orders, int(latency_ms * 1e6), tick, lot,
                             contract_size=float(info["contract_size"]), inverse=bool(info["is_inverse"]))
    # ours from 1 s after the snapshot: a window starting before the book is in sync gets no levels
    market = load_market(store_root, symbol, start + NS_PER_S, end)
    ours = simulate_orders(market, orders, "queue_risk_averse", latency_ms, partial_fills=False)
    compared = compare_fills(ours, theirs, tick)
    compared["reason"] = explain_differences(compared, orders, market)
    return {"symbol": symbol, "window": window, "orders": orders, "compared": compared,
            "fills_ours": len(ours), "fills_hbt": len(theirs)}


def main(argv=None) -> None:
    """Print the cross-check on every capture window of a store (one Markdown row each) and the
    differing fills."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--symbols", nargs="+", default=["BTCUSDT", "ETHUSDT", "BTCUSD_PERP"])
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    print("| symbol | window (UTC) | orders | fills ours / hbt | same | book_cross | queue_residue | unexplained |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    details = []
    for symbol in args.symbols:
        for window in capture_windows(args.store, symbol):
            r = cross_check(args.store, symbol, window, args.orders, args.seed, args.latency_ms)
            c = r["compared"]
            counts = c["reason"].value_counts()
            span = f"{np.datetime64(window[0], 'ns').astype('datetime64[s]')} +{(window[1] - window[0]) / NS_PER_S:.0f} s"
            print(f"| {symbol} | {span} | {len(r['orders'])} | {r['fills_ours']} / {r['fills_hbt']} | "
                  f"{int(c['same'].sum())} | {counts.get(BOOK_CROSS, 0)} | {counts.get(QUEUE_RESIDUE, 0)} | "
                  f"{counts.get(UNEXPLAINED, 0)} |")
            details.append(c[~c["same"]].assign(symbol=symbol))
    if details:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(pd.concat(details).to_string())


if __name__ == "__main__":
    main()
