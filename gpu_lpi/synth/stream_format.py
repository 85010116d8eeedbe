"""What both writers share: symbol formatting facts and the chunk -> line-buffer -> file plumbing.

A writer (a :class:`DailyWriter`) supplies, per output file family, a numba *line formatter* with the
signature ``formatter(messages, level_price, level_qty, *extra, buffer, line_local_ns, line_end) ->
(lines, bytes)`` that appends its lines for one chunk of simulator messages (one call per chunk and
family); :meth:`DailyWriter._format` runs it into buffers kept from chunk to chunk and hands the lines
to a :class:`~.daily_gzip.DailyGzipSink`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from .daily_gzip import DAY_NS, DailyGzipSink
from .market import Chunk

#: Upper bounds used to size a chunk's text buffer: bytes per message and per book level.
MAX_BYTES_PER_MESSAGE = 400
MAX_BYTES_PER_LEVEL = 128


@dataclass(frozen=True)
class SymbolFormat:
    """Number formatting of one symbol.

    Attributes
    ----------
    symbol : str
        Exchange symbol, upper case (``BTCUSDT``).
    pair : str
        Underlying pair (``BTCUSD`` for ``BTCUSD_PERP``; the symbol itself for USD-M).
    is_inverse : bool
        COIN-M (inverse) contract.
    price_decimals, qty_decimals : int
        Digits after the point in price and quantity strings.
    tick_units, lot_units : int
        Tick and lot in units of ``10**-price_decimals`` / ``10**-qty_decimals``.
    """

    symbol: str
    pair: str
    is_inverse: bool
    price_decimals: int
    qty_decimals: int
    tick_units: int
    lot_units: int

    @classmethod
    def from_reference(cls, symbol: str, tick: str, lot: str, is_inverse: bool) -> SymbolFormat:
        """Build from ``symbols.csv`` strings. USD-M prices show at least two decimals, as Binance does."""
        tick_decimals = max(-Decimal(tick).normalize().as_tuple().exponent, 0)
        lot_decimals = max(-Decimal(lot).normalize().as_tuple().exponent, 0)
        price_decimals = tick_decimals if is_inverse else max(tick_decimals, 2)
        return cls(symbol=symbol, pair=symbol.split("_")[0] if is_inverse else symbol, is_inverse=is_inverse,
                   price_decimals=price_decimals, qty_decimals=lot_decimals,
                   tick_units=int(Decimal(tick).scaleb(price_decimals)),
                   lot_units=int(Decimal(lot).scaleb(lot_decimals)))


class DailyWriter:
    """Base of the writers: daily gzip files of one symbol and the buffers its chunks are formatted in.

    Parameters
    ----------
    out_dir : Path
        Output folder.
    fmt : SymbolFormat
        The symbol's formatting facts.
    first_day : datetime.date
        First UTC day.
    days : int
        Number of days.
    """

    def __init__(self, out_dir: Path, fmt: SymbolFormat, first_day: date, days: int) -> None:
        self._out_dir = Path(out_dir)
        self._fmt = fmt
        self._first_day = first_day
        self._days = days
        self._buffer = np.empty(0, dtype=np.uint8)
        self._line_local_ns = np.empty(0, dtype=np.int64)
        self._line_end = np.empty(0, dtype=np.int64)

    def _daily_sink(self, file_name: Callable[[date], str], header: bytes = b"") -> DailyGzipSink:
        """A sink writing ``out_dir / file_name(day)`` for each UTC day."""
        first_day_ns = (self._first_day - date(1970, 1, 1)).days * DAY_NS
        return DailyGzipSink(lambda day: self._out_dir / file_name(self._first_day + timedelta(days=day)),
                             first_day_ns, self._days, header=header)

    def _format(self, sink: DailyGzipSink, formatter, chunk: Chunk, *extra) -> None:
        """Format one chunk with ``formatter`` and append the lines to ``sink``.

        The buffers are sized for the worst case of the chunk and reused by the next call (the sink
        compresses the lines before returning), so a day does not allocate and page in ~7 GB anew.
        """
        messages = chunk.messages
        capacity = MAX_BYTES_PER_MESSAGE * messages.size + MAX_BYTES_PER_LEVEL * chunk.level_price.size + 1024
        if self._buffer.size < capacity:
            self._buffer = np.empty(capacity, dtype=np.uint8)
        rows = messages.size + chunk.level_price.size
        if self._line_end.size < rows:
            self._line_local_ns = np.empty(rows, dtype=np.int64)
            self._line_end = np.empty(rows, dtype=np.int64)
        lines, _ = formatter(messages, chunk.level_price, chunk.level_qty, *extra, self._buffer,
                             self._line_local_ns, self._line_end)
        sink.write(self._buffer, self._line_local_ns[:lines], self._line_end[:lines])
