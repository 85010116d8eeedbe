"""Time ``gpu_lpi.synth`` on one symbol-day at calibrated rates (and the simulation alone).

Usage: ``python bench/bench_synth.py [--symbol BTCUSDT] [--format binance-ws] [--rate-scale 1.0]``.
Numba compilation is excluded: a one-day run at a tiny rate warms the caches first.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import date

import numpy as np

from gpu_lpi.synth import calibration as cal
from gpu_lpi.synth import synthesize
from gpu_lpi.synth.episodes import plan_episodes
from gpu_lpi.synth.market import new_simulation, run_chunks
from gpu_lpi.synth.rng import new_state

START = date(2024, 8, 5)
FIRST_DAY_MS = 1_722_816_000_000


def time_simulation(symbol: str, tick: float, lot: float, rate_scale: float) -> tuple[float, int]:
    """Seconds and message count of one simulated day without formatting or writing."""
    episodes = plan_episodes(np.random.default_rng(1), FIRST_DAY_MS, 1)
    simulation = new_simulation(cal.MARKETS[symbol], tick, lot, FIRST_DAY_MS, 1, episodes, new_state([1]),
                                rate_scale)
    began = time.perf_counter()
    messages = sum(chunk.messages.size for chunk in run_chunks(simulation))
    return time.perf_counter() - began, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--format", default="binance-ws", choices=["binance-ws", "tardis"])
    parser.add_argument("--rate-scale", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as warm:
        synthesize(warm, args.format, [args.symbol], START, 1, 0, rate_scale=0.001)
    ticks = {"BTCUSDT": (0.1, 0.001), "ETHUSDT": (0.01, 0.001), "BTCUSD_PERP": (0.1, 1.0)}
    sim_seconds, messages = time_simulation(args.symbol, *ticks[args.symbol], args.rate_scale)
    with tempfile.TemporaryDirectory() as out:
        summary = synthesize(out, args.format, [args.symbol], START, 1, 1, rate_scale=args.rate_scale)
        size = sum(path.stat().st_size for path in summary.files)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"{args.symbol} {args.format} rate_scale={args.rate_scale}: simulation only {sim_seconds:.1f} s "
          f"({messages:,} messages); full synthesize {summary.seconds:.1f} s, {size / 1e6:.0f} MB gzip")


if __name__ == "__main__":
    main()
