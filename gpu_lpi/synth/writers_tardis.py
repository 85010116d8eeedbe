"""Tardis.dev CSV writer: ``<exchange>_<data_type>_<YYYY-MM-DD>_<SYMBOL>.csv.gz`` (FORMATS.md section C).

Five data types are written from the same simulated messages: ``trades`` (from ``@trade``, timestamp
``T``), ``incremental_book_L2`` (from depth diffs, timestamp ``E``; each day's file starts with an
``is_snapshot=true`` block of the book as it stood when the first message of that day arrived, the
first day's with the REST snapshot after the few diffs that preceded it), ``quotes`` (from
``@bookTicker``, timestamp ``T``), ``derivative_ticker`` (a row per mark-price update and per
open-interest poll with every field's latest value; ``last_price`` is the last trade;
``predicted_funding_rate`` empty) and ``liquidations`` (from ``@forceOrder``: price ``p``, amount
``z``, timestamp ``o.T``, empty id). Timestamps are microseconds, booleans lower case, numbers without
trailing zeros (as Tardis prints them). The exchange is ``binance-futures`` for USD-M symbols and
``binance-delivery`` (Tardis's name for COIN-M) for inverse ones.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from kernels.jit import njit

from .messages import BOOK_TICKER, DEPTH_DIFF, FORCE_ORDER, MARK_PRICE, OPEN_INTEREST, SNAPSHOT, TRADE
from .stream_format import DailyWriter, SymbolFormat
from .textbuf import make_template, new_text_cache, put_cached_fixed, put_piece, put_trimmed, put_uint

HEADERS = {
    "trades": "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
    "incremental_book_L2": "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount",
    "quotes": "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount",
    "derivative_ticker": ("exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
                          "predicted_funding_rate,open_interest,last_price,index_price,mark_price"),
    "liquidations": "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
}

_PREFIX, _BUY, _SELL, _BID, _ASK, _TRUE, _FALSE = range(7)

# derivative_ticker running values (carried across chunks): latest field values and whether seen.
(_FUNDING_TS, _FUNDING_RATE, _OPEN_INTEREST, _LAST_PRICE, _INDEX_PRICE, _MARK_PRICE, _SEEN_MARK, _SEEN_OI,
 _SEEN_TRADE) = range(9)


def _template(exchange: str, symbol: str):
    pieces = [f"{exchange},{symbol},", "buy", "sell", "bid", "ask", "true", "false"]
    return make_template([piece.encode() for piece in pieces])


@njit
def _begin_row(buf, pos, tpl, offs, timestamp_us, local_ns):
    pos = put_piece(buf, pos, tpl, offs, _PREFIX)
    pos = put_uint(buf, pos, timestamp_us)
    buf[pos] = 44
    pos = put_uint(buf, pos + 1, local_ns // 1000)
    buf[pos] = 44
    return pos + 1


@njit
def _end_row(buf, pos, line_local_ns, line_end, lines, local_ns):
    buf[pos] = 10
    line_local_ns[lines] = local_ns
    line_end[lines] = pos + 1
    return pos + 1, lines + 1


@njit
def _put_price(buf, pos, ticks, units, cache, text):
    """Price in ticks, trimmed, then a comma."""
    pos = put_cached_fixed(buf, pos, ticks, units[0], units[1], True, cache, text)
    buf[pos] = 44
    return pos + 1


@njit
def _put_qty(buf, pos, lots, units):
    """Quantity in lots, trimmed (no comma)."""
    return put_trimmed(buf, pos, lots * units[2], units[3])


@njit
def _put_side(buf, pos, tpl, offs, side_piece):
    pos = put_piece(buf, pos, tpl, offs, side_piece)
    buf[pos] = 44
    return pos + 1


@njit
def _one_row_per_message(messages, level_price, level_qty, tpl, offs, units, cache, text, kind, buf, line_local_ns,
                         line_end):
    """``trades`` (``kind`` TRADE), ``quotes`` (BOOK_TICKER) or ``liquidations`` (FORCE_ORDER): one row
    per message of that kind, timestamp ``T``."""
    pos = lines = 0
    for i in range(messages.size):
        m = messages[i]
        if m.kind != kind:
            continue
        pos = _begin_row(buf, pos, tpl, offs, m.trade_ms * 1000, m.local_ns)
        if kind == TRADE:
            pos = put_uint(buf, pos, m.f0)
            buf[pos] = 44
            pos = _put_side(buf, pos + 1, tpl, offs, _SELL if m.f3 == 1 else _BUY)
            pos = _put_price(buf, pos, m.f1, units, cache, text)
            pos = _put_qty(buf, pos, m.f2, units)
        elif kind == BOOK_TICKER:
            pos = _put_qty(buf, pos, m.f4, units)
            buf[pos] = 44
            pos = _put_price(buf, pos + 1, m.f3, units, cache, text)
            pos = _put_price(buf, pos, m.f1, units, cache, text)
            pos = _put_qty(buf, pos, m.f2, units)
        else:
            buf[pos] = 44
            pos = _put_side(buf, pos + 1, tpl, offs, _SELL if m.f0 == 1 else _BUY)
            pos = _put_price(buf, pos, m.f2, units, cache, text)
            pos = _put_qty(buf, pos, m.f1, units)
        pos, lines = _end_row(buf, pos, line_local_ns, line_end, lines, m.local_ns)
    return lines, pos


@njit
def _book_rows(buf, pos, lines, m, timestamp_us, level_price, level_qty, first, count, side_piece,
               snapshot_piece, tpl, offs, units, cache, text, line_local_ns, line_end):
    for index in range(first, first + count):
        pos = _begin_row(buf, pos, tpl, offs, timestamp_us, m.local_ns)
        pos = _put_side(buf, pos, tpl, offs, snapshot_piece)
        pos = _put_side(buf, pos, tpl, offs, side_piece)
        pos = _put_price(buf, pos, level_price[index], units, cache, text)
        pos = _put_qty(buf, pos, level_qty[index], units)
        pos, lines = _end_row(buf, pos, line_local_ns, line_end, lines, m.local_ns)
    return pos, lines


@njit
def _incremental_book(messages, level_price, level_qty, tpl, offs, units, cache, text, buf, line_local_ns, line_end):
    pos = lines = 0
    for i in range(messages.size):
        m = messages[i]
        if m.kind == DEPTH_DIFF:
            first, bids, asks, flag, timestamp_us = m.f3, m.f4, m.f5, _FALSE, m.event_ms * 1000
        elif m.kind == SNAPSHOT:
            first, bids, asks, flag, timestamp_us = m.f1, m.f2, m.f3, _TRUE, m.trade_ms * 1000
        else:
            continue
        pos, lines = _book_rows(buf, pos, lines, m, timestamp_us, level_price, level_qty, first, bids, _BID, flag,
                                tpl, offs, units, cache, text, line_local_ns, line_end)
        pos, lines = _book_rows(buf, pos, lines, m, timestamp_us, level_price, level_qty, first + bids, asks, _ASK,
                                flag, tpl, offs, units, cache, text, line_local_ns, line_end)
    return lines, pos


@njit
def _put_if_seen(buf, pos, seen, value, units, decimals):
    if seen:
        pos = put_trimmed(buf, pos, value * units, decimals)
    buf[pos] = 44
    return pos + 1


@njit
def _derivative_ticker(messages, level_price, level_qty, tpl, offs, units, cache, text, latest, buf, line_local_ns,
                       line_end):
    tick_units, price_dec, lot_units, qty_dec = units
    pos = lines = 0
    for i in range(messages.size):
        m = messages[i]
        if m.kind == TRADE:
            latest[_LAST_PRICE] = m.f1
            latest[_SEEN_TRADE] = 1
            continue
        if m.kind == MARK_PRICE:
            latest[_MARK_PRICE], latest[_INDEX_PRICE], latest[_FUNDING_RATE] = m.f0, m.f1, m.f3
            latest[_FUNDING_TS] = m.f4
            latest[_SEEN_MARK] = 1
        elif m.kind == OPEN_INTEREST:
            latest[_OPEN_INTEREST] = m.f0
            latest[_SEEN_OI] = 1
        else:
            continue
        seen_mark = latest[_SEEN_MARK] == 1
        pos = _begin_row(buf, pos, tpl, offs, m.event_ms * 1000 if m.kind == MARK_PRICE else m.trade_ms * 1000,
                         m.local_ns)
        if seen_mark:
            pos = put_uint(buf, pos, latest[_FUNDING_TS] * 1000)
        buf[pos] = 44
        pos = _put_if_seen(buf, pos + 1, seen_mark, latest[_FUNDING_RATE], 1, 8)
        buf[pos] = 44
        pos = _put_if_seen(buf, pos + 1, latest[_SEEN_OI] == 1, latest[_OPEN_INTEREST], lot_units, qty_dec)
        pos = _put_if_seen(buf, pos, latest[_SEEN_TRADE] == 1, latest[_LAST_PRICE], tick_units, price_dec)
        pos = _put_if_seen(buf, pos, seen_mark, latest[_INDEX_PRICE], 1, 8)
        if seen_mark:
            pos = put_trimmed(buf, pos, latest[_MARK_PRICE], 8)
        pos, lines = _end_row(buf, pos, line_local_ns, line_end, lines, m.local_ns)
    return lines, pos


#: Per data type: the formatter and its constant arguments after the price cache.
_FORMATTERS = {
    "trades": (_one_row_per_message, (TRADE,)),
    "incremental_book_L2": (_incremental_book, ()),
    "quotes": (_one_row_per_message, (BOOK_TICKER,)),
    "derivative_ticker": (_derivative_ticker, ()),
    "liquidations": (_one_row_per_message, (FORCE_ORDER,)),
}


def exchange_name(fmt: SymbolFormat) -> str:
    """Tardis exchange id of a symbol: ``binance-delivery`` for COIN-M, else ``binance-futures``."""
    return "binance-delivery" if fmt.is_inverse else "binance-futures"


class TardisWriter(DailyWriter):
    """Write one symbol's simulated messages as daily Tardis CSV files, one family per data type
    (parameters: see :class:`~.stream_format.DailyWriter`)."""

    def __init__(self, out_dir: Path, fmt: SymbolFormat, first_day: date, days: int) -> None:
        super().__init__(out_dir, fmt, first_day, days)
        exchange = exchange_name(fmt)
        self._sinks = {
            data_type: self._daily_sink(
                lambda day, data_type=data_type: f"{exchange}_{data_type}_{day:%Y-%m-%d}_{fmt.symbol}.csv.gz",
                header=(HEADERS[data_type] + "\n").encode())
            for data_type in _FORMATTERS
        }
        self._args = (*_template(exchange, fmt.symbol),
                      (fmt.tick_units, fmt.price_decimals, fmt.lot_units, fmt.qty_decimals), *new_text_cache())
        self._latest = np.zeros(9, dtype=np.int64)

    def write(self, chunk) -> None:
        """Append one simulator chunk to every data type."""
        for data_type, (formatter, extra) in _FORMATTERS.items():
            state = (self._latest,) if formatter is _derivative_ticker else ()
            self._format(self._sinks[data_type], formatter, chunk, *self._args, *extra, *state)

    def close(self) -> list[Path]:
        """Finish the files and return their paths."""
        return [path for sink in self._sinks.values() for path in sink.close()]
