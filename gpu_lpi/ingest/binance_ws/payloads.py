"""Parsing the buckets of payloads: pyarrow's JSON reader in bulk, a per-line path for the rest.

Each bucket (one message kind) is parsed in one call against an explicit schema. Only when pyarrow
refuses a bucket are its payloads checked one by one (with orjson, then pyarrow on the payload
alone) to name the bad lines, which are rejected. Then every message must have its required fields
and an exchange time, ids that are integers >= 0 (``pu`` may also be -1: Binance sends it for "no
previous update", as on COIN-M partial books; it is the store's "no id"), and, under a combined-stream
wrapper, the symbol of its stream name (``btcusdt@trade`` carries ``"s":"BTCUSDT"``, compared without
case). Local and exchange stamps then go through the one time-unit rule of
:mod:`gpu_lpi.ingest.timestamps`, with one unit per file for each (:func:`times_to_ns`). Decimal
strings (prices, quantities) become float64 here; book levels ``[[price, qty], ...]`` are flattened
here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from gpu_lpi.ingest.csv_tables import NUMBER_PATTERNS
from gpu_lpi.ingest.timestamps import BAD_UNIT, OTHER_UNIT, FileUnit
from gpu_lpi.schema import NO_ID

_S, _I64, _F64, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_LEVELS = pa.list_(pa.list_(_S))
_DEPTH = pa.schema({"E": _I64, "T": _I64, "s": _S, "U": _I64, "u": _I64, "pu": _I64, "b": _LEVELS, "a": _LEVELS})


@dataclass(frozen=True)
class Payload:
    """How one message kind is read: its schema, the fields it must have, its exchange time (the
    first present of ``times``; ``o.T`` is field ``T`` of struct ``o``), its symbol field (checked
    against the stream name) and its id fields with the lowest value each may take."""

    schema: pa.Schema
    required: tuple[str, ...]
    times: tuple[str, ...]
    symbol: str
    ids: tuple[tuple[str, int], ...] = ()


PAYLOADS: dict[str, Payload] = {
    "trade": Payload(pa.schema({"E": _I64, "T": _I64, "s": _S, "t": _I64, "p": _S, "q": _S, "X": _S, "m": _BOOL}),
                     ("s", "t", "p", "q", "m"), ("T", "E"), "s", (("t", 0),)),
    "aggTrade": Payload(pa.schema({"E": _I64, "T": _I64, "s": _S, "a": _I64, "p": _S, "q": _S, "f": _I64,
                                   "l": _I64, "m": _BOOL}), ("s", "a", "p", "q", "m"), ("T", "E"), "s",
                        (("a", 0), ("f", 0), ("l", 0))),
    "bookTicker": Payload(pa.schema({"u": _I64, "E": _I64, "T": _I64, "s": _S, "b": _S, "B": _S, "a": _S,
                                     "A": _S}), ("u", "s", "b", "B", "a", "A"), ("T", "E"), "s", (("u", 0),)),
    "depthUpdate": Payload(_DEPTH, ("s", "U", "u", "pu", "b", "a"), ("T", "E"), "s",
                           (("U", 0), ("u", 0), ("pu", NO_ID))),
    "partialDepth": Payload(_DEPTH, ("s", "u", "b", "a"), ("T", "E"), "s", (("u", 0),)),
    "snapshot": Payload(pa.schema({"lastUpdateId": _I64, "E": _I64, "T": _I64, "symbol": _S, "bids": _LEVELS,
                                   "asks": _LEVELS}), ("lastUpdateId", "bids", "asks"), ("T", "E"), "symbol",
                        (("lastUpdateId", 0),)),
    "openInterest": Payload(pa.schema({"symbol": _S, "openInterest": _S, "time": _I64}),
                            ("symbol", "openInterest"), ("time",), "symbol"),
    "markPriceUpdate": Payload(pa.schema({"E": _I64, "s": _S, "p": _S, "r": _S}), ("s", "p"), ("E",), "s"),
    "forceOrder": Payload(pa.schema({"E": _I64, "o": pa.struct({"s": _S, "S": _S, "p": _S, "ap": _S,
                                                                 "z": _S, "q": _S, "T": _I64})}),
                          ("o", "o.s", "o.S", "o.p", "o.z"), ("o.T", "E"), "o.s"),
}


@dataclass
class Parsed:
    """The good messages of one bucket: payload table and, per row, line, local and exchange time
    (as written until :func:`times_to_ns`, then in ns)."""

    table: pa.Table
    lines: np.ndarray
    local: np.ndarray
    ts: np.ndarray

    def filter(self, keep: np.ndarray) -> "Parsed":
        return Parsed(self.table.filter(pa.array(keep)), self.lines[keep], self.local[keep], self.ts[keep])


def field_of(table: pa.Table, name: str) -> pa.ChunkedArray:
    """Column ``name`` of a payload table; ``a.b`` is field ``b`` of struct column ``a``."""
    head, _, tail = name.partition(".")
    column = table.column(head)
    return pa.chunked_array([chunk.field(tail) for chunk in column.chunks], column.type.field(tail).type) \
        if tail else column


def read_bucket(path: Path, kind: str, bucket, ctx) -> Parsed:
    """Parse one bucket in bulk; reject what is not valid JSON, of the wrong type, lacking a required
    field or an exchange time, with a negative id or another symbol than its stream's; return the
    good messages (times as written)."""
    payload = PAYLOADS[kind]
    try:
        table = _parse_json(bucket.payloads, payload.schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        bucket.keep(_find_bad_json(path, kind, bucket, ctx))
        table = _parse_json(bucket.payloads, payload.schema)
    lines = np.asarray(bucket.lines, dtype=np.int64)
    rejected = np.zeros(table.num_rows, dtype=bool)

    def reject(bad: np.ndarray, reason: str, detail) -> None:
        nonlocal rejected
        bad = bad & ~rejected
        at = np.flatnonzero(bad)
        ctx.reject_many(path, lines[at], reason, lambda i: detail(at[i]))
        rejected |= bad

    for name in payload.required:
        reject(field_of(table, name).is_null().to_numpy(zero_copy_only=False), "missing field",
               lambda row, name=name: f"{kind} message lacks {name!r}")
    times = [field_of(table, name) for name in payload.times]
    exchange = pc.coalesce(*times) if len(times) > 1 else times[0]
    reject(exchange.is_null().to_numpy(zero_copy_only=False), "missing field",
           lambda row: f"{kind} message lacks {' and '.join(map(repr, payload.times))}")
    for name, lowest in payload.ids:
        ids = pc.fill_null(field_of(table, name), lowest).to_numpy()
        reject(ids < lowest, "negative id", lambda row, name=name, ids=ids: f"{kind} field {name!r} = {int(ids[row])}")
    stream_symbols = _stream_symbols(bucket.streams)
    if stream_symbols is not None:
        symbols = field_of(table, payload.symbol)
        disagree = pc.fill_null(pc.not_equal(stream_symbols, symbols), False).to_numpy(zero_copy_only=False)
        reject(disagree, "stream and symbol disagree", lambda row: (
            f"stream symbol {stream_symbols[int(row)].as_py()!r}, message symbol {symbols[int(row)].as_py()!r}"))
    parsed = Parsed(table, lines, np.asarray(bucket.local, dtype=np.int64), pc.fill_null(exchange, 0).to_numpy())
    return parsed.filter(~rejected) if rejected.any() else parsed


def _stream_symbols(streams: list[bytes | None]) -> pa.Array | None:
    """The symbols of the stream names (``btcusdt`` of ``btcusdt@trade``) upper-cased, null for
    messages without a stream; ``None`` when no message has one."""
    names = pa.array(streams, pa.binary())
    if names.null_count == len(names):
        return None
    distinct = pc.unique(names)          # a handful per block: decoded one by one
    upper = pa.array([None if name is None else name.decode("utf-8", "replace").upper()
                      for name in distinct.to_pylist()], pa.string())
    return upper.take(pc.index_in(names, value_set=distinct))


class FileUnits:
    """The units of a capture file's local and exchange stamps (:class:`~gpu_lpi.ingest.timestamps.FileUnit`)."""

    def __init__(self):
        self.local, self.exchange = FileUnit(), FileUnit()


