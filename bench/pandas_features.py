"""The per-tick features written in pandas, the way a researcher would: the anchor of the benchmark
and the reference of the engine's tests (same inputs, same definitions, plain pandas).

The book samples are the library's (:func:`gpu_lpi.chunk_inputs.load_chunk`: a researcher would not
rewrite the L2 replay);
everything after it — trade bucketing, impact notionals, ADV$, mean depth, FSI/LDR/Π, RV, rolling
median/MAD/std, flow-window sums, z-scores and LPI — is pandas. The rolling MAD (and the non-zero
MAD of the default z scale) has no pandas built-in, so it is a ``rolling.apply`` of
``nanmedian(|w − nanmedian(w)|)``: O(W) per tick.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpu_lpi.chunk_inputs import load_chunk
from gpu_lpi.features import to_ns
from gpu_lpi.grid import make_grid
from gpu_lpi.params import FeatureParams
from gpu_lpi.store import TickStore


def _rolling_z(x: pd.Series, p: FeatureParams) -> pd.Series:
    window = p.window_ticks
    rolling = x.rolling(window, min_periods=p.min_periods_for(window))
    median = rolling.median()
    if p.z_scale == "nonzero_mad":
        scale = 1.4826 * rolling.apply(_nonzero_mad, raw=True)
    elif p.z_scale == "double_mad":
        above = rolling.apply(lambda w: _side_mad(w, True), raw=True)
        below = rolling.apply(lambda w: _side_mad(w, False), raw=True)
        scale = 1.4826 * pd.Series(np.where(x >= median, above, below), index=x.index)
    else:
        mad = rolling.apply(lambda w: np.nanmedian(np.abs(w - np.nanmedian(w))), raw=True)
        floor = p.std_floor_ratio * rolling.std(ddof=0) if p.z_scale == "mad_std_floor" else 0.0
        scale = np.maximum(1.4826 * mad, floor)
    return (x - median) / (scale + p.eps), scale


def _side_mad(w: np.ndarray, above: bool) -> float:
    """Median of ``x − median`` over the values above the median (``median − x`` below; 0 if none)."""
    w = w[~np.isnan(w)]
    center = np.median(w)
    side = w[w > center] - center if above else center - w[w < center]
    return float(np.median(side)) if side.size else 0.0


def _nonzero_mad(w: np.ndarray) -> float:
    """Median of ``|x − median|`` over the values that are neither 0 nor the median (0 if none)."""
    w = w[~np.isnan(w)]
    center = np.median(w)
    kept = w[(w != 0) & (w != center)]
    return float(np.median(np.abs(kept - center))) if kept.size else 0.0


def pandas_features(store_root, symbol: str, start, end, p: FeatureParams) -> pd.DataFrame:
    """Features of ``symbol`` for ticks ``start <= t < end`` (columns as ``compute_features``)."""
    store = TickStore(store_root)
    grid = make_grid(to_ns(start), to_ns(end), p)
    times = grid.times
    inputs = load_chunk(store, symbol, grid, p)
    book = inputs.book
    f = pd.DataFrame({"ts": times, "bid": book.bid, "ask": book.ask, "bid_qty": book.bid_qty,
                      "ask_qty": book.ask_qty, "depth_bid": book.depth_bid,
                      "depth_ask": book.depth_ask}).set_index("ts")
    f["book_valid"] = f["bid"].notna() & f["ask"].notna()
    f["mid"] = (f["bid"] + f["ask"]) / 2
    f["spread"] = f["ask"] - f["bid"]
    f["microprice"] = (f["ask"] * f["bid_qty"] + f["bid"] * f["ask_qty"]) / (f["bid_qty"] + f["ask_qty"])
    f["r"] = np.log(f["mid"] / f["mid"].shift(1))

    tick_ns = p.tick_ns
    trades = store.read("trades", symbol, int(times[0]) - tick_ns + 1, int(times[-1]) + 1).to_pandas()
    trades = trades[trades["kind"] == 0].copy()
    trades["tick"] = -(-trades["ts"] // tick_ns) * tick_ns
    trades = trades.join(f[["bid", "ask"]].shift(1).rename(columns={"bid": "bid_prev", "ask": "ask_prev"}),
                         on="tick")
    theta = p.theta_bps * 1e-4
    trades["impact_sell"] = np.where(trades["is_buyer_maker"]
                                     & (trades["price"] < trades["bid_prev"] * (1 - theta)),
                                     trades["notional"], 0.0)
    trades["impact_buy"] = np.where(~trades["is_buyer_maker"]
                                    & (trades["price"] > trades["ask_prev"] * (1 + theta)),
                                    trades["notional"], 0.0)
    sums = trades.groupby("tick")[["notional", "impact_sell", "impact_buy"]].sum()
    sums = sums.reindex(f.index, fill_value=0.0)
    f["dollar_volume"] = sums["notional"]
    f["v_impact"] = sums["impact_sell"].where(f["bid"].shift(1).notna())
    f["v_impact_up"] = sums["impact_buy"].where(f["ask"].shift(1).notna())

    tick_s = p.tick_ms / 1000
    adv_window = p.hours_to_ticks(p.adv_window_hours)
    f["adv"] = f["dollar_volume"].where(f["book_valid"]).rolling(
        adv_window, min_periods=p.min_periods_for(adv_window)).mean() / tick_s
    depth_window = p.hours_to_ticks(p.depth_window_hours)
    mean_depth = {side: f[f"depth_{side}"].rolling(
        depth_window, min_periods=p.min_periods_for(depth_window)).mean() for side in ("bid", "ask")}

    f["d_oi"] = _oi_drop(store, symbol, f.index, p)
    f["z_doi"], sigma_doi = _rolling_z(f["d_oi"], p)
    amplifier = (1 + p.kappa * np.tanh(f["d_oi"] / (sigma_doi + p.eps))).fillna(1.0)
    k = p.flow_ticks
    per_window = f["adv"] * tick_s * k
    flow = {name: f[name].rolling(k, min_periods=k).sum() for name in ("v_impact", "v_impact_up",
                                                                       "dollar_volume")}
    f["fsi"] = flow["v_impact"] / (per_window + p.eps) * amplifier
    f["fsi_up"] = flow["v_impact_up"] / (per_window + p.eps) * amplifier
    relative_spread = f["spread"] / f["mid"]
    f["ldr"] = relative_spread / (f["depth_bid"] / mean_depth["bid"])
    f["ldr_up"] = relative_spread / (f["depth_ask"] / mean_depth["ask"])
    flow_return = np.log(f["mid"] / f["mid"].shift(k))
    f["pi"] = flow_return.abs() / (flow["dollar_volume"] + p.pi_eps_adv_fraction * per_window + p.eps)

    n = p.rv_subsamples
    sub = inputs.sub_mids
    steps = np.log(sub[1:] / sub[:-1]) ** 2
    f["rv"] = steps.reshape(len(f), n).sum(axis=1)
    f["liq_sell_notional"] = np.nan
    f["liq_buy_notional"] = np.nan
    if store.dates("liquidations", symbol):
        liq = store.read("liquidations", symbol, int(times[0]) - tick_ns + 1, int(times[-1]) + 1).to_pandas()
        liq["tick"] = -(-liq["ts"] // tick_ns) * tick_ns
        for side, name in ((0, "liq_sell_notional"), (1, "liq_buy_notional")):
            f[name] = liq[liq["side"] == side].groupby("tick")["notional"].sum().reindex(f.index, fill_value=0.0)

    for name in ("fsi", "fsi_up", "ldr", "ldr_up", "pi"):
        log = name.startswith("ldr") and p.z_ldr_transform == "log"
        f[f"z_{name}"], _ = _rolling_z(np.log(f[name]) if log else f[name], p)
    f["lpi_down"] = p.w1 * f["z_fsi"] + p.w2 * f["z_ldr"] + p.w3 * f["z_pi"]
    f["lpi_up"] = p.w1 * f["z_fsi_up"] + p.w2 * f["z_ldr_up"] + p.w3 * f["z_pi"]
    for side in ("sell", "buy"):
        f[f"z_liq_{side}"], _ = _rolling_z(f[f"liq_{side}_notional"].rolling(k, min_periods=k).sum(), p)
    f = f.iloc[grid.output_start:].reset_index()
    f.insert(1, "symbol", symbol)
    return f


def _oi_drop(store: TickStore, symbol: str, index: pd.Index, p: FeatureParams) -> pd.Series:
    if not store.dates("open_interest", symbol):
        return pd.Series(np.nan, index=index)
    lag, max_age = int(p.oi_lag_s * 1e9), int(p.oi_max_age_s * 1e9)
    oi = store.read("open_interest", symbol, int(index[0]) - lag - max_age, int(index[-1]) + 1,
                    ["ts", "oi"]).to_pandas()

    def as_of(times):
        left = pd.DataFrame({"t": times})
        merged = pd.merge_asof(left, oi, left_on="t", right_on="ts", tolerance=max_age)
        return merged["oi"].to_numpy()

    return pd.Series(as_of(index.to_numpy() - lag) - as_of(index.to_numpy()), index=index)
