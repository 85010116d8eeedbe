"""Market statistics measured on the real Binance captures, and the constants the simulator uses.

CALIBRATION
-----------
Measured on 2024-11-25 by running ``python -m gpu_lpi.synth.calibration /work/shared/data``
(:func:`measure_all` below) on the hftbacktest captures in ``shared/data``: USD-M BTCUSDT and ETHUSDT
2024-08-08 23:54:16-24:00:00 (345 s each) and COIN-M BTCUSD_PERP 2024-08-08 23:54 - 08-09 00:05
(647 s). The same function run on synthetic output checks the simulator (see
``bench/RESULTS.md``).

==============================================  ===============  ===============  ===============
statistic                                       BTCUSDT          ETHUSDT          BTCUSD_PERP
==============================================  ===============  ===============  ===============
trades per second                               61.8             40.8             8.1
book-ticker updates per second                  191.7            156.6            74.7
depth diffs per second (``@depth@0ms``)         19.0             19.1             69.2
median gap between depth diffs (ms)             52               52               16
mean price levels per depth diff                67.7             65.1             14.7
update-id advance per second                    80,155           80,348           12,590
spread in ticks: share at 1 / 2 / 3+            .942/.009/.049   .954/.012/.034   .950/.005/.046
trade size: lognormal body median, sigma        0.016, 1.69      0.071, 1.99      4, 1.51
trade size: Pareto tail index (Hill, top 5 %)   1.74             1.71             1.74
trades per aggressive order (same T and side)   3.97             4.01             2.85
Fano factor of trade counts in 1 s bins         387              82               44
receive time minus exchange E (median)          -1.270 s         -1.270 s         -1.269 s
receive-time jitter (p10 .. p90 of the above)   -1.271..-1.261   -1.271..-1.262   -1.271..-1.265
impact ticks per hour (θ 5 bps, Δ 250 ms)       26               9                33
==============================================  ===============  ===============  ===============

Impact ticks (measured 2026-12-02 with ``gpu-lpi run`` on the ingested captures, ``make demo``'s
``demo-out/run-real``: ticks with a sell below ``b_{t−Δ}·(1 − θ)`` or a buy above
``a_{t−Δ}·(1 + θ)``, per hour of ticks with a valid book; 6, 2 and 6 such ticks, so the rates are
known to a factor of about 2) set the rate of the simulator's background block orders
(:data:`MarketProfile.impact_blocks_per_hour`).

Depth profile (REST snapshots, 1000 levels per side; distance buckets of :data:`DEPTH_BUCKET_EDGES`
ticks from the touch): the touch holds ~150-500 median trade sizes, the next 1-16 ticks are sparse
(occupancy 0-50 %), levels 64-1024 ticks out are 60-90 % occupied with 2-30 median trade sizes
each; 1000 levels reach 1,470-1,760 ticks from the touch (BTCUSDT). Depth-diff levels sit mostly
128-2048 ticks from the touch (:data:`DIFF_LEVEL_SHARE`), only ~4 % at the touch. The constants below
smooth the two USD-M snapshots (the last bucket is truncated by the 1000-level limit, so its
occupancy is taken from the bucket before).

Clustering: the Fano factors far above 1 come from bursts of fills of one order and from
self-excitation; the simulator uses a Hawkes process for aggressive orders (branching 0.7, decay
0.4 s) and several maker fills per level.

Symbols not in the captures (SOLUSDT, BNBUSDT, XRPUSDT, DOGEUSDT, ETHUSD_PERP) reuse the ETHUSDT
(USD-M) or BTCUSD_PERP (COIN-M) rates with their own price and trade-size scale; those figures are
*not* measured (see :data:`MARKETS`). Open interest, mark price and liquidations are not in the
captures: their constants are nominal (OI of a few billion USD for BTC in August 2024, funding near
1e-4 per 8 h, an OI REST poll every 5 s, mark price every 1 s, at most one ``forceOrder`` per second).
Nor are the planted episodes: their sizes, durations, sweep rates and liquidity responses
(:mod:`.episodes`, the sweep and shock constants of :mod:`.market`) are nominal, chosen so that a
violent informed repricing moves as much flow through the book as a cascade and differs only by
its mechanism; ``bench/synth_episodes.py`` measures them as the engine sees them (``bench/RESULTS.md``).
"""

