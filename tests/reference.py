"""Slow, obviously-correct reference implementations that the engine is tested against."""

from __future__ import annotations

import gzip
import json
from collections import Counter


def count_ws_messages(path) -> Counter:
    """Messages per kind in a binance-ws capture, counted line by line with ``json.loads``.

    Depth messages count one per price level (``depth_levels``, both sides, snapshots included) and
    one per message (``depthUpdate``, ``snapshot``).
    """
    counts: Counter = Counter()
    with gzip.open(path, "rt") as lines:
        for line in lines:
            message = json.loads(line.split(" ", 1)[1])
            message = message.get("data", message)
            if "lastUpdateId" in message:
                counts["snapshot"] += 1
                counts["depth_levels"] += len(message["bids"]) + len(message["asks"])
            elif message.get("e") == "depthUpdate":
                counts["depthUpdate"] += 1
                counts["depth_levels"] += max(1, len(message["b"]) + len(message["a"]))
            else:
                counts[message["e"]] += 1
    return counts


class DictBook:
    """A price -> quantity order book kept in two dicts (the textbook way)."""

    def __init__(self):
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def set(self, side: int, price: float, qty: float) -> None:
        levels = self.bids if side == 0 else self.asks
        if qty > 0:
            levels[price] = qty
        else:
            levels.pop(price, None)

    def best_bid(self):
        return max(self.bids) if self.bids else None

    def best_ask(self):
        return min(self.asks) if self.asks else None

    def depth(self, side: int, band: float) -> float:
        """Quantity within ``band`` (fraction) of the best price on one side."""
        if side == 0:
            best = self.best_bid()
            return sum(q for p, q in self.bids.items() if p >= best * (1 - band) - 1e-9)
        best = self.best_ask()
        return sum(q for p, q in self.asks.items() if p <= best * (1 + band) + 1e-9)


def rolling_median_mad(values, window, min_periods):
    """Trailing-window median and MAD of the non-NaN values, one ``numpy.median`` per window.

    The window ending at ``i`` covers ``values[i - window + 1 : i + 1]``; NaN where it holds
    fewer than ``max(min_periods, 1)`` non-NaN values.
    """
    import numpy as np

    median, mad = np.full(len(values), np.nan), np.full(len(values), np.nan)
    for end, window_values in _trailing_windows(values, window, min_periods):
        median[end] = np.median(window_values)
        mad[end] = np.median(np.abs(window_values - median[end]))
    return median, mad


def _trailing_windows(values, window, min_periods):
    """``(end, the non-NaN values of the window ending at end)`` where they are at least
    ``max(min_periods, 1)``."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    for end in range(values.size):
        window_values = values[max(0, end - window + 1) : end + 1]
        window_values = window_values[~np.isnan(window_values)]
        if window_values.size >= max(min_periods, 1):
            yield end, window_values


def rolling_median_nonzero_mad(values, window, min_periods):
    """Trailing-window median and non-zero MAD: the ``numpy.median`` of ``|x - median|`` over the
    window's values that are neither 0 nor the median (0 where there are none), window by window."""
    import numpy as np

    median, nonzero = np.full(len(values), np.nan), np.full(len(values), np.nan)
    for end, window_values in _trailing_windows(values, window, min_periods):
        median[end] = np.median(window_values)
        kept = window_values[(window_values != 0) & (window_values != median[end])]
        nonzero[end] = np.median(np.abs(kept - median[end])) if kept.size else 0.0
    return median, nonzero


