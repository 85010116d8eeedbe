"""Per-stream conversion of parsed payloads to tick-store rows (all but the depth diff chain).

Each converter takes the parsed messages of one kind from one block and yields, per symbol,
``(table, symbol, rows, lines)``: canonical rows of a tick-store table and the line of each row
(the value rules and the coverage spans need them). A message whose id was already seen in its
stream (trade, aggTrade, book ticker, partial book) is rejected as a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpu_lpi.ingest.binance_ws.payloads import Parsed, book_levels, decimal_fields, decimals, field_of
from gpu_lpi.reference_data import usd_notional
from gpu_lpi.schema import LIQ_BUY, LIQ_SELL, NO_ID, TABLES, TRADE_KIND_OTHER, TRADE_KINDS

#: What a converter yields: (tick-store table, symbol, canonical rows, line of each row).
WsChunk = tuple[str, str, pa.Table, np.ndarray]

#: How many of the highest ids seen per stream a duplicate is looked up among. Streams deliver ids
#: in increasing order, so a repeat arrives soon after the original; a repeat of an id older than
#: this many messages would go undetected (and be stored twice).
RECENT_IDS = 1 << 20


class RecentIds:
    """The highest ids seen so far in one stream (sorted), to spot repeated messages."""

    __slots__ = ("ids",)

    def __init__(self):
        self.ids = np.empty(0, dtype=np.int64)

    def seen(self, ids: np.ndarray) -> np.ndarray:
        """Mask of ``ids`` already seen."""
        if not self.ids.size:
            return np.zeros(ids.size, dtype=bool)
        position = np.minimum(np.searchsorted(self.ids, ids), self.ids.size - 1)
        return self.ids[position] == ids

    def add(self, ids: np.ndarray) -> None:
        self.ids = np.union1d(self.ids, ids)[-RECENT_IDS:]


def by_symbol(parsed: Parsed, column: str) -> Iterator[tuple[str, Parsed]]:
    """Split parsed messages by the symbol in field ``column`` (symbols in sorted order)."""
    values = field_of(parsed.table, column)
    symbols = sorted(pc.unique(values).to_pylist())
    if len(symbols) == 1:
        yield symbols[0], parsed
        return
    for symbol in symbols:
        yield symbol, parsed.filter(pc.equal(values, symbol).to_numpy(zero_copy_only=False))


def new_ids(parsed: Parsed, id_field: str, recent: RecentIds, path, ctx) -> Parsed:
    """The messages whose id is new (not earlier in the block nor among the recent ids of the
    stream, across files); the repeats are rejected."""
    ids = parsed.table.column(id_field).to_numpy()
    _, first = np.unique(ids, return_index=True)
    keep = np.zeros(ids.size, dtype=bool)
    keep[first] = True
    keep &= ~recent.seen(ids)
    repeats = np.flatnonzero(~keep)
    ctx.reject_many(path, parsed.lines[repeats], "duplicate message", lambda i: f"id {int(ids[repeats[i]])} already seen")
    recent.add(ids[keep])
    return parsed.filter(keep)


def with_numbers(parsed: Parsed, names: tuple[str, ...], path, ctx) -> tuple[Parsed, dict[str, np.ndarray]]:
    """The messages whose decimal fields ``names`` parse, and those fields as float64 (NaN where absent)."""
    values, ok = decimal_fields(parsed.table, names, parsed.lines, path, ctx)
    if not ok.all():
        parsed = parsed.filter(ok)
        values = {name: array.filter(pa.array(ok)) for name, array in values.items()}
    return parsed, {name: array.to_numpy(zero_copy_only=False) for name, array in values.items()}


def canonical(name: str, columns: dict) -> pa.Table:
    """A tick-store table from NumPy or Arrow columns (Arrow nulls stay null; NaN stays NaN, for the
    value rules to reject)."""
    schema = TABLES[name].schema
    arrays = [columns[f.name].cast(f.type) if isinstance(columns[f.name], (pa.Array, pa.ChunkedArray))
              else pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _trade_rows(path, parsed, states, ctx, id_field, stream):
    for symbol, part in by_symbol(parsed, "s"):
        info = ctx.symbol_info(symbol, path, int(part.lines[0]))
        state = states[symbol]
        recent = state.seen_ids[stream]
        latest = recent.ids[-1:]                        # the highest id before this block
        part = new_ids(part, id_field, recent, path, ctx)
        ids = np.r_[latest, part.table.column(id_field).to_numpy()]
        if np.any(ids[1:] < np.maximum.accumulate(ids)[:-1]) and (path, stream) not in state.noted:
            state.noted.add((path, stream))
            ctx.report.note(path, None, f"{symbol} {stream}s out of id order: re-sorted by the store")
        part, numbers = with_numbers(part, ("p", "q"), path, ctx)
        price, qty = numbers["p"], numbers["q"]
        columns = {"ts": part.ts, "price": price, "qty": qty,
                   "is_buyer_maker": part.table.column("m").to_numpy(zero_copy_only=False),
                   "notional": usd_notional(price, qty, info),
                   "trade_id": part.table.column(id_field).to_numpy(), "local_ts": part.local}
        yield symbol, part, columns


def trades(path: Path, parsed: Parsed, states, ctx) -> Iterator[WsChunk]:
    """``trade`` messages as ``trades`` rows (``X`` gives the kind: market, insurance fund, ADL)."""
    for symbol, part, columns in _trade_rows(path, parsed, states, ctx, "t", "trade"):
        columns["kind"] = _trade_kinds(part.table.column("X"))
        yield "trades", symbol, canonical("trades", columns), part.lines


def _trade_kinds(tags: pa.ChunkedArray) -> np.ndarray:
    names = list(TRADE_KINDS)
    tags = pc.if_else(pc.equal(pc.fill_null(tags, ""), ""), "MARKET", tags)
    index = pc.index_in(tags, value_set=pa.array(names))
    codes = np.array([TRADE_KINDS[n] for n in names] + [TRADE_KIND_OTHER], dtype=np.int8)
    return codes[pc.fill_null(index, len(names)).to_numpy()]


def agg_trades(path: Path, parsed: Parsed, states, ctx) -> Iterator[WsChunk]:
    """``aggTrade`` messages as ``agg_trades`` rows."""
    for symbol, part, columns in _trade_rows(path, parsed, states, ctx, "a", "aggTrade"):
        columns["first_trade_id"] = pc.fill_null(part.table.column("f"), NO_ID).to_numpy()
        columns["last_trade_id"] = pc.fill_null(part.table.column("l"), NO_ID).to_numpy()
        yield "agg_trades", symbol, canonical("agg_trades", columns), part.lines


def book_tickers(path: Path, parsed: Parsed, states, ctx) -> Iterator[WsChunk]:
    """``bookTicker`` messages as ``book_ticker`` rows."""
    for symbol, part in by_symbol(parsed, "s"):
        ctx.symbol_info(symbol, path, int(part.lines[0]))
        part = new_ids(part, "u", states[symbol].seen_ids["bookTicker"], path, ctx)
        part, numbers = with_numbers(part, ("b", "B", "a", "A"), path, ctx)
        yield "book_ticker", symbol, canonical("book_ticker", {
            "ts": part.ts, "bid": numbers["b"], "bid_qty": numbers["B"], "ask": numbers["a"],
            "ask_qty": numbers["A"], "update_id": part.table.column("u").to_numpy(), "local_ts": part.local,
        }), part.lines


def open_interest(path: Path, parsed: Parsed, states, ctx) -> Iterator[WsChunk]:
    """REST open-interest polls as ``open_interest`` rows (``oi_value`` in USD for COIN-M only: a
    linear contract's poll has no price)."""
    for symbol, part in by_symbol(parsed, "symbol"):
        info = ctx.symbol_info(symbol, path, int(part.lines[0]))
        part, numbers = with_numbers(part, ("openInterest",), path, ctx)
        oi = numbers["openInterest"]
        value = oi * info["contract_size"] if info["is_inverse"] else pa.nulls(oi.size, pa.float64())
        yield "open_interest", symbol, canonical("open_interest", {
            "ts": part.ts, "oi": oi, "oi_value": value, "local_ts": part.local}), part.lines


def funding(path: Path, parsed: Parsed, states, ctx) -> Iterator[WsChunk]:
    """``markPriceUpdate`` messages as ``funding`` rows (an empty ``r`` is a null rate)."""
    for symbol, part in by_symbol(parsed, "s"):
        ctx.symbol_info(symbol, path, int(part.lines[0]))
        part, numbers = with_numbers(part, ("p",), path, ctx)
        rate_text = part.table.column("r")
        rate, malformed = decimals(pc.if_else(pc.equal(rate_text, ""), pa.scalar(None, pa.string()), rate_text))
        bad = np.flatnonzero(malformed)
        ctx.reject_many(path, part.lines[bad], "bad number", lambda i: f"field 'r' = {rate_text[int(bad[i])].as_py()!r}")
        keep = pa.array(~malformed)
        yield "funding", symbol, canonical("funding", {
            "ts": part.ts[~malformed], "rate": rate.filter(keep), "mark_price": numbers["p"][~malformed],
            "local_ts": part.local[~malformed]}), part.lines[~malformed]


def liquidations(path: Path, parsed: Parsed, states, ctx) -> Iterator[WsChunk]:
    """``forceOrder`` messages as ``liquidations`` rows: qty is the filled quantity ``z``, notional
    priced at the average price ``ap`` (at ``p`` where ``ap`` is absent)."""
    for symbol, part in by_symbol(parsed, "o.s"):
        info = ctx.symbol_info(symbol, path, int(part.lines[0]))
        part, numbers = with_numbers(part, ("o.p", "o.ap", "o.z"), path, ctx)
        side_text = field_of(part.table, "o.S").to_numpy(zero_copy_only=False)
        bad_side = np.flatnonzero(~np.isin(side_text, ["SELL", "BUY"]))
        ctx.reject_many(path, part.lines[bad_side], "bad field", lambda i: f"forceOrder side {side_text[bad_side[i]]!r}")
        ok = np.isin(side_text, ["SELL", "BUY"])
        part = part.filter(ok)
        price, avg, qty = numbers["o.p"][ok], numbers["o.ap"][ok], numbers["o.z"][ok]
        yield "liquidations", symbol, canonical("liquidations", {
            "ts": part.ts, "side": np.where(side_text[ok] == "SELL", LIQ_SELL, LIQ_BUY).astype(np.int8),
            "price": price, "qty": qty, "notional": usd_notional(np.where(np.isnan(avg), price, avg), qty, info),
            "avg_price": pa.array(avg, mask=field_of(part.table, "o.ap").is_null().to_numpy(zero_copy_only=False)),
            "local_ts": part.local}), part.lines


def partial_books(path: Path, parsed: Parsed, states, ctx) -> Iterator[WsChunk]:
    """Partial-book (``@depth5/10/20``) messages as ``book_levels`` snapshots: one row per level per
    message (level 0 the best; a side with fewer levels is null on the deeper rows)."""
    for symbol, part in by_symbol(parsed, "s"):
        ctx.symbol_info(symbol, path, int(part.lines[0]))
        part = new_ids(part, "u", states[symbol].seen_ids["partialDepth"], path, ctx)
        bids = book_levels(part.table.column("b"), part.lines, path, ctx)
        asks = book_levels(part.table.column("a"), part.lines, path, ctx)
        ok = bids.ok & asks.ok
        depth = np.zeros(part.table.num_rows, dtype=np.int64)
        for side in (bids, asks):
            np.maximum.at(depth, side.message, side.position + 1)
        empty = np.flatnonzero(ok & (depth == 0))
        ctx.reject_many(path, part.lines[empty], "partial book without levels", lambda i: "no bid and no ask")
        depth[~ok] = 0
        first_row = np.cumsum(depth) - depth
        message = np.repeat(np.arange(depth.size), depth)
        columns = {"ts": part.ts[message], "level": np.arange(message.size) - first_row[message],
                   "local_ts": part.local[message]}
        for side, price_name, qty_name in ((bids, "bid", "bid_qty"), (asks, "ask", "ask_qty")):
            kept = ok[side.message]
            rows = first_row[side.message[kept]] + side.position[kept]
            present = np.zeros(message.size, dtype=bool)
            present[rows] = True
            for name, values in ((price_name, side.price[kept]), (qty_name, side.qty[kept])):
                column = np.full(message.size, np.nan)
                column[rows] = values
                columns[name] = pa.array(column, mask=~present)
        yield "book_levels", symbol, canonical("book_levels", columns), part.lines[message]
