"""Canonical tick-store table schemas, defined once (DESIGN.md §3).

Every table is partitioned ``STORE/<table>/symbol=<SYM>/date=<YYYY-MM-DD>/``; the partition keys are
not stored as columns. Timestamps are int64 nanoseconds UTC on the exchange clock (``ts``); where a
source also has a receive time it is kept as ``local_ts`` (ns, null where the source has none).

Time-axis decision: ``ts`` is the matching-engine transaction time (Binance ``T``) wherever a source
has one (trades, book ticker, depth diffs, snapshots, liquidations); streams that carry only an event
time use it (Binance ``markPriceUpdate`` ``E``, open-interest ``time``). Tardis book rows carry the
websocket event time ``E`` (that is what Tardis records).

Each table also declares its *row key*: the columns that identify a row across re-ingests. Re-ingesting
rows whose key is already stored changes nothing; rows whose key repeats inside one source (identical
trades without ids, for instance) are kept as distinct rows, see :mod:`gpu_lpi.store`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

#: ``trades.kind`` codes. Only ``MARKET`` trades are market flow; ``OTHER`` is any other tag (``NA``).
TRADE_KIND_MARKET, TRADE_KIND_INSURANCE_FUND, TRADE_KIND_ADL, TRADE_KIND_OTHER = 0, 1, 2, 3
TRADE_KINDS = {"MARKET": TRADE_KIND_MARKET, "INSURANCE_FUND": TRADE_KIND_INSURANCE_FUND,
               "ADL": TRADE_KIND_ADL}

#: ``depth_diff.side`` / ``liquidations.side`` codes.
SIDE_BID, SIDE_ASK = 0, 1
#: ``depth_diff.side`` of the marker row stored for a diff message with no levels, so that the
#: message (and its place in the update-id chain) is never lost.
SIDE_EMPTY_MESSAGE = -1
#: ``liquidations.side``: the side of the liquidation *order* (SELL closes a long, BUY a short).
LIQ_SELL, LIQ_BUY = 0, 1


@dataclass(frozen=True)
class TableSpec:
    """Schema, row key and storage sort order of one tick-store table."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    sort_by: tuple[str, ...]


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype, nullable=name in _NULLABLE) for name, dtype in fields])


#: Nullable columns. Ids and sequence numbers are never null: ``-1`` marks "the source has none"
#: (:data:`NO_ID`), so that kernels can read them as plain int64 arrays.
_NULLABLE = {"local_ts", "mark_price", "rate", "oi", "oi_value", "avg_price", "bid", "bid_qty", "ask",
             "ask_qty"}
NO_ID = -1

_TS = ("ts", pa.int64())
_LOCAL_TS = ("local_ts", pa.int64())

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "trades",
            _schema(_TS, ("price", pa.float64()), ("qty", pa.float64()), ("is_buyer_maker", pa.bool_()),
                    ("notional", pa.float64()), ("kind", pa.int8()), ("trade_id", pa.int64()), _LOCAL_TS),
            key=("ts", "trade_id", "price", "qty", "is_buyer_maker"),
            sort_by=("ts", "trade_id"),
        ),
        TableSpec(
            "agg_trades",
            _schema(_TS, ("price", pa.float64()), ("qty", pa.float64()), ("is_buyer_maker", pa.bool_()),
                    ("notional", pa.float64()), ("trade_id", pa.int64()), ("first_trade_id", pa.int64()),
                    ("last_trade_id", pa.int64()), _LOCAL_TS),
            key=("ts", "trade_id", "price", "qty", "is_buyer_maker"),
            sort_by=("ts", "trade_id"),
        ),
        TableSpec(
            "book_ticker",
            _schema(_TS, ("bid", pa.float64()), ("bid_qty", pa.float64()), ("ask", pa.float64()),
                    ("ask_qty", pa.float64()), ("update_id", pa.int64()), _LOCAL_TS),
            key=("ts", "update_id", "bid", "bid_qty", "ask", "ask_qty"),
            sort_by=("ts", "update_id"),
        ),
        TableSpec(
            "depth_diff",
            _schema(_TS, ("seq_first", pa.int64()), ("seq_last", pa.int64()), ("seq_prev", pa.int64()),
                    ("side", pa.int8()), ("price", pa.float64()), ("qty", pa.float64()),
                    ("is_snapshot", pa.bool_()), _LOCAL_TS),
            key=("ts", "seq_last", "is_snapshot", "side", "price", "qty"),
            sort_by=("ts", "seq_last"),
        ),
        TableSpec(
            "book_levels",
            _schema(_TS, ("level", pa.int16()), ("bid", pa.float64()), ("bid_qty", pa.float64()),
                    ("ask", pa.float64()), ("ask_qty", pa.float64()), _LOCAL_TS),
            key=("ts", "level", "bid", "bid_qty", "ask", "ask_qty"),
            sort_by=("ts", "level"),
        ),
        TableSpec(
            "depth_bands",
            _schema(_TS, ("pct", pa.float64()), ("depth", pa.float64()), ("notional", pa.float64())),
            key=("ts", "pct"),
            sort_by=("ts", "pct"),
        ),
        TableSpec(
            "open_interest",
            _schema(_TS, ("oi", pa.float64()), ("oi_value", pa.float64()), _LOCAL_TS),
            key=("ts",),
            sort_by=("ts",),
        ),
        TableSpec(
            "funding",
            _schema(_TS, ("rate", pa.float64()), ("mark_price", pa.float64()), _LOCAL_TS),
            key=("ts",),
            sort_by=("ts",),
        ),
        TableSpec(
            "liquidations",
            _schema(_TS, ("side", pa.int8()), ("price", pa.float64()), ("qty", pa.float64()),
                    ("notional", pa.float64()), ("avg_price", pa.float64()), _LOCAL_TS),
            key=("ts", "side", "price", "qty"),
            sort_by=("ts",),
        ),
    )
}

SYMBOLS_SCHEMA = pa.schema([
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("tick_size", pa.float64(), nullable=False),
    pa.field("lot_size", pa.float64(), nullable=False),
    pa.field("contract_size", pa.float64(), nullable=False),
    pa.field("is_inverse", pa.bool_(), nullable=False),
])


def empty_table(name: str) -> pa.Table:
    """Return an empty table with the schema of tick-store table ``name``."""
    return TABLES[name].schema.empty_table()
