"""The simulator's market: event windows around activations, from the tick store (DESIGN.md §4 step 8).

:func:`load_windows` reads one symbol's ``depth_diff`` and market trades for a list of time windows
``(start, end]`` and returns a :class:`MarketWindows`: per window the events after its start
(trades and L2 level updates, time-ordered, trades first at one time: a depth update that follows a
trade at its time already shows it), the best bid and ask after each event, and an index of level
quantities whose entries at the window's first event minus one are the book at its start. The
book is replayed once (:class:`gpu_lpi.book.BookReplay`, streamed a row group at a time from the
last snapshot before the first window) and shared by every scenario; only windows are kept, so
memory is that of the windows, not of the day.

Decisions:

* **Band.** Levels are kept within ``band_bps`` (default 500 bps) of the mid at the window's start:
  Binance books carry placeholder quotes far from the touch, and a cascade's window moves a few
  percent at most. A taker order that walks past the band is priced at the last level in it.
* **Invalid book.** Depth messages the replay skipped (before a snapshot, after a sequence gap)
  change no level; the best bid and ask are unknown (-1) where the book is invalid, and the
  simulator neither rests nor fills orders against an unknown book.
* **A snapshot inside a window** replaces the book: its effect is written as level updates (every
  level it changes, deletions included), not as its rows.
* **Latency inputs.** ``ev_delay`` is the capture's ``local_ts − ts`` (-1 where the source has no
  receive time). Market activity is the trade rate: ``ev_rate`` counts the market trades in the
  second up to each event, ``rate_ref`` is the mean rate of the days the windows fall in (from the
  trade partitions' row counts). Depth messages would not do: Binance publishes its diff stream
  every 100 ms whatever happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpu_lpi.book import BookReplay, DepthMessages, group_messages, last_snapshot_ts, ladder_for_range, message_starts
from gpu_lpi.errors import ConfigError
from gpu_lpi.schema import TRADE_KIND_MARKET
from kernels.book_replay import APPLIED, SNAPSHOT, DepthRows
from kernels.maker_sim import LEVEL, SIDE_STRIDE, TRADE

NS_PER_S = 1_000_000_000
DEPTH_COLUMNS = ("ts", "seq_first", "seq_last", "seq_prev", "side", "price", "qty", "is_snapshot",
                 "local_ts")


@dataclass
class MarketWindows:
    """Event windows of one symbol (arrays as in :class:`kernels.maker_sim.Market`).

    ``w_*`` are per window: event range ``w_ev0``/``w_ev1``, level-index range ``w_lv0``/``w_lv1``,
    the top at the start ``w_bid0``/``w_ask0`` (ticks, -1 unknown), ``w_delay0``/``w_rate0``.
    """

    tick_size: float
    lot_size: float
    contract_size: float
    starts: np.ndarray
    ends: np.ndarray
    ev_ts: np.ndarray
    ev_kind: np.ndarray
    ev_side: np.ndarray
    ev_price: np.ndarray
    ev_qty: np.ndarray
    ev_bid: np.ndarray
    ev_ask: np.ndarray
    ev_delay: np.ndarray
    ev_rate: np.ndarray
    lv_key: np.ndarray
    lv_ev: np.ndarray
    lv_qty: np.ndarray
    w_ev0: np.ndarray
    w_ev1: np.ndarray
    w_lv0: np.ndarray
    w_lv1: np.ndarray
    w_bid0: np.ndarray
    w_ask0: np.ndarray
    w_delay0: np.ndarray
    w_rate0: np.ndarray
    rate_ref: float

    @property
    def n_events(self) -> int:
        return int(self.ev_ts.size)

    def mid_at(self, window: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Mid price as of each time (NaN where the book is unknown), in the given windows."""
        out = np.full(times.size, np.nan)
        for w in np.unique(window):
            pick = window == w
            lo, hi = self.w_ev0[w], self.w_ev1[w]
            at = np.searchsorted(self.ev_ts[lo:hi], times[pick], side="right") - 1
            bid = np.where(at >= 0, self.ev_bid[lo:hi][np.maximum(at, 0)] if hi > lo else -1, self.w_bid0[w])
            ask = np.where(at >= 0, self.ev_ask[lo:hi][np.maximum(at, 0)] if hi > lo else -1, self.w_ask0[w])
            known = (bid >= 0) & (ask >= 0)
            out[pick] = np.where(known, 0.5 * (bid + ask) * self.tick_size, np.nan)
        return out


