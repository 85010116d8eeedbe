"""What the planted episodes of ``gpu-lpi synth`` look like to the engine, per kind.

Usage: ``python bench/synth_episodes.py [--format binance-ws] [--symbol BTCUSDT] [--seed 1]
[--days 1] [--rate-scale 0.1] [--out DIR [--reuse]]``.

Synthesizes, ingests, computes the features with the current engine (``compute_features``, default
parameters) and prints, per planted episode and then per kind (median): peak impact notional per
second (impact trades of the episode's side, 1 s windows), impact trades per second at peak, peak
LPI of the episode's side and its peak z(FSI) and z(LDR), OI change over the label, liquidation
notional inside the label, spread (median, bps) and band depth over the label relative to the 10
minutes before, and the share of the move that reverted by the label's end.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from gpu_lpi.features import compute_features
from gpu_lpi.ingest import ingest
from gpu_lpi.params import FeatureParams
from gpu_lpi.store import TickStore
from gpu_lpi.synth import synthesize

START = date(2024, 8, 5)
NS = 1_000_000_000


def _impact_trades(store: TickStore, symbol: str, theta: float, delta_ns: int) -> pd.DataFrame:
    """Trades through ``theta`` beyond the touch ``delta_ns`` before them: ts, notional, side (-1/+1)."""
    trades = store.read("trades", symbol).to_pandas()
    quotes = store.read("book_ticker", symbol).to_pandas()
    at = np.searchsorted(quotes["ts"].to_numpy(), trades["ts"].to_numpy() - delta_ns, side="right") - 1
    valid = at >= 0
    bid = np.where(valid, quotes["bid"].to_numpy()[np.maximum(at, 0)], np.nan)
    ask = np.where(valid, quotes["ask"].to_numpy()[np.maximum(at, 0)], np.nan)
    price, sell = trades["price"].to_numpy(), trades["is_buyer_maker"].to_numpy()
    down = sell & (price < bid * (1 - theta))
    up = ~sell & (price > ask * (1 + theta))
    keep = down | up
    return pd.DataFrame({"ts": trades["ts"].to_numpy()[keep], "notional": trades["notional"].to_numpy()[keep],
                         "side": np.where(down[keep], -1, 1)})


def _peak_per_second(ts: np.ndarray, values: np.ndarray, start: int, end: int) -> float:
    inside = (ts >= start) & (ts <= end)
    if not inside.any():
        return 0.0
    return float(np.bincount((ts[inside] - start) // NS, weights=values[inside]).max())


def _peak(values: np.ndarray) -> float:
    return float(np.nanmax(values)) if np.isfinite(values).any() else np.nan


def measure(store: TickStore, symbol: str, labels: pd.DataFrame, features: pd.DataFrame,
            params: FeatureParams) -> pd.DataFrame:
    """One row of figures per label of ``symbol`` (see the module docstring)."""
    impact = _impact_trades(store, symbol, params.theta_bps * 1e-4, params.tick_ms * 1_000_000)
    oi = store.read("open_interest", symbol).to_pandas() if "open_interest" in store.tables() else None
    liquidations = store.read("liquidations", symbol).to_pandas() if "liquidations" in store.tables() else None
    ts = features["ts"].to_numpy()
    rows = []
    for label in labels[labels.symbol == symbol].itertuples():
        sign = -1 if label.side == "down" else 1
        inside = (ts >= label.ts_start) & (ts <= label.ts_end)
        before = (ts >= label.ts_start - 600 * NS) & (ts < label.ts_start)
        side = impact[impact.side == sign]
        mid = features["mid"].to_numpy()
        mids = mid[inside]
        start_mid, end_mid = mid[before][-1], mids[-1]
        extreme = mids[np.argmax(sign * mids)]
        spread_bps = features["spread"].to_numpy() / mid * 1e4
        depth = features["depth_bid" if sign < 0 else "depth_ask"].to_numpy()
        suffix = "" if sign < 0 else "_up"
        lpi = features["lpi_down" if sign < 0 else "lpi_up"].to_numpy()
        row = {
            "kind": label.kind + ("/violent" if getattr(label, "violent", False) else ""),
            "side": label.side, "seconds": (label.ts_end - label.ts_start) / NS,
            "impact_usd_per_s": _peak_per_second(side.ts.to_numpy(), side.notional.to_numpy(),
                                                 label.ts_start, label.ts_end),
            "impact_trades_per_s": _peak_per_second(side.ts.to_numpy(), np.ones(len(side)),
                                                    label.ts_start, label.ts_end),
            "impact_trades": int(((side.ts >= label.ts_start) & (side.ts <= label.ts_end)).sum()),
            "peak_lpi": _peak(lpi[inside]),
            "peak_z_fsi": _peak(features["z_fsi" + suffix].to_numpy()[inside]),
            "peak_z_ldr": _peak(features["z_ldr" + suffix].to_numpy()[inside]),
            "move_bps": sign * (extreme / start_mid - 1) * 1e4,
            "reverted": (extreme - end_mid) / (extreme - start_mid),
            "spread_bps": float(np.nanmedian(spread_bps[inside])),
            "spread_bps_before": float(np.nanmedian(spread_bps[before])),
            "depth_ratio": float(np.nanmedian(depth[inside]) / np.nanmedian(depth[before])),
        }
        if oi is not None:
            oi_ts, oi_values = oi["ts"].to_numpy(), oi["oi"].to_numpy()
            at = np.searchsorted(oi_ts, [label.ts_start, label.ts_end], side="right") - 1
            row["oi_change_pct"] = (oi_values[at[1]] / oi_values[at[0]] - 1) * 100
        if liquidations is not None:
            within = (liquidations["ts"] >= label.ts_start) & (liquidations["ts"] <= label.ts_end)
            row["liquidation_usd"] = float(liquidations["notional"][within].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--format", default="binance-ws", choices=["binance-ws", "tardis"])
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--rate-scale", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=None, help="keep the raw files and store here")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the raw files and store already in --out (e.g. with another engine)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        raw, store_dir = root / "raw", root / "store"
        if not args.reuse:
            synthesize(raw, args.format, [args.symbol], START, args.days, args.seed, rate_scale=args.rate_scale)
            ingest([raw], args.format, store_dir)
        store = TickStore(store_dir)
        params = FeatureParams()
        features = compute_features(store, args.symbol, START, START + timedelta(days=args.days), params,
                                    device="cpu").to_pandas()
        labels = pd.read_parquet(raw / "labels.parquet")
        figures = measure(store, args.symbol, labels, features, params)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    print(figures.round(3).to_string())
    print(figures.drop(columns="side").groupby("kind").median().round(3).to_string())


if __name__ == "__main__":
    main()
