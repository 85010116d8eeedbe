"""Benchmark: peak memory per Dask worker for a 1-day and an N-day job (issue 8, item 6).

A job is split into (symbol, chunk) tasks, each loading its chunk plus the history it needs, so a
worker's peak memory should not grow with the date range (hftbacktest's issue #262: 180 GB for 30
days). Runs ``gpu-lpi run`` on a ``LocalCluster`` (``--workers`` processes) for the first day and for
all ``--days`` of a random store (``tests.feature_stores.random_store``, one symbol), and prints the
largest resident memory of the workers that ran the chunks (``run.json`` ``peak_rss_mib``). The 1-day
job is the store's last day, whose chunk loads the previous day's tail as history like every day of
the long job but the first.

    .venv/bin/python bench/bench_worker_memory.py [--days 30] [--store EXISTING_RANDOM_STORE]
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
from gpu_lpi.store import TickStore  # noqa: E402
from tests.feature_stores import SYMBOL, random_store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--store", type=Path, default=None,
                        help="a random store of at least --days days (generated when absent)")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as tmp:
        store = TickStore(args.store) if args.store else random_store(Path(tmp) / "store", seed=0,
                                                                      minutes=args.days * 1440)
        first = date(2024, 8, 5)
        print("| days | workers | chunks | wall s | peak RSS per worker MiB (features) | events | driver MiB |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        last = first + timedelta(days=args.days - 1)
        for days in (1, args.days):
            spec = {"data": {"store": str(store.root), "symbols": [SYMBOL],
                             "start": (last - timedelta(days=days - 1)).isoformat(), "end": last.isoformat()},
                    "cluster": {"scheduler": "local", "n_workers": args.workers, "chunk_hours": 24}}
            begin = time.perf_counter()
            result = run_job(spec, out=Path(tmp) / f"run-{days}", device="cpu")
            peaks = result.peak_rss_mib
            print(f"| {days} | {args.workers} | {result.chunks['computed']} | {time.perf_counter() - begin:.0f} | "
                  f"{peaks['features']:.0f} | {peaks['events']:.0f} | {peaks['study']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
