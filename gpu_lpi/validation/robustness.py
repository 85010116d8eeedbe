"""Cross-symbol robustness: out-of-sample results per symbol and per liquidity bucket.

A symbol's liquidity is the median over its ticks of ADV$ (the features' ``adv``: mean dollar
volume per second over the ADV window), from one run folder's features. Symbols are ranked by it
and cut into up to three buckets of about equal size, ``low``, ``mid`` and ``high`` (fewer with
fewer symbols, :func:`liquidity_buckets`). The headline is the share of
symbols with out-of-sample returns whose mean return after costs is positive.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

BUCKETS = ("low", "mid", "high")


def liquidity(run_dir: Path, symbols) -> dict[str, float | None]:
    """Median ADV$ (USD per second) of each symbol in a run folder's features (None without)."""
    out = {}
    for symbol in symbols:
        folder = Path(run_dir) / "features" / f"symbol={symbol}"
        files = sorted(str(p) for p in folder.glob("date=*/*.parquet"))
        values = ds.dataset(files, format="parquet").to_table(columns=["adv"]).column("adv").to_numpy(
            zero_copy_only=False) if files else np.array([])
        values = values[np.isfinite(values)]
        out[symbol] = float(np.median(values)) if values.size else None
    return out


def liquidity_buckets(liquidity_of: dict[str, float | None]) -> dict[str, str]:
    """``low`` / ``mid`` / ``high`` by rank of liquidity (fewer buckets with fewer than three
    symbols: one symbol is ``all``, two are ``low`` and ``high``); ``unknown`` without a value."""
    known = sorted((v, s) for s, v in liquidity_of.items() if v is not None)
    names = ("all",) if len(known) == 1 else ("low", "high") if len(known) == 2 else BUCKETS
    out = {s: "unknown" for s, v in liquidity_of.items() if v is None}
    for rank, (_, symbol) in enumerate(known):
        out[symbol] = names[rank * len(names) // len(known)]
    return out


def robustness(oos: pd.DataFrame, buckets: dict[str, str]) -> dict:
    """Out-of-sample returns (rows with ``symbol`` and ``ret``) per symbol and per bucket, and the
    share of symbols with a positive mean among those with out-of-sample returns."""
    def line(rows) -> dict:
        values = rows["ret"].to_numpy(dtype=np.float64)
        mean = float(values.mean()) if values.size else None
        return {"n": int(values.size), "mean_bps": mean, "positive": None if mean is None else mean > 0,
                "hit_rate": float((values > 0).mean()) if values.size else None}

    per_symbol = [{"symbol": s, "bucket": b, **line(oos[oos["symbol"] == s])} for s, b in buckets.items()]
    per_bucket = [{"bucket": b, "symbols": [s for s, v in buckets.items() if v == b],
                   **line(oos[oos["symbol"].map(buckets) == b])}
                  for b in dict.fromkeys(buckets[s] for s in buckets)]
    judged = [row for row in per_symbol if row["positive"] is not None]
    share = sum(row["positive"] for row in judged) / len(judged) if judged else None
    return {"per_symbol": per_symbol, "per_bucket": per_bucket, "n_symbols": len(per_symbol),
            "n_symbols_with_oos": len(judged),
            "share_positive": None if share is None or not math.isfinite(share) else share}
