"""The simulator's output: a time-ordered table of exchange messages, independent of any file format.

Each row of :data:`MESSAGE_DTYPE` is one message as the collector receives it: ``kind``, exchange
event time ``event_ms`` (Binance ``E``), transaction time ``trade_ms`` (``T``), receive time
``local_ns`` and six integer fields whose meaning depends on the kind (below). Prices are absolute
ticks, quantities lots; book levels of depth diffs and snapshots live in the separate
``level_price`` / ``level_qty`` arrays.

========================  ==============================================================
kind                      fields f0..f5
========================  ==============================================================
``TRADE``                 trade id, price ticks, qty lots, is_buyer_maker (1: aggressor sold)
``BOOK_TICKER``           update id, bid ticks, bid lots, ask ticks, ask lots
``DEPTH_DIFF``            first update id U, final id u, previous final id pu, level start,
                          bid count, ask count (bids then asks, each ascending in price)
``SNAPSHOT``              lastUpdateId, level start, bid count, ask count (bids descending,
                          asks ascending), 1 for the REST snapshot / 0 for a day-start book
``OPEN_INTEREST``         open interest lots
``MARK_PRICE``            mark, index, estimated settle price (all 1e-8 units), funding rate
                          (1e-8 units), next funding time ms
``FORCE_ORDER``           1 for SELL / 0 for BUY, qty lots, order price ticks, average price
                          (1e-4 ticks), last fill lots
========================  ==============================================================
"""

from __future__ import annotations

import numpy as np

from kernels.jit import njit

TRADE, BOOK_TICKER, DEPTH_DIFF, SNAPSHOT, OPEN_INTEREST, MARK_PRICE, FORCE_ORDER = range(7)

#: Fixed-point scale of mark/index/funding fields.
PRICE_E8 = 100_000_000
#: Fixed-point scale of the force order's average price, in ticks.
AVG_PRICE_TICK_SCALE = 10_000

MESSAGE_DTYPE = np.dtype([
    ("kind", np.int64), ("event_ms", np.int64), ("trade_ms", np.int64), ("local_ns", np.int64),
    ("f0", np.int64), ("f1", np.int64), ("f2", np.int64), ("f3", np.int64), ("f4", np.int64),
    ("f5", np.int64),
])


@njit
def push_message(messages, counts, kind, event_ms, trade_ms, local_ns, f0, f1, f2, f3, f4, f5):
    """Append one message row; ``counts[0]`` is the number of rows in use."""
    row = messages[counts[0]]
    row.kind = kind
    row.event_ms = event_ms
    row.trade_ms = trade_ms
    row.local_ns = local_ns
    row.f0 = f0
    row.f1 = f1
    row.f2 = f2
    row.f3 = f3
    row.f4 = f4
    row.f5 = f5
    counts[0] += 1
