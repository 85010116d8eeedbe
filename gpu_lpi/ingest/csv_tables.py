"""Reading the CSV files of the Binance archive and Tardis formats into typed Arrow columns, a block
at a time.

Both formats are parsed the same way: the caller describes the expected header as a tuple of
:class:`Field` (name, kind, required); :func:`open_csv` opens a file and looks at its first line;
:meth:`CsvSource.read` parses it block by block (bounded blocks of whole lines, see
:func:`gpu_lpi.ingest.files.iter_line_blocks`) with ``pyarrow.csv`` (vectorized, multi-threaded)
and yields :class:`CsvRows` per block: typed columns plus, for every row, where it came from, so that
any later check can reject rows by their 1-based line number in the decompressed file. What a
file's parse must carry from block to block (counts noted at its end, values of the last row, the
time extent of its rows) lives in a :class:`FileState`, which also applies the value rules
(:mod:`gpu_lpi.ingest.value_rules`) to the canonical rows built from each block.

Bad rows never vanish silently: lines that are not UTF-8 text (found before pyarrow sees the block,
and blanked out so that the other lines keep their numbers), rows with the wrong field count
(``invalid_row_handler``), rows whose values do not parse (found by a slower all-text re-read that
runs only when the typed read of a block fails), empty required fields, negative ids and timestamps
of an unknown unit or of another unit than the first of their column in the file
(:class:`gpu_lpi.ingest.timestamps.FileUnit`) are each passed to ``ctx.reject``.

Line numbers assume no quoted field spans two lines (true of both formats).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gpu_lpi.errors import InputError
from gpu_lpi.ingest import value_rules
from gpu_lpi.ingest.files import iter_line_blocks
from gpu_lpi.ingest.report import EXAMPLES_PER_REASON, IngestContext
from gpu_lpi.ingest.timestamps import BAD_UNIT, OTHER_UNIT, FileUnit
from gpu_lpi.schema import TABLES
from gpu_lpi.store import NS_PER_DAY

#: Field kinds: how a CSV column is typed. ``id`` is an integer >= 0 (a trade or update id),
#: ``epoch`` is an integer Unix time in s/ms/µs/ns (unit detected by digit count), ``datetime`` is
#: UTC text ``YYYY-MM-DD[ HH:MM:SS]``; both become int64 ns. ``ignore`` columns are checked in the
#: header but not read.
KINDS = ("int", "id", "float", "bool", "text", "epoch", "datetime", "ignore")

_ARROW_TYPES = {"int": pa.int64(), "id": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
                "text": pa.string(), "epoch": pa.int64(), "datetime": pa.timestamp("ns")}

#: What a valid non-empty number of each numeric kind looks like (for the text re-read of a block that
#: did not parse; integers limited to what int64 holds). ``float`` accepts what pyarrow's parsers
#: accept, ``nan`` and ``inf`` included (the value rules reject those later, whichever path read them).
NUMBER_PATTERNS = {
    "int": r"^[+-]?\d{1,18}$",
    "id": r"^[+-]?\d{1,18}$",
    "float": r"(?i)^[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|nan|inf|infinity)$",
    "epoch": r"^(\d{1,18}|[1-8]\d{18})$",
}
#: Accepted ``datetime`` cells (UTC).
DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
#: Rejection reason of a cell of each kind that does not parse.
_PROBLEMS = {"int": "not an integer", "id": "not an integer", "float": "not a number",
             "bool": "not true or false", "epoch": "not an integer timestamp", "datetime": "not a YYYY-MM-DD HH:MM:SS time"}

#: ``true``/``false`` in any of the spellings seen (futures files: lower case, spot files: ``True``).
TRUE_VALUES = ["true", "True", "TRUE"]
FALSE_VALUES = ["false", "False", "FALSE"]

_WEBSOCKET_LINE = re.compile(r"^\d+ [{\[]")
_TARDIS_HEADER_START = "exchange,symbol,timestamp,local_timestamp"
#: First header names of Binance public-archive CSVs (A.0.1 of FORMATS.md).
_ARCHIVE_HEADER_STARTS = {"agg_trade_id", "id", "update_id", "timestamp", "create_time", "calc_time",
                          "time", "open_time"}
_FORMAT_DESCRIPTIONS = {"binance-ws": "Binance websocket capture (`<local_ts> <json>` lines)",
                        "binance-archive": "Binance public-archive CSV",
                        "tardis": "Tardis.dev CSV"}


@dataclass(frozen=True)
class Field:
    """One expected CSV column: its header name, its kind (see :data:`KINDS`), whether empty is an error."""

    name: str
    kind: str
    required: bool = True


Layout = tuple[Field, ...]


def header_text(layout: Layout) -> str:
    """The header line a file of ``layout`` has."""
    return ",".join(f.name for f in layout)


def is_number(text: str) -> bool:
    """Whether ``text`` is a plain decimal or integer number."""
    return bool(re.match(NUMBER_PATTERNS["float"], text.strip().strip('"')))


def split_fields(line: str) -> list[str]:
    """The comma-separated fields of a header line, unquoted and stripped."""
    return [part.strip().strip('"') for part in line.split(",")]


def guess_format(line: str) -> str | None:
    """The ``--format`` a file with this first line most likely is, or ``None`` if unrecognisable."""
    if _WEBSOCKET_LINE.match(line):
        return "binance-ws"
    if line.startswith(_TARDIS_HEADER_START):
        return "tardis"
    first = split_fields(line)[0]
    if "," in line and (is_number(first) or first in _ARCHIVE_HEADER_STARTS):
        return "binance-archive"
    return None


class LineIndex:
    """Maps the data rows pyarrow returns for one block to 1-based physical line numbers of the
    decompressed file.

    pyarrow numbers rows by counting non-empty lines of the block (the header included); empty lines
    are skipped. The index is built only when a line number is first asked for (on a rejection).
    """

    def __init__(self, data: bytes, first_line: int, header_lines: int, invalid_ordinals: list[int]):
        self._data, self._first_line = data, first_line
        self._header_lines, self._invalid = header_lines, invalid_ordinals

    @cached_property
    def _nonempty_lines(self) -> np.ndarray:
        raw = np.frombuffer(self._data, dtype=np.uint8)
        newlines = np.flatnonzero(raw == ord("\n"))
        starts = np.concatenate([[0], newlines + 1])
        ends = np.concatenate([newlines, [raw.size]])
        if starts[-1] == raw.size:  # the file ends with a newline: no last line after it
            starts, ends = starts[:-1], ends[:-1]
        lengths = ends - starts
        has_cr = (lengths > 0) & (raw[np.maximum(ends - 1, 0)] == ord("\r"))
        return np.flatnonzero(lengths - has_cr > 0) + self._first_line

    @cached_property
    def _data_lines(self) -> np.ndarray:
        skipped = np.asarray(self._invalid, dtype=np.int64) - 1
        keep = np.ones(self._nonempty_lines.size, dtype=bool)
        keep[: self._header_lines] = False
        keep[skipped] = False
        return self._nonempty_lines[keep]

    def line_of_ordinal(self, ordinal: int) -> int:
        """Physical line of pyarrow's row ``ordinal`` (1-based, empty lines not counted)."""
        return int(self._nonempty_lines[ordinal - 1])

    def lines_of_rows(self, row_ids: np.ndarray) -> np.ndarray:
        """Physical lines of data rows by their index among the rows pyarrow returned."""
        return self._data_lines[row_ids]


