"""Merging new rows into a partition, in bounded memory whatever the partition's size.

Row rules (the table's :class:`~gpu_lpi.schema.TableSpec`):

* a row with an *identity* (a trade id, a book-ticker update id, a depth level of a numbered
  message, ...) already stored is a repeat when its ``compare`` columns equal the stored row's, and a
  *conflict* otherwise; either way it is not added (the stored row wins) and conflicts are reported.
  Two new rows with one identity: the first is kept and the other is a repeat or a conflict -- the
  last one, for tables where a later row of a source overrides an earlier one (a depth level given
  twice in one message: the book replay applies the last);
* rows without identity are merged as a multiset on the table's key: a new row is added unless the
  partition already holds as many rows with its key as the new data does. Re-ingesting an input
  therefore changes nothing, while rows repeated inside one source (identical trades without ids)
  are all kept.

Bounded memory: the partition's file and the staged files are written sorted by the table's sort
order (``ts`` first) in row groups whose ``ts`` statistics are known, so the merge walks the time axis
in *windows* of at most about :data:`WINDOW_ROWS` rows: for each window it reads the row groups that
overlap it, merges the rows of that window and appends them to the new file. Rows with equal ``ts``
always share a window, so the rules above see every candidate pair, with one exception handled apart:
a row whose single-column id (trade, aggregate trade, book-ticker update) is stored with *another*
timestamp is found by a pass over the ids first (:func:`_ids_stored_at_other_times`). A depth level
re-ingested with a timestamp moved by more than a window is not recognised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpu_lpi.schema import NO_ID, TableSpec

#: Rows per row group of the files the store writes.
ROW_GROUP_ROWS = 1 << 18
#: About how many rows a merge window holds (plus the row groups that straddle its bounds).
WINDOW_ROWS = 1 << 21
#: How many conflicts of a window are described (the rest are counted).
CONFLICT_EXAMPLES = 5
PARQUET_OPTIONS = {"compression": "zstd"}

#: ``on_conflict(count, examples)``: how a merge reports the conflicts it found.
ConflictSink = Callable[[int, list[str]], None]


def sort_rows(rows: pa.Table, spec: TableSpec) -> pa.Table:
    """``rows`` in the table's storage order (stable: equal keys keep their order)."""
    if _is_sorted(rows, spec.sort_by):
        return rows
    return rows.take(pc.sort_indices(rows, sort_keys=[(name, "ascending") for name in spec.sort_by]))


def write_rows(rows: pa.Table, path: Path, compression: str = "zstd") -> None:
    """Write sorted rows as one Parquet file with the store's row-group size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, path, row_group_size=ROW_GROUP_ROWS, compression=compression)


# -- row rules ---------------------------------------------------------------------------------------
@dataclass
class MergedRows:
    """The outcome of merging one window."""

    rows: pa.Table          # stored rows and added rows, in storage order
    added: int
    conflicts: int
    examples: list[str]


def merge_rows(stored: pa.Table, new: pa.Table, spec: TableSpec,
               moved_ids: "MovedIds | None" = None) -> MergedRows:
    """Merge ``new`` rows into ``stored`` rows of one partition (or one window of it).

    Parameters
    ----------
    stored, new : pyarrow.Table
        Rows with the table's schema; ``stored`` holds no two rows with one identity.
    spec : TableSpec
    moved_ids : MovedIds, optional
        Ids stored with another time than some new row of theirs (see module docstring).
    """
    new = new.select(spec.schema.names).cast(spec.schema)
    stored = stored.select(spec.schema.names).cast(spec.schema)
    has_id_new, has_id_stored = _has_identity(new, spec), _has_identity(stored, spec)
    keep = np.zeros(new.num_rows, dtype=bool)
    conflicts, examples = 0, []
    if has_id_new.any():
        kept, conflicting = _identity_merge(stored, np.flatnonzero(has_id_stored), new,
                                            np.flatnonzero(has_id_new), spec, moved_ids)
        keep[kept] = True
        conflicts = int(conflicting.size)
        examples = [_describe(new, row, spec) for row in conflicting[:CONFLICT_EXAMPLES]]
    if not has_id_new.all():
        keep[_multiset_merge(stored, np.flatnonzero(~has_id_stored), new,
                             np.flatnonzero(~has_id_new), spec)] = True
    added = new.filter(pa.array(keep))
    rows = added if stored.num_rows == 0 else pa.concat_tables([stored, added])
    return MergedRows(sort_rows(rows, spec), int(keep.sum()), conflicts, examples)


def _has_identity(rows: pa.Table, spec: TableSpec) -> np.ndarray:
    if not spec.identity:
        return np.zeros(rows.num_rows, dtype=bool)
    if spec.id_column is None:
        return np.ones(rows.num_rows, dtype=bool)
    return rows.column(spec.id_column).to_numpy() != NO_ID


def _sortable(column: pa.ChunkedArray) -> np.ndarray:
    """A column as a NumPy array on which ``==`` groups equal values (NaN and null equal to each other)."""
    values = column.to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        return np.where(np.isnan(values), -np.inf, values)
    if values.dtype == object:  # an integer column with nulls
        return np.asarray([-2**63 if v is None else v for v in values], dtype=np.int64)
    return values.astype(np.int64) if values.dtype.kind == "b" else values


def _stacked(stored: pa.Table, stored_rows: np.ndarray, new: pa.Table, new_rows: np.ndarray,
             names) -> list[np.ndarray]:
    return [np.concatenate([_sortable(stored.column(name))[stored_rows], _sortable(new.column(name))[new_rows]])
            for name in names]


def _groups(columns: list[np.ndarray], is_new: np.ndarray, newest_first: bool = False):
    """Order by ``columns``, then stored before new, then position (new rows last first if
    ``newest_first``); per sorted row, the position of its group's first row."""
    position = np.arange(is_new.size)
    if newest_first:
        position = np.where(is_new, -position, position)
    order = np.lexsort([position, is_new, *columns[::-1]])
    starts = np.ones(order.size, dtype=bool)
    for values in columns:
        ordered = values[order]
        starts[1:] &= ordered[1:] == ordered[:-1]
    starts = ~starts
    starts[:1] = True
    group_start = np.maximum.accumulate(np.where(starts, np.arange(order.size), 0))
    return order, starts, group_start


