"""The canonical Parquet tick store (DESIGN.md §3): a database made of plain Parquet files.

Layout (:mod:`gpu_lpi.store.layout`): ``STORE/<table>/symbol=<SYM>/date=<YYYY-MM-DD>/part-0.parquet``
(hive partitioning, one file per partition, rows sorted by time, readable as they are by pyarrow,
duckdb, polars or cudf), reference data in ``STORE/symbols/``, covered time spans in
``STORE/coverage/`` (:mod:`gpu_lpi.store.coverage`) and ingest reports in ``STORE/_reports/``.

Guarantees, and where they come from:

* an ingest is one transaction: killed at any moment, the store is as before or as after it, and
  the next command finishes or undoes what was left (:mod:`gpu_lpi.store.transaction`,
  :mod:`gpu_lpi.store.journal`);
* concurrent writers never lose a row: commits are serialized by a writer lock and merge with what
  is stored at that moment (:mod:`gpu_lpi.store.locking`);
* a reader sees one consistent version: :meth:`TickStore.read_consistent` repeats a read that a
  commit overlapped (the store's version counter changed), and every read of this class goes
  through it;
* merges work in bounded memory whatever a partition's size (:mod:`gpu_lpi.store.merge`), with
  repeats recognised and conflicting repeats reported, not stored twice;
* "no data" is never mistaken for "no trades": :meth:`TickStore.coverage` says which times the
  inputs covered.

A partition that is not readable Parquet is named in a :class:`~gpu_lpi.errors.StoreError` that
says how to repair it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from gpu_lpi.errors import StoreError
from gpu_lpi.schema import COVERAGE_SCHEMA, SYMBOLS_SCHEMA, TABLES
from gpu_lpi.store.coverage import Spans, spans_of
from gpu_lpi.store.journal import journal_path, read_version
from gpu_lpi.store.layout import (COVERAGE_FILE, NS_PER_DAY, PARTITION_FILE, REPORTS_DIR, STAGING_DIR,
                                  SYMBOLS_FILE, date_to_ns, day_of, day_to_date, ns_to_date)
from gpu_lpi.store.transaction import StoreTransaction, recover, writer_lock

__all__ = ["TickStore", "StoreTransaction", "Spans", "NS_PER_DAY", "PARTITION_FILE", "date_to_ns",
           "day_of", "day_to_date", "ns_to_date"]

T = TypeVar("T")
_log = logging.getLogger(__name__)
#: How long a reader waits for a commit that another process is publishing.
PUBLISH_WAIT_S = 600.0
#: How often a read is repeated when commits keep overlapping it.
READ_ATTEMPTS = 50


class TickStore:
    """A tick store rooted at a folder (see the module docstring).

    Parameters
    ----------
    root : path-like
        The store's folder; it need not exist until something is written.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._debris_checked = False

    # -- paths -------------------------------------------------------------------------------------
    def partition_dir(self, table: str, symbol: str, day: date) -> Path:
        return self.root / table / f"symbol={symbol}" / f"date={day.isoformat()}"

    @property
    def reports_dir(self) -> Path:
        return self.root / REPORTS_DIR

    @property
    def symbols_path(self) -> Path:
        return self.root / SYMBOLS_FILE

    @property
    def coverage_path(self) -> Path:
        return self.root / COVERAGE_FILE

    @property
    def journal_path(self) -> Path:
        return journal_path(self.root)

    def relative(self, path) -> str:
        """A path inside the store as a POSIX path relative to its root."""
        return Path(path).relative_to(self.root).as_posix()

    # -- listing -----------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        """Names of the tables the store holds data for."""
        return sorted(name for name in TABLES if (self.root / name).is_dir())

    def symbols_in(self, table: str) -> list[str]:
        """Symbols that have partitions of ``table``."""
        folder = self.root / table
        if not folder.is_dir():
            return []
        return sorted(p.name.split("=", 1)[1] for p in folder.glob("symbol=*")
                      if any(p.glob(f"date=*/{PARTITION_FILE}")))

    def dates(self, table: str, symbol: str) -> list[date]:
        """Dates for which ``table`` holds a partition for ``symbol``."""
        folder = self.root / table / f"symbol={symbol}"
        found = []
        for path in folder.glob("date=*"):
            if not (path / PARTITION_FILE).exists():
                continue
            try:
                found.append(date.fromisoformat(path.name.split("=", 1)[1]))
            except ValueError:
                raise StoreError(f"{path}: not a partition of the store (its name is not "
                                 "date=YYYY-MM-DD); move it out of the store") from None
        return sorted(found)

    def partition_paths(self, table: str, symbol: str, start_ns: int | None = None,
                        end_ns: int | None = None) -> list[str]:
        """Files of the partitions of ``table`` for ``symbol`` whose dates meet ``[start_ns, end_ns)``."""
        first = None if start_ns is None else ns_to_date(start_ns)
        last = None if end_ns is None else ns_to_date(end_ns - 1)
        return [str(self.partition_dir(table, symbol, d) / PARTITION_FILE)
                for d in self.dates(table, symbol)
                if (first is None or d >= first) and (last is None or d <= last)]

    # -- consistent reading ------------------------------------------------------------------------
    def version(self) -> int:
        """The store's commit counter: it changes with every published commit."""
        return read_version(self.root)

    def read_consistent(self, load: Callable[[], T]) -> T:
        """``load()``, repeated until no commit was published while it ran.

        Before each attempt an unfinished commit left by a killed writer is finished (where the
        store is writable), and a commit being published by a live writer is waited for.
        """
        for _ in range(READ_ATTEMPTS):
            self._settle()
            before = self.version()
            result = load()
            if self.version() == before and not self.journal_path.exists():
                return result
        raise StoreError(f"{self.root}: the store kept changing while it was read "
                         f"({READ_ATTEMPTS} attempts); try again when the ingests are done")

    def _settle(self) -> None:
        """Make sure no commit is half published, and remove dead ingests' debris once."""
        waited = 0.0
        while self.journal_path.exists() or not self._debris_checked:
            if not self.journal_path.exists() and not (self.root / STAGING_DIR).is_dir():
                break
            lock = writer_lock(self.root)
            try:
                acquired = lock.try_acquire()
            except OSError:
                if self.journal_path.exists():
                    raise StoreError(f"{self.root}: an ingest was killed while publishing its commit "
                                     f"({self.journal_path} is there) and the store is not writable "
                                     "here; run any gpu-lpi command on it with write access to finish "
                                     "that commit") from None
                break
            if acquired:
                try:
                    recover(self.root)
                finally:
                    lock.release()
                break
            if not self.journal_path.exists():
                break     # a writer is merging, nothing half published
            if waited > PUBLISH_WAIT_S:
                raise StoreError(f"{self.root}: a commit by {lock.holder()} has been publishing for "
                                 f"{waited:.0f} s; try again later")
            if waited <= 2.0 < waited + 0.05:
                _log.warning("%s: waiting for %s to finish publishing a commit", self.root, lock.holder())
            time.sleep(0.05)
            waited += 0.05
        self._debris_checked = True

    def read(self, table: str, symbol: str, start_ns: int | None = None, end_ns: int | None = None,
             columns: Iterable[str] | None = None) -> pa.Table:
        """Rows of ``table`` for ``symbol`` with ``start_ns <= ts < end_ns``, in storage order.

        Returns an empty table with the table's schema when nothing matches.
        """
        return self.read_consistent(lambda: self._read(table, symbol, start_ns, end_ns, columns))

    def _read(self, table, symbol, start_ns, end_ns, columns) -> pa.Table:
        spec = TABLES[table]
        names = list(columns) if columns is not None else spec.schema.names
        paths = self.partition_paths(table, symbol, start_ns, end_ns)
        if not paths:
            return spec.schema.empty_table().select(names)
        for path in paths:
            self.check_partition(path, table)
        condition = None
        if start_ns is not None:
            condition = ds.field("ts") >= start_ns
        if end_ns is not None:
            upper = ds.field("ts") < end_ns
            condition = upper if condition is None else condition & upper
        try:
            dataset = ds.dataset(paths, schema=spec.schema, format="parquet")
            rows = dataset.to_table(columns=list(dict.fromkeys(["ts", *names])), filter=condition)
        except (pa.ArrowInvalid, OSError) as err:
            raise self._find_corrupt(paths, err) from None
        if not _ascending(rows.column("ts").to_numpy()):
            raise self._find_unsorted(paths)
        return rows.select(names)

    def read_arrays(self, table: str, symbol: str, start_ns: int | None = None,
                    end_ns: int | None = None, columns: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Like :meth:`read`, as a dict of NumPy arrays (nulls become NaN in float columns)."""
        return table_arrays(self.read(table, symbol, start_ns, end_ns, columns))

    def iter_batches(self, table: str, symbol: str, start_ns: int, end_ns: int,
                     columns: Iterable[str] | None = None):
        """Yield the rows of :meth:`read` as tables of at most one row group each, in storage order.

        Row groups are read one at a time (memory stays that of one row group); those wholly
        outside ``[start_ns, end_ns)`` by their statistics are skipped. Use within
        :meth:`read_consistent` when the whole read must see one version.
        """
        spec = TABLES[table]
        names = list(columns) if columns is not None else spec.schema.names
        read_names = list(dict.fromkeys(["ts", *names]))
        schema = pa.schema([spec.schema.field(n) for n in names])
        last_ts = None
        for path in self.partition_paths(table, symbol, start_ns, end_ns):
            self.check_partition(path, table)
            try:
                parquet = pq.ParquetFile(path)
                meta = parquet.metadata
                ts_column = meta.schema.names.index("ts")
                for index in range(meta.num_row_groups):
                    stats = meta.row_group(index).column(ts_column).statistics
                    if stats is not None and stats.has_min_max and (
                            stats.max < start_ns or stats.min >= end_ns):
                        continue
                    rows = parquet.read_row_group(index, columns=read_names)
                    ts = rows.column("ts").to_numpy()
                    if not _ascending(ts) or (last_ts is not None and ts.size and ts[0] < last_ts):
                        raise self._unsorted(Path(path))
                    last_ts = int(ts[-1]) if ts.size else last_ts
                    keep = (ts >= start_ns) & (ts < end_ns)
                    rows = rows.filter(pa.array(keep)) if not keep.all() else rows
                    if rows.num_rows:
                        yield rows.select(names).cast(schema)
            except (pa.ArrowInvalid, OSError) as err:
                raise self.corrupt(Path(path), err) from None

    def check_partition(self, path, table: str) -> None:
        """Raise :class:`StoreError` unless ``path`` is a Parquet file with ``table``'s columns
        and types (checked once per file version and process)."""
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as err:
            raise self.corrupt(path, err) from None
        key = (str(path), stat.st_size, stat.st_mtime_ns, table)
        if key in _CHECKED_PARTITIONS:
            return
        try:
            found = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as err:
            raise self.corrupt(path, err) from None
        expected = TABLES[table].schema
        wrong = [f"{field.name} ({field.type})" for field in expected
                 if field.name not in found.names or not found.field(field.name).type.equals(field.type)]
        if wrong:
            raise self.corrupt(path, ValueError(f"columns missing or of another type: {', '.join(wrong)}; "
                                                f"expected {expected.names}"))
        _CHECKED_PARTITIONS.add(key)

    def _unsorted(self, path: Path) -> StoreError:
        return self.corrupt(path, ValueError("rows are not in time order (was it rewritten by another tool?)"))

    def _find_unsorted(self, paths: list[str]) -> StoreError:
        for path in paths:
            if not _ascending(pq.read_table(path, columns=["ts"]).column("ts").to_numpy()):
                return self._unsorted(Path(path))
        return self._unsorted(Path(paths[0]))   # each is sorted: their dates overlap

    # -- reference data and coverage ---------------------------------------------------------------
    def symbols(self) -> pa.Table:
        """The ``symbols`` reference table (empty if never written)."""
        return self._small_table(self.symbols_path, SYMBOLS_SCHEMA)

    def symbol_info(self, symbol: str) -> dict:
        """Reference data of one symbol as a dict; ``KeyError`` with a clear message if absent."""
        rows = self.symbols().filter(pc.field("symbol") == symbol).to_pylist()
        if not rows:
            raise KeyError(f"symbol {symbol!r} has no reference data in {self.symbols_path}")
        return rows[0]

    def coverage_table(self) -> pa.Table:
        """Every covered span recorded, with the input that covered it."""
        return self._small_table(self.coverage_path, COVERAGE_SCHEMA)

    def coverage(self, symbol: str, table: str) -> Spans:
        """The times the store's inputs cover for ``table`` and ``symbol`` (union of their spans)."""
        return spans_of(self.coverage_table(), symbol, table)

    def _small_table(self, path: Path, schema: pa.Schema) -> pa.Table:
        def load():
            if not path.exists():
                return schema.empty_table()
            try:
                return pq.read_table(path, schema=schema)
            except (pa.ArrowInvalid, OSError) as err:
                raise self.corrupt(path, err) from None

        return self.read_consistent(load)

    # -- files and their state ---------------------------------------------------------------------
    def file_stamps(self, paths: Iterable) -> list[tuple[str, int, int]]:
        """``(relative path, size, mtime_ns)`` of store files: what a result read (a fingerprint)."""
        stamps = []
        for path in paths:
            stat = os.stat(path)
            stamps.append((self.relative(path), stat.st_size, stat.st_mtime_ns))
        return stamps

    def corrupt(self, path: Path, err: Exception) -> StoreError:
        """The error for a store file that is not readable Parquet, saying how to repair it."""
        path = Path(path)
        relative = self.relative(path)
        if relative in (SYMBOLS_FILE, COVERAGE_FILE):
            fix = f"remove {path} and re-ingest the store's inputs (listed in {self.reports_dir})"
        else:
            fix = (f"remove the partition folder {path.parent} and re-ingest the input files of that "
                   f"day (their names are in the reports in {self.reports_dir})")
        return StoreError(f"{path}: corrupt store partition, not readable Parquet ({err}); to repair: "
                          f"{fix}")

    def _find_corrupt(self, paths: list[str], err: Exception) -> Exception:
        for path in paths:
            try:
                pq.read_metadata(path)
            except (pa.ArrowInvalid, OSError) as file_err:
                return self.corrupt(Path(path), file_err)
        return err

    # -- writing -----------------------------------------------------------------------------------
    def transaction(self, on_wait: Callable[[str], None] | None = None) -> StoreTransaction:
        """Start an all-or-nothing batch of writes (use as a context manager).

        ``on_wait(text)`` is told if the commit has to wait for another writer.
        """
        return StoreTransaction(self, on_wait=on_wait)


#: Partition files whose schema was checked, by (path, size, mtime_ns, table).
_CHECKED_PARTITIONS: set[tuple] = set()


def _ascending(values: np.ndarray) -> bool:
    return values.size < 2 or bool(np.all(values[1:] >= values[:-1]))


def table_arrays(table: pa.Table) -> dict[str, np.ndarray]:
    """A table's columns as NumPy arrays (nulls become NaN in float and integer columns)."""
    arrays = {}
    for name in table.column_names:
        column = table.column(name)
        if column.null_count and pa.types.is_integer(column.type):
            column = column.cast(pa.float64())
        arrays[name] = column.to_numpy()
    return arrays
