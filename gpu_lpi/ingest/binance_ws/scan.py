"""Sorting the lines of a capture block into buckets of payloads by message kind.

One compiled pass over the bytes finds, for every line, its number, its local stamp and, for a
combined-stream line ``{"stream":"<symbol>@<type>","data":{...}}``, the kind of message its stream
type carries (looked up in :data:`STREAM_TYPES`) and where its ``data`` object lies. Lines the pass
cannot classify cheaply (bare payloads: REST snapshots and polls, ``/ws`` messages; all-market
``!...`` streams; a ``data`` member that is not an object) go through :func:`_classify_one`, which
parses the line with orjson. Only JSON objects ever reach a bucket (pyarrow's JSON reader crashes
on a ``null`` row).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson

from gpu_lpi.errors import InputError
from kernels.jit import njit

#: Message kinds, in bucket order. ``partialDepth`` is a top-N book (``@depth5/10/20``): the same
#: payload as a diff, but a snapshot of the first N levels, never a diff.
KINDS = ("trade", "aggTrade", "bookTicker", "depthUpdate", "partialDepth", "markPriceUpdate", "forceOrder")
#: Combined-stream types (the part of the stream name after ``<symbol>@``) that are read, and the
#: kind of message each carries.
STREAM_TYPES: dict[str, str] = {
    "trade": "trade", "aggTrade": "aggTrade", "bookTicker": "bookTicker", "forceOrder": "forceOrder",
    "markPrice": "markPriceUpdate", "markPrice@1s": "markPriceUpdate",
    **{f"depth{speed}": "depthUpdate" for speed in ("", "@0ms", "@100ms", "@250ms", "@500ms")},
    **{f"depth{levels}{speed}": "partialDepth" for levels in (5, 10, 20)
       for speed in ("", "@100ms", "@250ms", "@500ms")},
}
#: All-market streams that are read (their payload is one message or an array of messages).
ALL_MARKET_STREAMS: dict[str, str] = {
    "!markPrice@arr": "markPriceUpdate", "!markPrice@arr@1s": "markPriceUpdate",
    "!forceOrder@arr": "forceOrder", "!bookTicker": "bookTicker",
}
_EVENT_KINDS = {"trade": "trade", "aggTrade": "aggTrade", "bookTicker": "bookTicker",
                "depthUpdate": "depthUpdate", "markPriceUpdate": "markPriceUpdate", "forceOrder": "forceOrder"}

#: Scan results other than a kind index.
_SLOW, _MALFORMED, _UNSUPPORTED = -1, -2, -3

_NAMES = list(STREAM_TYPES)
_NAME_BYTES = np.frombuffer("".join(_NAMES).encode(), dtype=np.uint8)
_NAME_STARTS = np.cumsum([0] + [len(name) for name in _NAMES]).astype(np.int64)
_NAME_KINDS = np.array([KINDS.index(STREAM_TYPES[name]) for name in _NAMES], dtype=np.int64)
_WRAPPER_HEAD = np.frombuffer(b'{"stream":"', dtype=np.uint8)
_WRAPPER_DATA = np.frombuffer(b'","data":', dtype=np.uint8)


class Bucket:
    """Payloads (JSON objects) of one message kind from one block, with their line numbers, local
    stamps and the symbol part of their stream name (``None`` for a bare payload or an all-market
    stream)."""

    __slots__ = ("payloads", "lines", "local", "streams")

    def __init__(self):
        self.payloads: list[bytes] = []
        self.lines: list[int] = []
        self.local: list[int] = []
        self.streams: list[bytes | None] = []

    def add(self, payload: bytes, line: int, stamp: int, stream: bytes | None) -> None:
        self.payloads.append(payload)
        self.lines.append(line)
        self.local.append(stamp)
        self.streams.append(stream)

    def keep(self, mask) -> None:
        """Keep only the payloads where ``mask`` is true."""
        for name in self.__slots__:
            setattr(self, name, [item for item, kept in zip(getattr(self, name), mask) if kept])


@njit
def _matches(buf, at, pattern):
    if at + pattern.size > buf.size:
        return False
    for i in range(pattern.size):
        if buf[at + i] != pattern[i]:
            return False
    return True


@njit
def _stream_kind(buf, start, stop, names, name_starts, name_kinds):
    """Kind index of the stream type ``buf[start:stop]``, or -3 if it is not a known type."""
    length = stop - start
    for k in range(name_kinds.size):
        first = name_starts[k]
        if name_starts[k + 1] - first != length:
            continue
        same = True
        for i in range(length):
            if buf[start + i] != names[first + i]:
                same = False
                break
        if same:
            return name_kinds[k]
    return -3


@njit
def _scan_lines(buf, names, name_starts, name_kinds, head, data_tag):
    """One pass over a block: per non-empty line its number, local stamp, kind and bounds.

    ``kind`` is an index into the kinds for a combined-stream line whose ``data`` object lies in
    ``[start, stop)`` and whose stream name's symbol lies in ``[symbol_start, symbol_stop)``; -1 for
    lines the per-line path must look at (``start`` = payload start, ``stop`` = line end), -2 for
    lines without a valid stamp, -3 for a combined-stream line of a stream type that is not read
    (``[start, stop)`` = the stream name).
    """
    n_lines = 1
    for i in range(buf.size):
        if buf[i] == 10:
            n_lines += 1
    number = np.empty(n_lines, np.int64)
    stamp = np.zeros(n_lines, np.int64)
    kind = np.full(n_lines, -1, np.int64)
    start_at = np.zeros(n_lines, np.int64)
    stop_at = np.empty(n_lines, np.int64)
    symbol_start = np.zeros(n_lines, np.int64)
    symbol_stop = np.zeros(n_lines, np.int64)
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
            number[count], stop_at[count] = line, end
            space = start
            value = 0
            while space < end and 48 <= buf[space] <= 57 and space - start < 19:
                value = value * 10 + (buf[space] - 48)
                space += 1
            if space == start or space >= end or buf[space] != 32:
                kind[count] = -2
            else:
                stamp[count] = value
                start_at[count] = space + 1
                name = space + 1 + head.size
                if _matches(buf, space + 1, head) and name < end and buf[name] != 33 and buf[end - 1] == 125:
                    quote, at = name, -1
                    while quote < end and buf[quote] != 34:
                        if buf[quote] == 64 and at < 0:
                            at = quote
                        quote += 1
                    if quote < end and _matches(buf, quote, data_tag):
                        code = -3
                        if at > 0:
                            code = _stream_kind(buf, at + 1, quote, names, name_starts, name_kinds)
                        data = quote + data_tag.size
                        if code == -3:
                            kind[count], start_at[count], stop_at[count] = -3, name, quote
                        elif data < end - 1 and buf[data] == 123 and buf[end - 2] == 125:
                            kind[count], start_at[count], stop_at[count] = code, data, end - 1
                            symbol_start[count], symbol_stop[count] = name, at
            count += 1
        start = next_start
    return (number[:count], stamp[:count], kind[:count], start_at[:count], stop_at[:count],
            symbol_start[:count], symbol_stop[:count])


def split_lines(path: Path, data: bytes, ctx, first_line: int = 1, is_file_start: bool = True) -> dict[str, Bucket]:
    """Sort the lines of a block of a capture into buckets by message kind; reject the lines that
    are malformed, of an unsupported stream, or not a JSON object.

    Raises
    ------
    InputError
        When the first line of a file is not ``<local_ts> <json>`` (another format).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    number, stamp, kind, start, stop, symbol_start, symbol_stop = _scan_lines(
        buf, _NAME_BYTES, _NAME_STARTS, _NAME_KINDS, _WRAPPER_HEAD, _WRAPPER_DATA)
    number += first_line - 1
    if is_file_start and number.size and kind[0] == _MALFORMED:
        first_end = data.find(b"\n")
        _fail_wrong_format(path, int(number[0]), data[:first_end if first_end >= 0 else len(data)])
    malformed = number[kind == _MALFORMED]
    ctx.reject_many(path, malformed, "malformed line", lambda i: "expected '<local_ts> <json>'")
    unsupported = np.flatnonzero(kind == _UNSUPPORTED)
    ctx.reject_many(path, number[unsupported], "unsupported stream", lambda i: "unsupported stream "
                    f"{data[start[unsupported[i]]:stop[unsupported[i]]].decode('utf-8', 'replace')!r}")
    buckets: dict[str, Bucket] = defaultdict(Bucket)
    for code, name in enumerate(KINDS):
        rows = np.flatnonzero(kind == code)
        if rows.size:
            bucket = buckets[name]
            bucket.payloads.extend(data[s:e] for s, e in zip(start[rows].tolist(), stop[rows].tolist()))
            bucket.lines.extend(number[rows].tolist())
            bucket.local.extend(stamp[rows].tolist())
            bucket.streams.extend(data[s:e] for s, e in zip(symbol_start[rows].tolist(), symbol_stop[rows].tolist()))
    for row in np.flatnonzero(kind == _SLOW):
        _classify_one(path, int(number[row]), int(stamp[row]), data[start[row]:stop[row]], buckets, ctx)
    return buckets


