"""Benchmark: the feature pipeline from the tick store, engine (CPU, and GPU where present) vs pandas.

Times one symbol-day (``--days`` for more) on a generated store (100 ms quotes, ``--trades-per-minute``
random trades with impact sells/buys, 3 s OI polls, liquidations; book source ``book_ticker``) and,
when ``--real-store`` is given, every real capture; reports ticks/s, the split into I/O, book,
grid, features and robust z, peak host RSS and peak GPU memory. The pandas anchor
(``bench/pandas_features.py``) runs in the same process on ``--pandas-minutes`` of the same store
(its rolling MAD is O(W) per tick) and its outputs are compared with the engine's.

    .venv/bin/python bench/bench_features.py [--device cpu|gpu|auto] [--real-store /tmp/realstore]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpu_lpi.features import FEATURE_COLUMNS, compute_feature_chunk  # noqa: E402
from gpu_lpi.params import FeatureParams  # noqa: E402
from tests.feature_stores import MS, SYMBOL, T0, random_store  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gpu_peak_mb() -> float | None:
    try:
        import cupy
    except ImportError:
        return None
    return cupy.get_default_memory_pool().total_bytes() / 2**20


def _run(store, symbol, start, end, params, device, label):
    """Time the features of ``[start, end)``, computed a piece (a day) at a time as always."""
    compute_feature_chunk(store, symbol, start, start + 60_000 * MS, params, device)  # compile
    begin = time.perf_counter()
    chunk = compute_feature_chunk(store, symbol, start, end, params, device)
    table = chunk.table
    wall = time.perf_counter() - begin
    ticks = table.num_rows
    seconds = chunk.seconds
    split = ", ".join(f"{k} {v:.2f}" for k, v in seconds.items())
    print(f"| {label} | {device} | {ticks:,} | {wall:.2f} | {ticks / wall:,.0f} | {split} | "
          f"{_peak_rss_mb():,.0f} | {_gpu_peak_mb() or '-'} |")
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--trades-per-minute", type=int, default=2000)
    parser.add_argument("--pandas-minutes", type=float, default=10.0)
    parser.add_argument("--real-store", default=None)
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print("| data | device | ticks | wall s | ticks/s | stage seconds | peak RSS MB | GPU MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    minutes = args.days * 1440
    with tempfile.TemporaryDirectory() as tmp:
        begin = time.perf_counter()
        store = random_store(Path(tmp) / "store", seed=0, minutes=minutes,
                             trades_per_minute=args.trades_per_minute)
        print(f"<!-- generated store in {time.perf_counter() - begin:.1f} s -->")
        end = T0 + int(minutes * 60_000) * MS
        params = FeatureParams()
        _run(store, SYMBOL, T0, end, params, args.device, f"generated {args.days:g} day, W = 2 h")

        short = FeatureParams(window_hours=0.25, adv_window_hours=0.25, depth_window_hours=0.25)
        pandas_end = T0 + int(args.pandas_minutes * 60_000) * MS
        engine = _run(store, SYMBOL, T0, pandas_end, short, args.device,
                      f"generated {args.pandas_minutes:g} min, W = 15 min").to_pandas()
        spec = importlib.util.spec_from_file_location("pandas_features", REPO / "bench" / "pandas_features.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        begin = time.perf_counter()
        reference = module.pandas_features(store.root, SYMBOL, T0, pandas_end, short)
        wall = time.perf_counter() - begin
        print(f"| generated {args.pandas_minutes:g} min, W = 15 min | pandas | {len(reference):,} | "
              f"{wall:.2f} | {len(reference) / wall:,.0f} | - | {_peak_rss_mb():,.0f} | - |")
        worst = max(float(np.nanmax(np.abs(reference[c].to_numpy(float) - engine[c].to_numpy(float))
                                    / np.maximum(np.abs(engine[c].to_numpy(float)), 1e-12), initial=0.0))
                    for c in FEATURE_COLUMNS if c in reference.columns)
        print(f"<!-- pandas vs engine: worst difference relative to max(|engine|, 1e-12): {worst:.2e} -->")
    if args.real_store:
        from gpu_lpi.store import TickStore

        real = TickStore(args.real_store)
        real_params = FeatureParams(window_hours=0.1, adv_window_hours=0.1, depth_window_hours=0.1,
                                    min_periods_s=60.0)
        for symbol, start, stop in (("BTCUSDT", "2024-07-18T23:57", "2024-07-19T00:05"),
                                    ("BTCUSD_PERP", "2024-08-08T23:54", "2024-08-09T00:05")):
            _run(real, symbol, np.datetime64(start, "ns").astype(np.int64),
                 np.datetime64(stop, "ns").astype(np.int64), real_params, args.device,
                 f"real {symbol} {start[:10]}, W = 6 min (L2 replay)")


if __name__ == "__main__":
    main()
