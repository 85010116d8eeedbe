"""Binance futures websocket captures: ``<local_ts> <json>`` lines (``--format binance-ws``).

Accepted messages (combined-stream ``{"stream":..,"data":..}`` wrappers or bare payloads, USD-M and
COIN-M): ``trade``, ``aggTrade``, ``bookTicker``, ``depthUpdate``, REST depth snapshots
(``{"lastUpdateId":..}``), REST open-interest polls (``{"symbol":..,"openInterest":..,"time":..}``),
``markPriceUpdate`` (also ``!markPrice@arr`` arrays) and ``forceOrder``.

How it is fast: one pass of cheap byte operations sorts the lines into one bucket per message type;
each bucket is then parsed in bulk by pyarrow's JSON reader against an explicit schema and converted
with vectorized casts. Only when pyarrow rejects a bucket are its lines checked one by one (with
orjson) to name the bad lines, which are rejected and counted.

Rules (each finding is counted in the ingest report with file and line):

* a line that is not ``<integer> <json>`` is rejected ("malformed line"), a payload that is not JSON
  is rejected ("not valid JSON"), a JSON message of another type is rejected ("unknown message
  type"), a message lacking a required field is rejected ("missing field");
* the local timestamp unit is detected by digit count (ms, µs or ns) and stored in ns;
* a trade, aggregate trade or book-ticker update whose id was already seen for that symbol is
  rejected ("duplicate message"); trades that arrive out of id order are kept (the store sorts them);
* depth diffs are checked per symbol across files in file-name order, so a capture split at midnight
  is one chain: a repeated ``u`` is rejected ("duplicate message"), a ``u`` lower than the last one is
  rejected ("out-of-order depth update"), and a ``pu`` that is not the previous ``u`` is a sequence
  gap, reported; the diffs are still stored and the book replay treats the book as invalid until the
  next snapshot. A diff with no levels is stored as one marker row (side -1) so that its place in the
  update-id chain is kept;
* a REST snapshot without a ``symbol`` field (USD-M) belongs to the symbol whose diff stream its
  ``lastUpdateId`` continues; where the file holds one symbol only, to that symbol.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from numba import njit

from gpu_lpi.errors import InputError
from gpu_lpi.ingest.files import iter_line_blocks, parse_files
from gpu_lpi.reference_data import usd_notional
from gpu_lpi.schema import (LIQ_BUY, LIQ_SELL, NO_ID, SIDE_ASK, SIDE_BID, SIDE_EMPTY_MESSAGE, TABLES,
                            TRADE_KIND_MARKET, TRADE_KINDS, TRADE_KIND_OTHER)

_MS = 1_000_000
_S, _I64, _F64, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_LEVELS = pa.list_(pa.list_(_S))

#: Explicit pyarrow schemas of the payloads, by message kind; required fields are listed after.
_PAYLOADS: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {
    "trade": (pa.schema({"E": _I64, "T": _I64, "s": _S, "t": _I64, "p": _S, "q": _S, "X": _S, "m": _BOOL}),
              ("T", "s", "t", "p", "q", "m")),
    "aggTrade": (pa.schema({"E": _I64, "T": _I64, "s": _S, "a": _I64, "p": _S, "q": _S, "f": _I64,
                            "l": _I64, "m": _BOOL}), ("T", "s", "a", "p", "q", "m")),
    "bookTicker": (pa.schema({"u": _I64, "E": _I64, "T": _I64, "s": _S, "b": _S, "B": _S, "a": _S,
                              "A": _S}), ("u", "s", "b", "B", "a", "A")),
    "depthUpdate": (pa.schema({"E": _I64, "T": _I64, "s": _S, "U": _I64, "u": _I64, "pu": _I64,
                               "b": _LEVELS, "a": _LEVELS}), ("s", "U", "u", "pu", "b", "a")),
    "snapshot": (pa.schema({"lastUpdateId": _I64, "E": _I64, "T": _I64, "symbol": _S, "bids": _LEVELS,
                            "asks": _LEVELS}), ("lastUpdateId", "bids", "asks")),
    "openInterest": (pa.schema({"symbol": _S, "openInterest": _S, "time": _I64}),
                     ("symbol", "openInterest", "time")),
    "markPriceUpdate": (pa.schema({"E": _I64, "s": _S, "p": _S, "r": _S}), ("E", "s", "p")),
    "forceOrder": (pa.schema({"E": _I64, "o": pa.struct({"s": _S, "S": _S, "p": _S, "ap": _S,
                                                          "z": _S, "q": _S, "T": _I64})}),
                   ("o",)),
}
_KIND_OF_EVENT = {b"trade": "trade", b"aggTrade": "aggTrade", b"bookTicker": "bookTicker",
                  b"depthUpdate": "depthUpdate", b"markPriceUpdate": "markPriceUpdate",
                  b"forceOrder": "forceOrder"}


class _Bucket:
    """Payloads of one message kind from one file, with their line numbers and local times."""

    __slots__ = ("payloads", "lines", "local")

    def __init__(self):
        self.payloads: list[bytes] = []
        self.lines: list[int] = []
        self.local: list[int] = []


def _event_kind(payload: bytes) -> str | None:
    """Message kind from cheap byte tests (no JSON parsing)."""
    at = payload.find(b'"e":"')
    if at >= 0:
        end = payload.find(b'"', at + 5)
        return _KIND_OF_EVENT.get(payload[at + 5:end], "unknown")
    if payload.startswith(b'{"lastUpdateId"'):
        return "snapshot"
    if b'"openInterest"' in payload:
        return "openInterest"
    return None


def _unwrap(payload: bytes) -> bytes:
    """The ``data`` member of a combined-stream wrapper, or the payload itself."""
    if payload.startswith(b'{"stream"'):
        at = payload.find(b'"data":')
        if at > 0 and payload.endswith(b"}"):
            return payload[at + 7:-1]
    return payload


def _to_ns(values: np.ndarray) -> np.ndarray:
    """Local timestamps in ns from ms, µs or ns integers (unit detected by magnitude)."""
    if values.size == 0:
        return values
    largest = int(np.abs(values).max())
    scale = 1 if largest >= 10**17 else 1_000 if largest >= 10**14 else 1_000_000
    return values * scale


#: Kinds of combined-stream messages, by the first letter of the stream type (``btcusdt@<type>``).
_STREAM_KINDS = ("trade", "aggTrade", "bookTicker", "depthUpdate", "markPriceUpdate", "forceOrder")
_STREAM_LETTERS = np.frombuffer(b"tabdmf", dtype=np.uint8)
_WRAPPER_HEAD = np.frombuffer(b'{"stream":"', dtype=np.uint8)
_WRAPPER_DATA = np.frombuffer(b'","data":', dtype=np.uint8)


@njit(cache=True)
def _matches(buf, at, pattern):
    if at + pattern.size > buf.size:
        return False
    for i in range(pattern.size):
        if buf[at + i] != pattern[i]:
            return False
    return True


@njit(cache=True)
def _scan_lines(buf, letters, head, data_tag):
    """One pass over a capture: per non-empty line its number, bounds, local stamp and, for
    combined-stream lines, the kind (index into ``letters``) and the bounds of the ``data`` member.

    ``kind`` is -1 for lines the slow path must look at, -2 for lines without a valid stamp.
    """
    n_lines = 1
    for i in range(buf.size):
        if buf[i] == 10:
            n_lines += 1
    number = np.empty(n_lines, np.int64)
    stamp = np.zeros(n_lines, np.int64)
    kind = np.full(n_lines, -1, np.int64)
    payload = np.empty(n_lines, np.int64)
    data_start = np.zeros(n_lines, np.int64)
    end_at = np.empty(n_lines, np.int64)
    count, line, start = 0, 0, 0
    while start <= buf.size:
        line += 1
        end = start
        while end < buf.size and buf[end] != 10:
            end += 1
        next_start = end + 1
        if end > start and buf[end - 1] == 13:
            end -= 1
        if end > start:
            number[count], end_at[count] = line, end
            space = start
            value = 0
            while space < end and 48 <= buf[space] <= 57 and space - start < 19:
                value = value * 10 + (buf[space] - 48)
                space += 1
            if space == start or space >= end or buf[space] != 32:
                kind[count] = -2
            else:
                stamp[count] = value
                payload[count] = space + 1
                name = space + 1 + head.size
                if (_matches(buf, space + 1, head) and name < end and buf[name] != 33
                        and buf[end - 1] == 125):
                    quote, at = name, -1
                    while quote < end and buf[quote] != 34:
                        if buf[quote] == 64 and at < 0:
                            at = quote
                        quote += 1
                    if at > 0 and at + 1 < quote and _matches(buf, quote, data_tag):
                        letter = buf[at + 1]
                        partial_depth = letter == 100 and at + 6 < quote and buf[at + 6] != 64
                        for k in range(letters.size):
                            if letters[k] == letter and not partial_depth:
                                kind[count] = k
                                data_start[count] = quote + data_tag.size
                                end_at[count] = end - 1
            count += 1
        start = next_start
    return number[:count], stamp[:count], kind[:count], payload[:count], data_start[:count], end_at[:count]


def _split_lines(path: Path, data: bytes, ctx, first_line: int = 1,
                 is_file_start: bool = True) -> dict[str, _Bucket]:
    """Sort the lines of a block of a capture into buckets by message kind; reject malformed lines.

    Combined-stream lines are classified by their stream name in one compiled pass; bare payloads
    (REST snapshots and polls, ``/ws`` messages, ``!..@arr`` streams) take a per-line path.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    number, stamp, kind, payload, data_start, data_end = _scan_lines(
        buf, _STREAM_LETTERS, _WRAPPER_HEAD, _WRAPPER_DATA)
    number += first_line - 1
    buckets: dict[str, _Bucket] = defaultdict(_Bucket)
    if is_file_start and number.size and kind[0] == -2:
        first_end = data.find(b"\n")
        _fail_wrong_format(path, int(number[0]), data[:first_end if first_end >= 0 else len(data)])
    for line in number[kind == -2]:
        ctx.reject(path, int(line), "malformed line", "expected '<local_ts> <json>'")
    for code, name in enumerate(_STREAM_KINDS):
        rows = np.flatnonzero(kind == code)
        if rows.size:
            bucket = buckets[name]
            bucket.payloads.extend(data[s:e] for s, e in zip(data_start[rows].tolist(), data_end[rows].tolist()))
            bucket.lines.extend(number[rows].tolist())
            bucket.local.extend(stamp[rows].tolist())
    for row in np.flatnonzero(kind == -1):
        _bucket_one(path, int(number[row]), int(stamp[row]), data[payload[row]:data_end[row]], buckets, ctx)
    return buckets


