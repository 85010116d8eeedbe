"""L2 book replay throughput (level updates per second, one core) on the real captures.

The replay is sequential per symbol; the figure to compare with the target (20 million level
updates/s per core) is the replay alone, sampled on a 250 ms grid with one 10 bps depth band. The
anchor is the textbook dict-of-levels book of ``tests/reference.py`` replaying the same rows.

Usage::

    python bench/bench_book.py [--store STORE]     # default: ingest ../shared/data into a temp store
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gpu_lpi.book import group_messages, replay, sample_at_times
from gpu_lpi.ingest import ingest
from gpu_lpi.store import TickStore

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.reference import DictBook  # noqa: E402

GRID_NS = 250_000_000


def dict_book_seconds(rows: dict, limit: int) -> float:
    """Seconds for the dict-based book to apply the first ``limit`` level updates (no checks)."""
    book = DictBook()
    side, price, qty = rows["side"][:limit].tolist(), rows["price"][:limit].tolist(), rows["qty"][:limit].tolist()
    start = time.perf_counter()
    for s, p, q in zip(side, price, qty):
        if s >= 0:
            book.set(s, p, q)
    return time.perf_counter() - start


def bench_symbol(store: TickStore, symbol: str) -> str:
    rows = store.read_arrays("depth_diff", symbol)
    tick = store.symbol_info(symbol)["tick_size"]
    messages = group_messages(rows, tick)
    grid = _covered_grid(messages.ts)
    replay(messages, np.zeros(1, dtype=np.int64))             # compile
    start = time.perf_counter()
    replay(messages, np.zeros(1, dtype=np.int64))             # replay alone, one sample
    replay_s = time.perf_counter() - start
    start = time.perf_counter()
    samples = sample_at_times(messages, grid, bands_bps=(10.0,))
    sampled_s = time.perf_counter() - start
    updates = messages.n_level_updates
    reference = dict_book_seconds(rows, updates)
    return (f"| {symbol} | {updates:,} | {len(messages.ts):,} | {messages.n_levels:,} | {replay_s * 1e3:.1f} "
            f"| {updates / replay_s / 1e6:.1f} | {grid.size:,} | {sampled_s * 1e3:.1f} "
            f"| {updates / reference / 1e6:.2f} | {reference / replay_s:.0f}x | {samples.valid.mean():.3f} |")


def _covered_grid(ts: np.ndarray) -> np.ndarray:
    """250 ms grid ticks within the spans the captures cover (gaps over a minute left out)."""
    breaks = np.flatnonzero(np.diff(ts) > 60 * 10**9)
    starts = np.concatenate([[ts[0]], ts[breaks + 1]])
    ends = np.concatenate([ts[breaks], [ts[-1]]])
    return np.concatenate([np.arange(s - s % GRID_NS + GRID_NS, e, GRID_NS) for s, e in zip(starts, ends)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="an existing tick store (default: ingest ../shared/data)")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as scratch:
        if args.store is None:
            ingest(sorted((REPO.parent / "shared" / "data").rglob("*.gz")), "binance-ws", scratch)
        store = TickStore(args.store or scratch)
        print(f"# book replay, 1 core, {platform.machine()}, {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}")
        print("| symbol | level updates | messages | ladder levels | replay ms | M updates/s | grid samples "
              "| replay + 10 bps bands on grid ms | dict book M updates/s | speed-up | valid samples |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for symbol in store.symbols_in("depth_diff"):
            print(bench_symbol(store, symbol), flush=True)


if __name__ == "__main__":
    main()
