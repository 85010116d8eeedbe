"""Tardis.dev downloadable CSV datasets: ``gpu-lpi ingest --format tardis``.

Files are gzip CSVs with a header line, timestamps in µs (the unit is still detected by digit count,
so ns files such as some test fixtures read right too); ``ts`` is ``timestamp``, ``local_ts`` is
``local_timestamp``. The symbol comes from the ``symbol`` column (grouped files such as
``PERPETUALS`` liquidations mix symbols; rows are yielded per symbol). The data type comes from the
default file name ``{exchange}_{data_type}_{YYYY-MM-DD}_{SYMBOL}.csv.gz`` or, for other names, from the
header (``trades`` and ``liquidations`` share a header: those need the default name or a folder
named after the data type, as in the download URL layout).

====================  ==============  ==========================================================
data type             table           mapping
====================  ==============  ==========================================================
trades                trades          is_buyer_maker = side == "sell", trade_id = id (-1 if empty
                                      or not an integer), kind market
incremental_book_L2   depth_diff      side bid/ask, qty = amount (0 deletes), is_snapshot;
                                      seq_first/seq_last/seq_prev = -1 (Tardis has no ids)
book_snapshot_{N}     book_levels     one row per level per snapshot; empty cells null
quotes, book_ticker   book_ticker     ask_amount, ask_price, bid_price, bid_amount; update_id -1
derivative_ticker     funding         one row per CSV row: rate = funding_rate, mark_price
                      open_interest   see below
liquidations          liquidations    side "sell" (a long liquidated) = LIQ_SELL, qty = amount,
                                      avg_price null
====================  ==============  ==========================================================

Decisions:

* Files are read a block of lines at a time (memory does not grow with the file: an
  ``incremental_book_L2`` day is gigabytes); what a file's rules need from earlier blocks is carried
  over, so the rows, rejections and notes are those of a whole-file read. The value rules of
  :mod:`gpu_lpi.ingest.value_rules` apply to every row.
* Coverage: a file with the default name covers its UTC day, for the tables it fills and each symbol
  it has rows of; a file named otherwise covers its rows' first to last ``timestamp``. An empty file
  covers nothing (Tardis serves one for a day it collected no data), nor does a file with a header only.
* A file whose default name gives a symbol of the reference data holds that symbol only: a row of
  another symbol is rejected ("row of ETHUSDT in a file of BTCUSDT"), so that a stray row cannot give
  its symbol a day of coverage. Grouped files (``PERPETUALS``, ``FUTURES``, ...: names that are no
  symbol of the reference data) hold and cover every symbol of their rows.
* Timestamps of a column have the unit of the column's first value in the file (see
  :mod:`gpu_lpi.ingest.timestamps`).
* ``derivative_ticker`` emits a row whenever *any* of its fields changes, so most rows repeat the last
  open interest. ``open_interest`` gets only the rows whose ``open_interest`` is present and differs
  from the previous present value of that symbol in the same file (the first present value of each
  file is always kept): the stored series then changes exactly when Tardis saw it change.
  ``oi_value`` is the USD value (:func:`gpu_lpi.reference_data.usd_notional` at ``mark_price``; null
  where a linear contract has no mark price yet).
* ``incremental_book_L2`` rows that come before the first snapshot of a symbol in a file are kept
  (the book replay skips them); their count is noted in the report.
* Trades whose side is neither ``buy`` nor ``sell`` (``unknown`` on some venues) are rejected, since
  the aggressor side is what the strategy measures. Non-integer trade ids (e.g. BitMEX UUIDs) are
  stored as -1 ("no id"), with a note; a negative integer id is rejected.
* An empty gzip file (Tardis serves one for a day without data) is noted, not an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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
from gpu_lpi.schema import LIQ_BUY, LIQ_SELL, NO_ID, SIDE_ASK, SIDE_BID, TRADE_KIND_MARKET
from gpu_lpi.store import NS_PER_DAY, date_to_ns

FORMAT = "tardis"
DEFAULT_FILE_NAME = "{exchange}_{data_type}_{YYYY-MM-DD}_{SYMBOL}.csv.gz"
_FILE_NAME = re.compile(r"^(?P<exchange>[a-z0-9-]+)_(?P<data_type>[A-Za-z0-9_]+?)_"
                        r"(?P<date>\d{4}-\d{2}-\d{2})_(?P<symbol>.+)\.csv(?:\.gz)?$")
_BOOK_SNAPSHOT = re.compile(r"^book_snapshot_(?P<levels>\d+)$")
_SNAPSHOT_ASK_PRICE = re.compile(r"^asks\[(\d+)\]\.price$")
_INTEGER_ID = r"^\d+$"
_NEGATIVE_ID = r"^-\d+$"

_COMMON: Layout = (Field("exchange", "ignore"), Field("symbol", "text"), Field("timestamp", "epoch"),
                   Field("local_timestamp", "epoch"))
TRADES: Layout = _COMMON + (Field("id", "text", required=False), Field("side", "text"),
                            Field("price", "float"), Field("amount", "float"))
LIQUIDATIONS: Layout = _COMMON + (Field("id", "ignore"), Field("side", "text"), Field("price", "float"),
                                  Field("amount", "float"))
INCREMENTAL_BOOK_L2: Layout = _COMMON + (Field("is_snapshot", "bool"), Field("side", "text"),
                                         Field("price", "float"), Field("amount", "float"))
QUOTES: Layout = _COMMON + tuple(Field(name, "float", required=False)
                                 for name in ("ask_amount", "ask_price", "bid_price", "bid_amount"))
DERIVATIVE_TICKER: Layout = _COMMON + (
    Field("funding_timestamp", "ignore"), Field("funding_rate", "float", required=False),
    Field("predicted_funding_rate", "ignore"), Field("open_interest", "float", required=False),
    Field("last_price", "ignore"), Field("index_price", "ignore"), Field("mark_price", "float", required=False))

Builder = Callable[[CsvRows, str, dict, IngestContext, FileState], Iterator[Chunk]]


def book_snapshot_layout(levels: int) -> Layout:
    """The header of ``book_snapshot_{levels}``: per level ask price, ask amount, bid price, bid amount."""
    return _COMMON + tuple(Field(f"{side}[{i}].{value}", "float", required=False)
                           for i in range(levels) for side in ("asks", "bids") for value in ("price", "amount"))


def parse(files: list[Path], ctx: IngestContext, progress: bool = False) -> Iterator[tuple[str, str, pa.Table]]:
    """Yield ``(table, symbol, rows)`` for every Tardis CSV file in ``files``.

    Raises
    ------
    InputError
        For a file of another format, an unknown data type, a missing column, an unknown symbol or an
        unreadable (e.g. truncated) file.
    """
    yield from parse_files(files, progress, lambda path: _parse_file(path, ctx))


def _parse_file(path: Path, ctx: IngestContext) -> Iterator[tuple[str, str, pa.Table]]:
    source = open_csv(path, ctx)
    if source is None:
        return
    source.reject_foreign_format(FORMAT)
    data_type = data_type_of(source)
    layout = layout_of(data_type)
    source.check_columns(layout)
    build = _BUILDERS["book_snapshot" if _BOOK_SNAPSHOT.match(data_type) else data_type]
    day = file_day_ns(path)
    own_symbol = file_symbol(path, ctx)
    state = FileState(path)
    for rows in source.read(layout, ctx):
        for symbol, part in rows.split_by("symbol"):
            if own_symbol is not None and symbol != own_symbol:
                part.reject(np.ones(part.num_rows, dtype=bool), ctx, f"row of {symbol} in a file of {own_symbol}")
                continue
            for chunk in build(part, symbol, reference_data_of(symbol, part, ctx), ctx, state):
                yield state.checked(chunk, ctx)
    state.finish(ctx)
    if not source.has_rows:
        ctx.report.empty_file(path, "a header only: no rows (covers nothing)", header_only=True)
    for (table, symbol), (first, last) in state.extent.items():
        if day is not None:
            ctx.cover(table, symbol, day, day + NS_PER_DAY, path)
        else:
            ctx.cover(table, symbol, first, last + 1, path)


def file_day_ns(path: Path) -> int | None:
    """Start (ns) of the UTC day in a default file name, ``None`` for other names.

    Raises
    ------
    InputError
        If the date in a default file name is not a calendar date.
    """
    match = _FILE_NAME.match(path.name)
    if match is None:
        return None
    try:
        return date_to_ns(date.fromisoformat(match["date"]))
    except ValueError:
        raise InputError(path, None, f"{match['date']!r} in the file name is not a date (YYYY-MM-DD)") from None


def file_symbol(path: Path, ctx: IngestContext) -> str | None:
    """The symbol a default file name gives if it is one of the reference data, ``None`` for other
    names and grouped files (``PERPETUALS``, ...)."""
    match = _FILE_NAME.match(path.name)
    return match["symbol"] if match is not None and match["symbol"] in ctx.registry else None


def data_type_of(source: CsvSource) -> str:
    """The Tardis data type of a file: from its default file name, else from its header.

    Raises
    ------
    InputError
        If the name names an unsupported data type, or the header fits no data type or several.
    """
    match = _FILE_NAME.match(source.path.name)
    if match is not None:
        data_type = _ALIASES.get(match["data_type"], match["data_type"])
        if data_type not in _LAYOUTS and not _BOOK_SNAPSHOT.match(data_type):
            raise InputError(source.path, None, f"unsupported Tardis data type {data_type!r}; supported: "
                             f"{', '.join(_LAYOUTS)}, book_snapshot_N")
        return data_type
    candidates = _data_types_with_header(source.header or [])
    if len(candidates) > 1:
        candidates = [name for name in candidates if name in source.path.parts] or candidates
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise InputError(source.path, None, f"the header fits several data types ({', '.join(candidates)}); "
                         f"keep Tardis's file name {DEFAULT_FILE_NAME} so the data type is known")
    raise InputError(source.path, 1, f"not a header of a supported Tardis data type ({', '.join(_LAYOUTS)}, "
                     f"book_snapshot_N), and the file name is not {DEFAULT_FILE_NAME}")


def _data_types_with_header(header: list[str]) -> list[str]:
    names = [name for name, layout in _LAYOUTS.items() if [f.name for f in layout] == header]
    levels = sum(bool(_SNAPSHOT_ASK_PRICE.match(column)) for column in header)
    if levels and [f.name for f in book_snapshot_layout(levels)] == header:
        names.append(f"book_snapshot_{levels}")
    return names


def layout_of(data_type: str) -> Layout:
    """The expected header of a (supported) Tardis data type."""
    snapshot = _BOOK_SNAPSHOT.match(data_type)
    return book_snapshot_layout(int(snapshot["levels"])) if snapshot else _LAYOUTS[data_type]


def _times(rows: CsvRows) -> dict:
    """The ``ts`` and ``local_ts`` columns of every Tardis table."""
    return {"ts": rows.column("timestamp"), "local_ts": rows.column("local_timestamp")}


def _side_codes(rows: CsvRows, ctx: IngestContext, codes: dict[str, int], what: str) -> tuple[CsvRows, np.ndarray]:
    """Rows whose ``side`` is one of ``codes`` (the others rejected), and their side codes."""
    names = list(codes)
    known = pc.is_in(rows.column("side"), pa.array(names)).to_numpy(zero_copy_only=False)
    rows = rows.reject(~known, ctx, f"{what} side is not {' or '.join(names)}", show="side")
    index = pc.index_in(rows.column("side"), pa.array(names)).to_numpy(zero_copy_only=False)
    return rows, np.asarray([codes[name] for name in names], dtype=np.int8)[index]


def _trades(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    negative = pc.fill_null(pc.match_substring_regex(rows.column("id"), _NEGATIVE_ID), False)
    rows = rows.reject(negative.to_numpy(zero_copy_only=False), ctx, "negative id in column 'id'", show="id")
    rows, aggressor_sold = _side_codes(rows, ctx, {"buy": 0, "sell": 1}, "trade")
    price, qty = rows.numpy("price"), rows.numpy("amount")
    yield "trades", symbol, canonical_table(
        "trades", rows.num_rows, price=price, qty=qty, is_buyer_maker=aggressor_sold.astype(bool),
        notional=usd_notional(price, qty, info), kind=TRADE_KIND_MARKET, trade_id=_trade_ids(rows, state),
        **_times(rows)), rows.line_numbers


def _trade_ids(rows: CsvRows, state: FileState) -> pa.Array:
    """``id`` as int64; empty ids and ids that are not integers become -1 (the latter counted)."""
    ids = rows.column("id")
    is_integer = pc.fill_null(pc.match_substring_regex(ids, _INTEGER_ID), False)
    state.count(f"{{:,}} trade ids are not integers; stored as {NO_ID}",
                pc.sum(pc.and_(pc.is_valid(ids), pc.invert(is_integer))).as_py() or 0)
    return pc.fill_null(pc.cast(pc.if_else(is_integer, ids, pa.scalar(None, pa.string())), pa.int64()), NO_ID)


def _depth_diff(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    rows, sides = _side_codes(rows, ctx, {"bid": SIDE_BID, "ask": SIDE_ASK}, "book")
    is_snapshot = rows.numpy("is_snapshot")
    if not state.carry.get(("snapshot seen", symbol)):
        state.count(f"{{:,}} {symbol} book updates precede the first snapshot in this file (kept; the book "
                    "replay skips them)", int(np.argmax(is_snapshot)) if is_snapshot.any() else rows.num_rows)
        state.carry[("snapshot seen", symbol)] = bool(is_snapshot.any())
    yield "depth_diff", symbol, canonical_table(
        "depth_diff", rows.num_rows, seq_first=NO_ID, seq_last=NO_ID, seq_prev=NO_ID, side=sides,
        price=rows.column("price"), qty=rows.column("amount"), is_snapshot=is_snapshot,
        **_times(rows)), rows.line_numbers


def _book_levels(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    levels = sum(bool(_SNAPSHOT_ASK_PRICE.match(name)) for name in rows.table.column_names)
    yield "book_levels", symbol, pa.concat_tables(
        canonical_table("book_levels", rows.num_rows, level=level,
                        bid=rows.column(f"bids[{level}].price"), bid_qty=rows.column(f"bids[{level}].amount"),
                        ask=rows.column(f"asks[{level}].price"), ask_qty=rows.column(f"asks[{level}].amount"),
                        **_times(rows))
        for level in range(levels)), lambda: np.tile(rows.line_numbers(), levels)


def _quotes(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    yield "book_ticker", symbol, canonical_table(
        "book_ticker", rows.num_rows, bid=rows.column("bid_price"), bid_qty=rows.column("bid_amount"),
        ask=rows.column("ask_price"), ask_qty=rows.column("ask_amount"), update_id=NO_ID,
        **_times(rows)), rows.line_numbers


def _derivative_ticker(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext,
                       state: FileState) -> Iterator[Chunk]:
    yield "funding", symbol, canonical_table(
        "funding", rows.num_rows, rate=rows.column("funding_rate"), mark_price=rows.column("mark_price"),
        **_times(rows)), rows.line_numbers
    oi_column = rows.column("open_interest")
    present = oi_column.is_valid().to_numpy(zero_copy_only=False)
    oi = rows.numpy("open_interest")
    changes = rows.filter(open_interest_changes(oi, present, state.carry.get(("open interest", symbol))))
    if present.any():
        state.carry[("open interest", symbol)] = oi[np.flatnonzero(present)[-1]]
    oi = changes.numpy("open_interest")
    yield "open_interest", symbol, canonical_table(
        "open_interest", changes.num_rows, oi=oi, oi_value=usd_notional(changes.numpy("mark_price"), oi, info),
        **_times(changes)), changes.line_numbers


def open_interest_changes(oi: np.ndarray, present: np.ndarray, previous: float | None = None) -> np.ndarray:
    """Mask of the present values that differ from the previous present value (the first one
    included, unless it equals ``previous``, the last present value of the blocks before)."""
    at = np.flatnonzero(present)
    values = oi[at] if previous is None else np.r_[previous, oi[at]]
    changed = np.ones(values.size, dtype=bool)
    changed[1:] = values[1:] != values[:-1]
    keep = np.zeros(oi.size, dtype=bool)
    keep[at] = changed if previous is None else changed[1:]
    return keep


def _liquidations(rows: CsvRows, symbol: str, info: dict, ctx: IngestContext, state: FileState) -> Iterator[Chunk]:
    rows, sides = _side_codes(rows, ctx, {"sell": LIQ_SELL, "buy": LIQ_BUY}, "liquidation")
    price, qty = rows.numpy("price"), rows.numpy("amount")
    yield "liquidations", symbol, canonical_table(
        "liquidations", rows.num_rows, side=sides, price=price, qty=qty,
        notional=usd_notional(price, qty, info), avg_price=None, **_times(rows)), rows.line_numbers


#: Expected headers of the data types with a fixed header (``book_snapshot_N`` is built per N).
_LAYOUTS: dict[str, Layout] = {
    "trades": TRADES, "incremental_book_L2": INCREMENTAL_BOOK_L2, "quotes": QUOTES,
    "derivative_ticker": DERIVATIVE_TICKER, "liquidations": LIQUIDATIONS,
}
#: Data types read like another one (``book_ticker`` is assumed to have the ``quotes`` columns).
_ALIASES = {"book_ticker": "quotes"}
_BUILDERS: dict[str, Builder] = {
    "trades": _trades, "incremental_book_L2": _depth_diff, "book_snapshot": _book_levels, "quotes": _quotes,
    "derivative_ticker": _derivative_ticker, "liquidations": _liquidations,
}
