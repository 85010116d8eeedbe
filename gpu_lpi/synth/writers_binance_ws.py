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

from datetime import date, timedelta
from pathlib import Path

from numba import njit

from .daily_gzip import DailyGzipSink
from .messages import AVG_PRICE_TICK_SCALE, BOOK_TICKER, DEPTH_DIFF, MARK_PRICE, OPEN_INTEREST, SNAPSHOT, TRADE
from .stream_format import SymbolFormat, format_chunk
from .textbuf import make_template, put_byte, put_fixed, put_piece, put_uint

(_TRADE_HEAD, _TRADE_SYMBOL, _TRADE_PRICE, _TRADE_QTY, _TRADE_MAKER, _TRUE, _FALSE, _CLOSE_2,
 _TICKER_HEAD, _TICKER_SYMBOL, _TICKER_BID_QTY, _TICKER_ASK, _TICKER_ASK_QTY, _TICKER_T, _TICKER_E,
 _DEPTH_HEAD, _DEPTH_T, _DEPTH_SYMBOL, _DEPTH_LAST, _DEPTH_PREV, _DEPTH_BIDS, _DEPTH_ASKS, _CLOSE_ARRAYS,
 _LEVEL_OPEN, _LEVEL_MID, _LEVEL_CLOSE, _SNAP_HEAD, _SNAP_E, _SNAP_T, _SNAP_BIDS, _SNAP_ASKS,
 _CLOSE_ARRAY, _OI_HEAD, _OI_TIME, _CLOSE_1, _MARK_HEAD, _MARK_SYMBOL, _MARK_INDEX, _MARK_SETTLE,
 _MARK_RATE, _MARK_NEXT, _FORCE_HEAD, _FORCE_SYMBOL, _SELL, _BUY, _FORCE_PRICE, _FORCE_AVG,
 _FORCE_LAST, _FORCE_TOTAL, _FORCE_T, _CLOSE_3, _T_KEY) = range(52)


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
        ',"u":', ',"pu":', ',"b":[', '],"a":[', "]}}", '["', '","', '"]',
        '{"lastUpdateId":', ',"E":', ',"T":', f'{snap_symbol},"bids":[', '],"asks":[', "]}",
        oi_head, oi_time, "}",
        f'{{"stream":"{stream}@markPrice@1s","data":{{"e":"markPriceUpdate","E":', f',"s":"{symbol}","p":"',
        '","i":"', '","P":"', '","r":"', '","T":',
        f'{{"stream":"{stream}@forceOrder","data":{{"e":"forceOrder","E":', f',"o":{{"s":"{symbol}"{ps},"S":"',
        'SELL","o":"LIMIT","f":"IOC","q":"', 'BUY","o":"LIMIT","f":"IOC","q":"', '","p":"', '","ap":"',
        '","X":"FILLED","l":"', '","z":"', '","T":', "}}}", ',"T":',
    ]
    return make_template([piece.encode() for piece in pieces])


@njit(cache=True)
def _put_levels(buf, pos, level_price, level_qty, start, count, tpl, offs, tick_units, price_dec, lot_units,
                qty_dec):
    """Write ``count`` levels ``["price","qty"],...`` from level row ``start``."""
    for index in range(start, start + count):
        if index > start:
            pos = put_byte(buf, pos, 44)
        pos = put_piece(buf, pos, tpl, offs, _LEVEL_OPEN)
        pos = put_fixed(buf, pos, level_price[index] * tick_units, price_dec)
        pos = put_piece(buf, pos, tpl, offs, _LEVEL_MID)
        pos = put_fixed(buf, pos, level_qty[index] * lot_units, qty_dec)
        pos = put_piece(buf, pos, tpl, offs, _LEVEL_CLOSE)
    return pos


