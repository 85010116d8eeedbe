"""Peak host memory (RSS) of the engine's big steps, each measured in a fresh child process.

Targets (2-core, 24 GB machine): at most 4 GB to ingest one full-rate BTCUSDT day in each format,
and at most 4 GB for ``gpu-lpi run`` of that day at any ``chunk_hours``; the peak must not grow with
the size of the files or of the date range.

Modes:

``full-day`` (default)
    A synthetic BTCUSDT day at the calibrated (real) rates: written as binance-ws captures and as
    Tardis CSVs by ``gpu-lpi synth``, and as Binance public-archive zips (trades, bookTicker,
    metrics) exported from the binance-ws store. Each is ingested with ``gpu-lpi ingest``; then
    ``gpu-lpi run`` computes the day's features from the binance-ws store with ``chunk_hours`` 1, 6
    and 24. Needs about 25 GB of free disk and half an hour on 2 cores.
``features-month``
    ``compute_features`` over one symbol-month of a generated book-ticker store (``--days``).

Prints one Markdown table row per measurement, for bench/RESULTS.md.

Usage::

    python bench/bench_memory.py [full-day] [--work DIR] [--keep]
    python bench/bench_memory.py features-month [--days 30]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DAY = "2024-08-05"
#: Runs a command and prints its peak RSS (GiB) and wall seconds: a fresh process per measurement,
#: since RUSAGE_CHILDREN keeps the largest child ever waited for.
MEASURE = """
import resource, subprocess, sys, time
begin = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - begin
if done.returncode:
    sys.exit(done.stderr[-3000:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, wall)
"""
GPU_LPI = [sys.executable, "-m", "gpu_lpi.cli"]


def measure(command: list[str]) -> tuple[float, float]:
    """(peak RSS GiB, wall s) of ``command`` run in a fresh child."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *map(str, command)], capture_output=True,
                          text=True, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, command))} failed: {done.stderr}")
    peak, wall = done.stdout.split()
    return float(peak), float(wall)


def row(what: str, size: str, peak: float, wall: float) -> None:
    print(f"| {time.strftime('%Y-%m-%d')} | {what} | {size} | {wall:.0f} s | {peak:.2f} GiB |", flush=True)


def _gib(paths) -> str:
    total = sum(p.stat().st_size for p in paths)
    return f"{len(paths)} file(s), {total / 2**30:.2f} GiB"


# -- inputs ------------------------------------------------------------------------------------------
def synth(out: Path, fmt: str) -> list[Path]:
    if not out.exists():
        subprocess.run([*GPU_LPI, "synth", "--out", out, "--format", fmt, "--symbols", "BTCUSDT",
                        "--start", DAY, "--days", "1", "--seed", "1"], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)
    return sorted(p for p in out.iterdir() if p.name.endswith(".gz"))