@dataclass
class CsvRows:
    """Typed rows of one block of a CSV file and, for each, its index among the block's parsed rows."""

    path: Path
    table: pa.Table
    row_ids: np.ndarray
    lines: LineIndex = field(repr=False)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)

    def numpy(self, name: str) -> np.ndarray:
        """Column ``name`` as NumPy (nulls become NaN in float columns)."""
        return self.table.column(name).to_numpy(zero_copy_only=False)

    def with_column(self, name: str, values) -> "CsvRows":
        """These rows with column ``name`` replaced by ``values``."""
        index = self.table.column_names.index(name)
        return CsvRows(self.path, self.table.set_column(index, name, values), self.row_ids, self.lines)

    def line_numbers(self) -> np.ndarray:
        """The 1-based line number in the decompressed file of every row."""
        return self.lines.lines_of_rows(self.row_ids)

    def filter(self, keep) -> "CsvRows":
        """The rows where ``keep`` (bool array-like) is true."""
        keep = np.asarray(keep, dtype=bool)
        return CsvRows(self.path, self.table.filter(pa.array(keep)), self.row_ids[keep], self.lines)

    def reject(self, bad, ctx: IngestContext, reason: str, show: str | None = None, more: str = "") -> "CsvRows":
        """Report every row where ``bad`` is true to ``ctx.reject`` and return the other rows.

        Parameters
        ----------
        bad : array-like of bool
        ctx : IngestContext
        reason : str
            The rejection category counted in the report.
        show : str, optional
            A column whose value is quoted in each rejection's detail.
        more : str, optional
            Text that ends each rejection's detail.
        """
        bad = np.asarray(bad, dtype=bool)
        if not bad.any():
            return self
        indices = np.flatnonzero(bad)
        lines = self.lines.lines_of_rows(self.row_ids[indices])
        values = self.table.column(show).take(pa.array(indices[:EXAMPLES_PER_REASON])).to_pylist() if show else []
        ctx.reject_many(self.path, lines, reason,
                        lambda i: (f"{reason}: {show}={values[i]!r}" if show else reason) + more)
        return self.filter(~bad)

    def split_by(self, column: str):
        """Yield ``(value, rows)`` for each distinct value of text column ``column``, in order of first use."""
        values = self.table.column(column)
        distinct = pc.unique(values).to_pylist()
        if len(distinct) == 1:
            yield distinct[0], self
            return
        for value in distinct:
            yield value, self.filter(pc.equal(values, value).to_numpy(zero_copy_only=False))


