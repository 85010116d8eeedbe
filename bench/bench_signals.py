"""Benchmark: what the signals, the events and the event study add to the feature pipeline.

Runs ``gpu-lpi run`` (:func:`gpu_lpi.run.run_job`) on a generated symbol-month (``--days``) of the
feature benchmark's store (``tests.feature_stores.random_store``: 100 ms quotes, random trades with
impact sells and buys, 3 s OI polls, liquidations), one chunk per day, and reports the stage
seconds: ``signals`` (state, exhaustion, events, positions: inside each chunk), ``study`` (events
with their markouts, the study's statistics and the drift regression) against the rest of the
pipeline. Target (issue 7): signals + study at most 25 % of the feature pipeline's time on the CPU.

    .venv/bin/python bench/bench_signals.py [--days 30] [--device cpu|gpu]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpu_lpi.run import run_job  # noqa: E402
from tests.feature_stores import SYMBOL, random_store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--trades-per-minute", type=int, default=2000)
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as tmp:
        begin = time.perf_counter()
        store = random_store(Path(tmp) / "store", seed=0, minutes=args.days * 1440,
                             trades_per_minute=args.trades_per_minute)
        print(f"generated store: {args.days} day(s) in {time.perf_counter() - begin:.1f} s")
        first = date(2024, 8, 5)
        spec = {"data": {"store": str(store.root), "symbols": [SYMBOL], "start": first.isoformat(),
                         "end": (first + timedelta(days=args.days - 1)).isoformat()},
                "cluster": {"chunk_hours": 24}}
        warm = dict(spec, data=dict(spec["data"], end=first.isoformat()))
        run_job(warm, out=Path(tmp) / "warm", device=args.device)       # compile
        result = run_job(spec, out=Path(tmp) / "run", device=args.device)
    seconds = result.seconds
    added = seconds["signals"] + seconds["study"]
    pipeline = seconds["total"] - added
    print("| days | device | events | total s | features pipeline s | signals s | study s | added |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {args.days} | {result.device} | {result.n_events:,} | {seconds['total']:.2f} | {pipeline:.2f} | "
          f"{seconds['signals']:.2f} | {seconds['study']:.2f} | {added / pipeline:.1%} |")
    print("stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
