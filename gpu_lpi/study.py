"""The event study (spec §9.1, §6; DESIGN.md §4 step 7): markout statistics, the verdict and the
drift regression, written to ``RUN/study.json``.

For every group of events -- all; by kind (``forced_exhaustion``: FORCED with all five
conditions, what Mode A trades; ``forced_no_flush``: FORCED without the OI flush; ``informed``);
by state, side, funding regime and symbol -- and every horizon: the count, mean, median, 5th
percentile and hit rate (share > 0) of the markouts, and a confidence interval of the mean that
allows for overlapping and same-day events: the standard error is clustered by UTC day
(statsmodels OLS on a constant, ``cov_type="cluster"``, Student t quantiles with G − 1 degrees of
freedom for G days); with events on one day only the interval uses heteroskedasticity-robust errors
(HC1) and says so (``ci_method``). ``p_value`` is the two-sided p-value of a zero mean with the same
standard error (the raw p-values the validation adjusts for multiple testing).

The verdict (``answer``) reads the spec's question off the answer horizon: Mode A's events
(``forced_exhaustion``) are "positive after costs" when the lower end of their interval exceeds the
cost (a maker entry and a taker exit, :attr:`StudyParams.cost_bps`); informed events are "not
positive" when the lower end of theirs is at most 0 (no evidence of a positive fade).

Drift regression (spec §6): per symbol, on the tick grid, ``r_{t+1} = c + β·r_t +
μ_F·dir_t·1[FORCED ∧ E]_t + μ_I·dir_t·1[INFORMED event]_t + ε`` (returns in bps), OLS with
Newey-West (HAC) standard errors (statsmodels, lags ``⌊4·(n/100)^{2/9}⌋``). The hypothesis is
``μ_F > 0`` and ``μ_I ≯ 0``. The rows are read a feature file at a time; ticks without an event
are thinned to at most ``regression_max_rows`` per symbol (every k-th), so memory is bounded.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import statsmodels.api as sm

from gpu_lpi.events import markout_column
from gpu_lpi.study_params import StudyParams

KINDS = ("forced_exhaustion", "forced_no_flush", "informed")
#: Splits of the study, in the order written.
SPLITS = ("all", "kind", "state", "side", "funding_regime", "symbol")


def event_kind(events: pd.DataFrame) -> pd.Series:
    """``forced_exhaustion``, ``forced_no_flush`` or ``informed`` per event."""
    forced = events["state"] == "FORCED"
    return pd.Series(np.where(forced & events["exhaustion"], "forced_exhaustion",
                              np.where(forced, "forced_no_flush", "informed")), index=events.index)


def markout_stats(values: np.ndarray, days: np.ndarray, level: float) -> dict:
    """Count, mean, median, 5th percentile, hit rate, the mean's day-clustered interval and the
    two-sided p-value of a zero mean under the same standard error (``p_value``)."""
    keep = np.isfinite(values)
    values, days = values[keep], days[keep]
    stats = {"n": int(values.size), "mean": None, "median": None, "p5": None, "hit_rate": None,
             "ci_low": None, "ci_high": None, "ci_method": None, "p_value": None}
    if not values.size:
        return stats
    stats.update(mean=float(values.mean()), median=float(np.median(values)),
                 p5=float(np.percentile(values, 5)), hit_rate=float((values > 0).mean()))
    if values.size < 2:
        return stats
    groups = pd.factorize(days)[0]
    clustered = groups.max() >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a constant sample has a zero variance: its interval is a point
        model = sm.OLS(values, np.ones(values.size))
        fit = (model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True) if clustered
               else model.fit(cov_type="HC1", use_t=True))
        low, high = fit.conf_int(alpha=1 - level)[0]
    stats.update(ci_low=_finite(low), ci_high=_finite(high), p_value=_finite(fit.pvalues[0]),
                 ci_method="clustered by day" if clustered else "HC1 (one day)")
    return stats


def _finite(value) -> float | None:
    return float(value) if math.isfinite(value) else None


def study_groups(events: pd.DataFrame, study: StudyParams) -> list[dict]:
    """The study's groups (module docstring), each with its markout statistics per horizon."""
    events = events.assign(kind=event_kind(events), all="all")
    groups = []
    for split in SPLITS:
        values = KINDS if split == "kind" else sorted(events[split].dropna().unique())
        for value in values:
            members = events[events[split] == value]
            if not len(members) and split != "kind":
                continue
            days = members["day"].to_numpy()
            groups.append({
                "split": split, "value": str(value), "n_events": int(len(members)),
                "n_days": int(members["day"].nunique()),
                "markouts": [{"horizon_s": h, **markout_stats(
                    members[markout_column(h)].to_numpy(dtype=np.float64), days, study.ci_level)}
                    for h in study.horizons_s]})
    return groups


