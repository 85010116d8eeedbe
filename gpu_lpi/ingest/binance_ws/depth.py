"""Depth diffs and REST snapshots as ``depth_diff`` rows, and the update-id chain check.

A diff whose first update id ``U`` is above its last ``u`` is rejected ("first update id after
last"). Diffs are checked per symbol across files in capture order (see
:mod:`gpu_lpi.ingest.binance_ws`), so that a capture split at midnight is one chain: a repeated
``u`` is rejected ("duplicate message"), a ``u`` lower than the last one is
rejected ("out-of-order depth update"), and a ``pu`` that is not the previous ``u`` is a sequence
gap, reported (the diffs are still stored; the book replay treats the book as invalid until the next
snapshot). The chain starts afresh with each covered span (:mod:`.spans`): a capture that starts
weeks after the previous one is not a gap. A diff with no levels is stored as one marker row
(side -1) so that its place in the chain is kept. A REST snapshot without a ``symbol`` (USD-M)
belongs to the symbol whose diff stream its ``lastUpdateId`` continues; where the block holds one
symbol only, to that symbol.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from gpu_lpi.ingest.binance_ws.payloads import Levels, Parsed, book_levels
from gpu_lpi.ingest.binance_ws.streams import WsChunk, by_symbol, canonical
from gpu_lpi.schema import NO_ID, SIDE_ASK, SIDE_BID, SIDE_EMPTY_MESSAGE


def diffs(path: Path, parsed: Parsed, states, ctx) -> Iterator[WsChunk]:
    """``depthUpdate`` messages as ``depth_diff`` rows per symbol (before the chain check)."""
    for symbol, part in by_symbol(parsed, "s"):
        ctx.symbol_info(symbol, path, int(part.lines[0]))
        first, last = part.table.column("U").to_numpy(), part.table.column("u").to_numpy()
        backwards = np.flatnonzero(first > last)
        if backwards.size:
            ctx.reject_many(path, part.lines[backwards], "first update id after last",
                            lambda i: f"{symbol} U={int(first[backwards[i]])} > u={int(last[backwards[i]])}")
            part = part.filter(first <= last)
        table = part.table
        yield "depth_diff", symbol, *_depth_rows(
            part, book_levels(table.column("b"), part.lines, path, ctx),
            book_levels(table.column("a"), part.lines, path, ctx),
            first=table.column("U").to_numpy(), last=table.column("u").to_numpy(),
            prev=table.column("pu").to_numpy(), snapshot=False)


def snapshots(path: Path, parsed: Parsed, diff_messages: Parsed | None, states, ctx) -> Iterator[WsChunk]:
    """REST snapshots as ``depth_diff`` rows with ``is_snapshot`` set, each with its symbol."""
    named = parsed.table.column("symbol").to_pylist()
    update_ids = parsed.table.column("lastUpdateId").to_numpy()
    for row in range(parsed.table.num_rows):
        symbol = named[row] or _snapshot_symbol(int(update_ids[row]), diff_messages, states)
        if symbol is None:
            ctx.reject(path, int(parsed.lines[row]), "snapshot without symbol",
                       f"lastUpdateId {int(update_ids[row])} continues no diff stream in the file")
            continue
        ctx.symbol_info(symbol, path, int(parsed.lines[row]))
        one = parsed.filter(np.arange(parsed.table.num_rows) == row)
        ids = update_ids[row:row + 1]
        yield "depth_diff", symbol, *_depth_rows(
            one, book_levels(one.table.column("bids"), one.lines, path, ctx),
            book_levels(one.table.column("asks"), one.lines, path, ctx),
            first=ids, last=ids, prev=np.array([NO_ID]), snapshot=True)


def _depth_rows(part: Parsed, bids: Levels, asks: Levels, first, last, prev, snapshot: bool) -> tuple[pa.Table, np.ndarray]:
    """``depth_diff`` rows of the messages whose levels all parsed, sorted by message, and their lines;
    a message with no level gets a marker row."""
    keep = bids.ok & asks.ok
    message = np.concatenate([bids.message, asks.message])
    side = np.concatenate([np.full(bids.message.size, SIDE_BID, np.int8), np.full(asks.message.size, SIDE_ASK, np.int8)])
    price = np.concatenate([bids.price, asks.price])
    qty = np.concatenate([bids.qty, asks.qty])
    level_kept = keep[message]
    message, side, price, qty = message[level_kept], side[level_kept], price[level_kept], qty[level_kept]
    has_levels = np.zeros(keep.size, dtype=bool)
    has_levels[message] = True
    empty = np.flatnonzero(keep & ~has_levels)
    message = np.concatenate([message, empty])
    side = np.concatenate([side, np.full(empty.size, SIDE_EMPTY_MESSAGE, np.int8)])
    price = np.concatenate([price, np.full(empty.size, np.nan)])
    qty = np.concatenate([qty, np.full(empty.size, np.nan)])
    order = np.argsort(message, kind="stable")
    message, side, price, qty = message[order], side[order], price[order], qty[order]
    return canonical("depth_diff", {
        "ts": part.ts[message], "seq_first": first[message], "seq_last": last[message],
        "seq_prev": prev[message], "side": side, "price": price, "qty": qty,
        "is_snapshot": np.full(message.size, snapshot), "local_ts": part.local[message],
    }), part.lines[message]


def _snapshot_symbol(update_id: int, diff_messages: Parsed | None, states) -> str | None:
    """The symbol of a snapshot that names none (USD-M REST snapshots do not)."""
    if diff_messages is None:
        return next(iter(states)) if len(states) == 1 else None
    table = diff_messages.table
    symbols = table.column("s").to_numpy(zero_copy_only=False)
    if np.unique(symbols).size == 1:
        return str(symbols[0])
    covers = ((table.column("U").to_numpy() <= update_id) & (table.column("u").to_numpy() >= update_id)) | (
        table.column("pu").to_numpy() == update_id)
    candidates = np.unique(symbols[covers])
    return str(candidates[0]) if candidates.size == 1 else None


def chain_checked(path: Path, symbol: str, rows: pa.Table, lines: np.ndarray, span: np.ndarray, state,
                  ctx) -> tuple[pa.Table, np.ndarray]:
    """The diff rows of one symbol (in line order) without the messages that repeat or go back in
    the update-id chain; gaps reported. ``span`` is the covered span of each row: the chain is reset
    where a new span begins. ``state`` carries the chain (``last_u``, ``chain_span``) across blocks."""
    if not rows.num_rows:
        return rows, lines
    starts = np.flatnonzero(np.r_[True, lines[1:] != lines[:-1]])
    last_ids = rows.column("seq_last").to_numpy()[starts].tolist()
    prev_ids = rows.column("seq_prev").to_numpy()[starts].tolist()
    spans = span[starts].tolist()
    keep = np.ones(starts.size, dtype=bool)
    last, chain_span = state.last_u, state.chain_span
    for i, u in enumerate(last_ids):     # the chain check is sequential by nature
        if spans[i] != chain_span:
            last, chain_span = None, spans[i]
        if last is not None and u <= last:
            reason = "duplicate message" if u == last else "out-of-order depth update"
            ctx.reject(path, int(lines[starts[i]]), reason, f"{symbol} u={u} after u={last}")
            keep[i] = False
            continue
        if last is not None and prev_ids[i] != last:
            ctx.report.gap(symbol, path, int(lines[starts[i]]), int(rows.column("ts")[int(starts[i])].as_py()),
                           last, prev_ids[i])
        last = u
    state.last_u, state.chain_span = last, chain_span
    if keep.all():
        return rows, lines
    row_keep = np.repeat(keep, np.diff(np.r_[starts, rows.num_rows]))
    return rows.filter(pa.array(row_keep)), lines[row_keep]
