"""Benchmark: strong scaling of a universe event study over Dask worker processes.

A generated universe (``gpu-lpi synth``: ``--symbols`` symbols x ``--days`` day(s) of binance-ws
captures at ``--rate-scale``, so L2 depth diffs, trades, liquidations) is ingested once into a
store under ``--work`` (kept between runs of the benchmark), then the same job (features, signals,
events and the event study of every symbol, ``--chunk-hours`` chunks) runs into a fresh run folder
on a ``LocalCluster`` (``--cluster local``) or ``LocalCUDACluster`` (``--cluster local-cuda``) of
each worker count of ``--workers``, ``--repeats`` times (the best time is kept: other work on a
shared machine only ever adds time). Wall time is that of :func:`gpu_lpi.run.run_job` alone: the
cluster is started and its workers have warmed their kernels (:mod:`jobs.warm_kernels`) before the
clock starts (the warm-up's seconds are printed). The load average before each worker count is
printed with it. Strong-scaling efficiency = t1 / (n * tn), t1 the time of the smallest worker
count scaled to one worker. Every run's Parquet files must equal those of the first run byte for byte.
The workers of a local cluster split the cores for numba's parallel loops (:mod:`jobs.cluster`):
one worker alone already uses every core in the exact rolling median/MAD.

    .venv/bin/python bench/bench_scaling.py [--workers 1,2] [--symbols 6] [--rate-scale 0.01]
        [--repeats 1] [--cluster local|local-cuda] [--device cpu|gpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpu_lpi.ingest import ingest  # noqa: E402
from gpu_lpi.job_spec import ClusterSpec  # noqa: E402
from gpu_lpi.run import run_job  # noqa: E402
from gpu_lpi.synth import synthesize  # noqa: E402
from jobs.cluster import open_client  # noqa: E402
from jobs.warm_kernels import WarmKernels  # noqa: E402

UNIVERSE = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "BTCUSD_PERP", "ETHUSD_PERP")
START = date(2024, 8, 5)


def universe_store(work: Path, symbols: tuple[str, ...], days: int, rate_scale: float) -> Path:
    """The ingested store of the generated universe (made once per set of arguments)."""
    folder = work / f"universe-{len(symbols)}x{days}d-rate{rate_scale:g}"
    store = folder / "store"
    if (folder / "complete").exists():
        return store
    shutil.rmtree(folder, ignore_errors=True)
    begin = time.perf_counter()
    synthesize(folder / "raw", "binance-ws", list(symbols), START, days, seed=0, rate_scale=rate_scale)
    ingest([folder / "raw"], "binance-ws", store)
    shutil.rmtree(folder / "raw")
    (folder / "complete").touch()
    print(f"generated and ingested the universe in {time.perf_counter() - begin:.1f} s")
    return store


def warm_up_seconds(dask_worker, device: str) -> float | None:
    """How long the worker took to warm its kernels when it started (:mod:`jobs.warm_kernels`)."""
    return dask_worker.plugins[WarmKernels(device).name].seconds


def parquet_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--symbols", type=int, default=6, choices=range(1, len(UNIVERSE) + 1))
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--rate-scale", type=float, default=0.01)
    parser.add_argument("--chunk-hours", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cluster", choices=("local", "local-cuda"), default="local")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "scaling")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.workers.split(",")})
    symbols = UNIVERSE[:args.symbols]
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    store = universe_store(args.work, symbols, args.days, args.rate_scale)
    spec = {"data": {"store": str(store), "symbols": list(symbols), "start": START.isoformat(),
                     "end": (START + timedelta(days=args.days - 1)).isoformat()},
            "cluster": {"chunk_hours": args.chunk_hours}}
    rows, reference = [], None
    for n in counts:
        load = os.getloadavg()[0]
        cluster = ClusterSpec(scheduler=args.cluster, n_workers=n, threads_per_worker=1)
        times, same = [], True
        with open_client(cluster, device=args.device) as client:
            warm = client.run(warm_up_seconds, device=args.device).values()
            for _ in range(args.repeats):
                out = args.work / f"run-{n}"
                shutil.rmtree(out, ignore_errors=True)
                begin = time.perf_counter()
                result = run_job(spec, out=out, device=args.device, client=client)
                times.append(time.perf_counter() - begin)
                files = parquet_bytes(out)
                reference = reference or files
                same &= files == reference
        rows.append((n, min(times), result, same, load, max(warm)))
    t1 = rows[0][1] * rows[0][0]                     # the smallest count, scaled to one worker
    chunks = rows[0][2].chunks["computed"]
    print(f"{len(symbols)} symbols x {args.days} day(s), rate scale {args.rate_scale:g}, "
          f"{chunks} chunks of {args.chunk_hours} h, {rows[0][2].n_events} events, "
          f"{args.cluster} cluster, device {args.device}")
    print(f"| workers | wall s (best of {args.repeats}) | speed-up | efficiency t1/(n·tn) "
          "| study s (client, serial) | worker warm-up s | peak worker RSS MiB | same bytes | load before |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, seconds, result, same, load, warm in rows:
        peak = max(result.peak_rss_mib.get(stage, 0.0) for stage in ("features", "events"))
        print(f"| {n} | {seconds:.2f} | {t1 / seconds:.2f} | {t1 / (n * seconds):.0%} | "
              f"{result.seconds['study']:.2f} | {warm:.1f} | {peak:.0f} | {'yes' if same else 'NO'} "
              f"| {load:.1f} |")
    if not all(row[3] for row in rows):
        sys.exit("the runs' Parquet files differ between worker counts")


if __name__ == "__main__":
    main()
