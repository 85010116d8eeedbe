"""Tiny hand-made tick stores for the feature-engine tests (importable by simulator subprocesses)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gpu_lpi.schema import TABLES
from gpu_lpi.store import TickStore

SYMBOL = "TESTUSDT"
T0 = 1_722_816_000 * 10**9  # 2024-08-05 00:00:00 UTC
MS = 1_000_000
DAY_NS = 86_400 * 10**9


def _table(name: str, columns: dict) -> pa.Table:
    schema = TABLES[name].schema
    n = len(next(iter(columns.values())))
    full = {}
    for field in schema:
        if field.name in columns:
            full[field.name] = pa.array(columns[field.name], field.type)
        elif field.name == "local_ts":
            full[field.name] = pa.nulls(n, field.type)
        else:
            full[field.name] = pa.array(np.arange(n), field.type)  # ids
    return pa.table(full, schema=schema)


def build_store(root, quotes: dict, trades: dict | None = None, open_interest: dict | None = None,
                liquidations: dict | None = None, tick_size: float = 0.01,
                covered: tuple[int, int] | dict | None = None) -> TickStore:
    """A store with ``book_ticker`` quotes and optional trades, OI and liquidations for :data:`SYMBOL`.

    ``trades`` needs ts, price, qty, is_buyer_maker and optionally kind (default market); notional is
    price·qty. Every table written is recorded as covering ``covered`` (default: the UTC day of
    :data:`T0` and the day before, wholly, as a complete record of those days would; a dict gives
    the span per table, the default for the others).
    """
    store = TickStore(root)
    default = (T0 - DAY_NS, T0 + DAY_NS)
    spans = covered if isinstance(covered, dict) else {}
    default = covered if isinstance(covered, tuple) else default
    with store.transaction() as tx:
        for table, given in (("book_ticker", quotes), ("trades", trades), ("open_interest", open_interest),
                             ("liquidations", liquidations)):
            if given is not None:
                tx.cover(table, SYMBOL, *spans.get(table, default), "tests.feature_stores")
        tx.write_symbols(pa.table({"symbol": [SYMBOL], "tick_size": [tick_size], "lot_size": [0.001],
                                   "contract_size": [1.0], "is_inverse": [False]}))
        tx.write("book_ticker", SYMBOL, _table("book_ticker", quotes))
        if trades is not None:
            trades = dict(trades)
            trades.setdefault("kind", np.zeros(len(trades["ts"]), dtype=np.int8))
            trades["notional"] = np.asarray(trades["price"]) * np.asarray(trades["qty"])
            tx.write("trades", SYMBOL, _table("trades", trades))
        if open_interest is not None:
            tx.write("open_interest", SYMBOL, _table("open_interest", {
                **open_interest, "oi_value": np.asarray(open_interest["oi"]) * 100.0}))
        if liquidations is not None:
            tx.write("liquidations", SYMBOL, _table("liquidations", {
                **liquidations, "price": np.full(len(liquidations["ts"]), 100.0),
                "qty": np.asarray(liquidations["notional"]) / 100.0,
                "avg_price": np.full(len(liquidations["ts"]), 100.0)}))
    return store


def random_store(root, seed: int = 0, minutes: float = 3.0, trades_per_minute: int = 750) -> TickStore:
    """A random market around :data:`T0`: quotes, trades (with impact sells and buys), OI, liquidations."""
    rng = np.random.default_rng(seed)
    begin, end = T0 - 60_000 * MS, T0 + int(minutes * 60_000) * MS
    quote_ts = np.arange(begin, end, 100 * MS) + rng.integers(0, 50, (end - begin) // (100 * MS)) * MS
    mid = 100.0 + np.cumsum(rng.normal(0, 0.01, quote_ts.size))
    half = 0.01 * rng.integers(1, 4, quote_ts.size)
    bid, ask = np.round(mid - half, 2), np.round(mid + half, 2)
    quotes = {"ts": quote_ts, "bid": bid, "ask": ask, "bid_qty": rng.uniform(1, 10, quote_ts.size),
              "ask_qty": rng.uniform(1, 10, quote_ts.size)}
    trade_ts = np.sort(rng.integers(begin, end, int(trades_per_minute * (minutes + 1))))
    at = np.searchsorted(quote_ts, trade_ts, side="right") - 1
    is_sell = rng.random(trade_ts.size) < 0.5
    through = rng.random(trade_ts.size) < 0.2
    price = np.where(is_sell, bid[at] - through * 0.2, ask[at] + through * 0.2)
    trades = {"ts": trade_ts, "price": price, "qty": rng.exponential(1.0, trade_ts.size),
              "is_buyer_maker": is_sell, "kind": (rng.random(trade_ts.size) < 0.05).astype(np.int8)}
    oi_ts = np.arange(begin, end, 3_000 * MS)
    oi = {"ts": oi_ts, "oi": 1e5 - np.cumsum(rng.exponential(10.0, oi_ts.size) * (rng.random(oi_ts.size) < 0.3))}
    liq_ts = np.sort(rng.integers(begin, end, int(10 * (minutes + 1))))
    liquidations = {"ts": liq_ts, "side": rng.integers(0, 2, liq_ts.size).astype(np.int8),
                    "notional": rng.uniform(100, 5000, liq_ts.size)}
    return build_store(root, quotes, trades, oi, liquidations, covered=(begin, end))
