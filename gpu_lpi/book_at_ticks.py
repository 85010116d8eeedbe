"""Top of book and depth within η at tick times, with the fallback chain of DESIGN.md §4.2.

Sources, best first (the first table the store holds for the symbol is used, for every chunk):

``depth_diff``
    L2 replay (:mod:`gpu_lpi.book`) from the latest snapshot at or before the first time (searched
    back at most :data:`SNAPSHOT_SEARCH_DAYS` days); depth = band sums on the replayed ladder.
``book_levels``
    Top-N snapshots: top = level 0; depth = levels of the latest snapshot within η of level 0.
``depth_bands``
    Binance ``bookDepth`` percentage bands: depth = the narrowest band on each side (wider than η;
    LDR only uses D/mean D, in which the band's width cancels); top of book from ``book_ticker``.
``book_ticker``
    Depth = top-of-book quantity.

A sample is invalid (all NaN) where the book is invalid (replay gap, before the first snapshot) or
its latest update is older than ``params.book_max_age_s`` (a capture gap): values are never carried
over a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from gpu_lpi.book import group_messages, sample_at_times
from gpu_lpi.errors import ConfigError
from gpu_lpi.grid import as_of
from gpu_lpi.params import FeatureParams
from gpu_lpi.store import TickStore, date_to_ns, day_of, day_to_date

BOOK_SOURCES = ("depth_diff", "book_levels", "depth_bands", "book_ticker")
SNAPSHOT_SEARCH_DAYS = 31


@dataclass
class BookAtTicks:
    """Book samples at chosen times (float64 arrays, NaN where invalid)."""

    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    depth_bid: np.ndarray
    depth_ask: np.ndarray

    def mid(self) -> np.ndarray:
        return 0.5 * (self.bid + self.ask)


def book_source(store: TickStore, symbol: str) -> str:
    """The best book source the store holds for ``symbol``."""
    for table in BOOK_SOURCES:
        if store.dates(table, symbol):
            return table
    raise ConfigError(f"data.symbols: {symbol} has no book data in {store.root} "
                      f"(expected one of the tables {', '.join(BOOK_SOURCES)})")


def sample_book(store: TickStore, symbol: str, source: str, times: np.ndarray,
                params: FeatureParams) -> BookAtTicks:
    """Top of book and depth within ``params.eta_bps`` as of each time, from ``source``."""
    if source == "depth_diff":
        return _replayed(store, symbol, times, params, with_depth=True)
    if source == "book_levels":
        return _top_n(store, symbol, times, params)
    top = _ticker(store, symbol, times, params)
    if source == "depth_bands":
        top.depth_bid, top.depth_ask = _bands(store, symbol, times, params)
        valid = ~np.isnan(top.depth_bid) & ~np.isnan(top.depth_ask)
        return _masked(top, valid)
    return top


def sample_mids(store: TickStore, symbol: str, source: str, times: np.ndarray,
                params: FeatureParams) -> np.ndarray:
    """Mid prices as of each time (for RV sub-samples): book_ticker where the store has it."""
    if store.dates("book_ticker", symbol):
        return _ticker(store, symbol, times, params).mid()
    if source == "depth_diff":
        return _replayed(store, symbol, times, params, with_depth=False).mid()
    return _top_n(store, symbol, times, params).mid()


# -- sources -----------------------------------------------------------------------------------------
def _max_age_ns(params: FeatureParams) -> int:
    return int(params.book_max_age_s * 1e9)


def _fresh(row_index: np.ndarray, row_ts: np.ndarray, times: np.ndarray, params: FeatureParams):
    """Times whose as-of row exists and is at most ``book_max_age_s`` old."""
    if row_ts.size == 0:
        return np.zeros(times.size, dtype=bool)
    last = row_ts[np.maximum(row_index, 0)]
    return (row_index >= 0) & (times - last <= _max_age_ns(params))


def _masked(book: BookAtTicks, valid: np.ndarray) -> BookAtTicks:
    return BookAtTicks(*(np.where(valid, column, np.nan) for column in
                         (book.bid, book.ask, book.bid_qty, book.ask_qty, book.depth_bid,
                          book.depth_ask)))


def _as_of_rows(store, symbol, table, columns, times, params):
    rows = store.read_arrays(table, symbol, int(times[0]) - _max_age_ns(params), int(times[-1]) + 1,
                             ["ts", *columns])
    index = as_of(rows["ts"], times)
    valid = _fresh(index, rows["ts"], times, params)
    safe = np.maximum(index, 0)
    return {name: (np.where(valid, rows[name][safe], np.nan) if rows["ts"].size
                   else np.full(times.size, np.nan)) for name in columns}


def _ticker(store, symbol, times, params) -> BookAtTicks:
    top = _as_of_rows(store, symbol, "book_ticker", ("bid", "ask", "bid_qty", "ask_qty"), times,
                         params)
    return BookAtTicks(top["bid"], top["ask"], top["bid_qty"], top["ask_qty"], top["bid_qty"],
                       top["ask_qty"])


def _last_snapshot_ts(store: TickStore, symbol: str, at_or_before: int) -> int | None:
    day = day_to_date(int(day_of(np.int64(at_or_before))))
    for back in range(SNAPSHOT_SEARCH_DAYS + 1):
        current = day - timedelta(days=back)
        rows = store.read_arrays("depth_diff", symbol, date_to_ns(current), at_or_before + 1,
                                 ["ts", "is_snapshot"])
        snapshots = rows["ts"][rows["is_snapshot"]]
        if snapshots.size:
            return int(snapshots.max())
    return None


def _replayed(store, symbol, times, params, with_depth: bool) -> BookAtTicks:
    snapshot = _last_snapshot_ts(store, symbol, int(times[0]))
    load_from = snapshot if snapshot is not None else int(times[0]) - _max_age_ns(params)
    rows = store.read_arrays("depth_diff", symbol, load_from, int(times[-1]) + 1)
    messages = group_messages(rows, store.symbol_info(symbol)["tick_size"])
    samples = sample_at_times(messages, times, (params.eta_bps,) if with_depth else (),
                              max_age_ns=_max_age_ns(params))
    depth_bid = samples.depth_bid[0] if with_depth else samples.bid_qty
    depth_ask = samples.depth_ask[0] if with_depth else samples.ask_qty
    book = BookAtTicks(samples.bid, samples.ask, samples.bid_qty, samples.ask_qty, depth_bid,
                       depth_ask)
    return _masked(book, samples.valid)


def _top_n(store, symbol, times, params) -> BookAtTicks:
    rows = store.read_arrays("book_levels", symbol, int(times[0]) - _max_age_ns(params),
                             int(times[-1]) + 1)
    ts = rows["ts"]
    if ts.size == 0:
        return _masked(BookAtTicks(*(np.full(times.size, np.nan) for _ in range(6))),
                       np.zeros(times.size, dtype=bool))
    first = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
    snapshot_of_row = np.cumsum(np.r_[True, ts[1:] != ts[:-1]]) - 1
    band = params.eta_bps * 1e-4
    best_bid = rows["bid"][first][snapshot_of_row]
    best_ask = rows["ask"][first][snapshot_of_row]
    in_bid_band = rows["bid"] >= best_bid * (1.0 - band)
    in_ask_band = rows["ask"] <= best_ask * (1.0 + band)
    depth_bid = np.add.reduceat(np.where(in_bid_band, rows["bid_qty"], 0.0), first)
    depth_ask = np.add.reduceat(np.where(in_ask_band, rows["ask_qty"], 0.0), first)
    snapshot = as_of(ts[first], times)
    safe = np.maximum(snapshot, 0)
    book = BookAtTicks(rows["bid"][first][safe], rows["ask"][first][safe],
                       rows["bid_qty"][first][safe], rows["ask_qty"][first][safe],
                       depth_bid[safe], depth_ask[safe])
    return _masked(book, _fresh(snapshot, ts[first], times, params))


def _bands(store, symbol, times, params) -> tuple[np.ndarray, np.ndarray]:
    rows = store.read_arrays("depth_bands", symbol, int(times[0]) - _max_age_ns(params),
                             int(times[-1]) + 1)
    sides = []
    for on_side in (rows["pct"] < 0, rows["pct"] > 0):
        if not on_side.any():
            sides.append(np.full(times.size, np.nan))
            continue
        narrowest = np.abs(rows["pct"][on_side]).min()
        pick = on_side & (np.abs(rows["pct"]) == narrowest)
        index = as_of(rows["ts"][pick], times)
        fresh = _fresh(index, rows["ts"][pick], times, params)
        sides.append(np.where(fresh, rows["depth"][pick][np.maximum(index, 0)], np.nan))
    return sides[0], sides[1]