from __future__ import annotations

import gzip
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import orjson

#: Collector clock minus exchange event time ``E``, nanoseconds (median of the captures).
LOCAL_CLOCK_SKEW_NS = -1_271_000_000
#: Mean of the exponential network latency added on top of the skew, nanoseconds (p10-p90 ~10 ms).
LOCAL_LATENCY_MEAN_NS = 4_000_000.0
#: Period of the simulated REST open-interest poll, milliseconds.
OPEN_INTEREST_POLL_MS = 5_000
#: Period of the ``@markPrice@1s`` stream, milliseconds.
MARK_PRICE_PERIOD_MS = 1_000
#: Binance sends at most one ``forceOrder`` per symbol per this many milliseconds.
FORCE_ORDER_PERIOD_MS = 1_000
#: Levels per side in the REST depth snapshot.
SNAPSHOT_LEVELS = 1_000
#: Simulator control step at ``rate_scale=1`` (market makers requote the touch this often); it grows
#: as ``1 / rate_scale`` up to :data:`MAX_CONTROL_MS`.
CONTROL_MS = 50.0
MAX_CONTROL_MS = 5_000.0

#: Distance buckets (ticks from the touch) of the depth profile: bucket i covers
#: ``[DEPTH_BUCKET_EDGES[i], DEPTH_BUCKET_EDGES[i+1])``.
DEPTH_BUCKET_EDGES = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048], dtype=np.int64)
#: Per bucket: share of price ticks holding a level, and median level size in median trade sizes.
DEPTH_PROFILE = np.array([
    [1.00, 200.0],
    [0.50, 40.0],
    [0.50, 30.0],
    [0.25, 10.0],
    [0.20, 5.0],
    [0.30, 5.0],
    [0.50, 5.0],
    [0.65, 8.0],
    [0.80, 8.0],
    [0.75, 8.0],
    [0.75, 10.0],
    [0.70, 8.0],
])
#: Sigma of the lognormal level size around the bucket median, away from and at the touch (market
#: makers requote the touch with steadier sizes).
LEVEL_SIZE_SIGMA = 1.6
TOUCH_SIZE_SIGMA = 0.7
#: Share of depth-diff level changes per distance bucket (BTCUSDT, distance to the last book ticker;
#: the last bucket also holds the 24 % of changes further than 1024 ticks).
DIFF_LEVEL_SHARE = np.array([0.037, 0.002, 0.002, 0.004, 0.008, 0.018, 0.04, 0.085, 0.16, 0.221, 0.183,
                             0.24])
DIFF_LEVEL_CUMULATIVE = np.cumsum(DIFF_LEVEL_SHARE) / DIFF_LEVEL_SHARE.sum()


def _distance_quantiles(size: int) -> np.ndarray:
    """Quantile table of the refresh distance law (bucket by share, uniform inside the bucket)."""
    probabilities = (np.arange(size) + 0.5) / size
    buckets = np.searchsorted(DIFF_LEVEL_CUMULATIVE, probabilities)
    low = DIFF_LEVEL_CUMULATIVE[buckets] - DIFF_LEVEL_SHARE[buckets] / DIFF_LEVEL_SHARE.sum()
    inside = (probabilities - low) / (DIFF_LEVEL_CUMULATIVE[buckets] - low)
    widths = DEPTH_BUCKET_EDGES[buckets + 1] - DEPTH_BUCKET_EDGES[buckets]
    return DEPTH_BUCKET_EDGES[buckets] + np.minimum((inside * widths).astype(np.int64), widths - 1)


def _per_distance(column: int) -> np.ndarray:
    """Expand a :data:`DEPTH_PROFILE` column to one value per tick of distance."""
    return np.repeat(DEPTH_PROFILE[:, column], np.diff(DEPTH_BUCKET_EDGES))


