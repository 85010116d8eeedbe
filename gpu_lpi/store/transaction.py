"""Writing to the tick store: one ingest is one transaction.

Decision: the store stays plain hive-partitioned Parquet, made safe by a writer lock and a commit
journal, rather than a table format such as Delta Lake. What users of the store need is to read it
as it is with pyarrow, duckdb, polars or cudf (``read_parquet("STORE/trades")``), which a Delta
table's folder does not allow (its files include removed versions until vacuumed); and what the
store has to guarantee -- all or nothing per ingest, no lost rows with two writers, one consistent
version per read -- a lock and a journal give at the cost of one small module. The price: a reader
that ignores the store's version file (an outside tool) may, during the milliseconds of a publish,
see some partitions old and others new; readers of this package never do.

A transaction's life:

1. *Stage* (no lock, so several ingests parse at once): :meth:`StoreTransaction.write` sorts each
   batch of rows and writes it to the transaction's staging folder ``_staging/<id>/rows/``, whose
   ``owner.lock`` the transaction holds until it ends; spans, reference data and extra files (the
   ingest report) are kept for the commit.
2. *Commit* (:meth:`StoreTransaction.commit`), under the store's writer lock (a second writer waits,
   and says for whom): finish any commit a killed writer left (:func:`~gpu_lpi.store.journal.roll_forward`)
   and remove the staging folders of dead ingests; merge every touched partition with its current
   file in bounded memory (:mod:`gpu_lpi.store.merge`), read under the lock so no concurrent ingest's
   rows are lost; merge reference data and coverage the same way; then publish through the journal.
3. *Roll back* (an exception, Ctrl-C, or no commit): the staging folder is removed; the store is as
   before. A killed process leaves its staging folder behind, removed by the next command.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpu_lpi.errors import StoreError
from gpu_lpi.schema import COVERAGE_SCHEMA, SYMBOLS_SCHEMA, TABLES
from gpu_lpi.store.coverage import coverage_rows, merge_coverage
from gpu_lpi.store.journal import PUBLISH_DIR, read_version, roll_forward, write_atomic, write_journal
from gpu_lpi.store.layout import (COVERAGE_FILE, LOCKS_DIR, STAGING_DIR, SYMBOLS_FILE, day_of, day_to_date,
                                  partition_relpath)
from gpu_lpi.store.locking import FileLock
from gpu_lpi.store.merge import merge_partition, sort_rows, write_rows

OWNER_LOCK = "owner.lock"
WRITER_LOCK = "writer.lock"
ROWS_DIR = "rows"
#: Staging folders without an owner lock younger than this are left alone (being created).
UNLOCKED_STAGING_GRACE_S = 600

#: ``on_conflict(table, symbol, count, examples)``
ConflictCallback = Callable[[str, str, int, list], None]


def writer_lock(root: Path) -> FileLock:
    return FileLock(root / LOCKS_DIR / WRITER_LOCK)


def probe_writable(folder: Path, what: str) -> None:
    """Raise :class:`StoreError` unless a file can be created in ``folder`` (made if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise StoreError(f"{folder}: {what} is not writable ({err.strerror or err}); nothing was "
                         "changed") from None


def recover(root: Path) -> None:
    """Finish a killed commit and remove dead ingests' staging folders (writer lock held)."""
    roll_forward(root)
    staging = root / STAGING_DIR
    if not staging.is_dir():
        return
    for folder in staging.iterdir():
        owner = folder / OWNER_LOCK
        if not owner.exists():
            try:
                age = os.path.getmtime(folder)
            except OSError:
                continue
            if time.time() - age > UNLOCKED_STAGING_GRACE_S:
                shutil.rmtree(folder, ignore_errors=True)
            continue
        lock = FileLock(owner)
        if lock.try_acquire():      # its ingest is gone
            lock.release()
            shutil.rmtree(folder, ignore_errors=True)
    for debris in root.glob(".*.tmp"):
        debris.unlink(missing_ok=True)


class StoreTransaction:
    """An all-or-nothing batch of writes to a :class:`~gpu_lpi.store.TickStore` (see module docstring).

    Use as a context manager: it commits when the block ends normally and rolls back when it raises.

    Parameters
    ----------
    store : TickStore
    on_wait : callable, optional
        ``on_wait(text)`` is told when the commit has to wait for another writer.
    """

    def __init__(self, store, on_wait: Callable[[str], None] | None = None):
        self.store = store
        self.on_wait = on_wait
        self.on_conflict: ConflictCallback | None = None
        self.rows_added: dict[tuple[str, str], int] = {}
        root = store.root
        probe_writable(root, "the store folder")
        probe_writable(root / LOCKS_DIR, "the store's lock folder")
        probe_writable(root / STAGING_DIR, "the store's staging folder")
        self.id = uuid.uuid4().hex
        self.folder = root / STAGING_DIR / self.id
        self._owner = FileLock(self.folder / OWNER_LOCK)
        if not self._owner.try_acquire():
            raise StoreError(f"{self.folder}: staging folder is in use")
        self._chunks: dict[str, tuple[str, str, list[Path]]] = {}
        self._symbols: pa.Table | None = None
        self._coverage: list[dict] = []
        self._files: list[tuple[str, Callable[[], bytes]]] = []
        self._done = False

    def __enter__(self) -> "StoreTransaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    # -- staging -----------------------------------------------------------------------------------
    def write(self, table: str, symbol: str, rows: pa.Table) -> None:
        """Stage ``rows`` (any order, schema of ``table``) for ``symbol``, split by UTC date."""
        if rows.num_rows == 0:
            return
        spec = TABLES[table]
        rows = rows.select(spec.schema.names).cast(spec.schema)
        days = day_of(rows.column("ts").to_numpy())
        for day in np.unique(days):
            relpath = partition_relpath(table, symbol, day_to_date(day))
            _, _, chunks = self._chunks.setdefault(relpath, (table, symbol, []))
            staged = self.folder / ROWS_DIR / relpath.rsplit("/", 1)[0] / f"chunk-{len(chunks)}.parquet"
            part = rows if days.size == 1 or np.all(days == day) else rows.filter(pa.array(days == day))
            write_rows(sort_rows(part, spec), staged, compression="lz4")
            chunks.append(staged)

    def cover(self, table: str, symbol: str, start_ns: int, end_ns: int, source: str) -> None:
        """Record that the input ``source`` covers ``[start_ns, end_ns)`` of ``table`` for ``symbol``."""
        self._coverage.append({"symbol": symbol, "table": table, "start_ns": int(start_ns),
                               "end_ns": int(end_ns), "source": str(source)})

    def write_symbols(self, rows: pa.Table) -> None:
        """Stage reference data of new symbols; at commit, a symbol stored with other values is refused
        (:class:`~gpu_lpi.errors.StoreError`), since its stored rows were made with those."""
        rows = rows.select(SYMBOLS_SCHEMA.names).cast(SYMBOLS_SCHEMA)
        self._symbols = rows if self._symbols is None else _replace_symbols(self._symbols, rows)

    def add_file(self, relpath: str, make: Callable[[], bytes]) -> None:
        """Publish a file with the commit; ``make()`` is called after the merge (e.g. a report)."""
        self._files.append((relpath, make))

    # -- commit ------------------------------------------------------------------------------------
    def commit(self) -> None:
        """Merge and publish everything staged (see module docstring); then end the transaction."""
        if self._done:
            return
        root = self.store.root
        lock = writer_lock(root)
        published = False
        try:
            lock.acquire(self.on_wait)
            recover(root)
            publish = self.folder / PUBLISH_DIR
            files = self._merge_partitions(publish)
            files += self._merge_small_tables(publish)
            for relpath, make in self._files:
                write_atomic(publish / relpath, make())
                files.append(relpath)
            if files:
                for folder in sorted({(root / relpath).parent for relpath in files}):
                    probe_writable(folder, "a store folder")
                write_journal(root, self.id, files, read_version(root) + 1)
                published = True
                with _interrupts_deferred():
                    roll_forward(root)
        finally:
            lock.release()
            if not published:
                self.rollback()
            self._finish()

    def _merge_partitions(self, publish: Path) -> list[str]:
        root = self.store.root
        files = []
        for relpath, (table, symbol, chunks) in sorted(self._chunks.items()):
            live = root / relpath
            stored = live if live.exists() else None
            if stored is not None:
                self.store.check_partition(stored, table)
            report = None
            if self.on_conflict is not None:
                def report(count, examples, table=table, symbol=symbol):
                    self.on_conflict(table, symbol, count, examples)
            try:
                added = merge_partition(stored, chunks, TABLES[table], publish / relpath, report)
            except (pa.ArrowInvalid, OSError) as err:
                if stored is not None and not _readable(stored):
                    raise self.store.corrupt(stored, err) from None
                raise
            self.rows_added[(table, symbol)] = self.rows_added.get((table, symbol), 0) + added
            if added:
                files.append(relpath)
        return files

    def _merge_small_tables(self, publish: Path) -> list[str]:
        files = []
        if self._symbols is not None:
            stored = self.store.symbols()
            _refuse_changed_reference_data(stored, self._symbols, self.store.symbols_path)
            merged = _replace_symbols(stored, self._symbols)
            if not merged.equals(stored):
                pq.write_table(merged, _mkdir_for(publish / SYMBOLS_FILE))
                files.append(SYMBOLS_FILE)
        if self._coverage:
            stored = self.store.coverage_table()
            merged = merge_coverage(stored, coverage_rows(self._coverage))
            if not merged.equals(stored.cast(COVERAGE_SCHEMA)):
                pq.write_table(merged, _mkdir_for(publish / COVERAGE_FILE))
                files.append(COVERAGE_FILE)
        return files

    def rollback(self) -> None:
        """Discard everything staged (nothing is published)."""
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._owner.release()
        if not self.store.journal_path.exists() or self.id not in self.store.journal_path.read_text():
            shutil.rmtree(self.folder, ignore_errors=True)
        staging = self.folder.parent
        try:
            staging.rmdir()   # only when empty
        except OSError:
            pass


def _mkdir_for(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _readable(path: Path) -> bool:
    try:
        pq.read_metadata(path)
    except (pa.ArrowInvalid, OSError):
        return False
    return True


def _refuse_changed_reference_data(stored: pa.Table, rows: pa.Table, where: Path) -> None:
    """Raise :class:`StoreError` if ``rows`` give a stored symbol other reference data.

    The stored rows' notionals (COIN-M: contracts x contract size) and ladder prices (tick size)
    were made with the stored values; mixing two sets in one store would be silently wrong.
    """
    known = {row["symbol"]: row for row in stored.to_pylist()}
    for row in rows.to_pylist():
        before = known.get(row["symbol"])
        if before is None or before == row:
            continue
        changes = ", ".join(f"{name} {before[name]} -> {row[name]}" for name in row if before[name] != row[name])
        raise StoreError(f"{where}: {row['symbol']} is stored with other reference data ({changes}); its "
                         "stored rows were made with the stored values, so this ingest was refused: pass "
                         "a --symbols-file with the stored values, or ingest into a new store")


def _replace_symbols(stored: pa.Table, rows: pa.Table) -> pa.Table:
    keep = pc.invert(pc.is_in(stored.column("symbol"), value_set=rows.column("symbol")))
    merged = pa.concat_tables([stored.filter(keep), rows])
    return merged.take(pc.sort_indices(merged, sort_keys=[("symbol", "ascending")]))


@contextmanager
def _interrupts_deferred():
    """Hold back Ctrl-C while a journal is applied (it would be rolled forward anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda *args: received.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt
