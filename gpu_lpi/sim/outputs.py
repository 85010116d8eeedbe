"""The simulation stage of a run: one task per symbol-day, then ``RUN/sim/`` (DESIGN.md §5).

``RUN/sim/``:

===================================  ==========================================================
``parts/symbol=S/date=D/*.parquet``  the symbol-day's ``episodes``, ``fills`` and ``orders``
                                     (:mod:`gpu_lpi.sim.day`), and ``_meta.json`` (what they
                                     were computed from: a rerun keeps parts whose inputs and
                                     settings are unchanged)
``scenarios.parquet``                one row per scenario: its grid values, episodes traded,
                                     PnL (gross, fees, net), per-episode and daily Sharpe (per
                                     period, not annualized), maximum drawdown of the
                                     cumulative net PnL, and the mean entry-fill markout at each
                                     study horizon (the objective, spec §5.3)
``pnl_daily.parquet``                net PnL per scenario, symbol and date
``sim.json``                         settings, per symbol what was simulated or why not, totals
===================================  ==========================================================

A symbol is not simulated, and ``sim.json`` says why, where its store has no ``depth_diff`` (the
queue needs an L2 book) or it is an inverse contract (PnL in coin: not built).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq

from gpu_lpi.atomic_files import write_frame, write_json
from gpu_lpi.sim.day import read_view, simulate_day
from gpu_lpi.sim.params import SimSpec, scenario_table
from gpu_lpi.store import NS_PER_DAY, TickStore
from gpu_lpi.study_params import markout_column

#: Bump when the simulation's results change for the same inputs (parts are then recomputed).
SIM_VERSION = 1
PARTS = ("episodes", "fills", "orders")


def skip_reason(store: TickStore, symbol: str) -> str | None:
    """Why ``symbol`` cannot be simulated, or None."""
    if store.symbol_info(symbol)["is_inverse"]:
        return "inverse contract: PnL in coin is not built; simulate linear contracts"
    if not store.dates("depth_diff", symbol):
        return "no depth_diff in the store: the queue model needs an L2 book"
    return None


def part_dir(out: Path, symbol: str, day: str) -> Path:
    return out / "sim" / "parts" / f"symbol={symbol}" / f"date={day}"


def _fingerprint(out: Path, store: TickStore, symbol: str, day: str, spec: SimSpec, horizons) -> str:
    start = pd.Timestamp(day).value
    features = sorted((out / "features" / f"symbol={symbol}").glob("date=*/*.parquet"))
    stamps = [(p.relative_to(out).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in features
              if p.parent.name.removeprefix("date=") in (day, (pd.Timestamp(day) + pd.Timedelta(days=1)).strftime("%Y-%m-%d"))]
    for table in ("depth_diff", "trades"):
        stamps += store.file_stamps(store.partition_paths(table, symbol, start - NS_PER_DAY, start + 2 * NS_PER_DAY))
    material = orjson.dumps({"version": SIM_VERSION, "spec": spec.to_dict(), "horizons": list(horizons),
                             "scenarios": [s.row().tolist() for s in spec.scenarios], "inputs": stamps})
    return hashlib.sha256(material).hexdigest()


def sim_day_task(out: Path, store_root: str, symbol: str, day: str, spec: SimSpec, horizons, target: str,
                 *after) -> dict:
    """Simulate one symbol-day into its part folder (or keep the part if it is current); returns the
    episodes and entry fills the run's summary needs, with seconds and memory."""
    from gpu_lpi.run import peak_rss_mib

    begin = time.perf_counter()
    store = TickStore(store_root)
    folder = part_dir(out, symbol, day)
    fingerprint = _fingerprint(out, store, symbol, day, spec, horizons)
    meta_path = folder / "_meta.json"
    status = "existing"
    if not (meta_path.exists() and orjson.loads(meta_path.read_bytes()).get("fingerprint") == fingerprint):
        status = "computed"
        reach = int(round((max(s.window_s for s in spec.scenarios) + max(horizons) + 1.0) * 1e9))
        result = simulate_day(store, symbol, day, read_view(out, symbol, day, reach), spec, horizons, target)
        for name in PARTS:
            write_frame(getattr(result, name), folder / f"{name}.parquet")
        write_json(meta_path, {"fingerprint": fingerprint, "events": result.n_events})
    episodes = pq.read_table(folder / "episodes.parquet",
                             columns=["scenario", "symbol", "activation_ts", "status", "gross_pnl",
                                      "fees", "net_pnl", "net_bps", "end_ts"]).to_pandas()
    fills = pq.read_table(folder / "fills.parquet").to_pandas()
    entry = fills[fills["order_kind"] == "entry"]
    return {"episodes": episodes, "entry_fills": _markout_sums(entry, horizons), "status": status,
            "seconds": {"sim": time.perf_counter() - begin}, "peak_rss_mib": peak_rss_mib()}


