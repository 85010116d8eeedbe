"""Peak host memory of ``compute_features`` over one symbol-month on the CPU path (target: < 4 GB).

The generated store (``tests/feature_stores.py``) is built first; the features are then computed in a
fresh child process, whose peak RSS is reported, so that nothing of the store's generation counts.

Usage::

    python bench/bench_memory.py [--days 30]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.feature_stores import MS, SYMBOL, T0, random_store  # noqa: E402

CHILD = """
import sys, time
from gpu_lpi.features import compute_features
start = time.perf_counter()
table = compute_features(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), device="cpu")
print(f"{table.num_rows} {time.perf_counter() - start:.1f} {table.nbytes / 2**30:.2f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = random_store(Path(tmp) / "store", seed=0, minutes=args.days * 1440, trades_per_minute=2000)
        end = T0 + args.days * 1440 * 60_000 * MS
        result = subprocess.run([sys.executable, "-c", CHILD, str(store.root), SYMBOL, str(T0), str(end)],
                                capture_output=True, text=True, check=True, cwd=REPO)
    ticks, wall, output_gib = result.stdout.split()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"| {time.strftime('%Y-%m-%d')} | {args.days} days | {int(ticks):,} ticks | {wall} s "
          f"| output {output_gib} GiB | peak RSS {peak:.2f} GiB |")


if __name__ == "__main__":
    main()
