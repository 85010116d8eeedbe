"""Binance public-archive (data.binance.vision) futures CSV files: ``gpu-lpi ingest --format binance-archive``.

Files are named ``{SYMBOL}-{dataType}-{YYYY-MM-DD|YYYY-MM}.{zip|csv|csv.gz}`` (a zip holds one CSV);
the name gives the symbol and the data type. USD-M and COIN-M files are both read; which one a
symbol is comes from its reference data (``is_inverse``), and a ``trades`` header naming
``base_qty`` (COIN-M) or ``quote_qty`` (USD-M) must agree with it.

=====================  ================  =========================================================
data type              table             mapping
=====================  ================  =========================================================
aggTrades              agg_trades        ts=transact_time, trade_id=agg_trade_id, first/last ids
trades                 trades            ts=time, trade_id=id, kind=market
bookTicker             book_ticker       ts=transaction_time, update_id; rows re-sorted (noted)
bookDepth              depth_bands       ts=timestamp (UTC text), pct=percentage, depth, notional
metrics                open_interest     ts=create_time (UTC text), oi=sum_open_interest,
                                         oi_value=sum_open_interest_value; symbol from its column
fundingRate            funding           ts=calc_time, rate=last_funding_rate, mark_price null
liquidationSnapshot    liquidations      ts=time, side, price, qty, avg_price=average_price
=====================  ================  =========================================================

Decisions:

* Notional is USD via :func:`gpu_lpi.reference_data.usd_notional` (COIN-M: contracts x contract size).
* Files are read a block of lines at a time (memory does not grow with the file); the value rules of
  :mod:`gpu_lpi.ingest.value_rules` apply to every row (the archive has zero-quantity aggTrades:
  they are rejected).
* Coverage: a daily file covers its UTC day, a monthly file its month, for the table it fills and
  each symbol it has rows of; rows timestamped outside that period are kept and their count noted.
  A file with its header and no rows (a day without liquidations) covers its period for the symbol
  of its name: it had no events. A file whose rows were all rejected covers nothing.
* Ids (``agg_trade_id``, ``first_trade_id``, ``last_trade_id``, ``id``, ``update_id``) are
  integers >= 0; a row with a negative one is rejected. Timestamps of a column have the unit of the
  column's first value in the file (see :mod:`gpu_lpi.ingest.timestamps`).
* ``liquidationSnapshot``: ``qty`` is the filled quantity ``accumulated_fill_quantity`` (not the
  order's ``original_quantity``), ``notional`` is priced at ``average_price``. The archive lists every
  liquidation twice, so exact duplicate rows (less than a day apart) are collapsed and their count
  noted in the report.
* ``metrics``: exact duplicate rows are collapsed (noted). For COIN-M the file's
  ``sum_open_interest_value`` is in coin, so ``oi_value`` is the USD value of the contracts instead.
* ``bookTicker``: ``event_time`` (the websocket event time) is not kept; ``local_ts`` is null for
  every table, the archive has no receive time. Rows out of time order are re-sorted (a block at
  a time; the store keeps every partition sorted) and their count noted.
* ``fundingRate``: ``funding_interval_hours`` is not kept.
* ``*.CHECKSUM`` files, downloaded beside the zips, are skipped with a note.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpu_lpi.errors import InputError
from gpu_lpi.ingest.csv_tables import (Chunk, CsvRows, CsvSource, Field, FileState, Layout, canonical_table,
                                       open_csv, reference_data_of)
from gpu_lpi.ingest.files import parse_files
from gpu_lpi.ingest.report import IngestContext
from gpu_lpi.reference_data import usd_notional
from gpu_lpi.schema import LIQ_BUY, LIQ_SELL, TRADE_KIND_MARKET
from gpu_lpi.store import NS_PER_DAY, date_to_ns

FORMAT = "binance-archive"
EXPECTED_FILE_NAME = "{SYMBOL}-{dataType}-{YYYY-MM-DD|YYYY-MM}.{zip|csv|csv.gz}"
_FILE_NAME = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-(?P<data_type>[A-Za-z]+)-"
                        r"(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.(?:zip|csv|csv\.gz)$")

AGG_TRADES: Layout = (
    Field("agg_trade_id", "id"), Field("price", "float"), Field("quantity", "float"),
    Field("first_trade_id", "id"), Field("last_trade_id", "id"), Field("transact_time", "epoch"),
    Field("is_buyer_maker", "bool"))
TRADES_USD_M: Layout = (
    Field("id", "id"), Field("price", "float"), Field("qty", "float"), Field("quote_qty", "ignore"),
    Field("time", "epoch"), Field("is_buyer_maker", "bool"))
TRADES_COIN_M: Layout = tuple(Field("base_qty", "ignore") if f.name == "quote_qty" else f for f in TRADES_USD_M)
BOOK_TICKER: Layout = (
    Field("update_id", "id"), Field("best_bid_price", "float"), Field("best_bid_qty", "float"),
    Field("best_ask_price", "float"), Field("best_ask_qty", "float"), Field("transaction_time", "epoch"),
    Field("event_time", "ignore"))
BOOK_DEPTH: Layout = (
    Field("timestamp", "datetime"), Field("percentage", "float"), Field("depth", "float"),
    Field("notional", "float"))
METRICS: Layout = (
    Field("create_time", "datetime"), Field("symbol", "text"),
    Field("sum_open_interest", "float", required=False), Field("sum_open_interest_value", "float", required=False),
    Field("count_toptrader_long_short_ratio", "ignore"), Field("sum_toptrader_long_short_ratio", "ignore"),
    Field("count_long_short_ratio", "ignore"), Field("sum_taker_long_short_vol_ratio", "ignore"))
FUNDING_RATE: Layout = (
    Field("calc_time", "epoch"), Field("funding_interval_hours", "ignore"), Field("last_funding_rate", "float"))
LIQUIDATION_SNAPSHOT: Layout = (
    Field("time", "epoch"), Field("side", "text"), Field("order_type", "text"), Field("time_in_force", "text"),
    Field("original_quantity", "float"), Field("price", "float"), Field("average_price", "float"),
    Field("order_status", "text"), Field("last_fill_quantity", "float"),
    Field("accumulated_fill_quantity", "float"))

Builder = Callable[[CsvRows, str, dict, IngestContext, FileState], Iterator[Chunk]]


@dataclass(frozen=True)
class ArchiveName:
    """What an archive file name says."""

    symbol: str
    data_type: str
    period: str

    def span_ns(self) -> tuple[int, int]:
        """The period the file covers, ``[start, end)`` in ns: its UTC day, or its month."""
        first = date.fromisoformat(self.period if len(self.period) == 10 else f"{self.period}-01")
        if len(self.period) == 10:
            return date_to_ns(first), date_to_ns(first) + NS_PER_DAY
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return date_to_ns(first), date_to_ns(following)


@dataclass(frozen=True)
class DataType:
    """How one archive data type is read: its header for USD-M and COIN-M files, its table builder
    and the tick-store table it fills."""

    usd_m: Layout
    coin_m: Layout
    build: Builder
    table: str

    def layout(self, is_inverse: bool) -> Layout:
        return self.coin_m if is_inverse else self.usd_m


def parse(files: list[Path], ctx: IngestContext, progress: bool = False) -> Iterator[tuple[str, str, pa.Table]]:
    """Yield ``(table, symbol, rows)`` for every Binance archive file in ``files``.

    Raises
    ------
    InputError
        For a file name that is not an archive name, a file of another format, a missing column,
        an unknown symbol or an unreadable file.
    """
    yield from parse_files(files, progress, lambda path: _parse_file(path, ctx))


def parse_file_name(path: Path) -> ArchiveName:
    """The symbol, data type and period of an archive file; :class:`InputError` if it is no archive name."""
    match = _FILE_NAME.match(path.name)
    if match is None or match["data_type"] not in DATA_TYPES:
        raise InputError(path, None, f"not a Binance archive file name; expected {EXPECTED_FILE_NAME} "
                         f"with dataType one of {', '.join(DATA_TYPES)}")
    name = ArchiveName(match["symbol"], match["data_type"], match["period"])
    try:
        name.span_ns()
    except ValueError:
        raise InputError(path, None, f"{name.period!r} in the file name is not a date (YYYY-MM-DD or YYYY-MM)") from None
    return name


def _parse_file(path: Path, ctx: IngestContext) -> Iterator[tuple[str, str, pa.Table]]:
    if path.name.endswith(".CHECKSUM"):
        ctx.report.note(path, None, "checksum file skipped")
        return
    source = open_csv(path, ctx)
    if source is None:
        return
    source.reject_foreign_format(FORMAT)
    name = parse_file_name(path)
    info = ctx.symbol_info(name.symbol, path)
    data_type = DATA_TYPES[name.data_type]
    layout = _checked_layout(source, data_type, name.symbol, info["is_inverse"])
    state = FileState(path)
    start, end = name.span_ns()
    outside = f"{{:,}} rows timestamped outside the file's period {name.period} (kept)"
    for rows in source.read(layout, ctx):
        for chunk in data_type.build(rows, name.symbol, info, ctx, state):
            table, symbol, checked = state.checked(chunk, ctx)
            ts = checked.column("ts")
            state.count(outside, pc.sum(pc.or_(pc.less(ts, start), pc.greater_equal(ts, end))).as_py() or 0)
            yield table, symbol, checked
    state.finish(ctx)
    for table, symbol in state.extent:
        ctx.cover(table, symbol, start, end, path)
    if source.header is not None and not source.has_rows:
        ctx.report.empty_file(path, f"a header only: no {data_type.table} in {name.period} (covered)",
                              header_only=True)
        ctx.cover(data_type.table, name.symbol, start, end, path)


def _checked_layout(source: CsvSource, data_type: DataType, symbol: str, is_inverse: bool) -> Layout:
    """The layout the file must have given the symbol's market; fatal if its header says otherwise."""
    expected, other = data_type.layout(is_inverse), data_type.layout(not is_inverse)
    header = source.header
    if header is not None and other != expected and not _fits(header, expected) and _fits(header, other):
        market, reference = ("COIN-M", "linear (USD-M)") if not is_inverse else ("USD-M", "inverse (COIN-M)")
        raise InputError(source.path, 1, f"this is a {market} header but the reference data says {symbol} is "
                         f"{reference}; correct it with --symbols-file")
    source.check_columns(expected)
    return expected


