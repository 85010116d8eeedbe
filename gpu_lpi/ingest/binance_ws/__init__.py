"""Binance futures websocket captures: ``<local_ts> <json>`` lines (``--format binance-ws``).

Accepted messages (combined-stream ``{"stream":..,"data":..}`` wrappers or bare payloads, USD-M and
COIN-M): ``trade``, ``aggTrade``, ``bookTicker``, ``depthUpdate`` (diff streams ``@depth``,
``@depth@0ms/100ms/250ms/500ms``), partial books (``@depth5/10/20``, any speed), REST depth snapshots
(``{"lastUpdateId":..}``), REST open-interest polls (``{"symbol":..,"openInterest":..,"time":..}``),
``markPriceUpdate`` (also ``!markPrice@arr`` arrays) and ``forceOrder``.

How it is fast: a capture is read a bounded block of lines at a time; one compiled pass of cheap byte
operations sorts a block's lines into one bucket per message kind (:mod:`.scan`); each bucket is
then parsed in bulk by pyarrow's JSON reader against an explicit schema and converted with
vectorized casts (:mod:`.payloads`, :mod:`.streams`, :mod:`.depth`). Only when pyarrow rejects a
bucket are its lines checked one by one (with orjson) to name the bad lines.

Rules (each finding is counted in the ingest report with file and line):

* a line that is not ``<integer> <json>`` is rejected ("malformed line"), a payload that is not JSON
  is rejected ("not valid JSON"), one that is not a JSON object ("payload is not a JSON object":
  ``null``, numbers, strings; arrays outside an all-market ``!…@arr`` stream), a combined stream the
  reader does not read is rejected by its name ("unsupported stream", e.g. ``btcusdt@kline_1m``), a
  bare message of another type is rejected ("unknown message type"), a message lacking a required
  field or an exchange time is rejected ("missing field");
* local and exchange stamps are integers of 10, 13, 16 or 19 digits (s, ms, µs, ns), stored in ns;
  each has one unit per file, that of its first stamp in the file (:mod:`gpu_lpi.ingest.timestamps`):
  a stamp of another unit is rejected ("… in another unit than the rest of the file");
* ids (trade ``t``, aggTrade ``a``/``f``/``l``, bookTicker ``u``, depth ``U``/``u``, snapshot
  ``lastUpdateId``) are integers >= 0, and ``pu`` >= -1 ("negative id"); a message under a
  combined-stream wrapper names the symbol of its stream ("stream and symbol disagree");
* every row meets the value rules of :mod:`gpu_lpi.ingest.value_rules` (``NaN``, ``inf`` and
  ``1e400`` in a number are rejected there);
* a trade, aggregate trade, book-ticker or partial-book update whose id was already seen for that
  symbol is rejected ("duplicate message"); trades that arrive out of id order are kept (the store
  sorts them);
* partial books are stored as top-N snapshots in ``book_levels`` (one row per level per message),
  never as diffs. A bare ``depthUpdate`` (no wrapper, so no stream name) is taken as a diff;
* depth diffs are chain-checked per symbol across files (:mod:`.depth`); covered spans per symbol
  (:mod:`.spans`) are recorded with ``ctx.cover`` and reset the chain.

Files are read in capture order (:func:`capture_order`): by the local stamp of their first line, ties
by file name, so that ``part9`` comes before ``part10`` and a capture's halves join whatever they are
called.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from gpu_lpi.ingest import value_rules
from gpu_lpi.ingest.binance_ws import depth, streams
from gpu_lpi.ingest.binance_ws.payloads import FileUnits, read_bucket, times_to_ns
from gpu_lpi.ingest.binance_ws.scan import split_lines
from gpu_lpi.ingest.binance_ws.spans import CaptureSpans
from gpu_lpi.ingest.files import first_line_of, iter_line_blocks, parse_files
from gpu_lpi.ingest.timestamps import epoch_to_ns

#: Converters of the message kinds other than depth diffs and snapshots.
_CONVERTERS = (("trade", streams.trades), ("aggTrade", streams.agg_trades), ("bookTicker", streams.book_tickers),
               ("openInterest", streams.open_interest), ("markPriceUpdate", streams.funding),
               ("forceOrder", streams.liquidations), ("partialDepth", streams.partial_books))


class _SymbolState:
    """Per-symbol ingest state carried across the blocks and files of a capture."""

    def __init__(self):
        self.last_u: int | None = None          # final update id of the last depth diff
        self.chain_span: int | None = None      # the covered span that diff belonged to
        self.seen_ids: dict[str, streams.RecentIds] = defaultdict(streams.RecentIds)
        self.noted: set[tuple[Path, str]] = set()  # (file, stream) already noted as out of id order


def parse(files: list[Path], ctx, progress: bool = False):
    """Yield ``(table, symbol, rows)`` from Binance websocket captures (see the module docstring)."""
    states: dict[str, _SymbolState] = defaultdict(_SymbolState)
    spans = CaptureSpans(ctx)
    yield from parse_files(capture_order(files), progress, lambda path: _parse_file(path, states, spans, ctx))
    spans.close_all()


def capture_order(files: list[Path]) -> list[Path]:
    """``files`` by the local stamp (in ns) of their first non-empty line, ties by name; files whose
    first line has no stamp of a known unit (empty, damaged or of another format) come first, so that
    their problem is met before any work is done."""
    def key(path: Path):
        line = first_line_of(path)
        stamp = line.partition(b" ")[0] if line else b""
        if not stamp.isdigit() or len(stamp) > 19:
            return -1, path.name, str(path)
        ns, bad = epoch_to_ns([int(stamp)])
        return (-1 if bad[0] else int(ns[0])), path.name, str(path)
    return sorted(files, key=key)


def _parse_file(path: Path, states, spans: CaptureSpans, ctx):
    """Parse one capture block by block (memory stays bounded whatever the file's size)."""
    empty = True
    units = FileUnits()
    for first_line, block in iter_line_blocks(path):
        if not block.strip():
            continue
        buckets = split_lines(path, block, ctx, first_line, is_file_start=empty)
        empty = False
        del block
        yield from _parse_block(path, buckets, units, states, spans, ctx)
    if empty:
        ctx.report.empty_file(path)


def _parse_block(path: Path, buckets, units: FileUnits, states, spans: CaptureSpans, ctx):
    """The tick-store rows of one block: converted, value-checked, placed in spans, chain-checked."""
    parsed = times_to_ns(path, {kind: read_bucket(path, kind, bucket, ctx) for kind, bucket in buckets.items()},
                         units, ctx)
    chunks = [chunk for kind, convert in _CONVERTERS if kind in parsed
              for chunk in convert(path, parsed[kind], states, ctx)]
    diff_start = len(chunks)
    if "depthUpdate" in parsed:
        chunks.extend(depth.diffs(path, parsed["depthUpdate"], states, ctx))
    diff_stop = len(chunks)
    if "snapshot" in parsed:
        chunks.extend(depth.snapshots(path, parsed["snapshot"], parsed.get("depthUpdate"), states, ctx))
    checked = [_value_checked(path, *chunk, ctx) for chunk in chunks]
    span_of = _spans_of(path, checked, spans)
    for index, (table, symbol, rows, lines) in enumerate(checked):
        if diff_start <= index < diff_stop:
            rows, lines = depth.chain_checked(path, symbol, rows, lines, span_of[index], states[symbol], ctx)
        yield table, symbol, rows


def _value_checked(path: Path, table: str, symbol: str, rows: pa.Table, lines: np.ndarray, ctx):
    rejected = value_rules.rejected_rows(table, rows, path, lines, ctx)
    if rejected is None:
        return table, symbol, rows, lines
    return table, symbol, rows.filter(pa.array(~rejected)), lines[~rejected]


def _spans_of(path: Path, chunks, spans: CaptureSpans) -> list[np.ndarray]:
    """The covered span of every row of every chunk (the chunks of a symbol placed together)."""
    by_symbol: dict[str, list[int]] = defaultdict(list)
    for index, (_, symbol, _, _) in enumerate(chunks):
        by_symbol[symbol].append(index)
    span_of: list[np.ndarray] = [np.empty(0, np.int64)] * len(chunks)
    for symbol, indices in by_symbol.items():
        numbers = spans.add(path, symbol, [(chunks[i][0], chunks[i][3], chunks[i][2].column("ts").to_numpy())
                                           for i in indices])
        for i, number in zip(indices, numbers):
            span_of[i] = number
    return span_of