def _lognormal_quantiles(sigma: float, size: int) -> np.ndarray:
    """Quantile table of a lognormal law with median 1."""
    inverse_cdf = NormalDist().inv_cdf
    return np.array([math.exp(sigma * inverse_cdf((i + 0.5) / size)) for i in range(size)])


#: Lookup tables the simulator draws from with one random word: distance of a limit-order refresh
#: from the reference, occupancy and median size (median trade sizes) per distance, and the
#: lognormal multiplier of a level's size.
QUANTILE_TABLE_BITS = 12
REFRESH_DISTANCE = _distance_quantiles(1 << QUANTILE_TABLE_BITS)
OCCUPANCY_BY_DISTANCE = _per_distance(0)
SIZE_BY_DISTANCE = _per_distance(1)
LEVEL_SIZE_MULTIPLIER = _lognormal_quantiles(LEVEL_SIZE_SIGMA, 1 << QUANTILE_TABLE_BITS)
TOUCH_SIZE_MULTIPLIER = _lognormal_quantiles(TOUCH_SIZE_SIGMA, 1 << QUANTILE_TABLE_BITS)

#: Simulator refresh events per distinct level change seen in diffs (some refreshes leave an empty
#: level empty, some hit a level twice in one batch); fitted by running the simulator.
REFRESH_PER_LEVEL_UPDATE = 1.1
#: Median aggressive-order size over median trade size (an order fills several makers); fitted by
#: running the simulator.
ORDER_TO_TRADE_SIZE = 3.5
#: Share of book-ticker updates that come from touch churn (size changes at the best levels).
TOUCH_SHARE_OF_BOOK_TICKER = 0.15


@dataclass(frozen=True)
class MarketProfile:
    """Calibrated constants of one symbol's simulated market.

    Attributes
    ----------
    price : float
        Starting mid price (quote currency per base unit, USD per coin for COIN-M).
    trades_per_s : float
        Mean trade prints per second.
    book_ticker_per_s : float
        Mean book-ticker updates per second.
    trades_per_order : float
        Mean trade prints per aggressive order (fills against several makers and levels).
    level_updates_per_s : float
        Mean distinct levels per second in depth diffs (diffs per second times levels per diff).
    diff_interval_ms : int
        Period of the ``@depth@0ms`` diff batches.
    update_ids_per_s : float
        Mean advance of the exchange update id per second.
    trade_size_median : float
        Median trade size (base asset, or contracts for COIN-M).
    trade_size_sigma : float
        Sigma of the lognormal body of the trade size.
    trade_tail_alpha : float
        Pareto tail index of the trade size above the 95th percentile.
    volatility_per_day : float
        Daily standard deviation of log returns of the latent fair price outside episodes.
    open_interest : float
        Typical open interest (base asset, or contracts for COIN-M).
    impact_blocks_per_hour : float
        Background block orders per hour that walk a few bps of the book (the measured rate of
        impact ticks; :func:`gpu_lpi.synth.market._block`).
    """

    price: float
    trades_per_s: float
    book_ticker_per_s: float
    trades_per_order: float
    level_updates_per_s: float
    diff_interval_ms: int
    update_ids_per_s: float
    trade_size_median: float
    trade_size_sigma: float
    trade_tail_alpha: float
    volatility_per_day: float
    open_interest: float
    impact_blocks_per_hour: float

    @property
    def touch_updates_per_s(self) -> float:
        """Rate of touch-churn events that the simulator adds to reach the book-ticker rate."""
        return TOUCH_SHARE_OF_BOOK_TICKER * self.book_ticker_per_s


_BTCUSDT = MarketProfile(61800.0, 61.8, 191.7, 3.97, 1286.0, 52, 80_155.0, 0.016, 1.69, 1.74, 0.03, 80_000.0,
                         26.0)
_ETHUSDT = MarketProfile(2680.0, 40.8, 156.6, 4.01, 1243.0, 52, 80_348.0, 0.071, 1.99, 1.71, 0.04,
                         1_500_000.0, 9.0)
