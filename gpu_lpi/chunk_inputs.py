"""One loader for everything a chunk of the feature engine reads (DESIGN.md §4, steps 1–3).

:func:`load_chunk` reads a symbol's store rows for one tick grid, once, into a :class:`ChunkInputs`
record: the book sampled at the ticks and at the RV sub-samples, the market trades, liquidations
and open interest the ticks aggregate, the covered spans of each table, and the partitions read. The
features, robust z-scores and LPI are then pure functions of that record
(:func:`gpu_lpi.features.features_from_inputs`).

What is read, for a grid whose loaded ticks run from ``t_0`` to ``t_n`` (``t_0`` already includes
the history the windows need, see :mod:`gpu_lpi.grid`):

==============  ============================================================================
depth_diff      from the latest snapshot at or before ``t_0 − Δ`` in its covered span (or the
                span's start) to ``t_n``, streamed
book_levels,    ``[t_0 − Δ − book_max_age, t_n]``, streamed (as-of samples)
book_ticker
depth_bands     the same range, read whole (one snapshot a minute)
trades,         ``(t_0 − Δ, t_n]``: market trades only, as the ticks aggregate them; with the
liquidations    ``trades`` book source the trades from ``t_0 − Δ − implied_quote_max_age``
                (the implied quotes at the first sub-sample time need them), read once for
                both. The trades are those of ``trades``, or of ``agg_trades`` where the
                symbol has no ``trades`` (:data:`TRADE_TABLES`)
open_interest   ``[t_0 − Δ_OI − max_age − EWMA support, t_n]``
==============  ============================================================================

Book source: the first table of the fallback chain
:data:`~gpu_lpi.book_at_ticks.BOOK_SOURCES` that the store holds rows of for the symbol
(:func:`book_source_of`), ending in ``trades``: without any book table, quotes are implied by the
market trades (:func:`gpu_lpi.book_at_ticks.implied_book`) and there is no depth. The market trades
come from ``trades``, or from ``agg_trades`` where the symbol has no ``trades``
(:func:`trade_table_of`), for the flow features and the implied quotes alike.

Coverage (:mod:`gpu_lpi.store.coverage`): a tick's book is missing where its time is not covered
by the book source's spans (for ``depth_bands``, by those of ``book_ticker`` too; for ``trades``,
by the trade table's); its trade and liquidation sums are missing unless the whole interval
``(t − Δ, t]`` is covered; an open-interest value is missing where its time is not covered.
Missing is NaN, never zero volume nor a book frozen past a capture's end.

Fingerprint: the record's :attr:`ChunkInputs.fingerprint` hashes what the values depend on: every
partition file in the read ranges (relative path, size, modification time; the trade table is
named by its read), the covered spans in those ranges, the symbol's reference data, the book
source, the parameters (``implied_quote_max_age_s`` among them) and :data:`FEATURES_VERSION`.
:func:`store_material` and :func:`fingerprint_with` recompute it from the recorded ranges without
reading rows, so a run can tell whether a finished chunk is still up to date.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from gpu_lpi.book import REPLAY_COLUMNS, last_snapshot_ts, ladder_for_range, replay_stream
from gpu_lpi.book_at_ticks import (BOOK_SOURCES, TOP_COLUMNS, BookAtTicks, band_depths, choose_source,
                                   implied_book, levels_book, table_batches, ticker_book)
from gpu_lpi.device import read_arrays_on_device
from gpu_lpi.errors import ConfigError
from gpu_lpi.grid import TickGrid
from gpu_lpi.params import FeatureParams
from gpu_lpi.schema import TRADE_KIND_MARKET
from gpu_lpi.store import Spans, TickStore
from gpu_lpi.store.coverage import spans_of

#: Bump when a change to the engine changes feature values: finished chunks are then recomputed.
FEATURES_VERSION = 6
EWMA_SUPPORT_HALFLIVES = 4
#: Tables whose coverage a chunk uses, besides its book source and its trade table.
FLOW_TABLES = ("liquidations", "open_interest")
#: Tables of market trades, best first: Binance aggregate trades (``agg_trades``, market trades only,
#: one row per taker order and price) stand in where a symbol has no ``trades`` (an archive of
#: aggTrades files); their notionals and prices are those of the trades they aggregate.
TRADE_TABLES = ("trades", "agg_trades")


@dataclass(frozen=True)
class TableRead:
    """A half-open range ``[start_ns, end_ns)`` of one table that a chunk reads."""

    table: str
    start_ns: int
    end_ns: int


@dataclass
class ChunkInputs:
    """What one chunk's features are computed from (see the module docstring).

    Attributes
    ----------
    symbol : str
    grid : TickGrid
    params : FeatureParams
    book_source : str
        The table the book comes from (one of :data:`~gpu_lpi.book_at_ticks.BOOK_SOURCES`).
    book : BookAtTicks
        At every loaded tick; NaN where invalid, stale or not covered.
    sub_mids : numpy.ndarray
        Mid at the RV sub-sample times :meth:`TickGrid.subsample_times`.
    trades : dict of arrays
        Market trades of the symbol's trade table (:func:`trade_table_of`) in ``(t_0 − Δ, t_n]``
        (from ``t_0 − Δ − implied_quote_max_age`` with the ``trades`` book source): ``ts``,
        ``price``, ``notional``, ``is_buyer_maker`` (owned by the ``xp`` the chunk was loaded for).
    trades_covered : numpy.ndarray of bool
        Per tick, whether its interval ``(t − Δ, t]`` is covered by the trades' spans.
    liquidations : dict of numpy.ndarray or None
        ``ts``, ``side``, ``notional`` in ``(t_0 − Δ, t_n]``; None where the store has no
        liquidation feed for the symbol.
    liquidations_covered : numpy.ndarray of bool
    open_interest : dict of numpy.ndarray or None
        ``ts``, ``oi`` of the covered updates; None without an OI feed.
    coverage : dict of Spans
        Covered spans of each table read, within its read range.
    reads : list of TableRead
    fingerprint : str
    """

    symbol: str
    grid: TickGrid
    params: FeatureParams
    book_source: str
    book: BookAtTicks
    sub_mids: np.ndarray
    trades: dict
    trades_covered: np.ndarray
    liquidations: dict | None
    liquidations_covered: np.ndarray
    open_interest: dict | None
    coverage: dict[str, Spans]
    reads: list[TableRead]
    fingerprint: str
    #: :func:`store_material` of the reads, as read (for the fingerprints of other parameter sets).
    material: dict

    def fingerprint_for(self, params: FeatureParams) -> str:
        """The fingerprint these inputs would have been read under with ``params`` (which must
        differ from :attr:`params` in signal parameters only: they read the same rows)."""
        return fingerprint_with(self.material, params)

    def covered_ticks(self) -> np.ndarray:
        """Per loaded tick, whether any table read covers its time (ticks without are not output)."""
        times = self.grid.times
        covered = np.zeros(times.size, dtype=bool)
        for spans in self.coverage.values():
            covered |= spans.contains(times)
        return covered


def book_source_of(store: TickStore, symbol: str) -> str:
    """The best book source the store holds for ``symbol`` (see :mod:`gpu_lpi.book_at_ticks`);
    ``trades`` stands for any of :data:`TRADE_TABLES`."""
    held = [table for table in BOOK_SOURCES if table != "trades" and store.dates(table, symbol)]
    if any(store.dates(table, symbol) for table in TRADE_TABLES):
        held.append("trades")
    source = choose_source(held)
    if source is None:
        raise ConfigError(f"data.symbols: {symbol} has no book data in {store.root} "
                          f"(expected one of the tables {', '.join(BOOK_SOURCES)} or agg_trades)")
    return source


def trade_table_of(store: TickStore, symbol: str) -> str:
    """The table of market trades a chunk reads for ``symbol``: the first of :data:`TRADE_TABLES`
    with rows (``trades`` where there are none)."""
    return next((table for table in TRADE_TABLES if store.dates(table, symbol)), "trades")


def tables_read(book_source: str, trade_table: str = "trades") -> tuple[str, ...]:
    """The tables a chunk reads with this book source and trade table (book tickers, where there
    are any, give the RV sub-sample mids whatever the source; the ``trades`` source is the trade
    table)."""
    book = trade_table if book_source == "trades" else book_source
    return tuple(dict.fromkeys((book, "book_ticker", trade_table) + FLOW_TABLES))


def covered_spans(store: TickStore, symbol: str, book_source: str) -> Spans:
    """The times some table a chunk reads is covered for ``symbol``: the ticks that get rows."""
    spans = [store.coverage(symbol, table)
             for table in tables_read(book_source, trade_table_of(store, symbol))]
    return Spans.union(np.concatenate([s.start for s in spans]), np.concatenate([s.end for s in spans]))


def _max_age_ns(params: FeatureParams) -> int:
    return int(params.book_max_age_s * 1e9)


def _implied_age_ns(params: FeatureParams) -> int:
    return int(params.implied_quote_max_age_s * 1e9)


def _oi_history_ns(params: FeatureParams) -> int:
    return int((params.oi_lag_s + params.oi_max_age_s
                + EWMA_SUPPORT_HALFLIVES * params.oi_ewma_halflife_s) * 1e9)


def plan_reads(store: TickStore, symbol: str, grid: TickGrid, params: FeatureParams,
               book_source: str) -> list[TableRead]:
    """The ranges a chunk reads (the ``depth_diff`` one starts at the snapshot the replay needs)."""
    first, end = grid.start_ns - grid.tick_ns, grid.end_ns + 1
    book_start = first - _max_age_ns(params)
    reads = []
    for table in tables_read(book_source, trade_table_of(store, symbol)):
        start = book_start
        if table == "depth_diff":
            start = _replay_start(store, symbol, first, book_start)
        elif table in TRADE_TABLES and book_source == "trades":
            start = first - _implied_age_ns(params)     # the implied quotes at `first` look back
        elif table in TRADE_TABLES or table == "liquidations":
            start = first + 1
        elif table == "open_interest":
            start = grid.start_ns - _oi_history_ns(params)
        reads.append(TableRead(table, int(start), int(end)))
    return reads


def _replay_start(store: TickStore, symbol: str, first: int, default: int) -> int:
    """Where the L2 replay for times from ``first`` on starts: the latest snapshot at or before
    ``first`` within the covered span that holds ``first`` (or, if ``first`` is not covered, the
    start of the next span). A new span is a new capture, whose diffs never continue an earlier
    book, so the replay never reads further back than its span."""
    spans = store.coverage(symbol, "depth_diff")
    at = int(np.searchsorted(spans.end, first, side="right"))    # first span ending after `first`
    if at == len(spans):
        return default
    span_start = int(spans.start[at])
    if span_start > first:
        return span_start
    snapshot = last_snapshot_ts(store, symbol, first, not_before=span_start)
    return snapshot if snapshot is not None else span_start


def store_material(store: TickStore, symbol: str, reads: list[TableRead], book_source: str) -> dict:
    """What of the store a chunk's fingerprint covers: everything but the parameters."""
    coverage = store.coverage_table()
    reference = store.symbols().filter(pc.equal(store.symbols().column("symbol"), symbol)).to_pylist()
    return {
        "version": FEATURES_VERSION, "book_source": book_source, "symbol": reference,
        "reads": [{"table": read.table, "range": [read.start_ns, read.end_ns],
                   "files": store.file_stamps(store.partition_paths(read.table, symbol, read.start_ns,
                                                                    read.end_ns)),
                   "covered": _spans(coverage, symbol, read).to_list()} for read in reads],
    }


