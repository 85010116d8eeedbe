"""Benchmark: exact rolling median + MAD against rolling-median anchors, in one run.

One symbol-month on the 250 ms grid (10,368,000 ticks = 30 days), Student-t (df = 1.5)
values with scattered NaN ticks and a few long gaps, windows of 2 h (28,800 ticks) and
24 h (345,600 ticks). The engine computes median AND MAD; the anchors (bottleneck
``move_median``, polars ``rolling_median``, pandas ``rolling().median()``) compute the
median only. ``ratio`` = engine median+MAD time / bottleneck median time.

Usage::

    python bench/bench_rolling.py                      # full size, CPU, all anchors
    python bench/bench_rolling.py --quick --skip-pandas
    python bench/bench_rolling.py --device gpu         # CuPy + CUDA; phases timed apart
"""

import argparse
import time

import numpy as np

TICKS_PER_MONTH = 10_368_000
WINDOWS = (28_800, 345_600)


def make_ticks(size, seed=0):
    """Heavy-tailed feature values with 1 % NaN ticks and ten 30-minute gaps."""
    rng = np.random.default_rng(seed)
    values = rng.standard_t(1.5, size)
    values[rng.random(size) < 0.01] = np.nan
    gap = min(7_200, size // 20)
    for start in rng.integers(0, max(1, size - gap), 10):
        values[start : start + gap] = np.nan
    return values


def seconds(function):
    """Wall time of one call and its result."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def time_engine_cpu(values, window):
    from gpu_lpi.robust import rolling_median_mad

    rolling_median_mad(values[:1000], 10, 1, device="cpu")  # compile outside the timing
    elapsed, (median, _) = seconds(lambda: rolling_median_mad(values, window, 1, device="cpu"))
    return elapsed, median, {}


def time_engine_gpu(values, window):
    """Total GPU time, with the rank, build and query phases apart."""
    import cupy

    from kernels.rolling_order_stats import rank_valid_values
    from kernels.wavelet_matrix import build_wavelet_matrix, wavelet_median_mad

    def synchronized(function):
        def run():
            result = function()
            cupy.cuda.Device().synchronize()
            return result

        return run

    device_values = cupy.asarray(values)
    small = device_values[:1000]
    small_ranks, small_sorted, small_before = rank_valid_values(small, cupy)
    wavelet_median_mad(build_wavelet_matrix(small_ranks, cupy), small_sorted, small_before,
                       10, 1, cupy, "gpu")  # compile outside the timing
    cupy.cuda.Device().synchronize()
    rank_s, (ranks, sorted_values, valid_before) = seconds(
        synchronized(lambda: rank_valid_values(device_values, cupy)))
    build_s, matrix = seconds(synchronized(lambda: build_wavelet_matrix(ranks, cupy)))
    query_s, (median, _) = seconds(synchronized(lambda: wavelet_median_mad(
        matrix, sorted_values, valid_before, window, 1, cupy, "gpu")))
    phases = {"rank": rank_s, "build": build_s, "query": query_s}
    return rank_s + build_s + query_s, median.get(), phases


def time_bottleneck(values, window):
    import bottleneck

    return seconds(lambda: bottleneck.move_median(values, window, min_count=1))


def time_polars(values, window):
    import polars

    series = polars.Series(values, nan_to_null=True)
    elapsed, result = seconds(lambda: series.rolling_median(window, min_samples=1))
    return elapsed, result.to_numpy()


def time_pandas(values, window):
    import pandas

    series = pandas.Series(values)
    elapsed, result = seconds(lambda: series.rolling(window, min_periods=1).median())
    return elapsed, result.to_numpy()


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=TICKS_PER_MONTH, help="ticks (default 10,368,000)")
    parser.add_argument("--quick", action="store_true", help="n = 1,036,800 (3 days)")
    parser.add_argument("--windows", type=lambda text: [int(w) for w in text.split(",")],
                        default=list(WINDOWS), help="comma-separated window lengths in ticks")
    parser.add_argument("--skip-pandas", action="store_true", help="pandas is slow at large n")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    return parser.parse_args()


def main():
    arguments = parse_arguments()
    size = TICKS_PER_MONTH // 10 if arguments.quick else arguments.n
    values = make_ticks(size)
    engine = time_engine_gpu if arguments.device == "gpu" else time_engine_cpu
    anchors = {"bottleneck": time_bottleneck, "polars": time_polars}
    if not arguments.skip_pandas:
        anchors["pandas"] = time_pandas
    print(f"n = {size:,} ticks, {np.isnan(values).mean():.1%} NaN, device = {arguments.device}")
    header = f"{'window':>9} {'engine med+MAD s':>17}" + "".join(
        f" {name + ' med s':>16}" for name in anchors) + f" {'ratio':>7}  max |median - anchor's|"
    print(header)
    for window in arguments.windows:
        engine_s, engine_median, phases = engine(values, window)
        times = {}
        differences = []
        for name, anchor in anchors.items():
            times[name], median = anchor(values, window)
            differences.append(f"{name} {np.nanmax(np.abs(median - engine_median)):.1e}")
        ratio = engine_s / times["bottleneck"]
        print(f"{window:>9,} {engine_s:>17.2f}" + "".join(f" {times[n]:>16.2f}" for n in anchors)
              + f" {ratio:>7.2f}  " + ", ".join(differences))
        if phases:
            timings = ", ".join(f"{phase} {spent * 1e3:.1f} ms" for phase, spent in phases.items())
            print(f"          GPU phases: {timings}")


if __name__ == "__main__":
    main()
