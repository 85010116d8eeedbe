"""Calibration of the robust z: how often LPI exceeds lpi_hi in calm markets, and how high it goes
in planted cascades, per z scale, flow window and robust window W (issue 7, item 1).

For every store, symbol and configuration it computes the features over the store's covered
range on the CPU and reports, over the *calm* ticks (outside every labelled episode ± 5 min; every
tick of the real captures, which hold no labelled episode):

* ``calm>hi %``: the share of ticks with ``max(lpi_down, lpi_up) > lpi_hi`` (either side), and
  ``per side %``, the mean of the two sides' shares;
* ``z_fsi>2 %``: the share with z(FSI) (either side) above ``z_fsi_hi``; the 99th and 99.9th
  percentile of ``lpi_down`` and the largest value;

and, over the planted forced episodes (generated stores), the peak LPI of the episode's side inside
``[ts_start, ts_end + 30 s]`` (median and range), the seconds from the peak until LPI falls below
``lpi_exit`` (``exit s``), and how spiky its decay is: the sign changes of ΔLPI per second in the
30 s after the peak (``flips/s``; the rollover rule wants K = 3 falling ticks in a row).

Usage::

    python bench/bench_calibration.py STORE[:LABELS][@FROM..TO] ... [--config NAME ...]

``@FROM..TO`` (ISO times) restricts where the shares are measured (features are still computed
over the whole covered range, so the windows have their history). Configurations are named
``SCALE/FLOW_S/W_HOURS[/LDR_TRANSFORM]``, e.g. ``nonzero_mad/2/2`` (the default: z(LDR) of
``ln LDR``) or ``mad_std_floor/0.25/2/none`` (the former engine); ADV$ and mean depth use ``min(W, 2 h)``. ``--min-periods-s`` sets ``min_periods_s``
(the real captures last about 8 minutes: with the default 300 s their z-scores never start).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
import pandas as pd

from gpu_lpi.features import compute_features
from gpu_lpi.params import FeatureParams
from gpu_lpi.store import TickStore

CALM_MARGIN_NS = 5 * 60 * 10**9
PEAK_TAIL_NS = 30 * 10**9
FLIP_TICKS = 120  # the 30 s after a peak (at 250 ms) in which the sign changes of ΔLPI are counted
DEFAULT_CONFIGS = ("nonzero_mad/2/2", "nonzero_mad/0.25/2", "nonzero_mad/1/2", "nonzero_mad/5/2",
                   "nonzero_mad/2/2/none", "mad_std_floor/0.25/2/none")


def params_of(config: str, min_periods_s: float) -> FeatureParams:
    scale, flow_s, hours, *transform = config.split("/")
    hours = float(hours)
    return FeatureParams(z_scale=scale, flow_window_s=float(flow_s), window_hours=hours,
                         adv_window_hours=min(hours, 2.0), depth_window_hours=min(hours, 2.0),
                         min_periods_s=min_periods_s, z_ldr_transform=(transform or ["log"])[0])


def covered_range(store: TickStore, symbol: str) -> tuple[int, int]:
    spans = store.coverage_table().to_pandas()
    spans = spans[(spans.symbol == symbol) & (spans.table == "trades")]
    return int(spans.start_ns.min()), int(spans.end_ns.max())


def measure(table: pd.DataFrame, labels: pd.DataFrame | None, params: FeatureParams,
            window: tuple[int, int] | None) -> dict:
    ts = table["ts"].to_numpy()
    lpi = np.fmax(table["lpi_down"].to_numpy(), table["lpi_up"].to_numpy())
    calm = np.isfinite(lpi)
    if window is not None:
        calm &= (ts >= window[0]) & (ts < window[1])
    peaks, after, flips = [], [], []
    if labels is not None:
        for episode in labels.itertuples():
            calm &= ~((ts >= episode.ts_start - CALM_MARGIN_NS) & (ts <= episode.ts_end + CALM_MARGIN_NS))
            if episode.kind != "forced":
                continue
            inside = (ts >= episode.ts_start) & (ts <= episode.ts_end + PEAK_TAIL_NS)
            side = table["lpi_down" if episode.side == "down" else "lpi_up"].to_numpy()[inside]
            if np.isfinite(side).any():
                top = int(np.nanargmax(side))
                peaks.append(float(side[top]))
                after.append(int(np.argmax(~(side[top:] > params.lpi_exit))) * params.tick_ms / 1000)
                tail = side[top : top + FLIP_TICKS + 1]
                steps = np.sign(np.diff(tail[np.isfinite(tail)]))
                flips.append(float(np.sum(steps[1:] * steps[:-1] < 0)) / (FLIP_TICKS * params.tick_ms / 1000))
    z_fsi = np.fmax(table["z_fsi"].to_numpy(), table["z_fsi_up"].to_numpy())[calm]
    down = table["lpi_down"].to_numpy()[calm]
    return {
        "calm_ticks": int(calm.sum()),
        "calm>hi %": 100.0 * float(np.mean(lpi[calm] > params.lpi_hi)) if calm.any() else np.nan,
        "per side %": 50.0 * float(np.mean(table["lpi_down"].to_numpy()[calm] > params.lpi_hi)
                                   + np.mean(table["lpi_up"].to_numpy()[calm] > params.lpi_hi))
        if calm.any() else np.nan,
        "z_fsi>2 %": 100.0 * float(np.mean(z_fsi > params.z_fsi_hi)) if calm.any() else np.nan,
        "p99": float(np.nanpercentile(down, 99)) if calm.any() else np.nan,
        "p99.9": float(np.nanpercentile(down, 99.9)) if calm.any() else np.nan,
        "max": float(np.nanmax(down)) if calm.any() else np.nan,
        "peaks": peaks,
        "exit_s": after,
        "flips": flips,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="+", help="STORE[:LABELS][@FROM..TO]")
    parser.add_argument("--config", action="append",
                        help="SCALE/FLOW_S/W_HOURS[/LDR_TRANSFORM] (repeatable)")
    parser.add_argument("--symbols", default="", help="comma-separated (default: all)")
    parser.add_argument("--min-periods-s", type=float, default=300.0,
                        help="min_periods_s (the real captures last 8 min: 60)")
    args = parser.parse_args(argv)
    rows = []
    for spec in args.stores:
        spec, _, span = spec.partition("@")
        root, _, label_path = spec.partition(":")
        window = None
        if span:
            low, high = span.split("..")
            window = (pd.Timestamp(low, tz="UTC").value, pd.Timestamp(high, tz="UTC").value)
        store = TickStore(root)
        labels = pd.read_parquet(label_path) if label_path else None
        symbols = [s for s in args.symbols.split(",") if s] or sorted(store.symbols_in("trades"))
        for symbol in symbols:
            start, end = covered_range(store, symbol)
            for config in args.config or DEFAULT_CONFIGS:
                params = params_of(config, args.min_periods_s)
                begin = time.perf_counter()
                table = compute_features(store, symbol, start, end, params, "cpu").to_pandas()
                seconds = time.perf_counter() - begin
                own = None if labels is None else labels[labels.symbol == symbol]
                result = measure(table, own, params, window)
                peaks = result.pop("peaks")
                exits = result.pop("exit_s")
                flips = result.pop("flips")
                rows.append({"store": root.rstrip("/").rsplit("/", 1)[-1] + (f"@{span}" if span else ""),
                             "symbol": symbol, "config": config, **result,
                             "forced peak med": float(np.median(peaks)) if peaks else np.nan,
                             "peak min..max": (f"{min(peaks):.1f}..{max(peaks):.1f}" if peaks else ""),
                             "exit s med": float(np.median(exits)) if exits else np.nan,
                             "flips/s": float(np.median(flips)) if flips else np.nan,
                             "s": round(seconds, 1)})
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1,
                                                        float_format=lambda v: f"{v:.3g}"),
                      flush=True)
    print()
    frame = pd.DataFrame(rows)
    print("| " + " | ".join(frame.columns) + " |")
    print("|" + "---|" * len(frame.columns))
    for row in frame.itertuples(index=False):
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