@dataclass
class _Window:
    start: int
    end: int
    bid0: int = -1
    ask0: int = -1
    levels0: tuple = ()          # (side, price ticks, qty) arrays at the start
    band: tuple | None = None    # the prices (ticks) of the levels kept; None: no valid book yet
    rows: list = None            # per fed piece: (ts, side, price ticks, qty, bid, ask, delay)

    def __post_init__(self):
        self.rows = []


def load_windows(store, symbol: str, windows, band_bps: float = 500.0) -> MarketWindows:
    """Market events of ``symbol`` in each window ``(start, end]`` (ns), see the module docstring.

    Raises
    ------
    ConfigError
        Where the symbol has no ``depth_diff`` rows for the windows (the simulator needs an L2 book).
    """
    info = store.symbol_info(symbol)
    tick = float(info["tick_size"])
    spans = sorted((int(s), int(e)) for s, e in windows)
    state = [_Window(s, e) for s, e in spans]
    if state:
        _replay_windows(store, symbol, state, tick, band_bps * 1e-4)
    trades = [_window_trades(store, symbol, w, tick) for w in state]
    return _assemble(state, trades, tick, float(info["lot_size"]), float(info["contract_size"]),
                     _mean_trade_rate(store, symbol, spans))


# -- the depth pass -----------------------------------------------------------------------------------

def _mean_trade_rate(store, symbol: str, spans) -> float:
    """Trades per second over the days the windows fall in (row counts of their partitions)."""
    if not spans:
        return 0.0
    paths = store.partition_paths("trades", symbol, spans[0][0], spans[-1][1] + 1)
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    return rows / max(len(paths), 1) / 86_400.0


def _replay_windows(store, symbol, windows: list[_Window], tick: float, band: float) -> None:
    """Replay ``depth_diff`` once through every window."""
    first_start, last_end = windows[0].start, max(w.end for w in windows)
    snapshot = last_snapshot_ts(store, symbol, first_start)
    if snapshot is None:
        raise ConfigError(f"sim: {symbol} has no depth_diff snapshot at or before "
                          f"{np.datetime64(first_start, 'ns')}: the simulator needs an L2 book")
    ladder = ladder_for_range(store, symbol, snapshot, last_end + 1, tick)
    book = BookReplay(ladder, bands_bps=())
    carry = None
    cursor = {"next": 0}
    for batch in store.iter_batches("depth_diff", symbol, snapshot, last_end + 1, DEPTH_COLUMNS):
        rows = {name: _column(batch, name) for name in DEPTH_COLUMNS}
        if carry is not None:
            rows = {name: np.concatenate([carry[name], rows[name]]) for name in rows}
        if not rows["ts"].size:
            continue
        last = message_starts(rows)[-1]
        carry = {name: values[last:] for name, values in rows.items()}
        head = {name: values[:last] for name, values in rows.items()}
        if head["ts"].size:
            _feed(book, head, windows, ladder, tick, band, cursor)
    if carry is not None:
        _feed(book, carry, windows, ladder, tick, band, cursor)
    for window in windows[cursor["next"]:]:       # windows after the last message
        _start_window(book, window, ladder, band)


def _column(batch, name):
    column = batch.column(name)
    if name == "local_ts":
        return column.fill_null(-1).to_numpy().astype(np.int64) if column.null_count else column.to_numpy()
    return column.to_numpy(zero_copy_only=False)


def _feed(book: BookReplay, rows: dict, windows: list[_Window], ladder, tick: float, band: float,
          cursor: dict) -> None:
    """Feed whole messages in order, opening each window when the book is as of its start and
    feeding a snapshot inside an open window alone (its effect is recorded as level updates)."""
    messages = group_messages(rows, tick, ladder)
    delay = np.where(rows["local_ts"] >= 0, rows["local_ts"] - rows["ts"], -1).astype(np.int64)
    m, n = 0, messages.n_messages
    while m < n:
        while cursor["next"] < len(windows) and windows[cursor["next"]].start < messages.ts[m]:
            _start_window(book, windows[cursor["next"]], ladder, band)
            cursor["next"] += 1
        opened = windows[:cursor["next"]]
        stop = n
        if cursor["next"] < len(windows):
            stop = int(np.searchsorted(messages.ts, windows[cursor["next"]].start, side="right"))
        waiting = [w for w in opened if w.band is None and w.end >= messages.ts[m]]
        if waiting and not _book_valid(book):
            stop = m + 1        # one message at a time until the book is valid again
        inside = _inside_any(messages.ts[m:stop], opened)
        snapshots = np.flatnonzero(messages.is_snapshot[m:stop] & inside)
        alone = snapshots.size > 0 and snapshots[0] == 0
        if snapshots.size:
            stop = m + (1 if alone else int(snapshots[0]))
            inside = inside[:stop - m]
        piece = _slice(messages, m, stop)
        before = _band_levels(book, opened, ladder, band) if alone else None
        samples = book.feed(piece, np.arange(stop - m), np.zeros(stop - m, bool))
        if inside.any():
            r0, r1 = messages.rows.start[m], messages.rows.start[stop]
            _record(book, piece, samples, inside, opened, ladder, delay[r0:r1], before, band)
        if waiting and _book_valid(book):
            for window in waiting:
                _start_window(book, window, ladder, band, at_start=False)
        m = stop


