"""What an ingest did: rows per table, rejections by reason, sequence gaps, covered spans and
conflicts; printed and saved."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from gpu_lpi.errors import InputError
from gpu_lpi.ingest.value_rules import TimeBounds, format_ns

#: How many example lines are kept per rejection reason (and per conflicting table and symbol).
EXAMPLES_PER_REASON = 5
#: How many covered spans per symbol the summary lists (the JSON report has them all).
SPANS_SHOWN = 3


@dataclass
class IngestReport:
    """Counts and findings of one ingest run."""

    format: str
    sources: list[str] = field(default_factory=list)
    rows: Counter = field(default_factory=Counter)          # (table, symbol) -> rows parsed
    rows_added: dict = field(default_factory=dict)          # (table, symbol) -> rows new to the store
    rejections: Counter = field(default_factory=Counter)    # reason -> count
    examples: dict = field(default_factory=dict)            # reason -> ["file:line: detail", ...]
    gaps: list = field(default_factory=list)                # sequence gaps (dicts)
    notes: list = field(default_factory=list)               # non-fatal findings (empty files, re-sorts)
    files_without_rows: Counter = field(default_factory=Counter)  # "empty" / "a header only" -> files
    coverage: list = field(default_factory=list)            # covered spans: {symbol, table, start_ns, end_ns, source}
    conflicts: Counter = field(default_factory=Counter)     # (table, symbol) -> keyed rows re-ingested changed
    conflict_examples: dict = field(default_factory=dict)   # (table, symbol) -> [detail, ...]
    not_selected: Counter = field(default_factory=Counter)  # (table, symbol) -> rows of tables not selected
    path: str | None = None                                 # where the JSON report is saved

    def reject(self, path, line: int | None, reason: str, detail: str = "") -> None:
        """Count one rejected line/row under ``reason`` and keep a few examples."""
        self.reject_many(path, [line], reason, lambda _: detail)

    def reject_many(self, path, lines, reason: str, detail: Callable[[int], str]) -> None:
        """Count the rejected ``lines`` under ``reason``; ``detail(i)`` describes the i-th (called
        only for the examples kept)."""
        self.rejections[reason] += len(lines)
        kept = self.examples.setdefault(reason, [])
        for i in range(min(len(lines), EXAMPLES_PER_REASON - len(kept))):
            kept.append(f"{_where(path, lines[i])}: {detail(i) or reason}")

    def gap(self, symbol: str, path, line: int, ts: int, expected_prev: int, got_prev: int) -> None:
        """Record a break in a depth update-id chain (the book is invalid until the next snapshot)."""
        self.gaps.append({"symbol": symbol, "file": str(path), "line": line, "ts": int(ts),
                          "expected_pu": int(expected_prev), "got_pu": int(got_prev)})

    def note(self, path, line: int | None, text: str) -> None:
        self.notes.append(f"{_where(path, line)}: {text}")

    def empty_file(self, path, text: str = "empty file", header_only: bool = False) -> None:
        """Note a file that holds no rows at all: empty, or ``header_only`` (``text`` is the note)."""
        self.files_without_rows["a header only" if header_only else "empty"] += 1
        self.note(path, None, text)

    def nothing_ingested(self, sources, fmt: str) -> InputError | None:
        """The fatal error of an ingest that produced no row and covers no time (``None`` otherwise).

        It says why: how many lines were rejected, the most common reason with an example, and how
        many files hold no rows; only when nothing at all was recognised does it suggest checking
        ``--format``.
        """
        if self.total_rows or self.coverage:
            return None
        where = ", ".join(map(str, sources))
        reasons = []
        if self.rejections:
            reason, _ = self.rejections.most_common(1)[0]
            rejected = sum(self.rejections.values())
            reasons.append(f"{rejected:,} rejected line{'s' if rejected != 1 else ''}, most for {reason!r} "
                           f"(e.g. {self.examples[reason][0].partition(': ')[0]})")
        if self.files_without_rows:
            files, without = len(self.sources), sum(self.files_without_rows.values())
            kinds = sorted(self.files_without_rows.items())
            reasons.append(f"the input file is {kinds[0][0]}" if files == 1 else
                           f"{without:,} of the {files:,} input files hold no rows ("
                           + ", ".join(f"{n:,} {kind}" for kind, n in kinds) + ")")
        if not reasons:
            return InputError(where, None, f"no rows ingested: nothing in the input was recognised "
                              f"(is --format {fmt} right?)")
        return InputError(where, None, "no rows ingested: " + "; ".join(reasons))

    def cover(self, table: str, symbol: str, start_ns: int, end_ns: int, source) -> None:
        """Record that ``source`` covers ``[start_ns, end_ns)`` of ``table`` for ``symbol``: times in
        it without rows had no events, times outside it are unknown to this input."""
        self.coverage.append({"symbol": symbol, "table": table, "start_ns": int(start_ns),
                              "end_ns": int(end_ns), "source": str(source)})

    def conflict(self, table: str, symbol: str, detail: str, count: int = 1) -> None:
        """Count ``count`` keyed rows (trade id, aggTrade id, ...) re-ingested with other values than
        stored (the stored row is kept); ``detail`` describes one."""
        self.conflicts[(table, symbol)] += count
        kept = self.conflict_examples.setdefault((table, symbol), [])
        if detail and len(kept) < EXAMPLES_PER_REASON:
            kept.append(detail)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "sources": self.sources,
            "rows": {f"{t}/{s}": n for (t, s), n in sorted(self.rows.items())},
            "rows_added": {f"{t}/{s}": n for (t, s), n in sorted(self.rows_added.items())},
            "rejections": dict(self.rejections),
            "rejection_examples": self.examples,
            "gaps": self.gaps,
            "notes": self.notes,
            "coverage": self.coverage,
            "conflicts": {f"{t}/{s}": n for (t, s), n in sorted(self.conflicts.items())},
            "conflict_examples": {f"{t}/{s}": e for (t, s), e in sorted(self.conflict_examples.items())},
            "not_selected": {f"{t}/{s}": n for (t, s), n in sorted(self.not_selected.items())},
        }

    def summary(self) -> str:
        """Human-readable multi-line summary."""
        lines = [f"ingest ({self.format}): {len(self.sources)} file(s), {self.total_rows:,} rows"]
        for (table, symbol), n in sorted(self.rows.items()):
            added = self.rows_added.get((table, symbol), 0)
            lines.append(f"  {table:<14} {symbol:<14} {n:>12,} rows  ({added:,} new in store)")
        for (table, symbol), n in sorted(self.not_selected.items()):
            lines.append(f"  {table:<14} {symbol:<14} {n:>12,} rows  (not stored: table not selected)")
        if self.rejections:
            lines.append(f"  rejected: {sum(self.rejections.values()):,}")
            for reason, n in self.rejections.most_common():
                lines.append(f"    {n:>10,}  {reason}  e.g. {self.examples[reason][0]}")
        else:
            lines.append("  rejected: 0")
        lines.append(f"  depth sequence gaps: {len(self.gaps)}"
                     + "".join(f"\n    {g['file']}:{g['line']}: {g['symbol']} pu={g['got_pu']} "
                               f"expected {g['expected_pu']}" for g in self.gaps[:10]))
        lines.extend(self._coverage_lines())
        if self.conflicts:
            lines.append(f"  conflicts (re-ingested with other values; stored rows kept): "
                         f"{sum(self.conflicts.values()):,}")
            for (table, symbol), n in sorted(self.conflicts.items()):
                example = next(iter(self.conflict_examples.get((table, symbol), [])), "")
                lines.append(f"    {n:>10,}  {table} {symbol}" + (f"  e.g. {example}" if example else ""))
        lines.extend(f"  note: {text}" for text in self.notes[:20])
        return "\n".join(lines)

    def _coverage_lines(self) -> list[str]:
        """Per symbol, the union of its covered spans over all tables, the first few listed."""
        by_symbol: dict[str, list] = defaultdict(list)
        for span in self.coverage:
            by_symbol[span["symbol"]].append((span["start_ns"], span["end_ns"]))
        lines = [f"  covered spans: {len(by_symbol)} symbol(s)"]
        for symbol, spans in sorted(by_symbol.items()):
            joined = _union(spans)
            shown = ", ".join(f"{_ms_text(a, False)} .. {_ms_text(b, True)}" for a, b in joined[:SPANS_SHOWN])
            more = f", ... ({len(joined) - SPANS_SHOWN} more)" if len(joined) > SPANS_SHOWN else ""
            lines.append(f"    {symbol:<14} {len(joined)} span(s): {shown}{more}")
        return lines


def _ms_text(ns: int, up: bool) -> str:
    """A span bound as UTC text to the millisecond (an end rounded up: the text holds the whole span)."""
    ms = -(-ns // 10**6) if up else ns // 10**6
    return format_ns(ms * 10**6)


def _where(path, line) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping and touching spans joined, sorted."""
    joined: list[list[int]] = []
    for start, end in sorted(spans):
        if joined and start <= joined[-1][1]:
            joined[-1][1] = max(joined[-1][1], end)
        else:
            joined.append([start, end])
    return [(a, b) for a, b in joined]