def _bucket_one(path, number: int, stamp: int, payload: bytes, buckets, ctx) -> None:
    """Slow path for one line the vectorized scan did not classify."""
    if payload.startswith(b'{"stream"') and b"@depth" in payload[:60] and b'"e":"depthUpdate"' in payload:
        name = payload[11:payload.find(b'"', 11)].decode("utf-8", "replace")
        if not name.endswith(("@depth", "ms")):
            ctx.reject(path, number, "unsupported stream", f"partial book depth stream {name!r}")
            return
    payload = _unwrap(payload)
    if payload.startswith(b"["):
        _split_array(path, number, stamp, payload, buckets, ctx)
        return
    kind = _event_kind(payload)
    if kind is None or kind == "unknown":
        _reject_unparsed(path, number, payload, ctx)
        return
    bucket = buckets[kind]
    bucket.payloads.append(payload)
    bucket.lines.append(number)
    bucket.local.append(stamp)


def _fail_wrong_format(path: Path, number: int, line: bytes) -> None:
    text = line[:80].decode("utf-8", "replace")
    hint = ""
    if text.startswith("exchange,") or text.count(",") >= 4:
        hint = " (this looks like a CSV file: try --format binance-archive or --format tardis)"
    raise InputError(path, number, f"not a binance-ws capture: expected '<local_ts> <json>' lines, "
                     f"got {text!r}{hint}")