def _inside_any(ts: np.ndarray, opened: list[_Window]) -> np.ndarray:
    inside = np.zeros(ts.size, dtype=bool)
    for window in opened:
        inside |= (ts > window.start) & (ts <= window.end)
    return inside


def _slice(messages: DepthMessages, m0: int, m1: int) -> DepthMessages:
    r = messages.rows
    r0, r1 = r.start[m0], r.start[m1]
    rows = DepthRows(start=r.start[m0:m1 + 1] - r0, is_snapshot=r.is_snapshot[m0:m1],
                     seq_first=r.seq_first[m0:m1], seq_last=r.seq_last[m0:m1], seq_prev=r.seq_prev[m0:m1],
                     side=r.side[r0:r1], level=r.level[r0:r1], qty=r.qty[r0:r1])
    return DepthMessages(ts=messages.ts[m0:m1], rows=rows, ladder=messages.ladder, off_ladder_rows=0)


def _book_valid(book: BookReplay) -> bool:
    from kernels.book_replay import _AWAITING_FIRST, _HAS_BOOK

    return bool(book.state.flags[_HAS_BOOK] == 1 and book.state.flags[_AWAITING_FIRST] == 0)


def _band_range(book: BookReplay, ladder, band: float, around: float):
    low = max(int(ladder.index(np.array([around * (1 - band)]))[0]), 0)
    high_index = ladder.index(np.array([around * (1 + band)]))[0]
    high = ladder.n_levels - 1 if high_index < 0 else int(high_index)
    return low, high


def _band_levels(book: BookReplay, opened: list[_Window], ladder, band: float) -> dict:
    """Non-zero levels within the band of any open window: {(side, ladder index): qty}."""
    out = {}
    for window in opened:
        if window.band is None:
            continue
        low, high = window.band[0] - ladder.base, window.band[1] - ladder.base
        for side, quantities in ((0, book.state.bid_qty), (1, book.state.ask_qty)):
            index = low + np.flatnonzero(quantities[low:high + 1])
            out.update(((side, int(i)), float(quantities[i])) for i in index)
    return out


def _start_window(book: BookReplay, window: _Window, ladder, band: float, at_start: bool = True) -> None:
    """The book at the window's start: its top and the levels within the band. Where the book is
    not valid then (before a snapshot's first diff, after a gap), the window waits: its levels are
    taken when the book becomes valid (``at_start=False``: the top at the start stays unknown, and
    no order rests or fills before the events bring a known top)."""
    best = book.state.best
    if not _book_valid(book) or best[0] < 0 or best[1] < 0:
        return
    if at_start:
        window.bid0 = int(ladder.base + best[0])
        window.ask0 = int(ladder.base + best[1])
    around = 0.5 * (best[0] + best[1] + 2 * ladder.base) * ladder.tick
    low, high = _band_range(book, ladder, band, around)
    sides, prices, qtys = [], [], []
    for side, quantities in ((0, book.state.bid_qty), (1, book.state.ask_qty)):
        index = low + np.flatnonzero(quantities[low:high + 1])
        sides.append(np.full(index.size, side, np.int8))
        prices.append(ladder.base + index.astype(np.int64))
        qtys.append(quantities[index].astype(np.float64))
    window.levels0 = (np.concatenate(sides), np.concatenate(prices), np.concatenate(qtys))
    window.band = (ladder.base + low, ladder.base + high)