@dataclass
class CsvSource:
    """A CSV file being read block by block, and what its first line says.

    While it is read it records whether any line follows the header (``has_rows``) and the unit of
    each ``epoch`` column (that of the column's first value in the file).
    """

    path: Path
    first_line: str
    blocks: Iterator[tuple[int, bytes]] = field(repr=False)   # (first line number, block), from line 1
    has_rows: bool = False
    units: dict[str, FileUnit] = field(default_factory=dict, repr=False)

    @property
    def header(self) -> list[str] | None:
        """The header names, or ``None`` when the first line is data (its first field is numeric)."""
        fields = split_fields(self.first_line)
        return None if is_number(fields[0]) else fields

    def reject_foreign_format(self, own_format: str) -> None:
        """Raise a fatal :class:`InputError` suggesting ``--format`` when the file looks like another format."""
        guess = guess_format(self.first_line)
        if guess is not None and guess != own_format:
            raise InputError(self.path, 1, f"this looks like a {_FORMAT_DESCRIPTIONS[guess]}, not a "
                             f"{_FORMAT_DESCRIPTIONS[own_format]}; use --format {guess}")

    def check_columns(self, layout: Layout) -> None:
        """Fatal :class:`InputError` unless the file fits ``layout``: every column named in the header,
        or, without a header, the right number of fields on the first line."""
        header = self.header
        if header is None:
            found = len(split_fields(self.first_line))
            if found != len(layout):
                raise InputError(self.path, 1, f"expected {len(layout)} fields per line, found {found}; "
                                 f"expected columns {header_text(layout)}")
            return
        for expected in layout:
            if expected.name not in header:
                raise InputError(self.path, 1, f"missing column {expected.name!r}; expected header "
                                 f"{header_text(layout)}")

    def read(self, layout: Layout, ctx: IngestContext) -> Iterator[CsvRows]:
        """Parse the file with ``layout`` (call :meth:`check_columns` first), one block at a time.

        Yields the rows of each block that parsed, with ``epoch`` and ``datetime`` columns as int64
        ns; every other row is reported through ``ctx.reject`` with its line number.
        """
        header = self.header
        names = header if header is not None else [f.name for f in layout]
        wanted = [f for f in layout if f.kind != "ignore"]
        header_lines = int(header is not None)
        for first_line, block in self.blocks:
            skip = header_lines if first_line == 1 else 0
            body = (block.find(b"\n") + 1 or len(block)) if skip else 0
            if _NON_SPACE.search(block, body):
                self.has_rows = True
                yield self._read_block(block, first_line, skip, names, wanted, ctx)

    def _read_block(self, block: bytes, first_line: int, header_lines: int, names: list[str],
                    wanted: list[Field], ctx: IngestContext) -> CsvRows:
        block = self._without_non_utf8_lines(block, first_line, header_lines, ctx)
        reader = _ArrowCsvReader(block, names, header_lines)
        try:
            table = reader.read({f.name: _ARROW_TYPES[f.kind] for f in wanted})
            rows = self._rows(reader, table, first_line, ctx)
        except pa.ArrowInvalid:  # a value did not convert: re-read as text to find the bad rows
            text = self._read_text(reader, wanted, first_line)
            rows = _convert_text_columns(self._rows(reader, text, first_line, ctx), wanted, ctx)
        return _finish_columns(rows, wanted, self.units, ctx)

    def _without_non_utf8_lines(self, block: bytes, first_line: int, header_lines: int,
                                ctx: IngestContext) -> bytes:
        """``block`` with the lines that are not UTF-8 text emptied (their line ends kept), each rejected."""
        bad, starts, ends = non_utf8_lines(block, header_lines)
        if not bad:
            return block
        ctx.reject_many(self.path, first_line + np.asarray(bad), "not UTF-8 text",
                        lambda i: f"bytes {block[starts[bad[i]]:min(ends[bad[i]], starts[bad[i]] + 40)]!r}")
        pieces, at = [], 0
        for line in bad:
            pieces.append(block[at:starts[line]])
            at = ends[line]
        pieces.append(block[at:])
        return b"".join(pieces)

    def _read_text(self, reader: "_ArrowCsvReader", fields: list[Field], first_line: int) -> pa.Table:
        """Every wanted column as text; a block even that fails on (broken quoting) is fatal."""
        try:
            return reader.read({f.name: pa.string() for f in fields})
        except pa.ArrowInvalid as err:
            raise InputError(self.path, first_line, f"not a readable CSV file ({err})") from None

    def _rows(self, reader: "_ArrowCsvReader", table: pa.Table, first_line: int, ctx: IngestContext) -> CsvRows:
        lines = LineIndex(reader.data, first_line, reader.header_lines, [ordinal for ordinal, _ in reader.invalid])
        for ordinal, detail in reader.invalid:
            ctx.reject(self.path, lines.line_of_ordinal(ordinal), "wrong number of fields", detail)
        return CsvRows(self.path, table, np.arange(table.num_rows), lines)


