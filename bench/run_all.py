"""Run every benchmark for one device and collect their tables into ``bench/out/<date>-<device>.md``.

Usage::

    python bench/run_all.py --device cpu     # make bench
    python bench/run_all.py --device gpu     # make bench-gpu (needs CuPy and a CUDA GPU)

Copy the figures worth keeping into bench/RESULTS.md with the date, machine and command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def suite(device: str) -> list[list[str]]:
    """The benchmark commands for ``device`` (scripts and their arguments)."""
    common = [["bench_rolling.py", "--device", device, "--skip-pandas"],
              ["bench_features.py", "--device", device], ["bench_startup.py", "--device", device]]
    if device == "cpu":
        return [["bench_ingest.py", "--synthetic-day"], ["bench_book.py"], ["bench_synth.py"],
                ["bench_memory.py"], *common]
    return common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    args = parser.parse_args()
    out = BENCH / "out" / f"{time.strftime('%Y-%m-%d')}-{args.device}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    with out.open("w") as log:
        for script, *options in suite(args.device):
            command = [sys.executable, str(BENCH / script), *options]
            print(f"$ {' '.join(command[1:])}", flush=True)
            log.write(f"\n## {' '.join([script, *options])}\n\n")
            result = subprocess.run(command, capture_output=True, text=True)
            print(result.stdout, end="", flush=True)
            log.write(result.stdout)
            if result.returncode:
                failures += 1
                print(result.stderr[-3000:], file=sys.stderr)
                log.write(f"\nFAILED (exit {result.returncode})\n")
    print(f"\nall tables: {out}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