def _markout_sums(fills: pd.DataFrame, horizons) -> pd.DataFrame:
    """Per scenario: entry-fill quantity, and Σ qty·markout at each horizon (NaN markouts skipped)."""
    qty = fills["qty"].abs()
    frame = pd.DataFrame({"scenario": fills["scenario"], "fills": 1, "fill_qty": qty})
    for horizon in horizons:
        column = markout_column(horizon)
        known = fills[column].notna()
        frame[f"{column}_sum"] = np.where(known, fills[column].fillna(0.0) * qty, 0.0)
        frame[f"{column}_qty"] = np.where(known, qty, 0.0)
    return frame.groupby("scenario", as_index=False).sum()


def finish_sim(out: Path, spec: SimSpec, horizons, results: list[dict], skipped: dict[str, str]) -> dict:
    """Write ``scenarios.parquet``, ``pnl_daily.parquet`` and ``sim.json``; return the summary."""
    episodes = pd.concat([r["episodes"] for r in results], ignore_index=True) if results else pd.DataFrame(
        columns=["scenario", "symbol", "activation_ts", "status", "gross_pnl", "fees", "net_pnl", "net_bps", "end_ts"])
    traded = episodes[episodes["status"] == "traded"].copy()
    traded["date"] = pd.to_datetime(traded["activation_ts"], unit="ns").dt.strftime("%Y-%m-%d")
    daily = traded.groupby(["scenario", "symbol", "date"], as_index=False)[["gross_pnl", "fees", "net_pnl"]].sum()
    table = scenario_table(spec)
    stats = [_scenario_stats(traded[traded["scenario"] == s], episodes[episodes["scenario"] == s],
                             daily[daily["scenario"] == s]) for s in range(len(spec.scenarios))]
    table = pd.concat([table, pd.DataFrame(stats)], axis=1)
    sums = pd.concat([r["entry_fills"] for r in results], ignore_index=True) if results else pd.DataFrame()
    sums = sums.groupby("scenario").sum() if not sums.empty else pd.DataFrame()
    table["entry_fills"] = [int(sums["fills"].get(s, 0)) if not sums.empty else 0 for s in table["scenario"]]
    for horizon in horizons:
        column = markout_column(horizon)
        if sums.empty:
            table[f"fill_{column}"] = np.nan
            continue
        weight = sums[f"{column}_qty"].reindex(table["scenario"]).to_numpy()
        total = sums[f"{column}_sum"].reindex(table["scenario"]).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            table[f"fill_{column}"] = np.where(weight > 0, total / weight, np.nan)
    write_frame(table, out / "sim" / "scenarios.parquet")
    write_frame(daily, out / "sim" / "pnl_daily.parquet")
    best = table.loc[table["net_pnl"].idxmax()] if len(table) else None
    summary = {"n_scenarios": len(spec.scenarios), "grid": {n: list(v) for n, v in spec.grid.items()},
               "skipped": skipped, "episodes_traded": int(len(traded)),
               "best_scenario": None if best is None else int(best["scenario"]),
               "best_net_pnl": None if best is None else float(best["net_pnl"]),
               "scenario_0": {key: _plain(value) for key, value in table.iloc[0].items()} if len(table) else {}}
    write_json(out / "sim" / "sim.json", {"settings": spec.to_dict(), "horizons_s": list(horizons), **summary})
    return summary


def _scenario_stats(traded: pd.DataFrame, episodes: pd.DataFrame, daily: pd.DataFrame) -> dict:
    returns = traded["net_bps"].to_numpy(float)
    pnl_days = daily.groupby("date")["net_pnl"].sum().to_numpy(float)
    ordered = traded.sort_values("end_ts")["net_pnl"].to_numpy(float)
    equity = np.concatenate([[0.0], np.cumsum(ordered)])
    return {"activations": int(len(episodes)), "traded": int(len(traded)),
            "no_fill": int((episodes["status"] == "no_fill").sum()),
            "busy": int((episodes["status"] == "busy").sum()),
            "gross_pnl": float(traded["gross_pnl"].sum()), "fees": float(traded["fees"].sum()),
            "net_pnl": float(traded["net_pnl"].sum()),
            "mean_net_bps": float(returns.mean()) if returns.size else np.nan,
            "hit_rate": float((returns > 0).mean()) if returns.size else np.nan,
            "sharpe_per_episode": _sharpe(returns), "days": int(pnl_days.size),
            "sharpe_daily": _sharpe(pnl_days),
            "max_drawdown": float((np.maximum.accumulate(equity) - equity).max())}


def _sharpe(values: np.ndarray) -> float:
    if values.size < 2 or not np.std(values, ddof=1) > 0:
        return np.nan
    return float(np.mean(values) / np.std(values, ddof=1))


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if np.isnan(value) else float(value)
    return value


def read_scenarios(out: Path) -> pd.DataFrame:
    """``RUN/sim/scenarios.parquet`` as a DataFrame."""
    return pd.read_parquet(Path(out) / "sim" / "scenarios.parquet")


def read_part(out: Path, name: str) -> pd.DataFrame:
    """Every symbol-day's ``name`` (episodes, fills or orders) of a run, as one DataFrame."""
    paths = sorted((Path(out) / "sim" / "parts").glob(f"symbol=*/date=*/{name}.parquet"))
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()