class _ArrowCsvReader:
    """One block read by ``pyarrow.csv`` with rows of the wrong field count collected, not fatal."""

    def __init__(self, data: bytes, names: list[str], header_lines: int):
        self.data, self.names, self.header_lines = data, names, header_lines
        self.invalid: list[tuple[int, str]] = []  # (pyarrow row ordinal, detail)

    def read(self, column_types: dict[str, pa.DataType]) -> pa.Table:
        table = self._read(column_types, use_threads=True)
        if any(ordinal is None for ordinal, _ in self.invalid):  # threaded reads do not number rows
            table = self._read(column_types, use_threads=False)
        return table

    def _read(self, column_types: dict[str, pa.DataType], use_threads: bool) -> pa.Table:
        self.invalid = []
        read_options = pacsv.ReadOptions(column_names=self.names, skip_rows=self.header_lines,
                                         use_threads=use_threads)
        parse_options = pacsv.ParseOptions(invalid_row_handler=self._collect_invalid)
        convert_options = pacsv.ConvertOptions(
            column_types=column_types, include_columns=list(column_types), null_values=[""],
            strings_can_be_null=True, true_values=TRUE_VALUES, false_values=FALSE_VALUES,
            timestamp_parsers=list(DATETIME_FORMATS))
        return pacsv.read_csv(pa.BufferReader(self.data), read_options=read_options,
                              parse_options=parse_options, convert_options=convert_options)

    def _collect_invalid(self, row) -> str:
        detail = f"expected {row.expected_columns} fields, found {row.actual_columns}: {row.text[:120]}"
        self.invalid.append((row.number, detail))
        return "skip"


def _convert_text_columns(rows: CsvRows, fields: list[Field], ctx: IngestContext) -> CsvRows:
    """Reject rows whose text does not parse as its field's kind; the rest become Arrow types."""
    for f in fields:
        if f.kind == "text":
            continue
        converted, malformed = _parse_text(rows.column(f.name), f.kind)
        rows = rows.reject(malformed, ctx, f"{_PROBLEMS[f.kind]} in column {f.name!r}", show=f.name)
        rows = rows.with_column(f.name, converted.filter(pa.array(~malformed)))
    return rows


