"""Parsing the buckets of payloads: pyarrow's JSON reader in bulk, a per-line path for the rest.

Each bucket (one message kind) is parsed in one call against an explicit schema. Only when pyarrow
refuses a bucket are its payloads checked one by one (with orjson, then pyarrow on the payload
alone) to name the bad lines, which are rejected. Then every message must have its required fields
and an exchange time; local and exchange stamps go through the one time-unit rule
(:func:`gpu_lpi.ingest.timestamps.epoch_to_ns`). Decimal strings (prices, quantities) become float64
here; book levels ``[[price, qty], ...]`` are flattened here.
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
from gpu_lpi.ingest.timestamps import BAD_UNIT, epoch_to_ns

_S, _I64, _F64, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_LEVELS = pa.list_(pa.list_(_S))
_DEPTH = pa.schema({"E": _I64, "T": _I64, "s": _S, "U": _I64, "u": _I64, "pu": _I64, "b": _LEVELS, "a": _LEVELS})


@dataclass(frozen=True)
class Payload:
    """How one message kind is read: its schema, the fields it must have, and its exchange time
    (the first present of ``times``; ``o.T`` is field ``T`` of struct ``o``)."""

    schema: pa.Schema
    required: tuple[str, ...]
    times: tuple[str, ...]


PAYLOADS: dict[str, Payload] = {
    "trade": Payload(pa.schema({"E": _I64, "T": _I64, "s": _S, "t": _I64, "p": _S, "q": _S, "X": _S, "m": _BOOL}),
                     ("s", "t", "p", "q", "m"), ("T", "E")),
    "aggTrade": Payload(pa.schema({"E": _I64, "T": _I64, "s": _S, "a": _I64, "p": _S, "q": _S, "f": _I64,
                                   "l": _I64, "m": _BOOL}), ("s", "a", "p", "q", "m"), ("T", "E")),
    "bookTicker": Payload(pa.schema({"u": _I64, "E": _I64, "T": _I64, "s": _S, "b": _S, "B": _S, "a": _S,
                                     "A": _S}), ("u", "s", "b", "B", "a", "A"), ("T", "E")),
    "depthUpdate": Payload(_DEPTH, ("s", "U", "u", "pu", "b", "a"), ("T", "E")),
    "partialDepth": Payload(_DEPTH, ("s", "u", "b", "a"), ("T", "E")),
    "snapshot": Payload(pa.schema({"lastUpdateId": _I64, "E": _I64, "T": _I64, "symbol": _S, "bids": _LEVELS,
                                   "asks": _LEVELS}), ("lastUpdateId", "bids", "asks"), ("T", "E")),
    "openInterest": Payload(pa.schema({"symbol": _S, "openInterest": _S, "time": _I64}),
                            ("symbol", "openInterest"), ("time",)),
    "markPriceUpdate": Payload(pa.schema({"E": _I64, "s": _S, "p": _S, "r": _S}), ("s", "p"), ("E",)),
    "forceOrder": Payload(pa.schema({"E": _I64, "o": pa.struct({"s": _S, "S": _S, "p": _S, "ap": _S,
                                                                 "z": _S, "q": _S, "T": _I64})}),
                          ("o", "o.s", "o.S", "o.p", "o.z"), ("o.T", "E")),
}


@dataclass
class Parsed:
    """The good messages of one bucket: payload table and, per row, line, local and exchange time (ns)."""

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
    field or an exchange time, or stamped in no known unit; return the good messages."""
    payload = PAYLOADS[kind]
    lines = np.asarray(bucket.lines, dtype=np.int64)
    local_raw = np.asarray(bucket.local, dtype=np.int64)
    try:
        table = _parse_json(bucket.payloads, payload.schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        keep = _find_bad_json(path, kind, bucket, ctx)
        bucket.payloads = [p for p, k in zip(bucket.payloads, keep) if k]
        lines, local_raw = lines[keep], local_raw[keep]
        table = _parse_json(bucket.payloads, payload.schema)
    rejected = np.zeros(table.num_rows, dtype=bool)
    for name in payload.required:
        missing = field_of(table, name).is_null().to_numpy(zero_copy_only=False) & ~rejected
        ctx.reject_many(path, lines[missing], "missing field", lambda i, name=name: f"{kind} message lacks {name!r}")
        rejected |= missing
    times = [field_of(table, name) for name in payload.times]
    exchange = pc.coalesce(*times) if len(times) > 1 else times[0]
    missing = exchange.is_null().to_numpy(zero_copy_only=False) & ~rejected
    ctx.reject_many(path, lines[missing], "missing field",
                    lambda i: f"{kind} message lacks {' and '.join(map(repr, payload.times))}")
    rejected |= missing
    exchange = pc.fill_null(exchange, 0).to_numpy()
    ts, bad = epoch_to_ns(exchange)
    rejected |= _reject_units(path, lines, bad & ~rejected, exchange, f"exchange time {BAD_UNIT}",
                              f"{kind} {'/'.join(payload.times)}", ctx)
    local, bad = epoch_to_ns(local_raw)
    rejected |= _reject_units(path, lines, bad & ~rejected, local_raw, f"local timestamp {BAD_UNIT}",
                              "local timestamp", ctx)
    parsed = Parsed(table, lines, local, ts)
    return parsed.filter(~rejected) if rejected.any() else parsed


def _reject_units(path, lines, bad: np.ndarray, raw: np.ndarray, reason: str, what: str, ctx) -> np.ndarray:
    """Reject the stamps of no known unit; returns ``bad``."""
    at = np.flatnonzero(bad)
    ctx.reject_many(path, lines[at], reason, lambda i: f"{what} {int(raw[at[i]])}")
    return bad


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
