"""Crash and concurrency trials of the tick store with real ``gpu-lpi ingest`` processes.

* ``kill`` trials: an ingest of the real captures into a store that already holds some of them is
  killed (SIGKILL) at a random moment of its run; a reader then opens the store (which finishes or
  undoes the commit). Every trial must end with the store exactly as before or exactly as after the
  ingest, with no staging debris. The moment of each kill is reported as the phase the ingest was in
  (parse, commit before its journal, publish).
* ``concurrent`` trials: two ingests start at once into one store (one of them with inputs that
  overlap the other's); the store must then hold exactly the rows of both, as ingested one after the
  other.

Usage::

    python bench/crash_trials.py [--kills 40] [--concurrent 10] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpu_lpi.store import TickStore  # noqa: E402
from tests.conftest import store_files  # noqa: E402

GPU_LPI = [sys.executable, "-m", "gpu_lpi.cli"]


def _ingest(files, store: Path) -> subprocess.Popen:
    return subprocess.Popen([*GPU_LPI, "ingest", "--format", "binance-ws", *map(str, files), "--store", str(store)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    """Wait for an ingest; return what it printed (standard output and error)."""
    out, err = process.communicate(timeout=600)
    if process.returncode != 0:
        raise SystemExit(f"ingest failed ({process.returncode}): {err[-2000:]}")
    return out + err


def _rows(root: Path) -> dict:
    """Every row of the store, per table and symbol, as sorted text (order-free, NaN-safe)."""
    store = TickStore(root)
    return {(table, symbol): sorted(repr(tuple(row.values())) for row in store.read(table, symbol).to_pylist())
            for table in store.tables() for symbol in store.symbols_in(table)}


def _phase(root: Path) -> str:
    if (root / "_journal.json").exists():
        return "publish"
    staging = root / "_staging"
    folders = list(staging.iterdir()) if staging.is_dir() else []
    if any((f / "publish").exists() for f in folders):
        return "commit (merge)"
    return "parse/stage" if folders else "not started / done"


def kill_trials(data: Path, count: int, tmp: Path) -> None:
    captures = sorted(data.rglob("*.gz"))
    first, rest = captures[:2], captures[2:]
    before_root = tmp / "before"
    _finish(_ingest(first, before_root))
    after_root = tmp / "after"
    shutil.copytree(before_root, after_root)
    begin = time.perf_counter()
    _finish(_ingest(rest, after_root))
    duration = time.perf_counter() - begin
    before, after = store_files(before_root), store_files(after_root)
    outcomes = Counter()
    for trial in range(count):
        root = tmp / f"trial-{trial}"
        shutil.copytree(before_root, root)
        process = _ingest(rest, root)
        time.sleep(random.uniform(0.0, duration))
        process.kill()
        process.communicate()
        phase = _phase(root)
        TickStore(root).read("trades", "BTCUSDT")     # any reader finishes or undoes the commit
        state = store_files(root)
        result = "before" if state == before else "after" if state == after else "MIXED"
        staging = root / "_staging"
        debris = staging.is_dir() and any(staging.iterdir())
        outcomes[(phase, result, "debris" if debris else "clean")] += 1
        shutil.rmtree(root)
    print(f"kill trials ({count}, ingest of {len(rest)} files takes {duration:.1f} s):")
    for (phase, result, debris), n in sorted(outcomes.items()):
        print(f"  killed during {phase:<20} -> store {result:<6} {debris:<6} x{n}")
    bad = sum(n for (_, result, debris), n in outcomes.items() if result == "MIXED" or debris == "debris")
    print(f"  bad outcomes: {bad}")


def concurrent_trials(data: Path, count: int, tmp: Path) -> None:
    captures = sorted(data.rglob("*.gz"))
    btc = [p for p in captures if "btcusdt" in p.name]
    eth_and_btc = [p for p in captures if "ethusdt" in p.name] + btc[:1]   # overlaps the other
    reference = tmp / "reference"
    _finish(_ingest(btc, reference))
    _finish(_ingest(eth_and_btc, reference))
    expected = _rows(reference)
    lost = 0
    waited = 0
    for trial in range(count):
        root = tmp / f"concurrent-{trial}"
        first, second = _ingest(btc, root), _ingest(eth_and_btc, root)
        outputs = _finish(first) + _finish(second)
        waited += "waiting for" in outputs
        lost += _rows(root) != expected
        shutil.rmtree(root)
    print(f"concurrent trials ({count}): stores differing from the sequential result: {lost}; "
          f"trials where one ingest waited for the other: {waited}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.kills:
            kill_trials(args.data, args.kills, Path(tmp))
        if args.concurrent:
            concurrent_trials(args.data, args.concurrent, Path(tmp))


if __name__ == "__main__":
    main()