def _reject_unparsed(path: Path, number: int, payload: bytes, ctx) -> None:
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        ctx.reject(path, number, "not valid JSON", payload[:60].decode("utf-8", "replace"))
        return
    event = message.get("e") if isinstance(message, dict) else None
    ctx.reject(path, number, "unknown message type", f"event type {event!r}")


def _split_array(path, number, stamp, payload, buckets, ctx) -> None:
    """Spread an array payload (``!markPrice@arr``, ``!forceOrder@arr``) over the buckets."""
    try:
        messages = orjson.loads(payload)
    except orjson.JSONDecodeError:
        ctx.reject(path, number, "not valid JSON", payload[:60].decode("utf-8", "replace"))
        return
    for message in messages:
        _bucket_one(path, number, stamp, orjson.dumps(message), buckets, ctx)


def _read_bucket(path: Path, kind: str, bucket: _Bucket, ctx) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Parse one bucket in bulk; return (payload table, line numbers, local ns) of the good rows."""
    schema, required = _PAYLOADS[kind]
    lines = np.asarray(bucket.lines, dtype=np.int64)
    local = _to_ns(np.asarray(bucket.local, dtype=np.int64))
    try:
        table = _parse_json(bucket.payloads, schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        keep = _find_bad_json(path, kind, bucket, ctx)
        bucket.payloads = [p for p, k in zip(bucket.payloads, keep) if k]
        lines, local = lines[keep], local[keep]
        table = _parse_json(bucket.payloads, schema)
    missing = np.zeros(table.num_rows, dtype=bool)
    for name in required:
        nulls = table.column(name).is_null().to_numpy(zero_copy_only=False)
        for row in np.flatnonzero(nulls & ~missing):
            ctx.reject(path, int(lines[row]), "missing field", f"{kind} message lacks {name!r}")
        missing |= nulls
    if missing.any():
        keep = pa.array(~missing)
        table, lines, local = table.filter(keep), lines[~missing], local[~missing]
    return table, lines, local


def _parse_json(payloads: list[bytes], schema: pa.Schema) -> pa.Table:
    if not payloads:
        return schema.empty_table()
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    return pajson.read_json(io.BytesIO(b"\n".join(payloads)), parse_options=options,
                            read_options=pajson.ReadOptions(block_size=8 << 20))


def _find_bad_json(path, kind, bucket, ctx) -> np.ndarray:
    """Slow path: check each payload of a bucket pyarrow refused; reject the bad ones."""
    schema, _ = _PAYLOADS[kind]
    keep = np.ones(len(bucket.payloads), dtype=bool)
    for row, payload in enumerate(bucket.payloads):
        try:
            orjson.loads(payload)
            _parse_json([payload], schema)
        except orjson.JSONDecodeError:
            ctx.reject(path, bucket.lines[row], "not valid JSON", payload[:60].decode("utf-8", "replace"))
            keep[row] = False
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            ctx.reject(path, bucket.lines[row], "field of the wrong type", f"{kind}: {err}")
            keep[row] = False
    return keep


def _numbers(column: pa.ChunkedArray | pa.Array, name: str, lines: np.ndarray, path, ctx) -> tuple[np.ndarray, np.ndarray]:
    """Decimal strings to float64; returns (values, ok mask) and rejects unparsable rows."""
    try:
        return pc.cast(column, _F64).to_numpy(zero_copy_only=False), np.ones(len(column), dtype=bool)
    except pa.ArrowInvalid:
        values = np.full(len(column), np.nan)
        ok = np.ones(len(column), dtype=bool)
        for row, text in enumerate(column.to_pylist()):
            try:
                values[row] = float(text) if text not in (None, "") else np.nan
            except ValueError:
                ctx.reject(path, int(lines[row]), "bad number", f"field {name!r} = {text!r}")
                ok[row] = False
        return values, ok


class _SymbolState:
    """Per-symbol ingest state carried across the files of a capture."""

    def __init__(self):
        self.last_u: int | None = None          # final update id of the last depth diff
        self.seen_ids: dict[str, _RecentIds] = defaultdict(_RecentIds)


def parse(files: list[Path], ctx, progress: bool = False):
    """Yield ``(table, symbol, rows)`` from Binance websocket captures (see the module docstring)."""
    states: dict[str, _SymbolState] = defaultdict(_SymbolState)
    yield from parse_files(files, progress, lambda path: _parse_file(path, states, ctx))


def _parse_file(path: Path, states, ctx):
    """Parse one capture block by block (memory stays bounded whatever the file's size)."""
    empty = True
    for first_line, block in iter_line_blocks(path):
        if not block.strip():
            continue
        buckets = _split_lines(path, block, ctx, first_line, is_file_start=empty)
        empty = False
        del block
        yield from _parse_capture(path, buckets, states, ctx)
    if empty:
        ctx.report.note(path, None, "empty file")


def _parse_capture(path, buckets, states, ctx):
    parsed = {kind: _read_bucket(path, kind, bucket, ctx) for kind, bucket in buckets.items()}
    for kind, converter in (("trade", _trades), ("aggTrade", _agg_trades), ("bookTicker", _book_ticker),
                            ("openInterest", _open_interest), ("markPriceUpdate", _funding),
                            ("forceOrder", _liquidations)):
        if kind in parsed:
            yield from converter(path, *parsed[kind], states, ctx)
    if "depthUpdate" in parsed or "snapshot" in parsed:
        yield from _depth(path, parsed.get("depthUpdate"), parsed.get("snapshot"), states, ctx)


def _by_symbol(table: pa.Table, column: str, lines, local):
    """Split a parsed bucket by symbol: yields (symbol, rows, lines, local)."""
    symbols = table.column(column).to_numpy(zero_copy_only=False)
    for symbol in np.unique(symbols):
        mask = symbols == symbol
        yield str(symbol), table.filter(pa.array(mask)), lines[mask], local[mask]


#: How many of the highest ids seen per stream a duplicate is looked up among. Streams deliver ids
#: in increasing order, so a repeat arrives soon after the original; a repeat of an id older than
#: this many messages would go undetected (and be stored twice).
RECENT_IDS = 1 << 20


class _RecentIds:
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


def _first_occurrences(ids: np.ndarray, recent: _RecentIds, lines, path, ctx) -> np.ndarray:
    """Mask of rows whose id is new (not earlier in the block nor among the recent ids of the
    stream, across files); rejects the repeats."""
    _, first = np.unique(ids, return_index=True)
    keep = np.zeros(ids.size, dtype=bool)
    keep[first] = True
    keep &= ~recent.seen(ids)
    for row in np.flatnonzero(~keep):
        ctx.reject(path, int(lines[row]), "duplicate message", f"id {int(ids[row])} already seen")
    recent.add(ids[keep])
    return keep


def _exchange_ts(table: pa.Table, primary: str, fallback: str) -> np.ndarray:
    """Exchange time in ns: ``primary`` (ms) where present, else ``fallback``."""
    column = pc.coalesce(table.column(primary), table.column(fallback))
    return column.to_numpy(zero_copy_only=False).astype(np.int64) * _MS


def _numeric_fields(rows, names, lines, path, ctx):
    """Cast decimal-string fields to float; returns (dict of arrays, mask of fully parsed rows)."""
    values, ok = {}, np.ones(rows.num_rows, dtype=bool)
    for name in names:
        values[name], good = _numbers(rows.column(name), name, lines, path, ctx)
        ok &= good
    return values, ok


def _trade_rows(path, table, lines, local, states, ctx, id_field, state_key):
    for symbol, rows, sym_lines, sym_local in _by_symbol(table, "s", lines, local):
        info = ctx.symbol_info(symbol, path, int(sym_lines[0]))
        ids = rows.column(id_field).to_numpy().astype(np.int64)
        keep = _first_occurrences(ids, states[symbol].seen_ids[state_key], sym_lines, path, ctx)
        if np.any(np.diff(ids[keep]) < 0):
            ctx.report.note(path, None, f"{symbol} {state_key}s out of id order: re-sorted by the store")
        numbers, ok = _numeric_fields(rows, ("p", "q"), sym_lines, path, ctx)
        keep &= ok
        price, qty = numbers["p"][keep], numbers["q"][keep]
        columns = {
            "ts": _exchange_ts(rows, "T", "E")[keep],
            "price": price, "qty": qty,
            "is_buyer_maker": rows.column("m").to_numpy(zero_copy_only=False)[keep],
            "notional": usd_notional(price, qty, info),
            "trade_id": ids[keep],
            "local_ts": sym_local[keep],
        }
        yield symbol, rows, keep, columns


def _trades(path, table, lines, local, states, ctx):
    for symbol, rows, keep, columns in _trade_rows(path, table, lines, local, states, ctx, "t", "trade"):
        kinds = rows.column("X").to_pylist()
        columns["kind"] = np.array([TRADE_KINDS.get(k, TRADE_KIND_OTHER) if k else TRADE_KIND_MARKET
                                    for k in kinds], dtype=np.int8)[keep]
        yield "trades", symbol, _table("trades", columns)


def _agg_trades(path, table, lines, local, states, ctx):
    for symbol, rows, keep, columns in _trade_rows(path, table, lines, local, states, ctx, "a", "aggTrade"):
        columns["first_trade_id"] = pc.fill_null(rows.column("f"), NO_ID).to_numpy()[keep]
        columns["last_trade_id"] = pc.fill_null(rows.column("l"), NO_ID).to_numpy()[keep]
        yield "agg_trades", symbol, _table("agg_trades", columns)


def _book_ticker(path, table, lines, local, states, ctx):
    for symbol, rows, sym_lines, sym_local in _by_symbol(table, "s", lines, local):
        ctx.symbol_info(symbol, path, int(sym_lines[0]))
        ids = rows.column("u").to_numpy().astype(np.int64)
        keep = _first_occurrences(ids, states[symbol].seen_ids["bookTicker"], sym_lines, path, ctx)
        numbers, ok = _numeric_fields(rows, ("b", "B", "a", "A"), sym_lines, path, ctx)
        keep &= ok
        yield "book_ticker", symbol, _table("book_ticker", {
            "ts": _exchange_ts(rows, "T", "E")[keep],
            "bid": numbers["b"][keep], "bid_qty": numbers["B"][keep],
            "ask": numbers["a"][keep], "ask_qty": numbers["A"][keep],
            "update_id": ids[keep], "local_ts": sym_local[keep],
        })


def _open_interest(path, table, lines, local, states, ctx):
    for symbol, rows, sym_lines, sym_local in _by_symbol(table, "symbol", lines, local):
        info = ctx.symbol_info(symbol, path, int(sym_lines[0]))
        oi, ok = _numbers(rows.column("openInterest"), "openInterest", sym_lines, path, ctx)
        value = oi * info["contract_size"] if info["is_inverse"] else np.full(oi.size, np.nan)
        yield "open_interest", symbol, _table("open_interest", {
            "ts": rows.column("time").to_numpy()[ok] * _MS,
            "oi": oi[ok], "oi_value": value[ok], "local_ts": sym_local[ok],
        }, nan_is_null=True)


def _funding(path, table, lines, local, states, ctx):
    for symbol, rows, sym_lines, sym_local in _by_symbol(table, "s", lines, local):
        ctx.symbol_info(symbol, path, int(sym_lines[0]))
        mark, ok = _numbers(rows.column("p"), "p", sym_lines, path, ctx)
        rate_text = pc.if_else(pc.equal(rows.column("r"), ""), None, rows.column("r"))
        rate, rate_ok = _numbers(rate_text, "r", sym_lines, path, ctx)
        ok &= rate_ok
        yield "funding", symbol, _table("funding", {
            "ts": rows.column("E").to_numpy()[ok] * _MS,
            "rate": rate[ok], "mark_price": mark[ok], "local_ts": sym_local[ok],
        }, nan_is_null=True)


def _liquidations(path, table, lines, local, states, ctx):
    order = table.column("o").combine_chunks()
    flat = pa.table({name: order.field(name) for name in ("s", "S", "p", "ap", "z", "q", "T")})
    flat = flat.append_column("E", table.column("E"))
    for symbol, rows, sym_lines, sym_local in _by_symbol(flat, "s", lines, local):
        info = ctx.symbol_info(symbol, path, int(sym_lines[0]))
        numbers, ok = _numeric_fields(rows, ("p", "ap", "z"), sym_lines, path, ctx)
        side_text = rows.column("S").to_numpy(zero_copy_only=False)
        bad_side = ~np.isin(side_text, ["SELL", "BUY"])
        for row in np.flatnonzero(bad_side & ok):
            ctx.reject(path, int(sym_lines[row]), "bad field", f"forceOrder side {side_text[row]!r}")
        ok &= ~bad_side
        avg = numbers["ap"]
        yield "liquidations", symbol, _table("liquidations", {
            "ts": _exchange_ts(rows, "T", "E")[ok],
            "side": np.where(side_text == "SELL", LIQ_SELL, LIQ_BUY).astype(np.int8)[ok],
            "price": numbers["p"][ok], "qty": numbers["z"][ok],
            "notional": usd_notional(avg, numbers["z"], info)[ok],
            "avg_price": avg[ok], "local_ts": sym_local[ok],
        }, nan_is_null=True)


def _table(name: str, columns: dict, nan_is_null: bool = False) -> pa.Table:
    schema = TABLES[name].schema
    arrays = [pa.array(columns[field.name], type=field.type, from_pandas=nan_is_null and field.nullable)
              for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


# -- depth -----------------------------------------------------------------------------------------

def _level_rows(levels: pa.ChunkedArray, side: int):
    """Flatten ``[[price, qty], ...]`` lists: returns (message index, side, price, qty) per level."""
    levels = levels.combine_chunks()
    counts = pc.list_value_length(levels).fill_null(0).to_numpy()
    pairs = pc.list_flatten(levels)
    pair_length = pc.list_value_length(pairs).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(pairs)
    message = np.repeat(np.arange(len(levels)), counts)
    return message, np.full(message.size, side, dtype=np.int8), values, pair_length


def _diff_levels(path, rows, lines, ctx, bid_field, ask_field):
    """All levels of depth messages as parallel arrays sorted by message, plus an ok mask per message."""
    parts = [_level_rows(rows.column(bid_field), SIDE_BID), _level_rows(rows.column(ask_field), SIDE_ASK)]
    message = np.concatenate([p[0] for p in parts])
    side = np.concatenate([p[1] for p in parts])
    pair_length = np.concatenate([p[3] for p in parts])
    values = pa.concat_arrays([p[2] for p in parts]) if message.size else pa.array([], _S)
    ok = np.ones(rows.num_rows, dtype=bool)
    if np.any(pair_length != 2):
        for msg in np.unique(message[pair_length != 2]):
            ctx.reject(path, int(lines[msg]), "bad field", "depth level is not a [price, qty] pair")
            ok[msg] = False
        good = pair_length == 2
        values = pc.list_flatten(pa.ListArray.from_arrays(
            np.concatenate([[0], np.cumsum(pair_length)]).astype(np.int32), values).filter(pa.array(good)))
        message, side = message[good], side[good]
    numbers, good = _numbers(values, "level", np.repeat(lines[message], 2), path, ctx)
    good = good[0::2] & good[1::2]
    for msg in np.unique(message[~good]):
        ok[msg] = False
    price, qty = numbers[0::2], numbers[1::2]
    order = np.argsort(message, kind="stable")
    return message[order], side[order], price[order], qty[order], ok


def _depth(path, diffs, snapshots, states, ctx):
    """Depth diffs and snapshots of one file, per symbol, chain-checked, as ``depth_diff`` rows."""
    diff_tables: dict[str, list] = defaultdict(list)
    if diffs is not None:
        for symbol, rows, sym_lines, sym_local in _by_symbol(*diffs[:1], "s", *diffs[1:]):
            ctx.symbol_info(symbol, path, int(sym_lines[0]))
            diff_tables[symbol].append(_diff_messages(path, symbol, rows, sym_lines, sym_local,
                                                      states[symbol], ctx))
    if snapshots is not None:
        for symbol, table in _snapshot_messages(path, snapshots, diffs, states, ctx):
            diff_tables[symbol].append(table)
    for symbol, tables in diff_tables.items():
        yield "depth_diff", symbol, pa.concat_tables(tables)


def _diff_messages(path, symbol, rows, lines, local, state: _SymbolState, ctx) -> pa.Table:
    first_id = rows.column("U").to_numpy()
    last_id = rows.column("u").to_numpy()
    prev_id = rows.column("pu").to_numpy()
    keep = np.ones(rows.num_rows, dtype=bool)
    last = state.last_u
    for row in range(rows.num_rows):     # the chain check is sequential by nature
        u = int(last_id[row])
        if last is not None and u <= last:
            reason = "duplicate message" if u == last else "out-of-order depth update"
            ctx.reject(path, int(lines[row]), reason, f"{symbol} u={u} after u={last}")
            keep[row] = False
            continue
        if last is not None and int(prev_id[row]) != last:
            ctx.report.gap(symbol, path, int(lines[row]), int(rows.column("T")[row].as_py() or 0) * _MS,
                           last, int(prev_id[row]))
        last = u
    state.last_u = last
    message, side, price, qty, ok = _diff_levels(path, rows, lines, ctx, "b", "a")
    keep &= ok
    return _depth_rows(message, side, price, qty, keep, ts=_exchange_ts(rows, "T", "E"),
                       first=first_id, last=last_id, prev=prev_id, local=local, snapshot=False)


def _depth_rows(message, side, price, qty, keep, ts, first, last, prev, local, snapshot) -> pa.Table:
    """``depth_diff`` rows for the kept messages; a kept message with no level gets a marker row."""
    level_kept = keep[message]
    message, side, price, qty = message[level_kept], side[level_kept], price[level_kept], qty[level_kept]
    has_levels = np.zeros(keep.size, dtype=bool)
    has_levels[message] = True
    empty = np.flatnonzero(keep & ~has_levels)
    if empty.size:
        order = np.argsort(np.concatenate([message, empty]), kind="stable")
        message = np.concatenate([message, empty])[order]
        side = np.concatenate([side, np.full(empty.size, SIDE_EMPTY_MESSAGE, np.int8)])[order]
        price = np.concatenate([price, np.full(empty.size, np.nan)])[order]
        qty = np.concatenate([qty, np.full(empty.size, np.nan)])[order]
    return _table("depth_diff", {
        "ts": ts[message], "seq_first": first[message], "seq_last": last[message],
        "seq_prev": prev[message], "side": side, "price": price, "qty": qty,
        "is_snapshot": np.full(message.size, snapshot), "local_ts": local[message],
    })


def _snapshot_messages(path, snapshots, diffs, states, ctx):
    """REST snapshots as ``depth_diff`` rows with ``is_snapshot`` set, each with its symbol."""
    rows, lines, local = snapshots
    named = rows.column("symbol").to_pylist()
    update_ids = rows.column("lastUpdateId").to_numpy()
    for row in range(rows.num_rows):
        symbol = named[row] or _snapshot_symbol(int(update_ids[row]), diffs, states)
        if symbol is None:
            ctx.reject(path, int(lines[row]), "snapshot without symbol",
                       f"lastUpdateId {int(update_ids[row])} continues no diff stream in the file")
            continue
        ctx.symbol_info(symbol, path, int(lines[row]))
        one = rows.slice(row, 1)
        message, side, price, qty, ok = _diff_levels(path, one, lines[row:row + 1], ctx, "bids", "asks")
        ids = np.array([update_ids[row]])
        yield symbol, _depth_rows(message, side, price, qty, ok, ts=_exchange_ts(one, "T", "E"),
                                  first=ids, last=ids, prev=np.array([NO_ID]), local=local[row:row + 1],
                                  snapshot=True)


def _snapshot_symbol(update_id: int, diffs, states) -> str | None:
    """The symbol of a snapshot that names none (USD-M REST snapshots do not)."""
    if diffs is None:
        return next(iter(states)) if len(states) == 1 else None
    rows = diffs[0]
    symbols = rows.column("s").to_numpy(zero_copy_only=False)
    if np.unique(symbols).size == 1:
        return str(symbols[0])
    covers = ((rows.column("U").to_numpy() <= update_id) & (rows.column("u").to_numpy() >= update_id)) | (
        rows.column("pu").to_numpy() == update_id)
    candidates = np.unique(symbols[covers])
    return str(candidates[0]) if candidates.size == 1 else None
