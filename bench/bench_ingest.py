"""Ingest throughput of ``--format binance-ws``, per core, on the real captures and a synthetic day.

Events are counted two ways: *messages* (lines of the capture: one trade, one book-ticker update,
one depth diff, one snapshot) and *rows* (what the store receives: one row per trade or ticker
update, one per depth level). The anchor is the way a notebook would do it: ``json.loads`` per line
into Python lists, then a DataFrame per message type (parse only, no store).

Usage::

    python bench/bench_ingest.py                      # real captures (../shared/data)
    python bench/bench_ingest.py --synthetic-day      # also one synthetic BTCUSDT day (gpu-lpi synth)
    python bench/bench_ingest.py --parse-only tardis RAW/*.csv.gz   # any format: parse-only time and peak RSS

``--parse-only`` iterates a format's parser over the files in a fresh process, dropping the chunks
(no store): the time and peak RSS of parsing alone, which must not grow with the file's size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pyarrow as pa

from gpu_lpi.ingest import format_parser, ingest
from gpu_lpi.ingest.report import IngestContext, IngestReport
from gpu_lpi.reference_data import SymbolRegistry

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data"


def _one_core() -> None:
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def count_messages(files) -> int:
    total = 0
    for path in files:
        with gzip.open(path, "rb") as lines:
            total += sum(1 for line in lines if line.strip())
    return total


def time_parse(files, fmt: str = "binance-ws") -> tuple[float, int]:
    """Seconds to parse (no store writes) and the number of rows produced."""
    ctx = IngestContext(IngestReport(fmt), SymbolRegistry())
    start = time.perf_counter()
    rows = sum(table.num_rows for _, _, table in format_parser(fmt)(files, ctx))
    return time.perf_counter() - start, rows


def parse_only(fmt: str, files: list[Path]) -> str:
    """One line: rows, seconds and peak RSS of parsing ``files`` in a fresh process."""
    script = ("import sys, resource; from pathlib import Path; from bench.bench_ingest import time_parse; "
              "s, n = time_parse([Path(p) for p in sys.argv[2:]], sys.argv[1]); "
              "print(s, n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", script, fmt, *map(str, files)], cwd=REPO, check=True,
                          capture_output=True, text=True)
    seconds, rows, peak_kb = done.stdout.split()
    size = sum(f.stat().st_size for f in files) / 2**20
    return (f"| {fmt} parse only, {len(files)} file(s), {size:,.0f} MB compressed | {int(rows):,} rows | "
            f"{float(seconds):.1f} s | {int(rows) / float(seconds):,.0f} rows/s | peak RSS {int(peak_kb) / 2**20:.2f} GB |")


def time_ingest(files) -> float:
    """Seconds for a full ingest into a fresh store (parse, merge, write Parquet)."""
    with tempfile.TemporaryDirectory() as store:
        start = time.perf_counter()
        ingest(files, "binance-ws", store)
        return time.perf_counter() - start


def time_notebook_parse(files) -> float:
    """The anchor: ``json.loads`` per line, lists per type, one pandas DataFrame per type."""
    import pandas as pd

    start = time.perf_counter()
    for path in files:
        buckets: dict[str, list] = {}
        with gzip.open(path, "rt") as lines:
            for line in lines:
                local, payload = line.split(" ", 1)
                message = json.loads(payload)
                data = message.get("data", message)
                buckets.setdefault(data.get("e", "snapshot"), []).append(data)
        for rows in buckets.values():
            pd.DataFrame(rows)
    return time.perf_counter() - start


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def report(label: str, files, with_anchor: bool = True) -> str:
    """One table row; the anchor (which holds every message as a dict) only on small inputs."""
    messages = count_messages(files)
    parse_s, rows = time_parse(files)
    ingest_s = time_ingest(files)
    anchor = "- | -"
    if with_anchor:
        notebook_s = time_notebook_parse(files)
        anchor = f"{notebook_s:.2f} | {notebook_s / parse_s:.1f}x"
    return (f"| {label} | {messages:,} | {rows:,} | {parse_s:.2f} | {messages / parse_s:,.0f} "
            f"| {rows / parse_s:,.0f} | {ingest_s:.2f} | {messages / ingest_s:,.0f} | {anchor} "
            f"| {peak_rss_gb():.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic-day", action="store_true", help="also time one synthetic BTCUSDT day")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="event-rate scale of the synthetic day")
    parser.add_argument("--parse-only", nargs="+", metavar=("FORMAT", "FILE"),
                        help="time and peak RSS of parsing FILEs of FORMAT alone, in a fresh process")
    args = parser.parse_args()
    if args.parse_only:
        fmt, *paths = args.parse_only
        print(parse_only(fmt, [Path(p) for p in paths]))
        return
    _one_core()
    print(f"# ingest throughput, 1 core (pyarrow threads=1), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}")
    print("| input | messages | rows | parse s | messages/s | rows/s | ingest s | messages/s (ingest) "
          "| json.loads+pandas s | speed-up | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    real = sorted(REAL.rglob("*.gz")) if REAL.is_dir() else []
    time_parse(real[:1])                                   # warm up (numba compilation)
    if real:
        print(report(f"real captures ({len(real)} files)", real), flush=True)
    if args.synthetic_day:
        from gpu_lpi.synth import synthesize

        with tempfile.TemporaryDirectory() as raw:
            synthesize(raw, "binance-ws", ["BTCUSDT"], date(2024, 8, 5), 1, seed=1, rate_scale=args.rate_scale)
            files = sorted(Path(raw).glob("*.gz"))
            print(report(f"synthetic BTCUSDT day (rate x{args.rate_scale})", files, with_anchor=False),
                  flush=True)


if __name__ == "__main__":
    main()