_BTCUSD_PERP = MarketProfile(61800.0, 8.1, 74.7, 2.85, 1019.0, 16, 12_590.0, 4.0, 1.51, 1.74, 0.03,
                             8_000_000.0, 33.0)

#: Profiles per symbol. BTCUSDT, ETHUSDT and BTCUSD_PERP are measured; the others are the ETHUSDT or
#: BTCUSD_PERP rates at their own price with trade sizes of about the same notional (not measured).
MARKETS: dict[str, MarketProfile] = {
    "BTCUSDT": _BTCUSDT,
    "ETHUSDT": _ETHUSDT,
    "BTCUSD_PERP": _BTCUSD_PERP,
    "SOLUSDT": MarketProfile(150.0, 30.0, 120.0, 4.0, 900.0, 52, 60_000.0, 1.0, 2.0, 1.7, 0.05, 9_000_000.0, 9.0),
    "BNBUSDT": MarketProfile(520.0, 10.0, 60.0, 3.0, 500.0, 52, 20_000.0, 0.3, 2.0, 1.7, 0.04, 700_000.0, 9.0),
    "XRPUSDT": MarketProfile(0.55, 20.0, 80.0, 3.5, 600.0, 52, 30_000.0, 300.0, 2.0, 1.7, 0.05, 5.0e8, 9.0),
    "DOGEUSDT": MarketProfile(0.10, 25.0, 90.0, 3.5, 700.0, 52, 40_000.0, 2_000.0, 2.0, 1.7, 0.06, 5.0e9, 9.0),
    "ETHUSD_PERP": MarketProfile(2680.0, 5.0, 50.0, 2.5, 600.0, 16, 8_000.0, 5.0, 1.5, 1.7, 0.04,
                                 4_000_000.0, 33.0),
}


def iter_capture(path: Path):
    """Yield ``(local_ts_ns, message)`` for each line of a ``<local_ts> <json>`` gzip capture.

    Parameters
    ----------
    path : Path
        A ``.gz`` capture file.

    Yields
    ------
    tuple of (int, dict)
        Local receive time in ns and the decoded JSON message (wrapped or REST).
    """
    with gzip.open(path, "rb") as handle:
        for line in handle:
            local_ts, payload = line.split(b" ", 1)
            yield int(local_ts), orjson.loads(payload)


def _lognormal_pareto_fit(sizes: np.ndarray) -> dict[str, float]:
    """Fit a lognormal body (median, sigma) and a Hill-estimated Pareto tail to trade sizes."""
    logs = np.log(sizes[sizes > 0])
    tail_start = np.quantile(logs, 0.95)
    tail = logs[logs >= tail_start]
    alpha = 1.0 / max(float(np.mean(tail - tail_start)), 1e-12)
    body = logs[logs < tail_start]
    return {"median": float(np.exp(np.median(logs))), "sigma": float(np.std(body)), "tail_alpha": alpha}