def _record(book, piece: DepthMessages, samples, inside, opened: list[_Window], ladder, delay,
            before: dict | None, band: float) -> None:
    """Append the level updates of ``piece``'s applied messages to the windows holding them, and
    for each message the replay skipped a marker (side -1) carrying the top (unknown: -1)."""
    r = piece.rows
    applied = (samples.status == APPLIED) | (samples.status == SNAPSHOT)
    top = {}
    for name, values in (("bid", samples.bid), ("ask", samples.ask)):
        known = samples.valid & np.isfinite(values)
        top[name] = np.where(known, np.round(np.where(known, values, 0.0) / ladder.tick), -1).astype(np.int64)
    if before is not None:          # a snapshot inside a window: the levels it changed
        after = _band_levels(book, opened, ladder, band)
        keys = sorted(k for k in set(before) | set(after) if before.get(k, 0.0) != after.get(k, 0.0))
        side = np.array([k[0] for k in keys], np.int8)
        level = np.array([k[1] for k in keys], np.int64)
        qty = np.array([after.get(k, 0.0) for k in keys], np.float64)
        message = np.zeros(len(keys), np.int64)
        row_delay = np.full(len(keys), delay[0] if delay.size else -1, np.int64)
    else:
        message = np.repeat(np.arange(piece.n_messages), np.diff(r.start))
        side, level, qty, row_delay = r.side, r.level.astype(np.int64), r.qty, delay
    skipped = np.flatnonzero(inside & ~applied)
    price = ladder.base + level
    for window in opened:
        if window.band is None:
            continue
        ts = piece.ts[message]
        pick = (applied[message] & (side >= 0) & (level >= 0) & (ts > window.start) & (ts <= window.end)
                & (price >= window.band[0]) & (price <= window.band[1]))
        marks = skipped[(piece.ts[skipped] > window.start) & (piece.ts[skipped] <= window.end)]
        window.rows.append((np.concatenate([ts[pick], piece.ts[marks]]),
                            np.concatenate([side[pick], np.full(marks.size, -1, np.int8)]),
                            np.concatenate([price[pick], np.full(marks.size, -1, np.int64)]),
                            np.concatenate([qty[pick], np.zeros(marks.size)]),
                            np.concatenate([top["bid"][message[pick]], top["bid"][marks]]),
                            np.concatenate([top["ask"][message[pick]], top["ask"][marks]]),
                            np.concatenate([row_delay[pick], np.full(marks.size, -1, np.int64)])))


# -- trades and assembly ------------------------------------------------------------------------------

def _window_trades(store, symbol: str, window: _Window, tick: float) -> dict:
    table = store.read("trades", symbol, window.start - NS_PER_S, window.end + 1,
                       columns=["ts", "price", "qty", "is_buyer_maker", "kind", "local_ts"])
    table = table.filter(pc.equal(table.column("kind"), TRADE_KIND_MARKET))
    ts = table.column("ts").to_numpy()
    local = table.column("local_ts").fill_null(-1).to_numpy() if table.num_rows else np.empty(0, np.int64)
    return {"ts": ts, "price": np.round(table.column("price").to_numpy() / tick).astype(np.int64),
            "qty": table.column("qty").to_numpy().astype(np.float64),
            "side": np.where(table.column("is_buyer_maker").to_numpy(zero_copy_only=False), 0, 1).astype(np.int8),
            "delay": np.where(local >= 0, local - ts, -1).astype(np.int64)}


