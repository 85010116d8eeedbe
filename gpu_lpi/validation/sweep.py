"""``RUN/validation.json``: the validation of a sweep (spec §9.3; DESIGN.md §4 step 9, §5).

Once every combination of a ``[sweep]`` is complete (:func:`write_validation`, called by the
jobs' runner), the combinations are the trials:

1. **trials** — each one's returns (:mod:`gpu_lpi.validation.trials`), count, mean, per-period
   Sharpe ratio, skew, kurtosis and score; the count N and every Sharpe ratio are recorded, and
   the Deflated Sharpe ratio uses them: nobody counts trials by hand;
2. **chosen** — the trial with the best full-sample score, its PSR (against 0), DSR (against the
   expected maximum Sharpe of N trials) and minimum track-record length;
3. **cv** — purged (combinatorial) cross-validation of that choice
   (:mod:`gpu_lpi.validation.selection`): the trial chosen per split on its training blocks, its
   out-of-sample returns per split and path, and the PBO;
4. **stability** — the score, heatmaps and the θ ± 2 bps rule per symbol
   (:mod:`gpu_lpi.validation.stability`);
5. **robustness** — out-of-sample returns per symbol and liquidity bucket
   (:mod:`gpu_lpi.validation.robustness`);
6. **multiple_testing** — the chosen trial's event study with raw, Holm and BH p-values
   (:mod:`gpu_lpi.validation.multiple_testing`).

The statistics (1-5) are :func:`validate_trials`, over a table of trial returns whoever produced
it: the event study's by default, a simulator's PnL per episode or day through ``returns=``. The
work is cheap next to the sweep (it reads each combination's ``events.parquet``) and runs in the
client. Parts that the data cannot support (no trial with enough returns; fewer distinct
return times than CV blocks) are recorded with the reason, not raised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gpu_lpi.atomic_files import write_json
from gpu_lpi.study import read_events
from gpu_lpi.validation import json_float
from gpu_lpi.validation.multiple_testing import study_p_values
from gpu_lpi.validation.params import ValidationParams
from gpu_lpi.validation.robustness import liquidity, liquidity_buckets, robustness
from gpu_lpi.validation.selection import cross_validate, trial_scores
from gpu_lpi.validation.sharpe import (deflated_sharpe, expected_max_sharpe, min_track_record_length,
                                       probabilistic_sharpe, sharpe_moments, trial_sharpe_variance)
from gpu_lpi.validation.stability import heatmaps, neighbours, stability_score, theta_rule
from gpu_lpi.validation.trials import sweep_returns

VALIDATION_FILE = "validation.json"


#: What the event study's trial returns are (``settings.returns`` of validation.json).
EVENT_STUDY_RETURNS = "Mode A events (FORCED with exhaustion): markout at horizon_s less cost_bps, bps"


def write_validation(out: Path, spec, combinations: list[dict], returns: pd.DataFrame | None = None,
                     returns_are: str = EVENT_STUDY_RETURNS) -> dict:
    """Validate a finished sweep and write ``out/validation.json`` (module docstring).

    Parameters
    ----------
    out : Path
        The sweep's run folder (combinations in ``out/sweep/<id>/``).
    spec : gpu_lpi.job_spec.JobSpec
        The sweep's spec: ``cv`` (defaults without ``[cv]``), ``study``, ``sweep``, ``symbols``.
    combinations : list of dict
        Per combination its ``id`` and swept values, in grid order.
    returns : pandas.DataFrame, optional
        The trials' returns (:data:`gpu_lpi.validation.trials.RETURN_COLUMNS`, trial = combination
        id), e.g. a simulator's PnL per episode or day; default: the event study's
        (:func:`gpu_lpi.validation.trials.sweep_returns`).
    returns_are : str
        What ``returns`` are, for the record.

    Returns
    -------
    dict
        What was written.
    """
    settings = spec.cv or ValidationParams()
    horizon, cost = settings.horizon(spec.study), settings.cost_bps(spec.study)
    trials = [c["id"] for c in combinations]
    params = pd.DataFrame([{n: c[n] for n in spec.sweep} for c in combinations], columns=list(spec.sweep),
                          index=trials)
    folders = {t: out / "sweep" / t for t in trials}
    table = sweep_returns(folders, horizon, cost) if returns is None else returns
    # ADV$ depends on the trades alone: any combination's features give the symbols' liquidity
    buckets = liquidity_buckets(liquidity(folders[trials[0]], spec.symbols))
    record = {"settings": {**settings.to_dict(), "horizon_s": horizon, "cost_bps": cost, "returns": returns_are},
              **validate_trials(table, params, spec.sweep, spec.symbols, settings, buckets)}
    chosen = (record["chosen"] or {}).get("id")
    record["multiple_testing"] = None if chosen is None else {"trial": chosen, **study_p_values(
        read_events(folders[chosen]), spec.study, cost, settings.alpha)}
    write_json(out / VALIDATION_FILE, record)
    return record


def validate_trials(table: pd.DataFrame, params: pd.DataFrame, grid: dict[str, tuple], symbols,
                    settings: ValidationParams, buckets: dict[str, str]) -> dict:
    """The statistics of ``validation.json`` from a trial-returns table, whoever produced it.

    Parameters
    ----------
    table : pandas.DataFrame
        Trial returns (:data:`gpu_lpi.validation.trials.RETURN_COLUMNS`).
    params : pandas.DataFrame
        One row per trial, indexed by the trial ids in grid order, a column per swept name.
    grid : dict
        The swept values per name (``[sweep]``).
    symbols : sequence of str
    settings : ValidationParams
    buckets : dict
        Liquidity bucket per symbol (:func:`gpu_lpi.validation.robustness.liquidity_buckets`).

    Returns
    -------
    dict
        ``n_trials``, ``trials``, ``chosen``, ``cv``, ``stability``, ``robustness`` (the last four
        None, or with a reason, where no trial could be scored).
    """
    trials = list(params.index)
    returns_of = {t: rows["ret"].to_numpy() for t, rows in table.groupby("trial", sort=False)}
    stats = [sharpe_moments(returns_of.get(t, np.array([]))) for t in trials]
    scores = trial_scores(table, trials, settings.metric, settings.min_events)
    trial_srs = np.array([s["sr"] for s in stats])
    values = params.to_dict("records")
    record = {
        "n_trials": len(trials), "n_trials_with_sharpe": int(np.isfinite(trial_srs).sum()),
        "n_distinct_trials": _distinct(table, trials),
        "sr_variance": json_float(trial_sharpe_variance(trial_srs)),
        "expected_max_sr": json_float(expected_max_sharpe(len(trials), trial_sharpe_variance(trial_srs))),
        "trials": [{"id": t, "params": v, **_moments(s), "score": json_float(x)}
                   for t, v, s, x in zip(trials, values, stats, scores)],
    }
    if not np.isfinite(scores).any():
        reason = f"no trial has {settings.min_events} or more returns (with a spread, for a ratio)"
        return {**record, "chosen": None, "reason": reason, "cv": {"skipped": reason}, "stability": None,
                "robustness": None}
    best = int(np.nanargmax(scores))
    record["chosen"] = {"id": trials[best], "params": values[best], **_deflated(stats[best], trial_srs, settings.alpha)}
    record["cv"], oos = _cross_validation(table, trials, settings)
    for fold in record["cv"].get("folds", []):     # the parameters chosen per split
        fold["chosen_params"] = None if fold["chosen"] is None else values[trials.index(fold["chosen"])]
    per_symbol = (table.groupby(["trial", "symbol"])["ret"].mean().unstack("symbol")
                  .reindex(index=trials, columns=list(symbols)))
    positions = params.reset_index(drop=True)
    around = neighbours(positions, grid, best)
    record["stability"] = {"metric": settings.metric, "score": stability_score(scores, best, around),
                           "neighbours": [trials[i] for i in around],
                           "heatmaps": heatmaps(positions, grid, scores, best),
                           "theta": theta_rule(per_symbol.reset_index(drop=True), positions, best,
                                               settings.stability_floor)}
    record["robustness"] = {"source": "out-of-sample rows of the cross-validation", **robustness(oos, buckets)}
    return record


def _distinct(table: pd.DataFrame, trials: list[str]) -> int:
    """How many trials differ in their returns (configurations that trade alike count once here;
    the DSR still counts every configuration tried)."""
    series = {t: tuple(map(tuple, rows[["symbol", "t0", "ret"]].to_numpy().tolist()))
              for t, rows in table.groupby("trial", sort=False)}
    return len({series.get(t, ()) for t in trials})


def _moments(stats: dict) -> dict:
    """Count, mean (bps), Sharpe ratio, skew and kurtosis of a trial's returns, for JSON."""
    return {"n": stats["n"], "mean_bps": json_float(stats["mean"]),
            **{k: json_float(stats[k]) for k in ("sr", "skew", "kurtosis")}}


def _deflated(stats: dict, trial_srs: np.ndarray, alpha: float) -> dict:
    """The chosen trial's moments, PSR (vs 0), DSR (vs the trials) and MinTRL (vs 0)."""
    sr, n, skew, kurt = stats["sr"], stats["n"], stats["skew"], stats["kurtosis"]
    return {**_moments(stats), "psr": json_float(probabilistic_sharpe(sr, 0.0, n, skew, kurt)),
            "dsr": json_float(deflated_sharpe(sr, trial_srs, n, skew, kurt)),
            "min_track_record_length": json_float(min_track_record_length(sr, 0.0, skew, kurt, alpha))}


def _cross_validation(table: pd.DataFrame, trials: list[str], settings: ValidationParams):
    """:func:`cross_validate` of the trials, or its reason for not running (and no rows)."""
    times = table["t0"].to_numpy()
    if np.unique(times).size < settings.n_folds:
        reason = f"{np.unique(times).size} distinct return times cannot fill {settings.n_folds} time blocks"
        return {"skipped": reason}, table.iloc[:0]
    embargo = settings.embargo_ns(int(table["t1"].max() - times.min()))
    return cross_validate(table, trials, settings.n_folds, settings.test_folds, embargo,
                          settings.metric, settings.min_events)