def _fano_factor(times_ms: np.ndarray, bin_ms: int = 1000) -> float:
    """Variance over mean of event counts in fixed bins (1 for a Poisson process)."""
    counts = np.bincount((times_ms - times_ms[0]) // bin_ms)
    return float(counts.var() / max(counts.mean(), 1e-12))


def _snapshot_profile(levels: list, tick: float, is_bid: bool) -> list[tuple[float, float]]:
    """Occupancy and median size per :data:`DEPTH_BUCKET_EDGES` bucket of one snapshot side."""
    prices = np.array([float(p) for p, _ in levels])
    sizes = np.array([float(q) for _, q in levels])
    distance = np.rint(((prices[0] - prices) if is_bid else (prices - prices[0])) / tick).astype(np.int64)
    profile = []
    for lo, hi in zip(DEPTH_BUCKET_EDGES[:-1], DEPTH_BUCKET_EDGES[1:]):
        inside = (distance >= lo) & (distance < hi)
        median = float(np.median(sizes[inside])) if inside.any() else 0.0
        profile.append((float(inside.sum()) / float(hi - lo), median))
    return profile


def measure_capture(paths: list[Path], tick: float) -> dict:
    """Compute the calibration statistics of one symbol's capture files.

    Parameters
    ----------
    paths : list of Path
        The capture files of one symbol, in time order (one continuous capture).
    tick : float
        The symbol's tick size, to express spreads and distances in ticks.

    Returns
    -------
    dict
        Rates per second, diff batching, spread shares, depth profile, trade-size fit, clustering
        and clock skew (keys named for what they hold).
    """
    counts: Counter = Counter()
    trade_times, trade_sizes, order_keys, spreads, skews = [], [], [], [], []
    diff_times, diff_levels, diff_distance, ids = [], [], [], []
    profile = None
    best_bid = best_ask = None
    for local_ts, message in (item for path in paths for item in iter_capture(path)):
        if "lastUpdateId" in message:
            profile = {"bids": _snapshot_profile(message["bids"], tick, True),
                       "asks": _snapshot_profile(message["asks"], tick, False)}
            continue
        data = message["data"]
        kind = data["e"]
        counts[kind] += 1
        skews.append(local_ts - data["E"] * 1_000_000)
        if kind == "trade":
            trade_times.append(data["T"])
            trade_sizes.append(float(data["q"]))
            order_keys.append((data["T"], data["m"]))
        elif kind == "bookTicker":
            best_bid, best_ask = float(data["b"]), float(data["a"])
            spreads.append(round((best_ask - best_bid) / tick))
        elif kind == "depthUpdate":
            diff_times.append(data["E"])
            diff_levels.append(len(data["b"]) + len(data["a"]))
            ids.append(data["u"])
            if best_bid is not None:
                diff_distance += [round((best_bid - float(p)) / tick) for p, _ in data["b"]]
                diff_distance += [round((float(p) - best_ask) / tick) for p, _ in data["a"]]
    seconds = (max(diff_times) - min(diff_times)) / 1000.0
    spread_counts = np.bincount(np.clip(spreads, 0, 3))
    distance = np.clip(np.array(diff_distance), 0, DEPTH_BUCKET_EDGES[-1] - 1)
    skews_ms = np.array(skews) / 1e6
    return {
        "seconds": seconds,
        "per_second": {kind: n / seconds for kind, n in counts.items()},
        "diff_interval_ms_median": float(np.median(np.diff(np.sort(diff_times)))),
        "levels_per_diff_mean": float(np.mean(diff_levels)),
        "update_ids_per_s": (max(ids) - min(ids)) / seconds,
        "spread_share_1_2_3plus": (spread_counts[1:] / spread_counts[1:].sum()).round(4).tolist(),
        "trade_size": _lognormal_pareto_fit(np.array(trade_sizes)),
        "trades_per_order": len(order_keys) / len(set(order_keys)),
        "trade_fano_1s": _fano_factor(np.array(trade_times)),
        "diff_level_share": (np.histogram(distance, DEPTH_BUCKET_EDGES)[0] / distance.size).round(3).tolist(),
        "snapshot_profile": profile,
        "clock_skew_ms_median": float(np.median(skews_ms)),
        "clock_jitter_ms_p10_p90": np.percentile(skews_ms, [10, 90]).round(1).tolist(),
    }


def measure_all(data_dir: Path) -> dict[str, dict]:
    """Measure every capture in ``shared/data`` (the 2024-08-08 windows), keyed by symbol."""
    captures = {
        "BTCUSDT": (["binance-usdm-ws/btcusdt_20240808.gz"], 0.1),
        "ETHUSDT": (["binance-usdm-ws/ethusdt_20240808.gz"], 0.01),
        "BTCUSD_PERP": (["binance-coinm-ws/btcusd_perp_20240808.gz",
                         "binance-coinm-ws/btcusd_perp_20240809.gz"], 0.1),
    }
    return {symbol: measure_capture([data_dir / name for name in names], tick)
            for symbol, (names, tick) in captures.items()}


if __name__ == "__main__":
    for symbol_name, stats in measure_all(Path(sys.argv[1] if len(sys.argv) > 1 else "shared/data")).items():
        print(symbol_name, orjson.dumps(stats, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