class IngestContext:
    """What a format parser needs besides its files: the report, reference data, strictness and the
    accepted time range of the value rules."""

    def __init__(self, report: IngestReport, registry, strict: bool = False, bounds: TimeBounds | None = None):
        self.report, self.registry, self.strict = report, registry, strict
        self.bounds = bounds if bounds is not None else TimeBounds.of()
        self.symbols_seen: set[str] = set()

    def reject(self, path, line: int | None, reason: str, detail: str = "") -> None:
        """Count a rejection, or raise it as an :class:`InputError` in strict mode."""
        self.reject_many(path, [line], reason, lambda _: detail)

    def reject_many(self, path, lines, reason: str, detail: Callable[[int], str]) -> None:
        """Count rejections of ``lines`` (see :meth:`IngestReport.reject_many`); in strict mode the
        first is raised as an :class:`InputError`."""
        if not len(lines):
            return
        if self.strict:
            text, line = detail(0), lines[0]
            raise InputError(path, None if line is None else int(line), f"{reason}: {text}" if text else reason)
        self.report.reject_many(path, lines, reason, detail)

    def cover(self, table: str, symbol: str, start_ns: int, end_ns: int, source) -> None:
        """Record a covered span (see :meth:`IngestReport.cover`); empty spans are ignored."""
        if end_ns > start_ns:
            self.report.cover(table, symbol, start_ns, end_ns, source)

    def symbol_info(self, symbol: str, path=None, line: int | None = None) -> dict:
        """Reference data of ``symbol`` (fatal :class:`InputError` if unknown); marks it as seen."""
        info = self.registry.get(symbol, path, line)
        self.symbols_seen.add(symbol)
        return info