def _identity_merge(stored, stored_rows, new, new_rows, spec, moved_ids):
    """Indices (into ``new``) of the rows to add, and of the conflicting ones."""
    is_new = np.r_[np.zeros(stored_rows.size, dtype=bool), np.ones(new_rows.size, dtype=bool)]
    order, starts, group_start = _groups(_stacked(stored, stored_rows, new, new_rows, spec.identity),
                                         is_new, newest_first=spec.last_repeat_wins)
    source = np.r_[stored_rows, new_rows][order]
    new_sorted = is_new[order]
    same = np.ones(order.size, dtype=bool)
    for values in _stacked(stored, stored_rows, new, new_rows, spec.compare):
        ordered = values[order]
        same &= ordered == ordered[group_start]
    conflicting = new_sorted & ~starts & ~same
    added = new_sorted & starts
    if moved_ids is not None and moved_ids.ids.size:
        at = np.flatnonzero(new_sorted)
        elsewhere = np.zeros(order.size, dtype=bool)
        elsewhere[at] = moved_ids.differs(new.column(spec.identity[0]).to_numpy()[source[at]],
                                          new.column("ts").to_numpy()[source[at]])
        conflicting |= elsewhere & added
        added &= ~elsewhere
    return np.sort(source[added]), np.sort(source[conflicting])


def _multiset_merge(stored, stored_rows, new, new_rows, spec) -> np.ndarray:
    """Indices (into ``new``) of the rows the multiset union adds."""
    is_new = np.r_[np.zeros(stored_rows.size, dtype=bool), np.ones(new_rows.size, dtype=bool)]
    order, starts, group_start = _groups(_stacked(stored, stored_rows, new, new_rows, spec.key), is_new)
    new_sorted = is_new[order]
    stored_sorted = ~new_sorted
    group = np.cumsum(starts) - 1
    stored_count = np.bincount(group, weights=stored_sorted, minlength=group[-1] + 1 if group.size else 0)
    occurrence = np.arange(order.size) - group_start - stored_count[group]  # among the group's new rows
    added = new_sorted & (occurrence >= stored_count[group])
    return np.sort(np.r_[stored_rows, new_rows][order][added])


def _describe(rows: pa.Table, row: int, spec: TableSpec) -> str:
    values = rows.slice(int(row), 1).to_pylist()[0]
    identity = ", ".join(f"{name}={values[name]}" for name in spec.identity)
    shown = ", ".join(f"{name}={values[name]}" for name in spec.compare)
    return f"{identity}: re-ingested with {shown}, which differs from the stored row (kept)"


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


# -- windows over row groups -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Group:
    """One row group of one file, with the range of its ``ts``."""

    path: Path
    index: int
    rows: int
    ts_min: int
    ts_max: int
    stored: bool


def _row_groups(path: Path, stored: bool) -> list[_Group]:
    meta = pq.ParquetFile(path).metadata
    ts_column = meta.schema.names.index("ts")
    groups = []
    for index in range(meta.num_row_groups):
        group = meta.row_group(index)
        stats = group.column(ts_column).statistics
        if stats is not None and stats.has_min_max:
            low, high = int(stats.min), int(stats.max)
        else:   # no statistics: the group may hold any time
            low, high = -2**63, 2**63 - 1
        if group.num_rows:
            groups.append(_Group(path, index, group.num_rows, low, high, stored))
    return groups


def _windows(groups: list[_Group], max_rows: int) -> list[tuple[int, int]]:
    """Half-open ``ts`` windows covering every group, each starting about ``max_rows`` rows apart."""
    cuts = [-2**63]
    pending = 0
    for group in sorted(groups, key=lambda g: g.ts_min):
        if pending and pending + group.rows > max_rows and group.ts_min > cuts[-1]:
            cuts.append(group.ts_min)
            pending = 0
        pending += group.rows
    return list(zip(cuts, cuts[1:] + [2**63 - 1]))