def times_to_ns(path: Path, parsed: dict[str, Parsed], units: FileUnits, ctx) -> dict[str, Parsed]:
    """The messages of one block (all kinds) with their local and exchange stamps in ns.

    Each of the two has one unit per file: that of the first stamp of the file (by line, whatever
    its kind) of a known digit count. A stamp of no known digit count, or of another unit than the
    file's, is rejected with its line.
    """
    lines = np.concatenate([p.lines for p in parsed.values()]) if parsed else np.empty(0, np.int64)
    for unit, name in ((units.exchange, "ts"), (units.local, "local")):
        unit.settle(np.concatenate([getattr(p, name) for p in parsed.values()]) if parsed else [], lines)
    converted = {}
    for kind, p in parsed.items():
        rejected = np.zeros(p.lines.size, dtype=bool)
        stamps = {}
        exchange_fields = f"{kind} {'/'.join(PAYLOADS[kind].times)}"
        for unit, name, what, shown in ((units.exchange, "ts", "exchange time", exchange_fields),
                                        (units.local, "local", "local timestamp", "local timestamp")):
            raw = getattr(p, name)
            stamps[name], bad_digits, other_unit = unit.to_ns(raw)
            for bad, reason, suffix in ((bad_digits, f"{what} {BAD_UNIT}", ""),
                                        (other_unit, f"{what} {OTHER_UNIT}", f" (the file's unit is {unit.name})")):
                at = np.flatnonzero(bad & ~rejected)
                ctx.reject_many(path, p.lines[at], reason, lambda i, raw=raw, at=at, shown=shown, suffix=suffix:
                                f"{shown} {int(raw[at[i]])}{suffix}")
                rejected |= bad
        p = Parsed(p.table, p.lines, stamps["local"], stamps["ts"])
        converted[kind] = p.filter(~rejected) if rejected.any() else p
    return converted


