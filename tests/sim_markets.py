"""Hand-made markets for the simulator tests (importable by CUDA-simulator subprocesses).

A market is given as windows, each with its book at the start (``levels``: ``{(side, price):
qty}``, side 0 bid / 1 ask, prices in ticks) and its events: ``("trade", ts, aggressor, price,
qty)`` (aggressor ``"sell"`` hits bids) or ``("level", ts, side, price, qty)``. The best bid and ask
after each event come from a dict replay here, independently of :mod:`gpu_lpi.sim.market`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpu_lpi.sim.market import MarketWindows
from kernels import maker_sim as k

S = 1_000_000_000
MS = 1_000_000
#: The book of most tests: bids 100 x 5, 99 x 3, 98 x 4; asks 101 x 5, 102 x 4, 103 x 6.
BOOK = {(0, 100): 5.0, (0, 99): 3.0, (0, 98): 4.0, (1, 101): 5.0, (1, 102): 4.0, (1, 103): 6.0}


def _top(book: dict) -> tuple[int, int]:
    bids = [p for (side, p), q in book.items() if side == 0 and q > 0]
    asks = [p for (side, p), q in book.items() if side == 1 and q > 0]
    return (max(bids) if bids else -1), (min(asks) if asks else -1)


def hand_market(windows, tick: float = 1.0, lot: float = 0.001, rate_ref: float = 0.0) -> MarketWindows:
    """A :class:`MarketWindows` of ``windows`` = ``[(start_ns, end_ns, levels, events), ...]``."""
    columns = {name: [] for name in ("ts", "kind", "side", "price", "qty", "bid", "ask")}
    lv, per = [], {name: [] for name in ("ev0", "ev1", "lv0", "lv1", "bid0", "ask0")}
    for start, _, levels, events in windows:
        book = dict(levels)
        bid0, ask0 = _top(book)
        ev0 = len(columns["ts"])
        entries = [((side * k.SIDE_STRIDE + price), ev0 - 1, qty) for (side, price), qty in levels.items()]
        for event in sorted(events, key=lambda e: (e[1], e[0] != "trade")):
            kind, ts, who, price, qty = event
            if kind == "trade":
                side = 0 if who == "sell" else 1
            else:
                side = who
                book[(side, price)] = qty
                entries.append((side * k.SIDE_STRIDE + price, len(columns["ts"]), qty))
            bid, ask = _top(book)
            for name, value in zip(columns, (ts, k.TRADE if kind == "trade" else k.LEVEL, side, price,
                                             qty, bid, ask)):
                columns[name].append(value)
        entries.sort(key=lambda e: (e[0], e[1]))
        per["lv0"].append(len(lv))
        lv.extend(entries)
        per["lv1"].append(len(lv))
        per["ev0"].append(ev0)
        per["ev1"].append(len(columns["ts"]))
        per["bid0"].append(bid0)
        per["ask0"].append(ask0)
    n = len(columns["ts"])
    return MarketWindows(
        tick_size=tick, lot_size=lot, contract_size=1.0,
        starts=np.array([w[0] for w in windows], np.int64), ends=np.array([w[1] for w in windows], np.int64),
        ev_ts=np.array(columns["ts"], np.int64), ev_kind=np.array(columns["kind"], np.int8),
        ev_side=np.array(columns["side"], np.int8), ev_price=np.array(columns["price"], np.int64),
        ev_qty=np.array(columns["qty"], np.float64), ev_bid=np.array(columns["bid"], np.int64),
        ev_ask=np.array(columns["ask"], np.int64), ev_delay=np.full(n, -1, np.int64),
        ev_rate=np.zeros(n), lv_key=np.array([e[0] for e in lv], np.int64),
        lv_ev=np.array([e[1] for e in lv], np.int64), lv_qty=np.array([e[2] for e in lv], np.float64),
        w_ev0=np.array(per["ev0"], np.int64), w_ev1=np.array(per["ev1"], np.int64),
        w_lv0=np.array(per["lv0"], np.int64), w_lv1=np.array(per["lv1"], np.int64),
        w_bid0=np.array(per["bid0"], np.int64), w_ask0=np.array(per["ask0"], np.int64),
        w_delay0=np.full(len(windows), -1, np.int64), w_rate0=np.zeros(len(windows)), rate_ref=rate_ref)


def orders(*rows) -> pd.DataFrame:
    """Scripted orders from ``(order_id, submit_ts, side, price, qty, cancel_ts)`` rows."""
    return pd.DataFrame(rows, columns=["order_id", "submit_ts", "side", "price", "qty", "cancel_ts"])


def view(start: int, seconds: float, tick_ms: int = 250, **columns) -> pd.DataFrame:
    """Feature ticks from ``start`` for ``seconds``: constant columns unless given (arrays or
    callables of the tick times)."""
    ts = start + np.arange(int(seconds * 1000 / tick_ms)) * tick_ms * MS
    base = {"mid": 100.5, "spread": 1.0, "lpi_down": 5.0, "lpi_up": 0.0, "z_pi": 0.0, "target_w": 0.5,
            "sigma": 0.01, "event": False, "exhaustion": False, "state": 1}
    base.update(columns)
    frame = pd.DataFrame({"ts": ts})
    for name, value in base.items():
        frame[name] = value(ts) if callable(value) else value
    frame.loc[0, ["event", "exhaustion"]] = True
    return frame