def rolling_median_side_mad(values, window, min_periods):
    """Trailing-window median and side MAD of each tick's value ``v`` (one half of the double MAD):
    ``numpy.median(x - median)`` over the values above the median where ``v >= median``, else
    ``numpy.median(median - x)`` over those below (0 where there are none; NaN where ``v`` is)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    median, side = np.full(values.size, np.nan), np.full(values.size, np.nan)
    for end, window_values in _trailing_windows(values, window, min_periods):
        median[end] = np.median(window_values)
        if np.isnan(values[end]):
            continue
        if values[end] >= median[end]:
            kept = window_values[window_values > median[end]] - median[end]
        else:
            kept = median[end] - window_values[window_values < median[end]]
        side[end] = np.median(kept) if kept.size else 0.0
    return median, side


def signals(columns, params, has_oi, has_liquidations, has_depth):
    """Per-tick signals of :mod:`gpu_lpi.signals`, written out from the spec's rules tick by tick
    (slow: plain Python loops over lists). Returns a dict of NumPy arrays; ``sigma`` is taken from
    ``columns["sigma"]`` (the trailing mean is tested elsewhere)."""
    import math

    import numpy as np

    n = len(columns["mid"])
    mid, sigma = list(columns["mid"]), list(columns["sigma"])
    first, last = params.divergence_ticks
    k = params.rollover_k

    def above(value, threshold):
        return not math.isnan(value) and value > threshold

    def side(lpi, z_fsi, z_ldr, z_liq, sign):
        out = {name: [False] * n for name in ("impact", "confirmed", "panic", "rollover", "oi_flush",
                                              "liquidity", "divergence", "candidate", "warm")}
        out["peak"] = [math.nan] * n
        for i in range(n):
            if has_liquidations:
                confirmed = above(z_liq[i], params.z_liq_hi)
            elif has_oi:
                confirmed = above(columns["z_doi"][i], params.z_oi_hi)
            else:
                proxy = z_ldr[i] if has_depth else columns["z_pi"][i]
                confirmed = above(proxy, params.z_proxy_hi)
            out["impact"][i] = above(z_fsi[i], params.z_fsi_hi)
            out["confirmed"][i] = confirmed
            out["warm"][i] = not (math.isnan(lpi[i]) or math.isnan(z_fsi[i]))
            peak_ticks = max(1, round(params.rollover_peak_s * 1000 / params.tick_ms))
            recent = [v for v in lpi[max(0, i - peak_ticks + 1):i + 1] if not math.isnan(v)]
            out["peak"][i] = max(recent) if recent else math.nan
            out["panic"][i] = above(out["peak"][i], params.lpi_hi) and above(lpi[i], params.lpi_exit)
            out["rollover"][i] = (i >= k and all(lpi[i] < lpi[i - j - 1] for j in range(k))
                                  and (lpi[i] <= params.lpi_hi
                                       or lpi[i] <= params.rollover_from_peak * max(recent)))
            out["oi_flush"][i] = above(columns["z_doi"][i], params.z_oi_hi) if has_oi else True
            depleted = [v for v in z_ldr[max(0, i - peak_ticks + 1):i + 1] if not math.isnan(v)]
            refilled = bool(depleted) and z_ldr[i] <= params.rollover_from_peak * max(depleted)
            out["liquidity"][i] = (i >= k and z_ldr[i] < z_ldr[i - k] and refilled) if has_depth else True
            out["divergence"][i] = i >= last and not math.isnan(mid[i]) and any(
                sign * (mid[i] - mid[i - tau]) > 0 and lpi[i] < lpi[i - tau] for tau in range(first, last + 1))
            out["candidate"][i] = (out["panic"][i] and out["rollover"][i] and out["liquidity"][i]
                                   and out["divergence"][i])
        return out

    down = side(list(columns["lpi_down"]), list(columns["z_fsi"]), list(columns["z_ldr"]),
                list(columns["z_liq_sell"]), -1.0)
    up = side(list(columns["lpi_up"]), list(columns["z_fsi_up"]), list(columns["z_ldr_up"]),
              list(columns["z_liq_buy"]), 1.0)
    hold = max(1, round(params.state_hold_s * 1000 / params.tick_ms))
    onset = max(1, round(params.state_onset_s * 1000 / params.tick_ms))
    for out in (down, up):
        onsets = [any(out["impact"][max(0, i - onset + 1):i + 1])
                  and any(out["confirmed"][max(0, i - onset + 1):i + 1]) for i in range(n)]
        out["forced"] = [any(onsets[max(0, i - hold + 1):i + 1]) for i in range(n)]
    result = {name: [] for name in ("state", "side", "candidate", "oi_flush", "event", "target_w")}
    refractory = int(round(params.refractory_s * 1000 / params.tick_ms))
    for chosen in (down, up):
        chosen["event"] = [chosen["candidate"][i] and not any(chosen["candidate"][max(0, i - refractory):i])
                           for i in range(n)]
    for i in range(n):
        a, b = columns["lpi_down"][i], columns["lpi_up"][i]
        known = not (math.isnan(a) and math.isnan(b))
        if down["event"][i] != up["event"][i]:
            is_down = down["event"][i]
        elif down["event"][i]:      # both: the side the price moved to over the peak window
            shift = max(1, round(params.rollover_peak_s * 1000 / params.tick_ms))
            before = mid[i - shift] if i >= shift else math.nan
            moved = mid[i] < before or mid[i] > before
            is_down = mid[i] < before if moved else down["peak"][i] >= up["peak"][i]
        else:
            is_down = (not math.isnan(a)) and (math.isnan(b) or a >= b)
        chosen = down if is_down else up
        result["side"].append((-1 if is_down else 1) if known else 0)
        result["state"].append((1 if chosen["forced"][i] else 0) if (known and chosen["warm"][i]) else -1)
        result["candidate"].append(known and chosen["candidate"][i])
        result["oi_flush"].append(known and chosen["oi_flush"][i])
        result["event"].append(chosen["event"][i])
    time_stop = max(1, round(params.time_stop_s * 1000 / params.tick_ms))
    position = None    # (entry tick, dir, weight, entry mid, entry sigma)
    for i in range(n):
        entry = (result["event"][i] and result["candidate"][i] and result["oi_flush"][i]
                 and result["state"][i] == 1)
        if entry:
            direction = -result["side"][i]
            panic = (down if direction > 0 else up)["peak"][i]      # the size is the panic's
            if sigma[i] > 0 and not math.isnan(mid[i]) and not math.isnan(panic):
                weight = (direction * params.w_max * math.tanh((panic - params.lpi_hi) / 2)
                          / (sigma[i] * 1e4))
                position = (i, direction, weight, mid[i], sigma[i])
        elif position is not None:
            e, direction, weight, entry_mid, entry_sigma = position
            level = columns["lpi_down"][i] if direction > 0 else columns["lpi_up"][i]
            adverse = direction * math.log(mid[i] / entry_mid) if not math.isnan(mid[i]) else math.nan
            if (above(params.lpi_exit, level) or i - e >= time_stop
                    or above(-params.stop_sigma * entry_sigma, adverse)):
                position = None
        result["target_w"].append(position[2] if position is not None else 0.0)
    return {name: np.array(values) for name, values in result.items()}


def reference_scripted_fills(market, orders, model, queue_power=1.0, latency_ns=0, partial=True):
    """Fills of scripted orders against window 0 of a :class:`gpu_lpi.sim.market.MarketWindows`,
    with a dict book replayed from its start (not the kernel's level index): ``[[order_id, ts,
    price, qty], ...]`` sorted by time and order id. Same rules as :mod:`kernels.maker_sim`: market
    events before our actions at one time; post-only; queue ahead from the displayed quantity,
    reduced by trades and (``queue_prob``) a share of cancellations."""
    stride = 1 << 40
    start, stop = int(market.w_ev0[0]), int(market.w_ev1[0])
    book = {}
    for key, ev, qty in zip(market.lv_key, market.lv_ev, market.lv_qty):
        if ev == start - 1:
            book[(int(key) // stride, int(key) % stride)] = float(qty)
    actions = []   # (time, kind 0 cancel / 1 arrival, order index)
    for i, row in enumerate(orders.itertuples()):
        arrive = int(row.submit_ts) + latency_ns
        cancel = int(row.cancel_ts) + latency_ns if row.cancel_ts >= 0 else None
        actions.append((arrive, 1, i))
        if cancel is not None:
            actions.append((cancel, 0, i))
    actions.sort()
    live, cancelled, fills = {}, set(), []

    def top():
        bids = [p for (s, p), q in book.items() if s == 0 and q > 0]
        asks = [p for (s, p), q in book.items() if s == 1 and q > 0]
        return (max(bids) if bids else None), (min(asks) if asks else None)

    def act(time, kind, i):
        row = orders.iloc[i]
        if kind == 0:
            cancelled.add(i)
            live.pop(i, None)
            return
        if i in cancelled:
            return
        price = int(round(row["price"] / market.tick_size))
        bid, ask = top()
        if (row["side"] > 0 and ask is not None and price >= ask) or (
                row["side"] < 0 and bid is not None and price <= bid):
            return
        level = book.get((0 if row["side"] > 0 else 1, price), 0.0)
        live[i] = {"price": price, "left": float(row["qty"]), "ahead": level, "level": level, "traded": 0.0}

    def fill(i, time, qty):
        order = live[i]
        qty = min(qty, order["left"])
        fills.append([int(orders.iloc[i]["order_id"]), time, order["price"] * market.tick_size, qty])
        order["left"] -= qty
        if order["left"] <= 1e-12:
            del live[i]

    a = 0
    for e in range(start, stop):
        ts = int(market.ev_ts[e])
        while a < len(actions) and actions[a][0] < ts:
            act(*actions[a])
            a += 1
        kind, side, price, qty = int(market.ev_kind[e]), int(market.ev_side[e]), int(market.ev_price[e]), float(market.ev_qty[e])
        for i in list(live):
            order = live[i]
            buy = orders.iloc[i]["side"] > 0
            if kind == 0:                          # a trade: side 0 = the aggressor sold
                if (buy and side != 0) or (not buy and side != 1):
                    continue
                if (price < order["price"]) if buy else (price > order["price"]):
                    fill(i, ts, order["left"])
                elif price == order["price"] and model != "trade_through":
                    order["traded"] += qty
                    order["ahead"] -= qty
                    if abs(order["ahead"]) <= 1e-6 * market.lot_size:
                        order["ahead"] = 0.0
                    if order["ahead"] < 0:
                        amount = -order["ahead"] if partial else order["left"]
                        order["ahead"] = 0.0
                        fill(i, ts, amount)
            elif model != "trade_through" and side == (0 if buy else 1) and price == order["price"]:
                before = order["level"]
                gone = before - qty - order["traded"]
                if model == "queue_prob" and gone > 0 and order["ahead"] > 0:
                    front = order["ahead"] ** queue_power
                    back = max(before - order["ahead"], 0.0) ** queue_power
                    order["ahead"] -= gone * front / (front + back)
                order["ahead"] = max(min(order["ahead"], qty), 0.0)
                order["level"], order["traded"] = qty, 0.0
        if kind == 1 and side >= 0:
            book[(side, price)] = qty
    return sorted(fills, key=lambda f: (f[1], f[0]))