def export_archive(store_root: Path, out: Path) -> list[Path]:
    """Binance public-archive zips (trades, bookTicker, metrics) of the store's BTCUSDT day."""
    from gpu_lpi.store import TickStore

    if out.exists():
        return sorted(out.iterdir())
    out.mkdir(parents=True)
    store = TickStore(store_root)
    columns = {
        "trades": lambda t: {"id": t["trade_id"], "price": t["price"], "qty": t["qty"],
                             "quote_qty": t["notional"], "time": pc.divide(t["ts"], 10**6),
                             "is_buyer_maker": t["is_buyer_maker"]},
        "book_ticker": lambda t: {"update_id": t["update_id"], "best_bid_price": t["bid"],
                                  "best_bid_qty": t["bid_qty"], "best_ask_price": t["ask"],
                                  "best_ask_qty": t["ask_qty"], "transaction_time": pc.divide(t["ts"], 10**6),
                                  "event_time": pc.divide(t["ts"], 10**6)},
    }
    names = {"trades": "trades", "book_ticker": "bookTicker"}
    options = pacsv.WriteOptions(quoting_style="none")
    for table, make in columns.items():
        path = out / f"BTCUSDT-{names[table]}-{DAY}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
                archive.open(path.with_suffix(".csv").name, "w", force_zip64=True) as member:
            writer = None
            for batch in store.iter_batches(table, "BTCUSDT", 0, 2**62):
                rows = pa.table(make(batch))
                writer = writer or pacsv.CSVWriter(member, rows.schema, write_options=options)
                writer.write_table(rows)
            writer.close()
    metrics = out / f"BTCUSDT-metrics-{DAY}.zip"
    oi = store.read("open_interest", "BTCUSDT").to_pylist()[::60]   # one poll per 5 minutes
    lines = ["create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
             "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"]
    lines += [f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r['ts'] // 10**9))},BTCUSDT,{r['oi']},"
              f"{r['oi'] * 60000.0},,,," for r in oi]
    with zipfile.ZipFile(metrics, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(metrics.with_suffix(".csv").name, "\n".join(lines) + "\n")
    return sorted(out.iterdir())


def job_spec(path: Path, store: Path, chunk_hours: int) -> Path:
    path.write_text(f'[data]\nstore = "{store}"\nsymbols = ["BTCUSDT"]\nstart = {DAY}\nend = {DAY}\n'
                    f"[cluster]\nchunk_hours = {chunk_hours}\n")
    return path


def full_day(work: Path) -> None:
    print("| date | step | input | wall | peak RSS |\n|---|---|---|---|---|", flush=True)
    stores = {}
    for fmt in ("binance-ws", "tardis"):
        files = synth(work / f"raw-{fmt}", fmt)
        stores[fmt] = work / f"store-{fmt}"
        shutil.rmtree(stores[fmt], ignore_errors=True)
        peak, wall = measure([*GPU_LPI, "ingest", "--format", fmt, *files, "--store", stores[fmt]])
        row(f"ingest --format {fmt}", _gib(files), peak, wall)
    archive = export_archive(stores["binance-ws"], work / "raw-archive")
    store = work / "store-archive"
    shutil.rmtree(store, ignore_errors=True)
    peak, wall = measure([*GPU_LPI, "ingest", "--format", "binance-archive", *archive, "--store", store])
    row("ingest --format binance-archive", _gib(archive), peak, wall)
    for chunk_hours in (1, 6, 24):
        spec = job_spec(work / f"job-{chunk_hours}.toml", stores["binance-ws"], chunk_hours)
        run = work / f"run-{chunk_hours}"
        shutil.rmtree(run, ignore_errors=True)
        peak, wall = measure([*GPU_LPI, "run", spec, "--out", run, "--device", "cpu"])
        row(f"run, chunk_hours = {chunk_hours}", "binance-ws store of the day", peak, wall)


CHILD = """
import sys, time
from gpu_lpi.features import compute_features
start = time.perf_counter()
table = compute_features(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), device="cpu")
print(f"{table.num_rows} {time.perf_counter() - start:.1f} {table.nbytes / 2**30:.2f}")
"""


def features_month(days: int) -> None:
    import resource

    from tests.feature_stores import MS, SYMBOL, T0, random_store

    with tempfile.TemporaryDirectory() as tmp:
        store = random_store(Path(tmp) / "store", seed=0, minutes=days * 1440, trades_per_minute=2000)
        end = T0 + days * 1440 * 60_000 * MS
        result = subprocess.run([sys.executable, "-c", CHILD, str(store.root), SYMBOL, str(T0), str(end)],
                                capture_output=True, text=True, check=True, cwd=REPO)
    ticks, wall, output_gib = result.stdout.split()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"| {time.strftime('%Y-%m-%d')} | {days} days | {int(ticks):,} ticks | {wall} s "
          f"| output {output_gib} GiB | peak RSS {peak:.2f} GiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=("full-day", "features-month"), default="full-day")
    parser.add_argument("--days", type=int, default=30, help="features-month: days of data")
    parser.add_argument("--work", type=Path, default=None, help="full-day: work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="full-day: keep the work folder")
    args = parser.parse_args()
    if args.mode == "features-month":
        features_month(args.days)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        full_day(work)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