def _fits(header: list[str], layout: Layout) -> bool:
    return all(f.name in header for f in layout)


def _agg_trades(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    price, qty = rows.numpy("price"), rows.numpy("quantity")
    yield "agg_trades", symbol, canonical_table(
        "agg_trades", rows.num_rows, ts=rows.column("transact_time"), price=price, qty=qty,
        is_buyer_maker=rows.column("is_buyer_maker"), notional=usd_notional(price, qty, info),
        trade_id=rows.column("agg_trade_id"), first_trade_id=rows.column("first_trade_id"),
        last_trade_id=rows.column("last_trade_id"), local_ts=None), rows.line_numbers


def _trades(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    price, qty = rows.numpy("price"), rows.numpy("qty")
    yield "trades", symbol, canonical_table(
        "trades", rows.num_rows, ts=rows.column("time"), price=price, qty=qty,
        is_buyer_maker=rows.column("is_buyer_maker"), notional=usd_notional(price, qty, info),
        kind=TRADE_KIND_MARKET, trade_id=rows.column("id"), local_ts=None), rows.line_numbers


def _book_ticker(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    if not rows.num_rows:
        return
    ts, update_id = rows.numpy("transaction_time"), rows.numpy("update_id")
    latest = state.carry.get("latest_ts", int(ts[0]))     # the latest time of the blocks before
    state.count("{:,} rows out of time order, re-sorted by (transaction_time, update_id)",
                count_out_of_order(np.r_[latest, ts]))
    state.carry["latest_ts"] = max(latest, int(ts.max()))
    order = np.lexsort((update_id, ts))
    table = canonical_table(
        "book_ticker", rows.num_rows, ts=ts, bid=rows.column("best_bid_price"),
        bid_qty=rows.column("best_bid_qty"), ask=rows.column("best_ask_price"),
        ask_qty=rows.column("best_ask_qty"), update_id=update_id, local_ts=None)
    yield "book_ticker", symbol, table.take(pa.array(order)), lambda: rows.line_numbers()[order]


def count_out_of_order(ts: np.ndarray) -> int:
    """How many values are smaller than some value before them (rows a time sort moves back)."""
    if ts.size < 2:
        return 0
    return int(np.count_nonzero(ts[1:] < np.maximum.accumulate(ts)[:-1]))


def _book_depth(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    yield "depth_bands", symbol, canonical_table(
        "depth_bands", rows.num_rows, ts=rows.column("timestamp"), pct=rows.column("percentage"),
        depth=rows.column("depth"), notional=rows.column("notional")), rows.line_numbers


def _metrics(rows: CsvRows, file_symbol: str, file_info: dict, ctx: IngestContext,
             state: FileState) -> Iterator[Chunk]:
    for symbol, part in rows.split_by("symbol"):
        info = reference_data_of(symbol, part, ctx)
        part = state.without_repeats(part, f"{{:,}} exact duplicate {symbol} rows collapsed", "create_time")
        oi = part.column("sum_open_interest")
        oi_value = (usd_notional(None, part.numpy("sum_open_interest"), info) if info["is_inverse"]
                    else part.column("sum_open_interest_value"))
        yield "open_interest", symbol, canonical_table(
            "open_interest", part.num_rows, ts=part.column("create_time"), oi=oi, oi_value=oi_value,
            local_ts=None), part.line_numbers


def _funding_rate(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    yield "funding", symbol, canonical_table(
        "funding", rows.num_rows, ts=rows.column("calc_time"), rate=rows.column("last_funding_rate"),
        mark_price=None, local_ts=None), rows.line_numbers


def _liquidation_snapshot(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext,
                          state: FileState) -> Iterator[Chunk]:
    rows = state.without_repeats(rows, "{:,} exact duplicate rows collapsed (the archive lists every "
                                 "liquidation twice)", "time")
    side_text = pc.utf8_upper(rows.column("side"))
    rows = rows.reject(pc.invert(pc.is_in(side_text, pa.array(["BUY", "SELL"]))).to_numpy(zero_copy_only=False),
                       ctx, "liquidation side is not BUY or SELL", show="side")
    is_sell = pc.equal(pc.utf8_upper(rows.column("side")), "SELL").to_numpy(zero_copy_only=False)
    avg_price, qty = rows.numpy("average_price"), rows.numpy("accumulated_fill_quantity")
    yield "liquidations", symbol, canonical_table(
        "liquidations", rows.num_rows, ts=rows.column("time"), side=np.where(is_sell, LIQ_SELL, LIQ_BUY),
        price=rows.column("price"), qty=qty, notional=usd_notional(avg_price, qty, info),
        avg_price=rows.column("average_price"), local_ts=None), rows.line_numbers


#: Archive data types this format reads, by the name used in file names.
DATA_TYPES: dict[str, DataType] = {
    "aggTrades": DataType(AGG_TRADES, AGG_TRADES, _agg_trades, "agg_trades"),
    "trades": DataType(TRADES_USD_M, TRADES_COIN_M, _trades, "trades"),
    "bookTicker": DataType(BOOK_TICKER, BOOK_TICKER, _book_ticker, "book_ticker"),
    "bookDepth": DataType(BOOK_DEPTH, BOOK_DEPTH, _book_depth, "depth_bands"),
    "metrics": DataType(METRICS, METRICS, _metrics, "open_interest"),
    "fundingRate": DataType(FUNDING_RATE, FUNDING_RATE, _funding_rate, "funding"),
    "liquidationSnapshot": DataType(LIQUIDATION_SNAPSHOT, LIQUIDATION_SNAPSHOT, _liquidation_snapshot,
                                    "liquidations"),
}