def fingerprint_with(material: dict, params: FeatureParams) -> str:
    """Hash of everything a chunk's values depend on (see the module docstring): what it read of
    the store (``material``, :func:`store_material`) and ``params``; reads no rows."""
    return hashlib.sha256(json.dumps({**material, "params": params.to_dict()}, sort_keys=True,
                                     default=str).encode()).hexdigest()


def _spans(coverage, symbol: str, read: TableRead) -> Spans:
    return spans_of(coverage, symbol, read.table).clip(read.start_ns, read.end_ns)


def load_chunk(store: TickStore, symbol: str, grid: TickGrid, params: FeatureParams,
               book_source: str | None = None, xp=np, target: str | None = None) -> ChunkInputs:
    """Read one chunk's inputs (see the module docstring), as one consistent version of the store.

    ``xp`` (``numpy`` or ``cupy``) owns the trade arrays, the largest the features aggregate: on a
    GPU with cudf their Parquet is decoded on the device (:func:`gpu_lpi.device.read_arrays_on_device`).
    ``target`` (``"cpu"`` or ``"gpu"``; default: the device of ``xp``) is where the quotes implied
    by trades are computed (``trades`` book source).
    """
    source = book_source or book_source_of(store, symbol)
    target = target or ("cpu" if xp is np else "gpu")
    return store.read_consistent(lambda: _load(store, symbol, grid, params, source, xp, target))


