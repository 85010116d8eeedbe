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

    values = np.asarray(values, dtype=np.float64)
    median = np.full(values.size, np.nan)
    mad = np.full(values.size, np.nan)
    for end in range(values.size):
        window_values = values[max(0, end - window + 1) : end + 1]
        window_values = window_values[~np.isnan(window_values)]
        if window_values.size >= max(min_periods, 1):
            median[end] = np.median(window_values)
            mad[end] = np.median(np.abs(window_values - median[end]))
    return median, mad


def rolling_median_nonzero_mad(values, window, min_periods):
    """Trailing-window median and non-zero MAD: the ``numpy.median`` of ``|x - median|`` over the
    window's values that are neither 0 nor the median (0 where there are none), window by window."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    median = np.full(values.size, np.nan)
    nonzero = np.full(values.size, np.nan)
    for end in range(values.size):
        window_values = values[max(0, end - window + 1) : end + 1]
        window_values = window_values[~np.isnan(window_values)]
        if window_values.size >= max(min_periods, 1):
            median[end] = np.median(window_values)
            kept = window_values[(window_values != 0) & (window_values != median[end])]
            nonzero[end] = np.median(np.abs(kept - median[end])) if kept.size else 0.0
    return median, nonzero
