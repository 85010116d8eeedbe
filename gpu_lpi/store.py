"""The canonical Parquet tick store (DESIGN.md §3).

Layout: ``STORE/<table>/symbol=<SYM>/date=<YYYY-MM-DD>/part-0.parquet`` (hive partitioning, one file
per partition), ``STORE/symbols/symbols.parquet`` (reference data) and ``STORE/_reports/`` (ingest
reports).

Writes go through a :class:`StoreTransaction`: an ingest's rows are staged in a staging folder; only
when the whole ingest succeeded is every touched partition merged with what the store already holds
and the merged files renamed over the live ones (``os.replace`` is atomic per file). A failed ingest
removes its staging folder and leaves the store as it was.

Merging is a multiset union on each table's row key (:mod:`gpu_lpi.schema`): a row is new unless the
store already holds as many rows with that key as the new data does. Re-ingesting the same input
therefore leaves the store byte-for-byte unchanged (partitions with nothing new are not rewritten),
while genuinely repeated rows inside one source (two identical trades in the same millisecond from a
source without trade ids) are both kept.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from gpu_lpi.schema import SYMBOLS_SCHEMA, TABLES, TableSpec

NS_PER_DAY = 86_400 * 10**9
PARTITION_FILE = "part-0.parquet"
_PARQUET_OPTIONS = {"compression": "zstd"}


def day_of(ts_ns: np.ndarray) -> np.ndarray:
    """Days since the Unix epoch (UTC) of int64 nanosecond timestamps."""
    return np.floor_divide(ts_ns, NS_PER_DAY)


def day_to_date(day: int) -> date:
    """The calendar date of a day number from :func:`day_of`."""
    return datetime.fromtimestamp(int(day) * 86_400, tz=timezone.utc).date()


def date_to_ns(d: date) -> int:
    """Nanoseconds since the epoch at 00:00 UTC of ``d``."""
    return (d - date(1970, 1, 1)).days * NS_PER_DAY


def _occurrence_index(table: pa.Table, key: tuple[str, ...]) -> np.ndarray:
    """For each row, how many earlier rows (in table order) have the same key."""
    n = table.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    columns = [table.column(name).to_numpy(zero_copy_only=False) for name in key]
    order = np.lexsort([np.arange(n)] + columns[::-1])  # by key, then by row
    sorted_cols = [c[order] for c in columns]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = False
    for c in sorted_cols:
        new_group[1:] |= c[1:] != c[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    occurrence = np.empty(n, dtype=np.int64)
    occurrence[order] = np.arange(n) - group_start
    return occurrence


def merge_rows(existing: pa.Table | None, new: pa.Table, spec: TableSpec) -> tuple[pa.Table, int]:
    """Multiset-union ``new`` into ``existing`` on ``spec.key``; return (merged sorted table, rows added)."""
    new = new.select(spec.schema.names).cast(spec.schema)
    if existing is None or existing.num_rows == 0:
        added = new
    else:
        key = list(spec.key)
        old_keys = existing.select(key).append_column("_occ", pa.array(_occurrence_index(existing, spec.key)))
        new_keys = new.select(key).append_column("_occ", pa.array(_occurrence_index(new, spec.key)))
        new_keys = new_keys.append_column("_row", pa.array(np.arange(new.num_rows)))
        fresh = new_keys.join(old_keys, keys=key + ["_occ"], join_type="left anti")
        added = new.take(np.sort(fresh.column("_row").to_numpy()))
    if added.num_rows == 0:
        return existing, 0
    merged = added if existing is None else pa.concat_tables([existing.cast(spec.schema), added])
    if _is_sorted(merged, spec.sort_by):     # the usual case for a first ingest: no copy
        return merged, added.num_rows
    order = pc.sort_indices(merged, sort_keys=[(name, "ascending") for name in spec.sort_by])
    return merged.take(order), added.num_rows


def _is_sorted(table: pa.Table, keys: tuple[str, ...]) -> bool:
    """Whether the rows are in ascending lexicographic order of ``keys``."""
    if table.num_rows < 2:
        return True
    tied = np.ones(table.num_rows - 1, dtype=bool)
    for name in keys:
        values = table.column(name).to_numpy()
        earlier, later = values[:-1], values[1:]
        if np.any(tied & (later < earlier)):
            return False
        tied &= later == earlier
    return True


class TickStore:
    """A tick store rooted at a folder; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- paths -------------------------------------------------------------------------------------
    def partition_dir(self, table: str, symbol: str, day: date) -> Path:
        return self.root / table / f"symbol={symbol}" / f"date={day.isoformat()}"

    @property
    def reports_dir(self) -> Path:
        return self.root / "_reports"

    @property
    def symbols_path(self) -> Path:
        return self.root / "symbols" / "symbols.parquet"

    # -- reading -----------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        """Names of the tables the store holds data for."""
        return sorted(name for name in TABLES if (self.root / name).is_dir())

    def symbols_in(self, table: str) -> list[str]:
        """Symbols that have partitions of ``table``."""
        folder = self.root / table
        if not folder.is_dir():
            return []
        return sorted(p.name.split("=", 1)[1] for p in folder.glob("symbol=*"))

    def dates(self, table: str, symbol: str) -> list[date]:
        """Dates for which ``table`` holds a partition for ``symbol``."""
        folder = self.root / table / f"symbol={symbol}"
        return sorted(date.fromisoformat(p.name.split("=", 1)[1])
                      for p in folder.glob("date=*") if (p / PARTITION_FILE).exists())

    def partition_paths(self, table: str, symbol: str, start_ns: int | None = None,
                        end_ns: int | None = None) -> list[str]:
        """Files of the partitions of ``table`` for ``symbol`` whose dates meet ``[start_ns, end_ns)``."""
        first = None if start_ns is None else day_to_date(int(day_of(np.int64(start_ns))))
        last = None if end_ns is None else day_to_date(int(day_of(np.int64(end_ns - 1))))
        return [str(self.partition_dir(table, symbol, d) / PARTITION_FILE)
                for d in self.dates(table, symbol)
                if (first is None or d >= first) and (last is None or d <= last)]

    def read(self, table: str, symbol: str, start_ns: int | None = None, end_ns: int | None = None,
             columns: Iterable[str] | None = None) -> pa.Table:
        """Rows of ``table`` for ``symbol`` with ``start_ns <= ts < end_ns``, in storage order.

        Returns an empty table with the table's schema when nothing matches.
        """
        spec = TABLES[table]
        names = list(columns) if columns is not None else spec.schema.names
        paths = self.partition_paths(table, symbol, start_ns, end_ns)
        if not paths:
            return spec.schema.empty_table().select(names)
        dataset = ds.dataset(paths, schema=spec.schema, format="parquet")
        condition = None
        if start_ns is not None:
            condition = ds.field("ts") >= start_ns
        if end_ns is not None:
            upper = ds.field("ts") < end_ns
            condition = upper if condition is None else condition & upper
        return dataset.to_table(columns=names, filter=condition)

    def read_arrays(self, table: str, symbol: str, start_ns: int | None = None,
                    end_ns: int | None = None, columns: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Like :meth:`read`, as a dict of NumPy arrays (nulls become NaN in float columns)."""
        result = self.read(table, symbol, start_ns, end_ns, columns)
        arrays = {}
        for name in result.column_names:
            column = result.column(name)
            if column.null_count and pa.types.is_integer(column.type):
                column = column.cast(pa.float64())
            arrays[name] = column.to_numpy()
        return arrays

    def symbols(self) -> pa.Table:
        """The ``symbols`` reference table (empty if never written)."""
        if not self.symbols_path.exists():
            return SYMBOLS_SCHEMA.empty_table()
        return pq.read_table(self.symbols_path, schema=SYMBOLS_SCHEMA)

    def symbol_info(self, symbol: str) -> dict:
        """Reference data of one symbol as a dict; ``KeyError`` with a clear message if absent."""
        rows = self.symbols().filter(pc.field("symbol") == symbol).to_pylist()
        if not rows:
            raise KeyError(f"symbol {symbol!r} has no reference data in {self.symbols_path}")
        return rows[0]

    # -- writing -----------------------------------------------------------------------------------
    def transaction(self) -> "StoreTransaction":
        """Start an all-or-nothing batch of writes (use as a context manager)."""
        return StoreTransaction(self)


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp, **_PARQUET_OPTIONS)
    os.replace(tmp, path)


class StoreTransaction:
    """Stages partition writes and publishes them together on :meth:`commit`.

    :meth:`write` only stages its rows (one file per call, nothing is merged yet), so a long ingest
    writes in bounded memory; :meth:`commit` merges each touched partition once (staged chunks and
    live rows, one partition in memory at a time), then renames the merged files over the live
    ones. Used as a context manager, it commits when the block ends normally and discards
    everything when it raises.
    """

    def __init__(self, store: TickStore):
        self.store = store
        self.staging = store.root / "_staging" / uuid.uuid4().hex
        self._chunks: dict[tuple[str, Path], list[Path]] = {}
        self._symbols: pa.Table | None = None
        self.rows_added: dict[tuple[str, str], int] = {}

    def __enter__(self) -> "StoreTransaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def write(self, table: str, symbol: str, rows: pa.Table) -> None:
        """Stage ``rows`` (any order, schema of ``table``) for ``symbol``, split by UTC date."""
        if rows.num_rows == 0:
            return
        spec = TABLES[table]
        rows = rows.select(spec.schema.names).cast(spec.schema)
        days = day_of(rows.column("ts").to_numpy())
        for day in np.unique(days):
            live = self.store.partition_dir(table, symbol, day_to_date(day)) / PARTITION_FILE
            chunks = self._chunks.setdefault((table, live), [])
            staged = self.staging / live.parent.relative_to(self.store.root) / f"chunk-{len(chunks)}.parquet"
            staged.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows.filter(pa.array(days == day)), staged, compression="lz4")
            chunks.append(staged)

    def write_symbols(self, rows: pa.Table) -> None:
        """Stage reference data; rows replace stored rows of the same symbol."""
        current = self._symbols if self._symbols is not None else self.store.symbols()
        rows = rows.select(SYMBOLS_SCHEMA.names).cast(SYMBOLS_SCHEMA)
        keep = pc.invert(pc.is_in(current.column("symbol"), value_set=rows.column("symbol")))
        merged = pa.concat_tables([current.filter(keep), rows])
        self._symbols = merged.take(pc.sort_indices(merged, sort_keys=[("symbol", "ascending")]))

    def commit(self) -> None:
        """Merge every touched partition, then publish the merged files (atomic per file)."""
        try:
            merged_files: dict[Path, Path] = {}
            for (table, live), chunks in self._chunks.items():
                spec = TABLES[table]
                symbol = live.parent.parent.name.split("=", 1)[1]
                new = pa.concat_tables([pq.read_table(chunk, schema=spec.schema) for chunk in chunks])
                existing = pq.read_table(live, schema=spec.schema) if live.exists() else None
                merged, added = merge_rows(existing, new, spec)
                del new
                self.rows_added[(table, symbol)] = self.rows_added.get((table, symbol), 0) + added
                if added:
                    target = live.parent.relative_to(self.store.root)
                    _write_atomic(merged, self.staging / target / PARTITION_FILE)
                    merged_files[live] = self.staging / target / PARTITION_FILE
            if self._symbols is not None and self._symbols != self.store.symbols():
                _write_atomic(self._symbols, self.store.symbols_path)
            for live, staged in merged_files.items():
                live.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, live)
        finally:
            self.rollback()

    def rollback(self) -> None:
        """Discard everything staged."""
        shutil.rmtree(self.staging, ignore_errors=True)
        parent = self.staging.parent
        if parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
        self._chunks.clear()