def _classify_one(path: Path, line: int, stamp: int, payload: bytes, buckets, ctx) -> None:
    """The per-line path: parse the line, find its kind, bucket its message(s) or reject it."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        ctx.reject(path, line, "not valid JSON", payload[:60].decode("utf-8", "replace"))
        return
    if isinstance(message, dict) and "stream" in message and "data" in message:
        name = message["stream"]
        kind = stream_kind(name) if isinstance(name, str) else None
        if kind is None:
            ctx.reject(path, line, "unsupported stream", f"unsupported stream {name!r}")
            return
        data = message["data"]
        if isinstance(data, list) and name.startswith("!"):
            _bucket_array(path, line, stamp, data, kind, buckets, ctx)
        else:
            stream = None if name.startswith("!") else name.partition("@")[0].encode()
            _bucket_object(path, line, stamp, data, None, kind, buckets, ctx, stream)
    elif isinstance(message, list):       # a raw `/ws/!markPrice@arr` connection: bare arrays of messages
        _bucket_array(path, line, stamp, message, None, buckets, ctx)
    else:
        _bucket_object(path, line, stamp, message, payload, None, buckets, ctx)


def stream_kind(name: str) -> str | None:
    """The kind of message a combined stream carries, or ``None`` if the stream is not read."""
    if name.startswith("!"):
        return ALL_MARKET_STREAMS.get(name)
    symbol, at, stream_type = name.partition("@")
    return STREAM_TYPES.get(stream_type) if at and symbol else None


def _bucket_array(path, line: int, stamp: int, messages: list, kind: str | None, buckets, ctx) -> None:
    """Bucket every message of an array payload (an all-market stream); an empty array is rejected."""
    if not messages:
        ctx.reject(path, line, "empty message array")
    for message in messages:
        _bucket_object(path, line, stamp, message, None, kind, buckets, ctx)


def _bucket_object(path, line: int, stamp: int, message, payload: bytes | None, kind: str | None, buckets, ctx,
                   stream: bytes | None = None) -> None:
    """Bucket one message (a parsed JSON value) under ``kind``, or under the kind its content names;
    ``stream`` is the symbol part of its stream name, if any."""
    if not isinstance(message, dict):
        ctx.reject(path, line, "payload is not a JSON object",
                   f"got {type(message).__name__} {orjson.dumps(message)[:40].decode('utf-8', 'replace')}")
        return
    if kind is None:
        kind = _content_kind(message)
        if kind is None:
            ctx.reject(path, line, "unknown message type", f"event type {message.get('e')!r}")
            return
    buckets[kind].add(payload if payload is not None else orjson.dumps(message), line, stamp, stream)


def _content_kind(message: dict) -> str | None:
    """Kind of a bare message from its fields (``e``, or the REST snapshot / poll fields)."""
    if "e" in message:
        return _EVENT_KINDS.get(message["e"])
    if "lastUpdateId" in message:
        return "snapshot"
    if "openInterest" in message:
        return "openInterest"
    return None


def _fail_wrong_format(path: Path, number: int, line: bytes) -> None:
    text = line[:80].decode("utf-8", "replace")
    hint = ""
    if text.startswith("exchange,") or text.count(",") >= 4:
        hint = " (this looks like a CSV file: try --format binance-archive or --format tardis)"
    raise InputError(path, number, f"not a binance-ws capture: expected '<local_ts> <json>' lines, "
                     f"got {text!r}{hint}")
