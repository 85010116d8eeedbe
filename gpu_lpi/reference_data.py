"""Reference data of instruments: tick size, lot size, contract size and the inverse flag.

The package ships a table of common Binance futures symbols (``gpu_lpi/data/symbols.csv``); users add
or override symbols with a CSV of the same columns (``gpu-lpi ingest --symbols-file``). Every row is
checked when read: a symbol, tick, lot and contract sizes that are finite numbers > 0, and the
inverse flag; a bad row is a one-line :class:`~gpu_lpi.errors.InputError` naming its file, line and
field.
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


def _read_symbols_csv(source: str) -> pa.Table:
    options = pacsv.ConvertOptions(column_types=SYMBOLS_SCHEMA, strings_can_be_null=False, null_values=[""])
    try:
        table = pacsv.read_csv(source, convert_options=options)
    except (pa.ArrowInvalid, pa.ArrowKeyError) as err:
        raise InputError(source, None, f"bad symbols file ({err}); expected columns "
                         f"{','.join(SYMBOLS_SCHEMA.names)}") from None
    missing = [name for name in SYMBOLS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise InputError(source, 1, f"symbols file lacks column(s) {missing}; expected "
                         f"{','.join(SYMBOLS_SCHEMA.names)}")
    _check_rows(source, table)
    return table.select(SYMBOLS_SCHEMA.names).cast(SYMBOLS_SCHEMA)


def _check_rows(source: str, table: pa.Table) -> None:
    """Fatal :class:`InputError` at the first row with an empty symbol or flag, or a size that is
    not a finite number > 0."""
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
    for row, symbol in enumerate(table.column("symbol").to_pylist()):
        if not symbol.strip():
            bad_rows.setdefault(row, "symbol is empty")
    if bad_rows:
        row = min(bad_rows)
        raise InputError(source, _data_lines(source)[row], f"{bad_rows[row]} (symbols file)")


def _data_lines(source: str) -> list[int]:
    """The line number of each data row of a (small) CSV file: its non-empty lines after the header."""
    with open(source, encoding="utf-8", errors="replace") as handle:
        return [number for number, text in enumerate(handle, start=1) if text.strip()][1:]


def builtin_symbols() -> pa.Table:
    """The reference table shipped with the package."""
    with resources.as_file(resources.files("gpu_lpi") / "data" / "symbols.csv") as path:
        return _read_symbols_csv(str(path))


class SymbolRegistry:
    """Looks up reference data, user files first, then the built-in table."""

    def __init__(self, extra_files: list[str | os.PathLike] = ()):
        tables = [_read_symbols_csv(str(path)) for path in extra_files] + [builtin_symbols()]
        self._rows: dict[str, dict] = {}
        for table in tables:
            for row in table.to_pylist():
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
