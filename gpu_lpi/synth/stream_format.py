"""What both writers share: symbol formatting facts and the chunk -> line-buffer -> file plumbing.

A writer supplies, per output file family, a numba *line formatter* with the signature
``formatter(messages, level_price, level_qty, *extra, buffer, line_local_ns, line_end) -> (lines, bytes)``
that appends its lines for one chunk of simulator messages; :func:`format_chunk` sizes the buffers,
runs it and hands the lines to a :class:`~.daily_gzip.DailyGzipSink`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .daily_gzip import DailyGzipSink
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


def format_chunk(sink: DailyGzipSink, formatter, chunk: Chunk, *extra) -> None:
    """Format one chunk with ``formatter`` and append the lines to ``sink``."""
    messages = chunk.messages
    capacity = MAX_BYTES_PER_MESSAGE * messages.size + MAX_BYTES_PER_LEVEL * chunk.level_price.size + 1024
    buffer = np.empty(capacity, dtype=np.uint8)
    line_local_ns = np.empty(messages.size + chunk.level_price.size, dtype=np.int64)
    line_end = np.empty_like(line_local_ns)
    lines, _ = formatter(messages, chunk.level_price, chunk.level_qty, *extra, buffer, line_local_ns, line_end)
    sink.write(buffer, line_local_ns[:lines], line_end[:lines])
