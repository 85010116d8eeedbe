"""The time spans a capture covers, per symbol: from its first to its last message.

A symbol's messages (any stream, in exchange time, in line order across files in capture order)
belong to one span until one comes more than :data:`SPAN_BREAK_NS` after the latest before it: a
capture split at midnight is one span, a capture restarted later begins a new one. Each table with a
row of the symbol inside a span is covered over the whole span, first to last message (``[first,
last + 1 ns)``). The depth update-id chain is reset at each new span (:mod:`.depth`).

A span is recorded in pieces that each depend on as few files as possible, so that ingesting again
some of the files of a capture records nothing new: each file's part of the span (its own first to
last message), and between the parts of two consecutive files the time from the last message of the
one to the first of the other (with both files as the source).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: A silence longer than this (exchange time) between two messages of a symbol ends its span.
SPAN_BREAK_NS = 60 * 10**9


@dataclass
class _Span:
    number: int
    end: int                                            # the latest exchange time met (inclusive)
    tables: set = field(default_factory=set)
    parts: list = field(default_factory=list)           # [source, first ts, last ts] per file, in order

    def extend(self, source: str, first: int, last: int) -> None:
        if self.parts and self.parts[-1][0] == source:
            part = self.parts[-1]
            part[1], part[2] = min(part[1], first), max(part[2], last)
        else:
            self.parts.append([source, first, last])
        self.end = max(self.end, last)


def _run_starts(lines: np.ndarray) -> np.ndarray:
    """Indices where a run of equal lines begins."""
    return np.flatnonzero(np.r_[True, lines[1:] != lines[:-1]]) if lines.size else np.empty(0, np.int64)


class CaptureSpans:
    """The open span of each symbol, extended block by block; closed spans go to ``ctx.cover``."""

    def __init__(self, ctx):
        self._ctx = ctx
        self._open: dict[str, _Span] = {}
        self._count: dict[str, int] = {}

    def add(self, path: Path, symbol: str, chunks: list[tuple[str, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Place the rows of one block of ``symbol`` in spans.

        Parameters
        ----------
        path : Path
            The file of the block.
        symbol : str
        chunks : list of (table, lines, ts)
            The rows of each table: their lines and exchange times.

        Returns
        -------
        list of numpy.ndarray
            Per chunk, the span number of each row (increasing through the capture).
        """
        firsts = [_run_starts(c[1]) for c in chunks]          # rows of one message share line and time
        lines = np.concatenate([c[1][f] for c, f in zip(chunks, firsts)])
        ts = np.concatenate([c[2][f] for c, f in zip(chunks, firsts)])
        table_of = np.repeat(np.arange(len(chunks)), [f.size for f in firsts])
        if not lines.size:
            return [np.empty(0, np.int64) for _ in chunks]
        order = np.argsort(lines, kind="stable")
        sorted_ts = ts[order]
        span = self._open.get(symbol)
        latest_before = np.maximum.accumulate(np.r_[span.end if span else sorted_ts[0], sorted_ts])[:-1]
        breaks = sorted_ts > latest_before + SPAN_BREAK_NS
        if span is None:
            breaks[0] = True
        segment = np.cumsum(breaks)             # 0: the open span continues
        number = np.empty(lines.size, np.int64)
        bounds = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1], True])
        for first, stop in zip(bounds[:-1], bounds[1:]):
            if segment[first] > 0:
                span = self._begin(symbol)
            seg_ts = sorted_ts[first:stop]
            span.extend(str(path), int(seg_ts.min()), int(seg_ts.max()))
            span.tables.update(chunks[t][0] for t in np.unique(table_of[order[first:stop]]))
            number[order[first:stop]] = span.number
        per_chunk = np.split(number, np.cumsum([f.size for f in firsts])[:-1])
        return [np.repeat(n, np.diff(np.r_[f, c[1].size])) for n, f, c in zip(per_chunk, firsts, chunks)]

    def _begin(self, symbol: str) -> _Span:
        if symbol in self._open:
            self._close(symbol, self._open[symbol])
        self._count[symbol] = self._count.get(symbol, 0) + 1
        span = _Span(self._count[symbol], np.iinfo(np.int64).min)
        self._open[symbol] = span
        return span

    def _close(self, symbol: str, span: _Span) -> None:
        pieces = [(first, last + 1, source) for source, first, last in span.parts]
        pieces += [(before[2] + 1, after[1], f"{before[0]} + {after[0]}")
                   for before, after in zip(span.parts, span.parts[1:])]
        for table in sorted(span.tables):
            for start, end, source in pieces:
                self._ctx.cover(table, symbol, start, end, source)

    def close_all(self) -> None:
        """Close every open span (at the end of the capture)."""
        for symbol, span in self._open.items():
            self._close(symbol, span)
        self._open.clear()