class _GroupReader:
    """Reads row groups, keeping each until the windows have moved past it."""

    def __init__(self, spec: TableSpec):
        self.spec = spec
        self._cache: dict[tuple[Path, int], pa.Table] = {}

    def rows_in(self, groups: list[_Group], low: int, high: int) -> pa.Table:
        """Rows with ``low <= ts < high`` of the groups overlapping that window."""
        parts = []
        for group in groups:
            if group.ts_max < low or group.ts_min >= high:
                continue
            key = (group.path, group.index)
            if key not in self._cache:
                self._cache[key] = pq.ParquetFile(group.path).read_row_group(
                    group.index).cast(self.spec.schema)
            table = self._cache[key]
            ts = table.column("ts")
            parts.append(table.filter(pc.and_(pc.greater_equal(ts, low), pc.less(ts, high))))
            if group.ts_max < high:
                del self._cache[key]
        if not parts:
            return self.spec.schema.empty_table()
        return pa.concat_tables(parts)


@dataclass(frozen=True)
class MovedIds:
    """Ids stored with a time other than that of a new row with the same id, and their stored time."""

    ids: np.ndarray     # sorted int64
    ts: np.ndarray

    def differs(self, ids: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Mask of rows whose id is stored here with another time."""
        at = np.minimum(np.searchsorted(self.ids, ids), self.ids.size - 1)
        return (self.ids[at] == ids) & (self.ts[at] != ts)


def _ids_stored_at_other_times(stored_groups: list[_Group], new_paths: list[Path],
                               spec: TableSpec) -> MovedIds | None:
    """The new rows' ids that are stored with another ``ts`` (see :class:`MovedIds`).

    Only for tables identified by one id column (trades, aggregate trades, book tickers); holds the
    new rows' ids and times (16 bytes a row) and reads the stored ids one row group at a time.
    """
    if spec.identity != (spec.id_column,) or not stored_groups:
        return None
    new = pa.concat_tables([pq.read_table(path, columns=["ts", spec.id_column]) for path in new_paths])
    new_ids = new.column(spec.id_column).to_numpy()
    new_ts = new.column("ts").to_numpy()
    order = np.argsort(new_ids, kind="stable")
    new_ids, new_ts = new_ids[order], new_ts[order]
    found_ids, found_ts = [], []
    for group in stored_groups if new_ids.size else ():
        table = pq.ParquetFile(group.path).read_row_group(group.index, columns=["ts", spec.id_column])
        ids, ts = table.column(spec.id_column).to_numpy(), table.column("ts").to_numpy()
        at = np.minimum(np.searchsorted(new_ids, ids), new_ids.size - 1)
        moved = (new_ids[at] == ids) & (ids != NO_ID) & (new_ts[at] != ts)
        found_ids.append(ids[moved])
        found_ts.append(ts[moved])
    ids = np.concatenate(found_ids) if found_ids else np.empty(0, np.int64)
    order = np.argsort(ids, kind="stable")
    return MovedIds(ids[order], (np.concatenate(found_ts) if found_ts else np.empty(0, np.int64))[order])


def merge_partition(stored: Path | None, staged: list[Path], spec: TableSpec, out: Path,
                    on_conflict: ConflictSink | None = None, window_rows: int | None = None) -> int:
    """Merge staged row files into a partition file, writing the result to ``out``.

    Parameters
    ----------
    stored : Path or None
        The partition's current file (``None``: a new partition).
    staged : list of Path
        Files of new rows, each sorted in the table's storage order.
    spec : TableSpec
    out : Path
        Where the merged partition is written; left absent when no row is added.
    on_conflict : callable, optional
        ``on_conflict(count, examples)`` for each window with conflicts.
    window_rows : int, optional
        About how many rows a window holds (default :data:`WINDOW_ROWS`).

    Returns
    -------
    int
        Rows added.
    """
    stored_groups = _row_groups(stored, True) if stored is not None else []
    staged_groups = [group for path in staged for group in _row_groups(path, False)]
    moved = _ids_stored_at_other_times(stored_groups, staged, spec)
    reader = _GroupReader(spec)
    added = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = pq.ParquetWriter(out, spec.schema, **PARQUET_OPTIONS)
    try:
        for low, high in _windows(stored_groups + staged_groups, window_rows or WINDOW_ROWS):
            merged = merge_rows(reader.rows_in(stored_groups, low, high),
                                reader.rows_in(staged_groups, low, high), spec, moved)
            if merged.conflicts and on_conflict is not None:
                on_conflict(merged.conflicts, merged.examples)
            added += merged.added
            if merged.rows.num_rows:
                writer.write_table(merged.rows, row_group_size=ROW_GROUP_ROWS)
    finally:
        writer.close()
    if not added:
        out.unlink()
    return added
