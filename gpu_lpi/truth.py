"""Scoring a run's events against planted truth: the labels that ``gpu-lpi synth`` writes
(``RAW/labels.parquet``: symbol, ts_start, ts_end, kind in {forced, informed}, side in {down, up}).

:func:`score_events` answers, for a run on generated data: do Mode A's events (FORCED and exhausted,
what the strategy trades) fall inside planted forced episodes (precision) and find them (recall)?
Does any of them fade an informed repricing? Are their markouts positive, and those of informed
events not? :func:`planted_truth_trial` runs the whole chain (synth, ingest, run, score) once.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from gpu_lpi.events import markout_column

#: An event this long after a label's end still belongs to it (the reversion's tail).
LABEL_GRACE_NS = 30 * 10**9


def _inside(events: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """Per event, the index of the label of the same symbol whose span holds it (-1: none)."""
    found = np.full(len(events), -1)
    for position, (symbol, ts) in enumerate(zip(events["symbol"], events["ts"])):
        hits = labels.index[(labels["symbol"] == symbol) & (labels["ts_start"] <= ts)
                            & (ts <= labels["ts_end"] + LABEL_GRACE_NS)]
        if len(hits):
            found[position] = hits[0]
    return found


def score_events(events: pd.DataFrame, labels: pd.DataFrame, horizon_s: float) -> dict:
    """Precision, recall and markouts of a run's events against planted labels.

    Parameters
    ----------
    events : pandas.DataFrame
        ``RUN/events.parquet``.
    labels : pandas.DataFrame
        ``RAW/labels.parquet`` of the generated data.
    horizon_s : float
        The markout horizon compared.

    Returns
    -------
    dict
        ``trades`` (Mode A events), ``precision`` (share of them inside a forced episode),
        ``recall`` (share of forced episodes with one), ``side_match`` (share of the matched
        trades whose side is the episode's), ``fades_of_informed`` (trades inside an informed
        repricing), ``forced_markout_bps`` / ``informed_markout_bps`` (mean markouts of Mode A's
        events and of informed events at ``horizon_s``), and the counts behind them.
    """
    labels = labels.reset_index(drop=True)
    trades = events[(events["state"] == "FORCED") & events["exhaustion"]].reset_index(drop=True)
    label_of = _inside(trades, labels)
    kind = np.where(label_of >= 0, labels["kind"].to_numpy()[np.maximum(label_of, 0)], "")
    in_forced = kind == "forced"
    forced_labels = labels.index[labels["kind"] == "forced"]
    found = set(label_of[in_forced].tolist())
    side_match = (trades["side"].to_numpy()[in_forced]
                  == labels["side"].to_numpy()[label_of[in_forced]]) if in_forced.any() else np.array([])
    informed = events[events["state"] == "INFORMED"]
    column = markout_column(horizon_s)
    return {
        "trades": int(len(trades)), "forced_episodes": int(len(forced_labels)),
        "informed_episodes": int((labels["kind"] == "informed").sum()),
        "precision": float(in_forced.mean()) if len(trades) else None,
        "recall": len(found) / len(forced_labels) if len(forced_labels) else None,
        "side_match": float(side_match.mean()) if side_match.size else None,
        "fades_of_informed": int((kind == "informed").sum()),
        "forced_markout_bps": float(np.nanmean(trades[column])) if len(trades) else None,
        "informed_events": int(len(informed)),
        "informed_markout_bps": float(np.nanmean(informed[column])) if len(informed) else None,
    }


#: Store tables of a trial "without OI and liquidations" (the no-feed proxy path).
WITHOUT_FEEDS = ("trades", "agg_trades", "book_ticker", "depth_diff", "book_levels", "depth_bands",
                 "funding")


def planted_truth_trial(work: Path, fmt: str, seed: int, symbols=("BTCUSDT",), days: int = 1,
                        rate_scale: float = 0.05, params: dict | None = None, tables=None,
                        device: str = "cpu") -> dict:
    """Generate a market, ingest it, run the job and score its events against the planted labels.

    Parameters
    ----------
    work : Path
        A fresh folder for the raw files, the store and the run.
    fmt : {"binance-ws", "tardis"}
    seed, symbols, days, rate_scale
        As ``gpu-lpi synth``.
    params : dict, optional
        The job's ``[params]``.
    tables : iterable of str, optional
        Store only these tables (e.g. :data:`WITHOUT_FEEDS`: no OI, no liquidations).
    device : str

    Returns
    -------
    dict
        :func:`score_events` at the study's answer horizon, with ``state_path`` per symbol.
    """
    from gpu_lpi.ingest import ingest
    from gpu_lpi.run import run_job
    from gpu_lpi.synth import synthesize

    start = date(2024, 8, 5)
    raw, store = work / "raw", work / "store"
    synthesize(raw, fmt, list(symbols), start, days, seed, rate_scale=rate_scale)
    files = sorted(p for p in raw.rglob("*") if p.is_file() and p.name != "labels.parquet")
    ingest(files, fmt, store, tables=tables)
    spec = {"data": {"store": str(store), "symbols": list(symbols), "start": start.isoformat(),
                     "end": (start + timedelta(days=days - 1)).isoformat()},
            "params": dict(params or {})}
    result = run_job(spec, out=work / "run", device=device)
    score = score_events(result.events(), pd.read_parquet(raw / "labels.parquet"),
                         result.answer["horizon_s"])
    return {**score, "state_path": result.state_path}
