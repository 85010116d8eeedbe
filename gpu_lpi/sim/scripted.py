"""A given order list through the simulator's fill engine (cross-checks, hand-computed tests).

>>> market = load_market(store, "BTCUSDT", start_ns, end_ns)          # doctest: +SKIP
>>> fills = simulate_orders(market, orders, fill_model="queue_risk_averse",
...                         order_latency_ms=100.0, partial_fills=False)  # doctest: +SKIP

``orders`` has one row per order: ``order_id``, ``submit_ts`` (ns, the strategy's clock: the order
reaches the exchange at ``submit_ts`` + latency), ``side`` (+1 buy, -1 sell), ``price``, ``qty``,
``cancel_ts`` (ns, -1: never; the cancel reaches the exchange a latency later) and optionally
``taker`` (bool: a market order walking the book; ``price`` is then ignored). Limit orders are
post-only: one that would cross on arrival is rejected. The latency is constant here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpu_lpi.errors import ConfigError
from gpu_lpi.sim.engine import launch
from gpu_lpi.sim.market import MarketWindows, load_windows
from gpu_lpi.sim.params import SimParams
from gpu_lpi.store import TickStore
from kernels import maker_sim as k

ORDER_COLUMNS = ("order_id", "submit_ts", "side", "price", "qty", "cancel_ts")


def load_market(store, symbol: str, start_ns: int, end_ns: int, band_bps: float = 500.0) -> MarketWindows:
    """The market of ``symbol`` in ``(start_ns, end_ns]`` as one window (book as of ``start_ns``)."""
    store = store if isinstance(store, TickStore) else TickStore(store)
    return load_windows(store, symbol, [(int(start_ns), int(end_ns))], band_bps)


def simulate_orders(market: MarketWindows, orders: pd.DataFrame, fill_model: str = "queue_risk_averse",
                    order_latency_ms: float = 0.0, partial_fills: bool = True, queue_power: float = 2.0,
                    maker_fee_bps: float = 0.0, taker_fee_bps: float = 0.0, device: str = "cpu") -> pd.DataFrame:
    """Fills of ``orders`` (module docstring) against the market's first window.

    Returns
    -------
    pandas.DataFrame
        One row per fill: ``order_id``, ``ts`` (exchange time), ``price``, ``qty`` (unsigned),
        ``side``, ``maker`` (bool), ``fee`` (quote currency; negative: a rebate).
    """
    missing = [c for c in ORDER_COLUMNS if c not in orders.columns]
    if missing:
        raise ConfigError(f"orders: missing columns {missing}; expected {list(ORDER_COLUMNS)}")
    if not orders["side"].isin([1, -1]).all():
        raise ConfigError("orders.side: expected +1 (buy) or -1 (sell)")
    params = SimParams(fill_model=fill_model, partial_fills=partial_fills, queue_power=queue_power,
                       maker_fee_bps=maker_fee_bps, taker_fee_bps=taker_fee_bps)
    latency = int(round(order_latency_ms * 1e6))
    arrive = orders["submit_ts"].to_numpy(np.int64) + latency
    order = np.argsort(arrive, kind="stable")
    cancel = orders["cancel_ts"].to_numpy(np.int64)
    cancel = np.where(cancel >= 0, cancel + latency, k.INF)
    taker = orders["taker"].to_numpy(bool) if "taker" in orders.columns else np.zeros(len(orders), bool)
    price = np.round(orders["price"].to_numpy(np.float64) / market.tick_size)
    price = np.where(taker, -1, np.nan_to_num(price, nan=-1)).astype(np.int64)
    record = k.ScriptedMarket(
        ev_ts=market.ev_ts, ev_kind=market.ev_kind, ev_side=market.ev_side, ev_price=market.ev_price,
        ev_qty=market.ev_qty, ev_bid=market.ev_bid, ev_ask=market.ev_ask, lv_key=market.lv_key,
        lv_ev=market.lv_ev, lv_qty=market.lv_qty, a_ev0=market.w_ev0[:1], a_ev1=market.w_ev1[:1],
        a_lv0=market.w_lv0[:1], a_lv1=market.w_lv1[:1], a_bid0=market.w_bid0[:1], a_ask0=market.w_ask0[:1],
        scenario=params.row()[None, :], arrive=arrive[order], cancel=cancel[order],
        side=orders["side"].to_numpy(np.int8)[order], price=price[order],
        qty=orders["qty"].to_numpy(np.float64)[order], taker=taker[order].astype(np.int8))
    n_live = _most_live(arrive, cancel)
    result = launch(k.scripted_orders, record, 1, 1, _market_params(market), device,
                    n_slots=max(n_live, 1), orders_per_episode=len(orders) + 1)
    a = result.arrays
    fills = a["fl_order"][result.fills(0)]
    ids = orders["order_id"].to_numpy()[order][fills]
    qty = a["fl_qty"][result.fills(0)]
    price = a["fl_price"][result.fills(0)]
    maker = a["fl_maker"][result.fills(0)].astype(bool)
    fee = np.abs(qty) * price * market.contract_size * np.where(maker, maker_fee_bps, taker_fee_bps) * 1e-4
    return pd.DataFrame({"order_id": ids, "ts": a["fl_ts"][result.fills(0)], "price": price,
                         "qty": np.abs(qty), "side": np.sign(qty).astype(np.int8), "maker": maker, "fee": fee})


def _market_params(market: MarketWindows) -> dict:
    return {"tick_size": market.tick_size, "lot_size": market.lot_size,
            "contract_size": market.contract_size, "rate_ref": market.rate_ref}


def _most_live(arrive: np.ndarray, cancel: np.ndarray) -> int:
    """Most orders that can be live at once (an upper bound: fills only free slots earlier)."""
    times = np.concatenate([arrive, cancel[cancel < k.INF]])
    steps = np.concatenate([np.ones(arrive.size, np.int64), -np.ones(int((cancel < k.INF).sum()), np.int64)])
    order = np.lexsort((-steps, times))
    return int(np.cumsum(steps[order]).max(initial=0))
