"""Ingest of real market-data formats into the tick store: ``gpu-lpi ingest``.

Each format module exposes ``parse(files, ctx)``, a generator of ``(table, symbol, pyarrow.Table)``
chunks in the canonical schemas of :mod:`gpu_lpi.schema`; :func:`ingest` stages them in one store
transaction, so a fatal problem leaves the store untouched.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from gpu_lpi.errors import ConfigError, InputError
from gpu_lpi.ingest.report import IngestContext, IngestReport
from gpu_lpi.ingest.value_rules import TimeBounds
from gpu_lpi.interrupts import checkpoint
from gpu_lpi.reference_data import SymbolRegistry
from gpu_lpi.schema import TABLES
from gpu_lpi.store import TickStore
from gpu_lpi.store.transaction import probe_writable

FORMATS = ("binance-ws", "binance-archive", "tardis")
#: File-name endings taken from folders, per format (files named explicitly are always read).
FOLDER_SUFFIXES = {
    "binance-ws": (".gz", ".txt", ".log", ".jsonl", ".json"),
    "binance-archive": (".zip", ".csv", ".csv.gz"),
    "tardis": (".csv", ".csv.gz"),
}


def format_parser(fmt: str):
    """The ``parse(files, ctx, progress=False)`` function of format ``fmt``."""
    if fmt == "binance-ws":
        from gpu_lpi.ingest.binance_ws import parse
    elif fmt == "binance-archive":
        from gpu_lpi.ingest.binance_archive import parse
    elif fmt == "tardis":
        from gpu_lpi.ingest.tardis import parse
    else:
        raise InputError("--format", None, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return parse


def expand_sources(sources, suffixes=None) -> tuple[list[Path], list[Path]]:
    """Files named by ``sources``, sorted by path, and the folder files left out.

    Folders are searched recursively; from them only files ending in one of ``suffixes`` are
    taken (all when ``None``), so that a folder written by ``gpu-lpi synth`` (raw files plus
    ``labels.parquet``) or a download folder (with ``.CHECKSUM`` files) can be ingested as it is.
    """
    files: list[Path] = []
    skipped: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if not found.is_file() or found.name.startswith("."):
                    continue
                if suffixes is None or found.name.endswith(suffixes):
                    files.append(found)
                else:
                    skipped.append(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(path, None, "no such file or folder")
    if not files:
        raise InputError(", ".join(map(str, sources)), None, "no input files found")
    return sorted(set(files)), skipped


def ingest(sources, fmt: str, store: TickStore | str | os.PathLike, symbols_files=(),
           strict: bool = False, progress: bool = False, on_wait=None, earliest=None,
           latest=None, tables=None) -> IngestReport:
    """Parse ``sources`` in format ``fmt`` into ``store``; return the report (also saved in the store).

    Parameters
    ----------
    sources : list of path-like
        Files or folders (searched recursively).
    fmt : {"binance-ws", "binance-archive", "tardis"}
    store : TickStore or path-like
    symbols_files : list of path-like, optional
        Extra reference-data CSVs (columns of the ``symbols`` table); they override built-in rows.
    strict : bool, default False
        Treat every rejected line as fatal instead of counting it.
    progress : bool, default False
        Show a progress bar.
    on_wait : callable, optional
        ``on_wait(text)`` is told when the commit has to wait for another ingest into the store.
    earliest, latest : datetime.date or ``YYYY-MM-DD`` str, optional
        The first and last UTC day a row's ``ts`` or ``local_ts`` may fall on; rows outside are
        rejected (default: from 2017-01-01 to one day after now; see
        :mod:`gpu_lpi.ingest.value_rules`).
    tables : iterable of str, optional
        Store only these tables (e.g. ``["trades"]`` for a trades-only store); the rows of the
        others are parsed, checked and counted in the report as not selected, and their spans are
        not recorded.

    Raises
    ------
    InputError
        On a fatal problem (unreadable or truncated file, wrong format, missing columns, unknown
        symbol, bad reference data, no rows and no covered time at all: the message says why,
        see :meth:`IngestReport.nothing_ingested`); the store is left unchanged.
    ConfigError
        For an unreadable ``earliest`` or ``latest``, or ``latest`` before ``earliest``.
    StoreError
        When the store cannot be written (checked before anything is parsed) or holds a corrupt
        partition the ingest must merge into.
    """
    parse = format_parser(fmt)
    selected = _selected_tables(tables)
    store = store if isinstance(store, TickStore) else TickStore(store)
    files, skipped = expand_sources(sources, FOLDER_SUFFIXES[fmt])
    report = IngestReport(format=fmt, sources=[str(f) for f in files])
    for path in skipped:
        report.note(path, None, f"skipped: not a {fmt} file name ({', '.join(FOLDER_SUFFIXES[fmt])})")
    ctx = IngestContext(report, SymbolRegistry(symbols_files), strict=strict,
                        bounds=TimeBounds.of(earliest, latest))
    probe_writable(store.reports_dir, "the store's report folder")
    with store.transaction(on_wait=on_wait) as tx:
        tx.on_conflict = lambda table, symbol, count, examples: _report_conflicts(
            report, table, symbol, count, examples)
        for table, symbol, rows in parse(files, ctx, progress=progress):
            if selected is not None and table not in selected:
                report.not_selected[(table, symbol)] += rows.num_rows
                continue
            report.rows[(table, symbol)] += rows.num_rows
            tx.write(table, symbol, rows)
            checkpoint()
        if (nothing := report.nothing_ingested(sources, fmt)) is not None:
            raise nothing
        if selected is not None:
            report.coverage = [span for span in report.coverage if span["table"] in selected]
        for span in report.coverage:
            tx.cover(span["table"], span["symbol"], span["start_ns"], span["end_ns"], span["source"])
        tx.write_symbols(ctx.registry.table(ctx.symbols_seen))
        report.path = str(store.reports_dir / report_file_name())

        def report_bytes() -> bytes:
            report.rows_added = dict(tx.rows_added)
            return json.dumps(report.to_dict(), indent=2).encode()

        tx.add_file(store.relative(report.path), report_bytes)
    return report


def _selected_tables(tables) -> frozenset[str] | None:
    """The ``tables`` selection of :func:`ingest`, checked against the store's tables."""
    if tables is None:
        return None
    selected = frozenset(tables)
    unknown = sorted(selected - set(TABLES))
    if unknown or not selected:
        raise ConfigError(f"--tables: unknown table(s) {', '.join(unknown) or '(none given)'}; expected "
                          f"some of {', '.join(sorted(TABLES))}")
    return selected


def report_file_name() -> str:
    """A new ingest report's file name (UTC time stamp, unique)."""
    return f"ingest-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:6]}.json"


def _report_conflicts(report: IngestReport, table: str, symbol: str, count: int, examples: list) -> None:
    """Count a merge's conflicting rows in the report (a few with their description)."""
    for detail in examples:
        report.conflict(table, symbol, detail)
    if count > len(examples):
        report.conflict(table, symbol, "", count=count - len(examples))
