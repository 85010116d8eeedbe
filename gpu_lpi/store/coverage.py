"""Covered time spans: which times the store's inputs actually cover, per symbol and table.

"No rows" means nothing by itself: a quiet minute has no trades, a capture that ended has none
either. Every ingest therefore records, per symbol and table, the spans its inputs cover (a
websocket capture from its first to its last message, an archive or Tardis file its day, see
:mod:`gpu_lpi.ingest`), in ``STORE/coverage/coverage.parquet`` (one row per span and input, with
the input's name). A time is covered when some span holds it; outside, values are *missing*, never
zero volume or a book frozen at the capture's end.

Spans less than :data:`JOIN_GAP_NS` apart are one span, whichever ingests recorded them: that is the
silence that splits a websocket capture (:mod:`gpu_lpi.ingest.binance_ws.spans`), so a capture
split into files is one span whether its files were ingested together or one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpu_lpi.schema import COVERAGE_SCHEMA

#: Spans closer than this are joined (60 s: a capture's longest silence within one span).
JOIN_GAP_NS = 60 * 10**9


@dataclass(frozen=True)
class Spans:
    """Disjoint, sorted half-open spans ``[start, end)`` of int64 nanoseconds."""

    start: np.ndarray
    end: np.ndarray

    @classmethod
    def union(cls, start, end, join_gap_ns: int = 0) -> "Spans":
        """The union of any spans (overlapping and touching spans are joined, and spans less than
        ``join_gap_ns`` apart)."""
        start, end = np.asarray(start, np.int64), np.asarray(end, np.int64)
        keep = end > start
        start, end = start[keep], end[keep]
        if not start.size:
            return cls(np.empty(0, np.int64), np.empty(0, np.int64))
        order = np.argsort(start, kind="stable")
        start, end = start[order], np.maximum.accumulate(end[order])
        opens = np.r_[True, start[1:] >= end[:-1] + max(join_gap_ns, 1)]
        closes = np.r_[opens[1:], True]
        return cls(start[opens], end[closes])

    @classmethod
    def none(cls) -> "Spans":
        return cls.union([], [])

    def __len__(self) -> int:
        return int(self.start.size)

    def contains(self, times) -> np.ndarray:
        """Mask of the times that lie in a span."""
        times = np.asarray(times, np.int64)
        at = np.searchsorted(self.start, times, side="right") - 1
        return (at >= 0) & (times < self.end[np.maximum(at, 0)]) if self.start.size else \
            np.zeros(times.shape, dtype=bool)

    def contains_intervals(self, low, high) -> np.ndarray:
        """Mask of the intervals ``(low, high]`` that lie wholly inside one span."""
        low, high = np.asarray(low, np.int64), np.asarray(high, np.int64)
        if not self.start.size:
            return np.zeros(low.shape, dtype=bool)
        at = np.searchsorted(self.start, low + 1, side="right") - 1
        safe = np.maximum(at, 0)
        return (at >= 0) & (high < self.end[safe])

    def intersect(self, other: "Spans") -> "Spans":
        """The times in both span sets."""
        parts = [other.clip(low, high) for low, high in self.to_list()]
        return Spans.union(np.concatenate([p.start for p in parts] or [np.empty(0, np.int64)]),
                           np.concatenate([p.end for p in parts] or [np.empty(0, np.int64)]))

    def clip(self, low: int, high: int) -> "Spans":
        """These spans cut to ``[low, high)``."""
        return Spans.union(np.maximum(self.start, low), np.minimum(self.end, high))

    def to_list(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in zip(self.start, self.end)]


def coverage_rows(spans: list[dict]) -> pa.Table:
    """Coverage rows (``symbol, table, start_ns, end_ns, source`` dicts) as a table."""
    return pa.Table.from_pylist(list(spans), schema=COVERAGE_SCHEMA)


def merge_coverage(stored: pa.Table, new: pa.Table) -> pa.Table:
    """Stored and new coverage rows, exact repeats once, in a fixed order."""
    rows = pa.concat_tables([stored.cast(COVERAGE_SCHEMA), new.cast(COVERAGE_SCHEMA)])
    rows = rows.group_by(COVERAGE_SCHEMA.names, use_threads=False).aggregate([])
    order = [(name, "ascending") for name in ("symbol", "table", "start_ns", "end_ns", "source")]
    return rows.select(COVERAGE_SCHEMA.names).take(pc.sort_indices(rows, sort_keys=order))


def spans_of(rows: pa.Table, symbol: str, table: str) -> Spans:
    """The union of the spans of one symbol and table (spans within :data:`JOIN_GAP_NS` joined)."""
    mask = pc.and_(pc.equal(rows.column("symbol"), symbol), pc.equal(rows.column("table"), table))
    picked = rows.filter(mask)
    return Spans.union(picked.column("start_ns").to_numpy(), picked.column("end_ns").to_numpy(),
                       JOIN_GAP_NS)