def _parse_text(values: pa.ChunkedArray, kind: str) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Text cells as ``kind`` (null where empty or malformed) and the mask of malformed cells."""
    if kind == "bool":
        lower = pc.utf8_lower(values)
        converted = pc.equal(lower, "true")
        valid = pc.or_(converted, pc.equal(lower, "false"))
    elif kind == "datetime":
        converted = pc.coalesce(*(pc.strptime(values, format=fmt, unit="ns", error_is_null=True)
                                  for fmt in DATETIME_FORMATS))
        valid = pc.is_valid(converted)
    else:
        valid = pc.match_substring_regex(values, NUMBER_PATTERNS[kind])
        converted = pc.cast(pc.if_else(valid, values, pa.scalar(None, pa.string())), _ARROW_TYPES[kind])
    malformed = pc.and_(pc.is_valid(values), pc.invert(pc.fill_null(valid, False)))
    return converted, malformed.to_numpy(zero_copy_only=False)


def _finish_columns(rows: CsvRows, fields: list[Field], units: dict[str, FileUnit], ctx: IngestContext) -> CsvRows:
    """Reject empty required cells, negative ids and bad epoch units; times become int64 ns in the
    unit of the file (``units``, by column; values are checked later, on the canonical rows, by
    :mod:`gpu_lpi.ingest.value_rules`)."""
    for f in fields:
        if f.required:
            empty = rows.column(f.name).is_null().to_numpy(zero_copy_only=False)
            rows = rows.reject(empty, ctx, f"empty column {f.name!r}")
    for f in fields:
        if f.kind == "id":
            negative = pc.fill_null(pc.less(rows.column(f.name), 0), False).to_numpy(zero_copy_only=False)
            rows = rows.reject(negative, ctx, f"negative id in column {f.name!r}", show=f.name)
        elif f.kind == "epoch":
            rows = _epoch_column_to_ns(rows, f.name, units.setdefault(f.name, FileUnit()), ctx)
        elif f.kind == "datetime":
            rows = rows.with_column(f.name, pc.cast(rows.column(f.name), pa.int64()))
    return rows


def _epoch_column_to_ns(rows: CsvRows, name: str, unit: FileUnit, ctx: IngestContext) -> CsvRows:
    values = rows.column(name)
    empty = values.is_null().to_numpy(zero_copy_only=False)
    ns, bad_digits, other_unit = unit.to_ns(pc.fill_null(values, 0).to_numpy())
    bad_digits &= ~empty                                    # an empty cell has no unit (0 has none)
    rows = rows.reject(bad_digits, ctx, f"timestamp in column {name!r} {BAD_UNIT}", show=name)
    rows = rows.reject(other_unit[~bad_digits], ctx, f"timestamp in column {name!r} {OTHER_UNIT}",
                       show=name, more=f" (the file's unit is {unit.name})")
    keep = ~bad_digits & ~other_unit
    return rows.with_column(name, pa.array(ns[keep], mask=empty[keep]))


#: Validity checks of byte ranges at most this long are done line by line.
_LINE_BY_LINE_BYTES = 1 << 12
_NON_SPACE = re.compile(rb"\S")


def is_utf8(data) -> bool:
    """Whether the bytes-like ``data`` are valid UTF-8 (checked by Arrow, without a copy)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def non_utf8_lines(data: bytes, skip: int = 0) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The lines of ``data`` that are not valid UTF-8, the first ``skip`` lines not checked.

    Returns the 0-based numbers of those lines (ascending) and the start and end (the line end's
    offset) of every line. Valid text costs one pass; otherwise halves of the lines are checked
    until the bad lines are found (a newline is never part of a multi-byte character, so each line is
    valid on its own exactly when the whole is).
    """
    view = memoryview(data)
    if is_utf8(view):
        return [], np.empty(0, np.int64), np.empty(0, np.int64)
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    starts, ends = np.r_[0, newlines + 1], np.r_[newlines, len(data)]
    bad, pending = [], [(skip, starts.size)]
    while pending:
        low, high = pending.pop()
        if low >= high or is_utf8(view[starts[low]:ends[high - 1]]):
            continue
        if ends[high - 1] - starts[low] > _LINE_BY_LINE_BYTES and high - low > 1:
            middle = (low + high) // 2
            pending.extend(((middle, high), (low, middle)))
            continue
        for line in range(low, high):
            try:
                str(view[starts[line]:ends[line]], "utf-8")
            except UnicodeDecodeError:
                bad.append(line)
    return sorted(bad), starts, ends


def open_csv(path: Path, ctx: IngestContext) -> CsvSource | None:
    """Open ``path`` to be read block by block; ``None`` (with a report note) when it holds no lines."""
    blocks = iter_line_blocks(path)
    opening = []
    for first_line, block in blocks:
        opening.append((first_line, block))
        if block.strip():
            break
    else:
        ctx.report.empty_file(path)
        return None
    first = opening[0][1]
    end = first.find(b"\n")
    text = first[: end if end >= 0 else len(first)].decode("utf-8", errors="replace")
    return CsvSource(path, text.lstrip("\ufeff").rstrip("\r"), itertools.chain(opening, blocks))


#: How far back in time an exact repeat of a row is looked for across the blocks of a file (rows
#: this much older than the latest row met are forgotten).
REPEAT_WINDOW_NS = NS_PER_DAY

#: What a builder makes of a block: (tick-store table, symbol, canonical rows, their lines).
Chunk = tuple[str, str, pa.Table, value_rules.Lines]


class FileState:
    """What the parse of one CSV file carries from block to block.

    Counts to note once at the file's end, values a builder carries (the last open interest of a
    symbol, whether its first book snapshot was met, ...), the recent distinct rows that repeats
    are looked for among, and the time extent of the rows kept per (table, symbol).
    """

    def __init__(self, path: Path):
        self.path = path
        self.counts: Counter = Counter()        # note text with a {:,} field -> count
        self.carry: dict = {}                   # builder-specific values, by key
        self.extent: dict[tuple[str, str], tuple[int, int]] = {}   # (table, symbol) -> first, last ts

    def count(self, note: str, n: int) -> None:
        """Add ``n`` to the count noted at the end of the file as ``note.format(count)``."""
        self.counts[note] += int(n)

    def checked(self, chunk: Chunk, ctx: IngestContext) -> tuple[str, str, pa.Table]:
        """A builder's chunk with the value rules applied; the time extent of its rows recorded."""
        table, symbol, rows, lines = chunk
        rows = value_rules.checked(table, rows, self.path, lines, ctx)
        if rows.num_rows:
            low, high = (int(v) for v in pc.min_max(rows.column("ts")).values())
            previous = self.extent.get((table, symbol), (low, high))
            self.extent[(table, symbol)] = (min(low, previous[0]), max(high, previous[1]))
        return table, symbol, rows

    def without_repeats(self, rows: CsvRows, key: str, time_column: str) -> CsvRows:
        """``rows`` without exact repeats (all columns equal) of a row met before in the file, within
        :data:`REPEAT_WINDOW_NS` of the latest ``time_column`` met; the repeats are counted under
        ``key`` (a note text with a ``{:,}`` field)."""
        recent = self.carry.get(key)
        combined = rows.table if recent is None else pa.concat_tables([recent, rows.table])
        offset = 0 if recent is None else recent.num_rows
        numbered = combined.append_column("_row", pa.array(np.arange(combined.num_rows)))
        firsts = np.sort(numbered.group_by(rows.table.column_names, use_threads=False)
                         .aggregate([("_row", "min")]).column("_row_min").to_numpy())
        keep = np.zeros(rows.num_rows, dtype=bool)
        keep[firsts[firsts >= offset] - offset] = True
        self.count(key, rows.num_rows - keep.sum())
        distinct = combined.take(pa.array(firsts))
        if distinct.num_rows:
            latest = pc.max(distinct.column(time_column)).as_py()
            distinct = distinct.filter(pc.greater_equal(distinct.column(time_column), latest - REPEAT_WINDOW_NS))
        self.carry[key] = distinct
        return rows.filter(keep)

    def finish(self, ctx: IngestContext) -> None:
        """Note the counts of the file."""
        for note, n in self.counts.items():
            if n:
                ctx.report.note(self.path, None, note.format(n))


def canonical_table(table_name: str, num_rows: int, **columns) -> pa.Table:
    """A table with exactly the schema of tick-store table ``table_name``.

    Each keyword names a column; its value is an array of ``num_rows`` values, a scalar repeated on
    every row, or ``None`` for all-null. Every column of the schema must be given. NaN in a NumPy
    array becomes null in nullable columns.
    """
    schema = TABLES[table_name].schema
    arrays = []
    for f in schema:
        value = columns[f.name]
        if value is None:
            arrays.append(pa.nulls(num_rows, f.type))
        elif np.isscalar(value):
            arrays.append(pa.array(np.full(num_rows, value), type=f.type))
        else:
            arrays.append(value.cast(f.type) if isinstance(value, (pa.Array, pa.ChunkedArray))
                          else pa.array(value, type=f.type, from_pandas=f.nullable))
    return pa.Table.from_arrays(arrays, schema=schema)


def reference_data_of(symbol: str, rows: CsvRows, ctx: IngestContext) -> dict:
    """``ctx.symbol_info`` of a symbol read from ``rows``; an unknown one is fatal at its first line."""
    line = None if symbol in ctx.registry else int(rows.line_numbers()[0])
    return ctx.symbol_info(symbol, rows.path, line)