def _load(store: TickStore, symbol: str, grid: TickGrid, params: FeatureParams, source: str,
          xp, target: str) -> ChunkInputs:
    reads = plan_reads(store, symbol, grid, params, source)
    material = store_material(store, symbol, reads, source)
    fingerprint = fingerprint_with(material, params)
    by_table = {read.table: read for read in reads}
    coverage = store.coverage_table()
    covered = {read.table: _spans(coverage, symbol, read) for read in reads}
    times = grid.times
    sub_times = grid.subsample_times(params.rv_subsamples)
    trade_read = next(read for read in reads if read.table in TRADE_TABLES)
    trades = _market_trades(store, symbol, trade_read, xp)
    if source == "trades":
        book = implied_book(trades, sub_times, _implied_age_ns(params), xp, target,
                            _span_starts(covered[trade_read.table], sub_times))
        sub_mids = book.mid()
        book = book.at(slice(params.rv_subsamples, None, params.rv_subsamples))  # the ticks
    else:
        book, sub_mids = _book(store, symbol, params, source, by_table, times, sub_times)
    book_spans = covered[trade_read.table if source == "trades" else source]
    if source == "depth_bands":
        book_spans = book_spans.intersect(covered["book_ticker"])
    book = book.where(book_spans.contains(times))
    mid_spans = covered["book_ticker"] if store.dates("book_ticker", symbol) else book_spans
    sub_mids = np.where(mid_spans.contains(sub_times), sub_mids, np.nan)

    interval_low = times - grid.tick_ns
    liquidations = None
    if _has_feed(store, symbol, "liquidations", covered):
        read = by_table["liquidations"]
        liquidations = store.read_arrays("liquidations", symbol, read.start_ns, read.end_ns,
                                         ("ts", "side", "notional"))
    open_interest = None
    if _has_feed(store, symbol, "open_interest", covered):
        read = by_table["open_interest"]
        rows = store.read_arrays("open_interest", symbol, read.start_ns, read.end_ns, ("ts", "oi"))
        keep = covered["open_interest"].contains(rows["ts"])
        open_interest = {"ts": rows["ts"][keep], "oi": rows["oi"][keep].astype(np.float64)}
    return ChunkInputs(
        symbol=symbol, grid=grid, params=params, book_source=source, book=book, sub_mids=sub_mids,
        trades=trades, trades_covered=covered[trade_read.table].contains_intervals(interval_low, times),
        liquidations=liquidations,
        liquidations_covered=covered["liquidations"].contains_intervals(interval_low, times),
        open_interest=open_interest, coverage=covered, reads=reads, fingerprint=fingerprint,
        material=material)