@njit(cache=True)
def _put_message(buf, pos, m, level_price, level_qty, tpl, offs, tick_units, price_dec, lot_units, qty_dec):
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
        pos = put_fixed(buf, pos, m.f1 * tick_units, price_dec)
        pos = put_piece(buf, pos, tpl, offs, _TRADE_QTY)
        pos = put_fixed(buf, pos, m.f2 * lot_units, qty_dec)
        pos = put_piece(buf, pos, tpl, offs, _TRADE_MAKER)
        pos = put_piece(buf, pos, tpl, offs, _TRUE if m.f3 == 1 else _FALSE)
        return put_piece(buf, pos, tpl, offs, _CLOSE_2)
    if kind == BOOK_TICKER:
        pos = put_piece(buf, pos, tpl, offs, _TICKER_HEAD)
        pos = put_uint(buf, pos, m.f0)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_SYMBOL)
        pos = put_fixed(buf, pos, m.f1 * tick_units, price_dec)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_BID_QTY)
        pos = put_fixed(buf, pos, m.f2 * lot_units, qty_dec)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_ASK)
        pos = put_fixed(buf, pos, m.f3 * tick_units, price_dec)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_ASK_QTY)
        pos = put_fixed(buf, pos, m.f4 * lot_units, qty_dec)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_T)
        pos = put_uint(buf, pos, m.trade_ms)
        pos = put_piece(buf, pos, tpl, offs, _TICKER_E)
        pos = put_uint(buf, pos, m.event_ms)
        return put_piece(buf, pos, tpl, offs, _CLOSE_2)
    if kind == DEPTH_DIFF:
        pos = put_piece(buf, pos, tpl, offs, _DEPTH_HEAD)
        pos = put_uint(buf, pos, m.event_ms)
        pos = put_piece(buf, pos, tpl, offs, _DEPTH_T)
        pos = put_uint(buf, pos, m.trade_ms)
        pos = put_piece(buf, pos, tpl, offs, _DEPTH_SYMBOL)
        pos = put_uint(buf, pos, m.f0)
        pos = put_piece(buf, pos, tpl, offs, _DEPTH_LAST)
        pos = put_uint(buf, pos, m.f1)
        pos = put_piece(buf, pos, tpl, offs, _DEPTH_PREV)
        pos = put_uint(buf, pos, m.f2)
        pos = put_piece(buf, pos, tpl, offs, _DEPTH_BIDS)
        pos = _put_levels(buf, pos, level_price, level_qty, m.f3, m.f4, tpl, offs, tick_units, price_dec,
                          lot_units, qty_dec)
        pos = put_piece(buf, pos, tpl, offs, _DEPTH_ASKS)
        pos = _put_levels(buf, pos, level_price, level_qty, m.f3 + m.f4, m.f5, tpl, offs, tick_units,
                          price_dec, lot_units, qty_dec)
        return put_piece(buf, pos, tpl, offs, _CLOSE_ARRAYS)
    if kind == SNAPSHOT:
        pos = put_piece(buf, pos, tpl, offs, _SNAP_HEAD)
        pos = put_uint(buf, pos, m.f0)
        pos = put_piece(buf, pos, tpl, offs, _SNAP_E)
        pos = put_uint(buf, pos, m.event_ms)
        pos = put_piece(buf, pos, tpl, offs, _SNAP_T)
        pos = put_uint(buf, pos, m.trade_ms)
        pos = put_piece(buf, pos, tpl, offs, _SNAP_BIDS)
        pos = _put_levels(buf, pos, level_price, level_qty, m.f1, m.f2, tpl, offs, tick_units, price_dec,
                          lot_units, qty_dec)
        pos = put_piece(buf, pos, tpl, offs, _SNAP_ASKS)
        pos = _put_levels(buf, pos, level_price, level_qty, m.f1 + m.f2, m.f3, tpl, offs, tick_units,
                          price_dec, lot_units, qty_dec)
        return put_piece(buf, pos, tpl, offs, _CLOSE_ARRAY)
    if kind == OPEN_INTEREST:
        pos = put_piece(buf, pos, tpl, offs, _OI_HEAD)
        pos = put_fixed(buf, pos, m.f0 * lot_units, qty_dec)
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
    pos = put_piece(buf, pos, tpl, offs, _FORCE_HEAD)
    pos = put_uint(buf, pos, m.event_ms)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_SYMBOL)
    pos = put_piece(buf, pos, tpl, offs, _SELL if m.f0 == 1 else _BUY)
    pos = put_fixed(buf, pos, m.f1 * lot_units, qty_dec)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_PRICE)
    pos = put_fixed(buf, pos, m.f2 * tick_units, price_dec)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_AVG)
    pos = put_fixed(buf, pos, (m.f3 * tick_units + AVG_PRICE_TICK_SCALE // 2) // AVG_PRICE_TICK_SCALE, price_dec)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_LAST)
    pos = put_fixed(buf, pos, m.f4 * lot_units, qty_dec)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_TOTAL)
    pos = put_fixed(buf, pos, m.f1 * lot_units, qty_dec)
    pos = put_piece(buf, pos, tpl, offs, _FORCE_T)
    pos = put_uint(buf, pos, m.trade_ms)
    return put_piece(buf, pos, tpl, offs, _CLOSE_3)


@njit(cache=True)
def _format_lines(messages, level_price, level_qty, tpl, offs, tick_units, price_dec, lot_units, qty_dec,
                  buf, line_local_ns, line_end):
    """Append ``<local_ts_ns> <json>\\n`` for every message (day-start book rows excepted)."""
    pos = 0
    lines = 0
    for i in range(messages.size):
        m = messages[i]
        if m.kind == SNAPSHOT and m.f4 == 0:
            continue
        pos = put_uint(buf, pos, m.local_ns)
        pos = put_byte(buf, pos, 32)
        pos = _put_message(buf, pos, m, level_price, level_qty, tpl, offs, tick_units, price_dec, lot_units,
                           qty_dec)
        pos = put_byte(buf, pos, 10)
        line_local_ns[lines] = m.local_ns
        line_end[lines] = pos
        lines += 1
    return lines, pos


class BinanceWsWriter:
    """Write one symbol's simulated messages as daily Binance websocket capture files.

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
        first_day_ns = (first_day - date(1970, 1, 1)).days * 86_400_000_000_000
        name = fmt.symbol.lower()
        self._sink = DailyGzipSink(
            lambda day: out_dir / f"{name}_{(first_day + timedelta(days=day)):%Y%m%d}.gz", first_day_ns, days)
        self._args = (*_template(fmt), fmt.tick_units, fmt.price_decimals, fmt.lot_units, fmt.qty_decimals)

    def write(self, chunk) -> None:
        """Append one simulator chunk."""
        format_chunk(self._sink, _format_lines, chunk, *self._args)

    def close(self) -> list[Path]:
        """Finish the files and return their paths."""
        return self._sink.close()
