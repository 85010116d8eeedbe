"""Canonical tick-store table schemas, defined once (DESIGN.md §3).

Every table is partitioned ``STORE/<table>/symbol=<SYM>/date=<YYYY-MM-DD>/``; the partition keys are
not stored as columns. Timestamps are int64 nanoseconds UTC on the exchange clock (``ts``); where a
source also has a receive time it is kept as ``local_ts`` (ns, null where the source has none).

Time-axis decision: ``ts`` is the matching-engine transaction time (Binance ``T``) wherever a source
has one (trades, book ticker, depth diffs, snapshots, liquidations); streams that carry only an event
time use it (Binance ``markPriceUpdate`` ``E``, open-interest ``time``). Tardis book rows carry the
websocket event time ``E`` (that is what Tardis records).

Each table also declares how a row is recognised when it is ingested again (see
:mod:`gpu_lpi.store.merge`):

* its *identity*, where the source gives rows one (a trade id, an aggregate trade id, a book-ticker
  update id, a depth level of an update-id-numbered message, one open-interest value per time): a row
  whose identity is stored already is a repeat when its ``compare`` columns are equal and a reported
  *conflict* when they differ (the stored row is kept). Rows whose identity column holds
  :data:`NO_ID` (the source has no ids) have no identity;
* its *row key* for rows without identity: the store holds the multiset union on the key, so
  re-ingesting rows whose key is already stored changes nothing, while rows whose key repeats inside
  one source (identical trades without ids, for instance) are kept as distinct rows.

Receive times (``local_ts``) are never compared: the same trade captured by two collectors is one row.
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
    """Schema, row identity, row key and storage sort order of one tick-store table.

    Attributes
    ----------
    name : str
    schema : pyarrow.Schema
    key : tuple of str
        Multiset key of rows without identity.
    sort_by : tuple of str
        Storage order (ascending); ``ts`` first in every table.
    identity : tuple of str, default ()
        Columns identifying a row (empty: rows are only compared by ``key``).
    compare : tuple of str, default ()
        Columns that must be equal for a row with a stored identity to be a repeat, not a conflict.
    id_column : str or None, default None
        The source's id among the identity columns: a row where it is :data:`NO_ID` has no identity.
    last_repeat_wins : bool, default False
        Of two new rows with one identity, keep the last (a source's later row overrides) rather
        than the first.
    """

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    sort_by: tuple[str, ...]
    identity: tuple[str, ...] = ()
    compare: tuple[str, ...] = ()
    id_column: str | None = None
    last_repeat_wins: bool = False


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
            identity=("trade_id",),
            compare=("ts", "price", "qty", "is_buyer_maker", "kind"),
            id_column="trade_id",
        ),
        TableSpec(
            "agg_trades",
            _schema(_TS, ("price", pa.float64()), ("qty", pa.float64()), ("is_buyer_maker", pa.bool_()),
                    ("notional", pa.float64()), ("trade_id", pa.int64()), ("first_trade_id", pa.int64()),
                    ("last_trade_id", pa.int64()), _LOCAL_TS),
            key=("ts", "trade_id", "price", "qty", "is_buyer_maker"),
            sort_by=("ts", "trade_id"),
            identity=("trade_id",),
            compare=("ts", "price", "qty", "is_buyer_maker", "first_trade_id", "last_trade_id"),
            id_column="trade_id",
        ),
        TableSpec(
            "book_ticker",
            _schema(_TS, ("bid", pa.float64()), ("bid_qty", pa.float64()), ("ask", pa.float64()),
                    ("ask_qty", pa.float64()), ("update_id", pa.int64()), _LOCAL_TS),
            key=("ts", "update_id", "bid", "bid_qty", "ask", "ask_qty"),
            sort_by=("ts", "update_id"),
            identity=("update_id",),
            compare=("ts", "bid", "bid_qty", "ask", "ask_qty"),
            id_column="update_id",
        ),
        TableSpec(
            "depth_diff",
            _schema(_TS, ("seq_first", pa.int64()), ("seq_last", pa.int64()), ("seq_prev", pa.int64()),
                    ("side", pa.int8()), ("price", pa.float64()), ("qty", pa.float64()),
                    ("is_snapshot", pa.bool_()), _LOCAL_TS),
            key=("ts", "seq_last", "is_snapshot", "side", "price", "qty"),
            sort_by=("ts", "seq_last"),
            identity=("seq_last", "is_snapshot", "side", "price"),
            compare=("ts", "seq_first", "seq_prev", "qty"),
            id_column="seq_last",
            last_repeat_wins=True,
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
            identity=("ts", "pct"),
            compare=("depth", "notional"),
        ),
        TableSpec(
            "open_interest",
            _schema(_TS, ("oi", pa.float64()), ("oi_value", pa.float64()), _LOCAL_TS),
            key=("ts",),
            sort_by=("ts",),
            identity=("ts",),
            compare=("oi",),
        ),
        TableSpec(
            "funding",
            _schema(_TS, ("rate", pa.float64()), ("mark_price", pa.float64()), _LOCAL_TS),
            key=("ts", "rate", "mark_price"),
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


#: Time spans the ingested inputs cover, per symbol and table: ``[start_ns, end_ns)``, with the input
#: that covered them (see :mod:`gpu_lpi.store.coverage`).
COVERAGE_SCHEMA = pa.schema([
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("table", pa.string(), nullable=False),
    pa.field("start_ns", pa.int64(), nullable=False),
    pa.field("end_ns", pa.int64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
])


def empty_table(name: str) -> pa.Table:
    """Return an empty table with the schema of tick-store table ``name``."""
    return TABLES[name].schema.empty_table()