def _span_starts(spans: Spans, times: np.ndarray) -> np.ndarray:
    """Per time, the start of the covered span holding it (after the time where none does)."""
    at = np.minimum(np.searchsorted(spans.end, times, side="right"), max(len(spans) - 1, 0))
    starts = spans.start[at] if len(spans) else np.full(times.size, 0, dtype=np.int64)
    return np.where(spans.contains(times), starts, times + 1)


def _has_feed(store: TickStore, symbol: str, table: str, covered: dict[str, Spans]) -> bool:
    """Whether the symbol has that feed here: covered in the read range, or with rows somewhere.

    A covered span without rows is a feed that had no events (zeros); no feed at all is NaN.
    """
    return bool(len(covered[table])) or bool(store.dates(table, symbol))


def _market_trades(store: TickStore, symbol: str, read: TableRead, xp) -> dict:
    """The market trades of a trade table's read range (aggregate trades are market trades only)."""
    columns = ("ts", "price", "notional", "is_buyer_maker")
    if read.table == "agg_trades":
        return read_arrays_on_device(store, "agg_trades", symbol, read.start_ns, read.end_ns, columns, xp)
    rows = read_arrays_on_device(store, "trades", symbol, read.start_ns, read.end_ns, (*columns, "kind"), xp)
    market = rows.pop("kind") == TRADE_KIND_MARKET
    return {name: xp.ascontiguousarray(values[market]) for name, values in rows.items()}


