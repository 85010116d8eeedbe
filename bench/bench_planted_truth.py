"""Benchmark: the signals against planted truth on generated markets (issue 7 item 10).

For each format and seed, ``gpu-lpi synth`` (one BTCUSDT day), ingest, ``gpu-lpi run`` and
:func:`gpu_lpi.truth.score_events`: precision and recall of Mode A's events against the planted
forced episodes, fades of informed repricings, mean markouts of Mode A's and of informed events at
the study's answer horizon; once with every feed, once without OI and liquidations (the proxy).

    .venv/bin/python bench/bench_planted_truth.py [--seeds 1 2 3] [--rate-scale 0.05]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpu_lpi.truth import WITHOUT_FEEDS, planted_truth_trial  # noqa: E402


def _text(value, pattern="{:.2f}"):
    return "-" if value is None else pattern.format(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--formats", nargs="+", default=["binance-ws", "tardis"])
    parser.add_argument("--rate-scale", type=float, default=0.05)
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print("| format | feeds | seed | state path | Mode A events | precision | recall | fades of informed "
          "| forced markout bps | informed events | informed markout bps | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    trials = [(fmt, "all", seed) for fmt in args.formats for seed in args.seeds]
    trials += [(args.formats[0], "no OI, no liquidations", seed) for seed in args.seeds]
    for fmt, feeds, seed in trials:
        begin = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            score = planted_truth_trial(Path(tmp), fmt, seed, rate_scale=args.rate_scale,
                                        tables=None if feeds == "all" else WITHOUT_FEEDS)
        print(f"| {fmt} | {feeds} | {seed} | {next(iter(score['state_path'].values()))} | {score['trades']} | "
              f"{_text(score['precision'])} | {_text(score['recall'])} of {score['forced_episodes']} | "
              f"{score['fades_of_informed']} | {_text(score['forced_markout_bps'], '{:+.1f}')} | "
              f"{score['informed_events']} | {_text(score['informed_markout_bps'], '{:+.1f}')} | "
              f"{time.perf_counter() - begin:.0f} |", flush=True)


if __name__ == "__main__":
    main()