def _assemble(windows: list[_Window], trades: list[dict], tick, lot, contract, rate_ref) -> MarketWindows:
    parts = {name: [] for name in ("ts", "kind", "side", "price", "qty", "bid", "ask", "delay", "rate")}
    levels = {"key": [], "ev": [], "qty": []}
    per_window = {name: [] for name in ("ev0", "ev1", "lv0", "lv1", "delay0", "rate0")}
    n_events = n_levels = 0
    for window, trade in zip(windows, trades):
        depth = [np.concatenate(column) if window.rows else np.empty(0) for column in zip(*window.rows)] \
            if window.rows else [np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0, np.int64),
                                 np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64),
                                 np.empty(0, np.int64)]
        d_ts, d_side, d_price, d_qty, d_bid, d_ask, d_delay = depth
        in_window = (trade["ts"] > window.start) & (trade["ts"] <= window.end)
        t = {name: values[in_window] for name, values in trade.items()}
        ts = np.concatenate([t["ts"], d_ts]).astype(np.int64)
        kind = np.concatenate([np.full(t["ts"].size, TRADE, np.int8), np.full(d_ts.size, LEVEL, np.int8)])
        order = np.lexsort((np.arange(ts.size), kind, ts))
        ts, kind = ts[order], kind[order]
        side = np.concatenate([t["side"], d_side.astype(np.int8)])[order]
        price = np.concatenate([t["price"], d_price.astype(np.int64)])[order]
        qty = np.concatenate([t["qty"], d_qty.astype(np.float64)])[order]
        delay = np.concatenate([t["delay"], d_delay.astype(np.int64)])[order]
        top_bid = np.concatenate([np.full(t["ts"].size, -2, np.int64), d_bid.astype(np.int64)])[order]
        top_ask = np.concatenate([np.full(t["ts"].size, -2, np.int64), d_ask.astype(np.int64)])[order]
        bid = _carry_forward(top_bid, window.bid0)
        ask = _carry_forward(top_ask, window.ask0)
        rate, rate0 = _rates(trade["ts"], ts, window.start)
        ev0 = n_events
        parts["ts"].append(ts); parts["kind"].append(kind); parts["side"].append(side)
        parts["price"].append(price); parts["qty"].append(qty); parts["bid"].append(bid)
        parts["ask"].append(ask); parts["delay"].append(delay); parts["rate"].append(rate)
        count = int(ts.size)
        n_events += count
        s0, p0, q0 = window.levels0 if window.levels0 else (np.empty(0, np.int8), np.empty(0, np.int64), np.empty(0))
        level_rows = np.flatnonzero((kind == LEVEL) & (side >= 0))
        keys = np.concatenate([s0.astype(np.int64) * SIDE_STRIDE + p0,
                               side[level_rows].astype(np.int64) * SIDE_STRIDE + price[level_rows]])
        evs = np.concatenate([np.full(s0.size, ev0 - 1, np.int64), ev0 + level_rows])
        qtys = np.concatenate([q0, qty[level_rows]])
        order = np.lexsort((evs, keys))
        levels["key"].append(keys[order]); levels["ev"].append(evs[order]); levels["qty"].append(qtys[order])
        per_window["ev0"].append(ev0); per_window["ev1"].append(n_events)
        per_window["lv0"].append(n_levels); n_levels += keys.size; per_window["lv1"].append(n_levels)
        before = trade["delay"][trade["ts"] <= window.start]
        per_window["delay0"].append(int(before[-1]) if before.size else -1)
        per_window["rate0"].append(rate0)
    cat = {name: (np.concatenate(values) if values else np.empty(0)) for name, values in parts.items()}
    return MarketWindows(
        tick_size=tick, lot_size=lot, contract_size=contract,
        starts=np.array([w.start for w in windows], np.int64), ends=np.array([w.end for w in windows], np.int64),
        ev_ts=cat["ts"].astype(np.int64), ev_kind=cat["kind"].astype(np.int8), ev_side=cat["side"].astype(np.int8),
        ev_price=cat["price"].astype(np.int64), ev_qty=cat["qty"].astype(np.float64),
        ev_bid=cat["bid"].astype(np.int64), ev_ask=cat["ask"].astype(np.int64),
        ev_delay=cat["delay"].astype(np.int64), ev_rate=cat["rate"].astype(np.float64),
        lv_key=_cat(levels["key"], np.int64), lv_ev=_cat(levels["ev"], np.int64),
        lv_qty=_cat(levels["qty"], np.float64),
        w_ev0=np.array(per_window["ev0"], np.int64), w_ev1=np.array(per_window["ev1"], np.int64),
        w_lv0=np.array(per_window["lv0"], np.int64), w_lv1=np.array(per_window["lv1"], np.int64),
        w_bid0=np.array([w.bid0 for w in windows], np.int64), w_ask0=np.array([w.ask0 for w in windows], np.int64),
        w_delay0=np.array(per_window["delay0"], np.int64), w_rate0=np.array(per_window["rate0"], np.float64),
        rate_ref=rate_ref)


def _cat(values, dtype):
    return np.concatenate(values).astype(dtype) if values else np.empty(0, dtype)


def _carry_forward(top: np.ndarray, initial: int) -> np.ndarray:
    """Trades (-2) take the top of the last depth event before them (``initial`` before any)."""
    known = top != -2
    index = np.where(known, np.arange(top.size), -1)
    np.maximum.accumulate(index, out=index)
    return np.where(index >= 0, top[np.maximum(index, 0)], initial).astype(np.int64)


def _rates(trade_ts: np.ndarray, ts: np.ndarray, start: int):
    """Market trades in the second up to each event time, and up to ``start``."""
    times = trade_ts
    upto = np.searchsorted(times, ts, side="right")
    since = np.searchsorted(times, ts - NS_PER_S, side="right")
    at_start = np.searchsorted(times, start, side="right") - np.searchsorted(times, start - NS_PER_S, side="right")
    return (upto - since).astype(np.float64), float(at_start)
