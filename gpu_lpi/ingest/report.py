"""What an ingest did: rows per table, rejections by reason, sequence gaps; printed and saved."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from gpu_lpi.errors import InputError

#: How many example lines are kept per rejection reason.
EXAMPLES_PER_REASON = 5


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

    def reject(self, path, line: int | None, reason: str, detail: str = "") -> None:
        """Count one rejected line/row under ``reason`` and keep a few examples."""
        self.rejections[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            where = f"{path}:{line}" if line is not None else str(path)
            kept.append(f"{where}: {detail or reason}")

    def gap(self, symbol: str, path, line: int, ts: int, expected_prev: int, got_prev: int) -> None:
        """Record a break in a depth update-id chain (the book is invalid until the next snapshot)."""
        self.gaps.append({"symbol": symbol, "file": str(path), "line": line, "ts": int(ts),
                          "expected_pu": int(expected_prev), "got_pu": int(got_prev)})

    def note(self, path, line: int | None, text: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        self.notes.append(f"{where}: {text}")

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
        }

    def summary(self) -> str:
        """Human-readable multi-line summary."""
        lines = [f"ingest ({self.format}): {len(self.sources)} file(s), {self.total_rows:,} rows"]
        for (table, symbol), n in sorted(self.rows.items()):
            added = self.rows_added.get((table, symbol), 0)
            lines.append(f"  {table:<14} {symbol:<14} {n:>12,} rows  ({added:,} new in store)")
        if self.rejections:
            lines.append(f"  rejected: {sum(self.rejections.values()):,}")
            for reason, n in self.rejections.most_common():
                lines.append(f"    {n:>10,}  {reason}  e.g. {self.examples[reason][0]}")
        else:
            lines.append("  rejected: 0")
        lines.append(f"  depth sequence gaps: {len(self.gaps)}"
                     + "".join(f"\n    {g['file']}:{g['line']}: {g['symbol']} pu={g['got_pu']} "
                               f"expected {g['expected_pu']}" for g in self.gaps[:10]))
        lines.extend(f"  note: {text}" for text in self.notes[:20])
        return "\n".join(lines)

    def write(self, reports_dir) -> str:
        """Save the report as JSON under ``reports_dir``; return its path."""
        reports_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = reports_dir / f"ingest-{stamp}.json"
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return str(path)


class IngestContext:
    """What a format parser needs besides its files: the report, reference data, strictness."""

    def __init__(self, report: IngestReport, registry, strict: bool = False):
        self.report, self.registry, self.strict = report, registry, strict
        self.symbols_seen: set[str] = set()

    def reject(self, path, line: int | None, reason: str, detail: str = "") -> None:
        """Count a rejection, or raise it as an :class:`InputError` in strict mode."""
        if self.strict:
            raise InputError(path, line, f"{reason}: {detail}" if detail else reason)
        self.report.reject(path, line, reason, detail)

    def symbol_info(self, symbol: str, path=None, line: int | None = None) -> dict:
        """Reference data of ``symbol`` (fatal :class:`InputError` if unknown); marks it as seen."""
        info = self.registry.get(symbol, path, line)
        self.symbols_seen.add(symbol)
        return info
