"""Simulator throughput: events/s for one scenario and scenarios × events/s for grids of 1, 100 and
10,000 parameter sets over one symbol-day, against hftbacktest's single configuration on the same day.

    python bench/bench_sim.py RUN_DIR --store STORE --symbol BTCUSDT --day 2024-08-05 [--grids 1,100,10000]
                              [--device cpu|gpu] [--hftbacktest]

``RUN_DIR`` is a finished ``gpu-lpi run`` of that day (its features give the activations). So that
the day has work, every episode start (``event``) is an activation, traded with a fixed size
(``target_w`` 0.5), not only the Mode A entries; the strategy is otherwise the run's. The grids vary
fill model, order latency, layers, gate and take-profit settings. The market windows are built once
(:func:`gpu_lpi.sim.market.load_windows`, timed apart); a grid is one launch. "events" are the
market events inside the windows each scenario walks until it is flat (its live time), counted by
the kernel's own loop bound, and the day's rows for hftbacktest (it walks every row of the day).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_lpi.params import FeatureParams  # noqa: E402
from gpu_lpi.sim.day import activations, read_view, simulate_windows  # noqa: E402
from gpu_lpi.sim.market import load_windows  # noqa: E402
from gpu_lpi.sim.params import SimSpec  # noqa: E402
from gpu_lpi.store import TickStore  # noqa: E402

GRID_AXES = {
    "fill_model": ["trade_through", "queue_risk_averse", "queue_prob"],
    "order_latency_ms": [20.0, 50.0, 80.0, 110.0, 140.0],
    "layer_ticks": [[0, 1, 2], [0, 2, 4], [1, 3, 5], [0, 5, 10]],
    "z_pi_max": [1.0, 2.0, 3.0, 5.0, 8.0],
    "tp_bps": [0.0, 5.0, 10.0, 20.0, 40.0],
    "quote_ttl_s": [2.0, 5.0, 10.0, 20.0],
    "exit_timeout_s": [1.0, 3.0, 5.0, 10.0],
}


def grid(size: int) -> dict:
    """A ``[sim]`` table whose Cartesian grid has ``size`` scenarios (axes taken in order, the last
    one trimmed)."""
    table, count = {"order_latency": "constant"}, 1
    for name, values in GRID_AXES.items():
        if count >= size:
            break
        take = min(len(values), -(-size // count))
        table[name] = values[:take]
        count *= take
    scenarios = SimSpec.from_mapping(table).scenarios
    return SimSpec(scenarios[:size]).resolved(FeatureParams())


def busy_view(run_dir: Path, symbol: str, day: str, reach_ns: int) -> pd.DataFrame:
    """The run's ticks with every episode start made an activation of size 0.5 (see module docstring)."""
    view = read_view(run_dir, symbol, day, reach_ns)
    start = view["event"].to_numpy(bool) & (view["dir"].to_numpy() != 0) if "dir" in view else view["event"].to_numpy(bool)
    view["target_w"] = 0.5
    view["exhaustion"] = start
    view["state"] = 1
    return view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--day", default="2024-08-05")
    parser.add_argument("--grids", default="1,100,10000")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hftbacktest", action="store_true", help="time hftbacktest's 100 ms loop on the day")
    args = parser.parse_args()
    store = TickStore(args.store)
    sizes = [int(s) for s in args.grids.split(",")]
    largest = grid(max(sizes))
    reach = int(round((max(s.window_s for s in largest.scenarios) + 121.0) * 1e9))
    view = busy_view(args.run_dir, args.symbol, args.day, reach)
    acts = activations(view, pd.Timestamp(args.day).value)
    acts["dir"] = np.where(view["lpi_down"].to_numpy()[acts["tick"]] >= view["lpi_up"].to_numpy()[acts["tick"]], 1, -1)
    begin = time.perf_counter()
    market = load_windows(store, args.symbol, [(t, t + reach) for t in acts["ts"]])
    build = time.perf_counter() - begin
    print(f"{len(acts)} activations, {market.n_events:,} window events; market windows built in {build:.1f} s")
    simulate_windows(market, view, acts, grid(1), args.symbol, (1.0,), args.device)   # compile / warm up
    rows = []
    for size in sizes:
        spec = grid(size)
        begin = time.perf_counter()
        result = simulate_windows(market, view, acts, spec, args.symbol, (0.5, 1.0, 2.0, 5.0, 30.0, 120.0),
                                  args.device)
        seconds = time.perf_counter() - begin
        live = result.episodes[result.episodes["status"] != "busy"]
        walked = _events_walked(market, live)
        rows.append((size, seconds, walked, int((result.episodes["status"] == "traded").sum())))
        print(f"grid {size:>6}: {seconds:8.2f} s  {walked:,} events walked  "
              f"{walked / seconds:,.0f} scenario-events/s  {len(result.fills):,} fills")
    if args.hftbacktest:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from hftbacktest_driver import hftbacktest_day_seconds

        anchor = hftbacktest_day_seconds(str(args.store), args.symbol, args.day)
        print(f"hftbacktest, one configuration (100 ms quoting loop): {anchor}")


def _events_walked(market, episodes: pd.DataFrame) -> int:
    """Market events inside each live episode's span (start to end), summed."""
    window = np.searchsorted(market.starts, episodes["activation_ts"].to_numpy())
    total = 0
    for w in np.unique(window):
        pick = window == w
        ts = market.ev_ts[market.w_ev0[w]:market.w_ev1[w]]
        total += int((np.searchsorted(ts, episodes["end_ts"].to_numpy()[pick], side="right")
                      - np.searchsorted(ts, episodes["start_ts"].to_numpy()[pick])).sum())
    return total


if __name__ == "__main__":
    main()
