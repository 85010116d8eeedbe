"""Benchmark: start-up of ``gpu-lpi run`` (and ``gpu-lpi synth``) with a cold and a warm numba cache.

Each command runs in a fresh process with ``NUMBA_CACHE_DIR`` pointing at a new, empty folder: the
first run compiles every kernel (cold cache, as on a fresh clone), the next ones load the compiled
code (warm cache, every later call). ``gpu-lpi run`` computes one symbol-day of a small generated
store (``tests/feature_stores.random_store``, 2 minutes of trades: the kernels' work is
milliseconds, so the times are start-up); the time to the first chunk is when its feature
partition appears in the run folder, measured from just before the process starts. ``gpu-lpi synth``
writes one binance-ws day at ``--rate-scale 0.001`` (compile cost of the synthetic market, which
``make demo`` pays on a fresh clone).

    .venv/bin/python bench/bench_startup.py [--device cpu|gpu] [--warm-runs 3]
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.feature_stores import SYMBOL, random_store  # noqa: E402

CLI = str(Path(sys.executable).parent / "gpu-lpi")
JOB = """[data]
store = "{store}"
symbols = ["{symbol}"]
start = 2024-08-05
end = 2024-08-05
[grid]
tick_ms = 250
[params]
window_hours = 0.01
adv_window_hours = 0.01
depth_window_hours = 0.01
min_periods_s = 5.0
[cluster]
chunk_hours = 24
"""


def _timed_run(command: list[str], cache: Path, watches: tuple[str, ...] = ()) -> list[float]:
    """Seconds from just before the process starts to the first path matching each glob pattern of
    ``watches``, and to its exit."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    begin = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    seen = dict.fromkeys(watches)
    while process.poll() is None:
        for pattern in [pattern for pattern, at in seen.items() if at is None]:
            if glob.glob(pattern):
                seen[pattern] = time.perf_counter() - begin
        time.sleep(0.005)
    done = time.perf_counter() - begin
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read()[-3000:]}")
    return [*seen.values(), done]


def _run_command(work: Path, job: Path, device: str, index: int):
    """``gpu-lpi run`` into a new run folder; what to watch: the run folder (made when the job has
    been read and computing starts) and the first feature partition (first chunk done)."""
    out = work / f"run-{index}"
    return ([CLI, "run", str(job), "--out", str(out), "--device", device],
            (str(out), f"{out}/features/symbol={SYMBOL}/date=*/part-*.parquet"))


def _synth_command(work: Path, index: int):
    return [CLI, "synth", "--out", str(work / f"synth-{index}"), "--format", "binance-ws",
            "--symbols", "BTCUSDT", "--start", "2024-08-05", "--days", "1", "--seed", "1",
            "--rate-scale", "0.001"]


def _range(values) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}" if high - low < 0.005 else f"{low:.2f}–{high:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--skip-synth", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        store = random_store(work / "store", seed=1, minutes=2.0)
        job = work / "job.toml"
        job.write_text(JOB.format(store=store.root, symbol=SYMBOL))
        cache = work / "numba-cache"
        runs = []
        for index in range(1 + args.warm_runs):
            command, watch = _run_command(work, job, args.device, index)
            runs.append(_timed_run(command, cache, watch))
        cold, warm = runs[0], runs[1:]
        synth = "- | -"
        if not args.skip_synth:
            synth_cache = work / "numba-cache-synth"
            times = [_timed_run(_synth_command(work, i), synth_cache)[-1] for i in range(2)]
            synth = f"{times[0]:.1f} | {times[1]:.2f}"
    print("| date | machine | device | cold: computing from s | cold: first chunk s | cold: exit s "
          "| warm: computing from s | warm: first chunk s | warm: exit s | synth cold s "
          "| synth warm s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    warm_columns = " | ".join(_range(times) for times in zip(*warm))
    print(f"| {time.strftime('%Y-%m-%d')} | {platform.node()} ({os.cpu_count()} cores) | "
          f"{args.device} | {' | '.join(f'{value:.2f}' for value in cold)} | {warm_columns} | "
          f"{synth} |")


if __name__ == "__main__":
    main()