def _parse_json(payloads: list[bytes], schema: pa.Schema) -> pa.Table:
    """The payloads (JSON objects, one per line) as a table; ``ArrowInvalid`` unless one row each."""
    if not payloads:
        return schema.empty_table()
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    table = pajson.read_json(io.BytesIO(b"\n".join(payloads)), parse_options=options,
                             read_options=pajson.ReadOptions(block_size=8 << 20))
    if table.num_rows != len(payloads):
        raise pa.ArrowInvalid(f"{table.num_rows} rows from {len(payloads)} payloads")
    return table


def _find_bad_json(path, kind: str, bucket, ctx) -> np.ndarray:
    """Slow path: check each payload of a bucket pyarrow refused; reject the bad ones."""
    schema = PAYLOADS[kind].schema
    keep = np.ones(len(bucket.payloads), dtype=bool)
    for row, payload in enumerate(bucket.payloads):
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            ctx.reject(path, bucket.lines[row], "not valid JSON", payload[:60].decode("utf-8", "replace"))
            keep[row] = False
            continue
        if not isinstance(message, dict):          # never handed to pyarrow (it crashes on some)
            ctx.reject(path, bucket.lines[row], "payload is not a JSON object", payload[:40].decode("utf-8", "replace"))
            keep[row] = False
            continue
        try:
            _parse_json([payload], schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            ctx.reject(path, bucket.lines[row], "field of the wrong type", f"{kind}: {err}")
            keep[row] = False
    return keep


def decimals(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Decimal strings to float64 (null where absent); returns (values, mask of the malformed ones,
    which are null too)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    try:
        return pc.cast(column, pa.float64()), np.zeros(len(column), dtype=bool)
    except pa.ArrowInvalid:
        pass
    valid = pc.fill_null(pc.match_substring_regex(column, NUMBER_PATTERNS["float"]), True)
    values = pc.cast(pc.if_else(valid, column, pa.scalar(None, pa.string())), pa.float64())
    return values, ~valid.to_numpy(zero_copy_only=False)


def decimal_fields(table: pa.Table, names: tuple[str, ...], lines: np.ndarray, path, ctx) -> tuple[dict, np.ndarray]:
    """Fields ``names`` of a payload table as float64 arrays (null where absent); returns them and
    the mask of rows whose fields all parsed. A row with a malformed number is rejected once ("bad
    number"), naming its first bad field."""
    values, bad_field = {}, np.full(table.num_rows, -1)
    for index, name in enumerate(names):
        values[name], malformed = decimals(field_of(table, name))
        bad_field[malformed & (bad_field < 0)] = index
    bad = np.flatnonzero(bad_field >= 0)
    ctx.reject_many(path, lines[bad], "bad number", lambda i: (
        f"field {names[bad_field[bad[i]]]!r} = {field_of(table, names[bad_field[bad[i]]])[int(bad[i])].as_py()!r}"))
    return values, bad_field < 0


@dataclass
class Levels:
    """The book levels ``[[price, qty], ...]`` of some messages, flattened in message order."""

    message: np.ndarray     # index of the level's message
    position: np.ndarray    # its position in the message's list (0 = best)
    price: np.ndarray
    qty: np.ndarray
    ok: np.ndarray          # per message: every level is a pair of numbers


def book_levels(levels: pa.ChunkedArray, lines: np.ndarray, path, ctx) -> Levels:
    """Flatten one side's level lists; a message with a level that is not a pair of decimal strings
    is rejected once (``ok`` false)."""
    levels = levels.combine_chunks()
    counts = pc.fill_null(pc.list_value_length(levels), 0).to_numpy()
    message = np.repeat(np.arange(len(levels)), counts)
    position = np.arange(message.size) - np.repeat(np.cumsum(counts) - counts, counts)
    pairs = pc.list_flatten(levels)
    pair_ok = pc.fill_null(pc.list_value_length(pairs), 0).to_numpy() == 2
    ok = np.ones(len(levels), dtype=bool)
    not_pairs = np.unique(message[~pair_ok])
    ctx.reject_many(path, lines[not_pairs], "bad field", lambda i: "depth level is not a [price, qty] pair")
    ok[not_pairs] = False
    keep = ok[message]
    message, position = message[keep], position[keep]
    values, malformed = decimals(pc.list_flatten(pairs.filter(pa.array(keep)) if not keep.all() else pairs))
    bad_levels = malformed[0::2] | malformed[1::2]
    bad = np.unique(message[bad_levels])
    ctx.reject_many(path, lines[bad], "bad number", lambda i: "depth level price or quantity is not a number")
    ok[bad] = False
    values = values.to_numpy(zero_copy_only=False)
    return Levels(message, position, values[0::2], values[1::2], ok)
