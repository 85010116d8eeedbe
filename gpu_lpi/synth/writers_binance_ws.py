"""Binance futures websocket capture writer: ``<symbol>_<YYYYMMDD>.gz``, lines ``<local_ts_ns> <json>``.

The JSON is byte-for-byte in the layout of the real captures in ``shared/data`` (key order,
combined-stream wrapper, prices and quantities as strings at the symbol's precision, COIN-M ``ps`` /
``symbol`` / ``pair`` fields and its book-ticker key order). Streams not in the captures follow the
Binance documentation (FORMATS.md B.6, B.7, B.9): ``@markPrice@1s`` (same layout for USD-M and
COIN-M), ``@forceOrder`` (COIN-M adds ``ps`` in the order), and the REST ``openInterest`` poll written
unwrapped like the REST depth snapshot (COIN-M adds ``pair`` and ``contractType``). Day-start book
rows of the simulator are Tardis-only and skipped here.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from kernels.jit import njit

from .messages import AVG_PRICE_TICK_SCALE, BOOK_TICKER, DEPTH_DIFF, MARK_PRICE, OPEN_INTEREST, SNAPSHOT, TRADE
from .stream_format import DailyWriter, SymbolFormat
from .textbuf import make_template, new_text_cache, put_cached_fixed, put_fixed, put_piece, put_uint

(_TRADE_HEAD, _TRADE_SYMBOL, _TRADE_PRICE, _TRADE_QTY, _TRADE_MAKER, _TRUE, _FALSE, _CLOSE_2,
 _TICKER_HEAD, _TICKER_SYMBOL, _TICKER_BID_QTY, _TICKER_ASK, _TICKER_ASK_QTY, _TICKER_T, _TICKER_E,
 _DEPTH_HEAD, _DEPTH_T, _DEPTH_SYMBOL, _DEPTH_LAST, _DEPTH_PREV, _DEPTH_BIDS, _DEPTH_ASKS, _CLOSE_ARRAYS,
 _SNAP_HEAD, _SNAP_E, _SNAP_T, _SNAP_BIDS, _SNAP_ASKS,
 _CLOSE_ARRAY, _OI_HEAD, _OI_TIME, _CLOSE_1, _MARK_HEAD, _MARK_SYMBOL, _MARK_INDEX, _MARK_SETTLE,
 _MARK_RATE, _MARK_NEXT, _FORCE_HEAD, _FORCE_SYMBOL, _SELL, _BUY, _FORCE_PRICE, _FORCE_AVG,
 _FORCE_LAST, _FORCE_TOTAL, _FORCE_T, _CLOSE_3, _T_KEY) = range(49)


def _template(fmt: SymbolFormat):
    """Constant JSON pieces for one symbol, in the order of the index constants above."""
    stream = fmt.symbol.lower()
    symbol = fmt.symbol
    ps = f',"ps":"{fmt.pair}"' if fmt.is_inverse else ""
    if fmt.is_inverse:
        ticker_head = f'{{"stream":"{stream}@bookTicker","data":{{"u":'
        ticker_symbol = f',"e":"bookTicker","s":"{symbol}"{ps},"b":"'
        snap_symbol = f',"symbol":"{symbol}","pair":"{fmt.pair}"'
        oi_head = f'{{"symbol":"{symbol}","pair":"{fmt.pair}","openInterest":"'
        oi_time = '","contractType":"PERPETUAL","time":'
    else:
        ticker_head = f'{{"stream":"{stream}@bookTicker","data":{{"e":"bookTicker","u":'
        ticker_symbol = f',"s":"{symbol}","b":"'
        snap_symbol = ""
        oi_head = f'{{"symbol":"{symbol}","openInterest":"'
        oi_time = '","time":'
    pieces = [
        f'{{"stream":"{stream}@trade","data":{{"e":"trade","E":', f',"s":"{symbol}","t":', ',"p":"', '","q":"',
        '","X":"MARKET","m":', "true", "false", "}}",
        ticker_head, ticker_symbol, '","B":"', '","a":"', '","A":"', '","T":', ',"E":',
        f'{{"stream":"{stream}@depth@0ms","data":{{"e":"depthUpdate","E":', ',"T":', f',"s":"{symbol}"{ps},"U":',
        ',"u":', ',"pu":', ',"b":[', '],"a":[', "]}}",
        '{"lastUpdateId":', ',"E":', ',"T":', f'{snap_symbol},"bids":[', '],"asks":[', "]}",
        oi_head, oi_time, "}",
        f'{{"stream":"{stream}@markPrice@1s","data":{{"e":"markPriceUpdate","E":', f',"s":"{symbol}","p":"',
        '","i":"', '","P":"', '","r":"', '","T":',
        f'{{"stream":"{stream}@forceOrder","data":{{"e":"forceOrder","E":', f',"o":{{"s":"{symbol}"{ps},"S":"',
        'SELL","o":"LIMIT","f":"IOC","q":"', 'BUY","o":"LIMIT","f":"IOC","q":"', '","p":"', '","ap":"',
        '","X":"FILLED","l":"', '","z":"', '","T":', "}}}", ',"T":',
    ]
    return make_template([piece.encode() for piece in pieces])


@njit
def _put_levels(buf, pos, level_price, level_qty, start, count, units, cache, text):
    """Write ``count`` levels ``["price","qty"],...`` from level row ``start``."""
    tick_units, price_dec, lot_units, qty_dec = units  # scalars only: arrays in a tuple cost refcounting
    for index in range(start, start + count):
        if index > start:
            buf[pos] = 44
            pos += 1
        buf[pos] = 91
        buf[pos + 1] = 34
        pos = put_cached_fixed(buf, pos + 2, level_price[index], tick_units, price_dec, False, cache, text)
        buf[pos] = 34
        buf[pos + 1] = 44
        buf[pos + 2] = 34
        pos = put_fixed(buf, pos + 3, level_qty[index] * lot_units, qty_dec)
        buf[pos] = 34
        buf[pos + 1] = 93
        pos += 2
    return pos


@njit
def _put_uint_fields(buf, pos, tpl, offs, first_piece, values):
    """Write piece ``first_piece``, ``values[0]``, piece ``first_piece + 1``, ``values[1]``, ..."""
    for k in range(len(values)):
        pos = put_piece(buf, pos, tpl, offs, first_piece + k)
        pos = put_uint(buf, pos, values[k])
    return pos


@njit
def _put_book(buf, pos, tpl, offs, bids_key, asks_key, close, level_price, level_qty, start, bids, asks,
              units, cache, text):
    """Write ``<bids_key>[levels]<asks_key>[levels]<close>`` (depth diff and REST snapshot)."""
    pos = put_piece(buf, pos, tpl, offs, bids_key)
    pos = _put_levels(buf, pos, level_price, level_qty, start, bids, units, cache, text)
    pos = put_piece(buf, pos, tpl, offs, asks_key)
    pos = _put_levels(buf, pos, level_price, level_qty, start + bids, asks, units, cache, text)
    return put_piece(buf, pos, tpl, offs, close)


@njit
def _put_price(buf, pos, ticks, units, cache, text):
    """Price of ``ticks`` (``units``: tick units, price decimals, lot units, quantity decimals)."""
    return put_cached_fixed(buf, pos, ticks, units[0], units[1], False, cache, text)


@njit
def _put_qty(buf, pos, lots, units):
    return put_fixed(buf, pos, lots * units[2], units[3])


@njit
def _put_message(buf, pos, m, level_price, level_qty, tpl, offs, units, cache, text):
    """Write the JSON of one message (without the receive time and newline)."""
    kind = m.kind
    if kind == TRADE:
        pos = put_piece(buf, pos, tpl, offs, _TRADE_HEAD)
        pos = put_uint(buf, pos, m.event_ms)
        pos = put_piece(buf, pos, tpl, offs, _T_KEY)
        pos = put_uint(buf, pos, m.trade_ms)
        pos = put_piece(buf, pos, tpl, offs, _TRADE_SYMBOL)
        pos = put_uint(buf, pos, m.f0)
        pos = put_piece(buf, pos, tpl, offs, _TRADE_PRICE)
        pos = _put_price(buf, pos, m.f1, units, cache, text)
        pos = put_piece(buf, pos, tpl, offs, _TRADE_QTY)
        pos = _put_qty(buf, pos, m.f2, units)
        pos = put_piece(buf, pos, tpl, offs, _TRADE_MAKER)
        pos = put_piece(buf, pos, tpl, offs, _TRUE if m.f3 == 1 else _FALSE)
        return put_piece(buf, pos, tpl, offs, _CLOSE_2)
    if kind == BOOK_TICKER:
        pos = put_piece(buf, pos, tpl, offs, _TICKER_HEAD)
        pos = put_uint(buf, pos, m.f0)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_SYMBOL)
        pos = _put_price(buf, pos, m.f1, units, cache, text)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_BID_QTY)
        pos = _put_qty(buf, pos, m.f2, units)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_ASK)
        pos = _put_price(buf, pos, m.f3, units, cache, text)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_ASK_QTY)
        pos = _put_qty(buf, pos, m.f4, units)
        pos = _put_uint_fields(buf, pos, tpl, offs, _TICKER_T, (m.trade_ms, m.event_ms))
        return put_piece(buf, pos, tpl, offs, _CLOSE_2)
    if kind == DEPTH_DIFF:
        pos = _put_uint_fields(buf, pos, tpl, offs, _DEPTH_HEAD, (m.event_ms, m.trade_ms, m.f0, m.f1, m.f2))
        return _put_book(buf, pos, tpl, offs, _DEPTH_BIDS, _DEPTH_ASKS, _CLOSE_ARRAYS, level_price, level_qty,
                         m.f3, m.f4, m.f5, units, cache, text)
    if kind == SNAPSHOT:
        pos = _put_uint_fields(buf, pos, tpl, offs, _SNAP_HEAD, (m.f0, m.event_ms, m.trade_ms))
        return _put_book(buf, pos, tpl, offs, _SNAP_BIDS, _SNAP_ASKS, _CLOSE_ARRAY, level_price, level_qty,
                         m.f1, m.f2, m.f3, units, cache, text)
    if kind == OPEN_INTEREST:
        pos = put_piece(buf, pos, tpl, offs, _OI_HEAD)
        pos = _put_qty(buf, pos, m.f0, units)
        pos = put_piece(buf, pos, tpl, offs, _OI_TIME)
        pos = put_uint(buf, pos, m.trade_ms)
        return put_piece(buf, pos, tpl, offs, _CLOSE_1)
    if kind == MARK_PRICE:
        pos = put_piece(buf, pos, tpl, offs, _MARK_HEAD)
        pos = put_uint(buf, pos, m.event_ms)
        pos = put_piece(buf, pos, tpl, offs, _MARK_SYMBOL)
        pos = put_fixed(buf, pos, m.f0, 8)
        pos = put_piece(buf, pos, tpl, offs, _MARK_INDEX)
        pos = put_fixed(buf, pos, m.f1, 8)
        pos = put_piece(buf, pos, tpl, offs, _MARK_SETTLE)
        pos = put_fixed(buf, pos, m.f2, 8)
        pos = put_piece(buf, pos, tpl, offs, _MARK_RATE)
        pos = put_fixed(buf, pos, m.f3, 8)
        pos = put_piece(buf, pos, tpl, offs, _MARK_NEXT)
        pos = put_uint(buf, pos, m.f4)
        return put_piece(buf, pos, tpl, offs, _CLOSE_2)
    tick_units, price_dec = units[0], units[1]
    pos = put_piece(buf, pos, tpl, offs, _FORCE_HEAD)
    pos = put_uint(buf, pos, m.event_ms)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_SYMBOL)
    pos = put_piece(buf, pos, tpl, offs, _SELL if m.f0 == 1 else _BUY)
    pos = _put_qty(buf, pos, m.f1, units)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_PRICE)
    pos = _put_price(buf, pos, m.f2, units, cache, text)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_AVG)
    pos = put_fixed(buf, pos, (m.f3 * tick_units + AVG_PRICE_TICK_SCALE // 2) // AVG_PRICE_TICK_SCALE, price_dec)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_LAST)
    pos = _put_qty(buf, pos, m.f4, units)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_TOTAL)
    pos = _put_qty(buf, pos, m.f1, units)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_T)
    pos = put_uint(buf, pos, m.trade_ms)
    return put_piece(buf, pos, tpl, offs, _CLOSE_3)


@njit
def _format_lines(messages, level_price, level_qty, tpl, offs, units, cache, text, buf, line_local_ns, line_end):
    """Append ``<local_ts_ns> <json>\\n`` for every message (day-start book rows excepted)."""
    pos = 0
    lines = 0
    for i in range(messages.size):
        m = messages[i]
        if m.kind == SNAPSHOT and m.f4 == 0:
            continue
        pos = put_uint(buf, pos, m.local_ns)
        buf[pos] = 32
        pos = _put_message(buf, pos + 1, m, level_price, level_qty, tpl, offs, units, cache, text)
        buf[pos] = 10
        pos += 1
        line_local_ns[lines] = m.local_ns
        line_end[lines] = pos
        lines += 1
    return lines, pos


class BinanceWsWriter(DailyWriter):
    """Write one symbol's simulated messages as daily Binance websocket capture files (parameters: see
    :class:`~.stream_format.DailyWriter`)."""

    def __init__(self, out_dir: Path, fmt: SymbolFormat, first_day: date, days: int) -> None:
        super().__init__(out_dir, fmt, first_day, days)
        name = fmt.symbol.lower()
        self._sink = self._daily_sink(lambda day: f"{name}_{day:%Y%m%d}.gz")
        self._args = (*_template(fmt), (fmt.tick_units, fmt.price_decimals, fmt.lot_units, fmt.qty_decimals),
                      *new_text_cache())

    def write(self, chunk) -> None:
        """Append one simulator chunk."""
        self._format(self._sink, _format_lines, chunk, *self._args)

    def close(self) -> list[Path]:
        """Finish the files and return their paths."""
        return self._sink.close()
