"""Reference data of instruments: tick size, lot size, contract size and the inverse flag.

The package ships a table of common Binance futures symbols (``gpu_lpi/data/symbols.csv``); users add
or override symbols with a CSV of the same columns (``gpu-lpi ingest --symbols-file``). Every file is
checked when read: UTF-8 text; per row a symbol, tick, lot and contract sizes that are finite
numbers > 0, and the inverse flag; no symbol listed twice with different values (in one file or in
two user files: which one would be meant is unknowable; an identical repeat is harmless). A problem
is a one-line :class:`~gpu_lpi.errors.InputError` naming its file, line and field.
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from gpu_lpi.errors import InputError
from gpu_lpi.schema import SYMBOLS_SCHEMA

#: Columns that must be finite numbers > 0.
SIZES = ("tick_size", "lot_size", "contract_size")


def _read_symbols_csv(source: str) -> tuple[pa.Table, list[int]]:
    """The checked rows of a symbols file and the line number of each (the file is small: read whole)."""
    try:
        with open(source, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise InputError(source, None, f"cannot read the symbols file ({err.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(source, data.count(b"\n", 0, err.start) + 1,
                         f"not UTF-8 text (byte {data[err.start]:#04x}); a symbols file is a UTF-8 CSV with "
                         f"columns {','.join(SYMBOLS_SCHEMA.names)}") from None
    options = pacsv.ConvertOptions(column_types=SYMBOLS_SCHEMA, strings_can_be_null=False, null_values=[""])
    try:
        table = pacsv.read_csv(pa.BufferReader(data), convert_options=options)
    except (pa.ArrowInvalid, pa.ArrowKeyError) as err:
        raise InputError(source, None, f"bad symbols file ({err}); expected columns "
                         f"{','.join(SYMBOLS_SCHEMA.names)}") from None
    missing = [name for name in SYMBOLS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise InputError(source, 1, f"symbols file lacks column(s) {missing}; expected "
                         f"{','.join(SYMBOLS_SCHEMA.names)}")
    lines = [number for number, line in enumerate(text.split("\n"), start=1) if line.strip()][1:]
    _check_rows(source, table, lines)
    return table.select(SYMBOLS_SCHEMA.names).cast(SYMBOLS_SCHEMA), lines


def _check_rows(source: str, table: pa.Table, lines: list[int]) -> None:
    """Fatal :class:`InputError` at the first row with an empty symbol or flag, a size that is not a
    finite number > 0, or a symbol listed before with other values."""
    bad_rows = {}
    for name in SIZES:
        column = table.column(name)
        values = column.to_numpy(zero_copy_only=False)
        empty = column.is_null().to_numpy(zero_copy_only=False)
        for row in np.flatnonzero(~(np.isfinite(values) & (values > 0))):
            shown = "empty" if empty[row] else repr(float(values[row]))
            bad_rows.setdefault(int(row), f"{name} is {shown}; expected a finite number > 0")
    for row in np.flatnonzero(table.column("is_inverse").is_null().to_numpy(zero_copy_only=False)):
        bad_rows.setdefault(int(row), "is_inverse is empty; expected true or false")
    first_row: dict[str, int] = {}
    records = table.select(SYMBOLS_SCHEMA.names).to_pylist()
    for row, record in enumerate(records):
        symbol = record["symbol"]
        if not symbol.strip():
            bad_rows.setdefault(row, "symbol is empty")
        elif symbol in first_row and records[first_row[symbol]] != record:
            bad_rows.setdefault(row, f"symbol {symbol!r} is listed again with other values (first on line "
                                     f"{lines[first_row[symbol]]}): {_differences(records[first_row[symbol]], record)}")
        first_row.setdefault(symbol, row)
    if bad_rows:
        row = min(bad_rows)
        raise InputError(source, lines[row], f"{bad_rows[row]} (symbols file)")


def _differences(first: dict, again: dict) -> str:
    return ", ".join(f"{name} {first[name]!r} then {again[name]!r}" for name in first if first[name] != again[name])


def builtin_symbols() -> pa.Table:
    """The reference table shipped with the package."""
    with resources.as_file(resources.files("gpu_lpi") / "data" / "symbols.csv") as path:
        return _read_symbols_csv(str(path))[0]


class SymbolRegistry:
    """Looks up reference data, user files first, then the built-in table."""

    def __init__(self, extra_files: list[str | os.PathLike] = ()):
        self._rows: dict[str, dict] = {}
        given: dict[str, str] = {}                  # symbol -> the user file that gave it
        for path in map(str, extra_files):
            table, lines = _read_symbols_csv(path)
            for row, line in zip(table.to_pylist(), lines):
                symbol = row["symbol"]
                if symbol in given and given[symbol] != path and self._rows[symbol] != row:
                    raise InputError(path, line, f"symbol {symbol!r} has other values than in {given[symbol]}: "
                                     f"{_differences(self._rows[symbol], row)} (symbols file)")
                given.setdefault(symbol, path)
                self._rows.setdefault(symbol, row)
        for row in builtin_symbols().to_pylist():
            self._rows.setdefault(row["symbol"], row)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._rows

    def get(self, symbol: str, path=None, line: int | None = None) -> dict:
        """Reference row of ``symbol``; :class:`InputError` naming where it was met if unknown."""
        try:
            return self._rows[symbol]
        except KeyError:
            raise InputError(path or "<input>", line,
                             f"symbol {symbol!r} has no reference data (tick size, lot size, contract "
                             f"size, inverse flag); pass --symbols-file with columns "
                             f"{','.join(SYMBOLS_SCHEMA.names)}") from None

    def table(self, symbols) -> pa.Table:
        """Reference rows of ``symbols`` as a ``symbols`` table."""
        return pa.Table.from_pylist([self._rows[s] for s in sorted(symbols)], schema=SYMBOLS_SCHEMA)


def usd_notional(price, qty, info: dict):
    """Notional in USD: ``qty * contract_size`` for inverse (COIN-M) contracts, else ``price * qty``."""
    if info["is_inverse"]:
        return qty * info["contract_size"]
    return price * qty * info["contract_size"]