def answer(groups: list[dict], study: StudyParams) -> dict:
    """The verdict on the spec's question at the answer horizon (module docstring)."""
    def at_horizon(kind):
        group = next(g for g in groups if g["split"] == "kind" and g["value"] == kind)
        return next(m for m in group["markouts"] if m["horizon_s"] == study.answer_horizon_s)

    forced, informed = at_horizon("forced_exhaustion"), at_horizon("informed")
    cost = study.cost_bps
    positive = None if forced["ci_low"] is None else forced["ci_low"] > cost
    not_positive = None if informed["ci_low"] is None else informed["ci_low"] <= 0.0
    horizon = f"{study.answer_horizon_s:g} s"
    if positive is None:
        text = (f"Too few forced-exhaustion events with a {horizon} markout ({forced['n']}) to answer; "
                "widen the date range or the universe.")
    else:
        text = (f"After forced-flow exhaustion the {horizon} markout is {forced['mean']:+.2f} bps "
                f"(n = {forced['n']}, {study.ci_level:.0%} CI {forced['ci_low']:+.2f} .. "
                f"{forced['ci_high']:+.2f}) against costs of {cost:.2f} bps: "
                + ("robustly positive after costs." if positive else "NOT robustly positive after costs."))
    if not_positive is None:
        text += f" Informed events: too few with a {horizon} markout ({informed['n']}) to compare."
    else:
        text += (f" Informed events: {informed['mean']:+.2f} bps (n = {informed['n']}, CI "
                 f"{informed['ci_low']:+.2f} .. {informed['ci_high']:+.2f}): "
                 + ("not positive, as the state split requires." if not_positive
                    else "positive -- the state split does not separate them."))
    return {"horizon_s": study.answer_horizon_s, "forced_exhaustion_n": forced["n"],
            "forced_exhaustion_mean_bps": forced["mean"], "forced_ci_low_bps": forced["ci_low"],
            "informed_n": informed["n"], "informed_mean_bps": informed["mean"],
            "informed_ci_low_bps": informed["ci_low"], "informed_ci_high_bps": informed["ci_high"],
            "cost_bps": cost, "forced_positive_after_costs": positive,
            "informed_not_positive": not_positive, "text": text}


_REGRESSION_COLUMNS = ("ts", "r", "dir", "state", "exhaustion", "event")


def drift_regression(run_dir: Path, symbol: str, tick_ns: int, study: StudyParams) -> dict | None:
    """The drift regression of one symbol (module docstring); None with fewer than 100 rows."""
    folder = run_dir / "features" / f"symbol={symbol}"
    files = sorted(folder.glob("date=*/*.parquet"))
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    thin = max(1, math.ceil(total / study.regression_max_rows))
    parts = []
    for path in files:
        frame = pq.read_table(path, columns=list(_REGRESSION_COLUMNS)).to_pandas()
        ts, r = frame["ts"].to_numpy(), frame["r"].to_numpy() * 1e4
        following = np.append(ts[1:] - ts[:-1] == tick_ns, False)
        next_r = np.append(r[1:], np.nan)
        signed = frame["dir"].to_numpy(np.float64) * frame["event"].to_numpy(bool)
        forced = signed * ((frame["state"].to_numpy() == 1) & frame["exhaustion"].to_numpy(bool))
        informed = signed * (frame["state"].to_numpy() == 0)
        keep = following & np.isfinite(r) & np.isfinite(next_r)
        keep &= (forced != 0) | (informed != 0) | (np.arange(ts.size) % thin == 0)
        parts.append(np.column_stack([next_r, r, forced, informed])[keep])
    rows = np.concatenate(parts) if parts else np.empty((0, 4))
    if rows.shape[0] < 100:
        return None
    names = ["const", "r_t", "forced_exhaustion", "informed"]
    design = np.column_stack([np.ones(rows.shape[0]), rows[:, 1:]])
    used = [j for j in range(design.shape[1]) if j < 2 or np.any(design[:, j] != 0)]
    lags = int(4 * (rows.shape[0] / 100) ** (2 / 9))
    fit = sm.OLS(rows[:, 0], design[:, used]).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    labelled = {key: dict(zip([names[j] for j in used], map(_finite, values)))
                for key, values in (("params", fit.params), ("se_hac", fit.bse), ("t", fit.tvalues),
                                    ("p", fit.pvalues))}
    return {"n": int(rows.shape[0]), "thinned_every": thin, "maxlags": lags, **labelled}


def run_study(events: pd.DataFrame, run_dir: Path, symbols, tick_ns: int, study: StudyParams) -> dict:
    """``RUN/study.json``'s content (DESIGN.md §5)."""
    groups = study_groups(events, study)
    return {
        "horizons_s": list(study.horizons_s), "latency_ms": study.latency_ms,
        "fill_reference": study.fill_reference,
        "costs_bps": {"maker_fee_bps": study.maker_fee_bps, "taker_fee_bps": study.taker_fee_bps,
                      "maker_round_trip_bps": 2 * study.maker_fee_bps,
                      "taker_round_trip_bps": 2 * study.taker_fee_bps, "verdict_cost_bps": study.cost_bps},
        "ci": {"method": "mean's standard error clustered by UTC day (statsmodels OLS on a constant); "
                         "HC1 where all events fall on one day", "level": study.ci_level},
        "n_events": int(len(events)), "groups": groups, "answer": answer(groups, study),
        "drift_regression": {symbol: drift_regression(run_dir, symbol, tick_ns, study)
                             for symbol in symbols},
    }


def read_events(run_dir) -> pd.DataFrame:
    """``RUN/events.parquet`` as a pandas DataFrame."""
    return ds.dataset(Path(run_dir) / "events.parquet").to_table().to_pandas()


def study_frame(study: dict) -> pd.DataFrame:
    """``study.json``'s groups as one long DataFrame: split, value, horizon_s and the statistics."""
    rows = [{"split": g["split"], "value": g["value"], "n_events": g["n_events"],
             "n_days": g["n_days"], **m} for g in study["groups"] for m in g["markouts"]]
    return pd.DataFrame(rows)