def _book(store, symbol, params, source, by_table, times, sub_times) -> tuple[BookAtTicks, np.ndarray]:
    """The book at the ticks and the mids at the sub-sample times (before coverage)."""
    max_age = _max_age_ns(params)
    has_ticker = bool(store.dates("book_ticker", symbol))

    def batches(table, columns):
        read = by_table[table]
        return table_batches(store.iter_batches(table, symbol, read.start_ns, read.end_ns, columns),
                             columns)

    def ticker(at):
        return ticker_book(batches("book_ticker", ("ts", *TOP_COLUMNS)), at, max_age)

    sub_mids = ticker(sub_times).mid() if has_ticker else None
    if source == "depth_diff":
        read = by_table["depth_diff"]
        ladder = ladder_for_range(store, symbol, read.start_ns, read.end_ns,
                                  store.symbol_info(symbol)["tick_size"])
        sample_times = times if has_ticker else sub_times
        depth_at = None
        if not has_ticker:   # the ticks are every n-th sub-sample time
            depth_at = np.zeros(sub_times.size, dtype=bool)
            depth_at[params.rv_subsamples::params.rv_subsamples] = True
        samples = replay_stream(store.iter_batches("depth_diff", symbol, read.start_ns, read.end_ns,
                                                   REPLAY_COLUMNS),
                                ladder, sample_times, (params.eta_bps,), depth_at, max_age)
        book = BookAtTicks(samples.bid, samples.ask, samples.bid_qty, samples.ask_qty,
                           samples.depth_bid[0], samples.depth_ask[0]).where(samples.valid)
        if not has_ticker:
            sub_mids = book.mid()
            book = book.at(depth_at)
        return book, sub_mids
    if source == "book_levels":
        names = ("ts", "level", *TOP_COLUMNS)
        book = levels_book(batches("book_levels", names), times, params.eta_bps, max_age)
        if sub_mids is None:
            sub_mids = levels_book(batches("book_levels", names), sub_times, params.eta_bps, max_age).mid()
        return book, sub_mids
    book = ticker(times)
    if source == "depth_bands":
        read = by_table["depth_bands"]
        bands = store.read_arrays("depth_bands", symbol, read.start_ns, read.end_ns, ("ts", "pct", "depth"))
        book.depth_bid, book.depth_ask = band_depths(bands, times, max_age)
        book = book.where(~np.isnan(book.depth_bid) & ~np.isnan(book.depth_ask))
    return book, sub_mids


