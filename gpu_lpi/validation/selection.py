"""Choosing a trial on training data and judging it on test data (purged CV of trial returns).

For each split of :func:`gpu_lpi.validation.cv.purged_splits` (the time blocks are cut from the
start times of all trials' returns together, so every trial sees the same blocks), every trial is
scored on its training rows (:func:`trial_scores`), the best eligible one is chosen (ties: the first in
trial order) and its test rows are its out-of-sample returns. The splits' test rows assemble into
the backtest paths of :func:`gpu_lpi.validation.cv.backtest_paths`. The probability of backtest
overfitting (PBO, Bailey et al. 2017) is the share of splits where the chosen trial ranks in the
lower half of the trials out of sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpu_lpi.validation import json_float
from gpu_lpi.validation.cv import backtest_paths, block_of, n_paths, purged_splits, time_blocks
from gpu_lpi.validation.sharpe import probabilistic_sharpe, sharpe_moments


def trial_scores(table: pd.DataFrame, trials: list[str], metric: str, min_events: int) -> np.ndarray:
    """Each trial's score over the rows of ``table`` (trial-returns rows): its per-period Sharpe
    ratio (``"sharpe"``), mean in bps (``"mean_bps"``) or t statistic (``"t_stat"``, SR·√n); NaN
    with fewer than ``min_events`` returns, and for the ratios without a spread."""
    moments = table.groupby("trial", sort=False)["ret"].agg(["count", "mean", "std"]).reindex(trials)
    n = moments["count"].fillna(0).to_numpy(np.float64)
    mean, std = moments["mean"].to_numpy(np.float64), moments["std"].to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sr = np.where(std > 0, mean / std, np.nan)
    value = {"sharpe": sr, "mean_bps": mean, "t_stat": sr * np.sqrt(n)}[metric]
    return np.where(n >= min_events, value, np.nan)


def summary(returns: np.ndarray) -> dict:
    """Count, mean (bps), per-period Sharpe ratio and its PSR against 0 of some returns."""
    moments = sharpe_moments(returns)
    psr = probabilistic_sharpe(moments["sr"], 0.0, moments["n"], moments["skew"], moments["kurtosis"])
    return {"n": moments["n"], "mean_bps": json_float(moments["mean"]), "sr": json_float(moments["sr"]),
            "psr": json_float(psr)}


def cross_validate(table: pd.DataFrame, trials: list[str], n_groups: int, k: int, embargo_ns: int,
                   metric: str, min_events: int, purge: bool = True) -> tuple[dict, pd.DataFrame]:
    """Purged (combinatorial) cross-validation of the choice among ``trials`` (module docstring).

    Parameters
    ----------
    table : pandas.DataFrame
        Trial returns (:data:`gpu_lpi.validation.trials.RETURN_COLUMNS`).
    trials : list of str
        Every trial's id, in order (those without returns included).
    n_groups, k, embargo_ns, purge
        As :func:`gpu_lpi.validation.cv.purged_splits`.
    metric, min_events
        As :func:`trial_scores`.

    Returns
    -------
    (dict, pandas.DataFrame)
        The CV's record for ``validation.json`` (``folds``, ``paths``, ``oos``, ``pbo``...) and the
        out-of-sample rows of every split (the chosen trial's test rows, with a ``split`` column;
        each block appears once per path).

    Raises
    ------
    ValueError
        Fewer distinct return times than blocks.
    """
    table = table.reset_index(drop=True)
    edges = time_blocks(table["t0"].to_numpy(), n_groups)
    groups = block_of(table["t0"].to_numpy(), edges)
    splits = purged_splits(table["t0"].to_numpy(), table["t1"].to_numpy(), n_groups, k, embargo_ns, purge,
                           edges=edges)
    folds, oos_parts, ranks = [], [], []
    for number, split in enumerate(splits):
        train_scores = trial_scores(table.iloc[split.train], trials, metric, min_events)
        test_rows = table.iloc[split.test]
        fold = {"test_groups": list(split.test_groups), "n_train_rows": int(split.train.size),
                "n_test_rows": int(split.test.size), "chosen": None, "train_score": None,
                "oos": summary(np.array([]))}
        if np.isfinite(train_scores).any():
            best = int(np.nanargmax(train_scores))
            chosen = test_rows[test_rows["trial"] == trials[best]]
            test_scores = trial_scores(test_rows, trials, metric, 2)
            if np.isfinite(test_scores[best]):
                others = test_scores[np.isfinite(test_scores)]
                ranks.append((np.sum(others < test_scores[best]) + 0.5 * (np.sum(others == test_scores[best]) - 1)
                              + 1) / (others.size + 1))
            fold.update(chosen=trials[best], train_score=json_float(train_scores[best]),
                        oos=summary(chosen["ret"].to_numpy()))
            oos_parts.append(chosen.assign(split=number, group=groups[chosen.index]))
        folds.append(fold)
    oos = (pd.concat(oos_parts, ignore_index=True) if oos_parts
           else table.iloc[:0].assign(split=pd.Series(dtype=np.int64), group=pd.Series(dtype=np.int64)))
    paths = []
    for route in backtest_paths(n_groups, k):
        rows = oos[oos["split"].to_numpy() == route[oos["group"].to_numpy()]]
        paths.append({"splits": route.tolist(), **summary(rows.sort_values("t0")["ret"].to_numpy())})
    means = np.array([p["mean_bps"] for p in paths if p["mean_bps"] is not None])
    record = {"n_groups": n_groups, "test_groups": k, "n_splits": len(splits), "n_paths": n_paths(n_groups, k),
              "embargo_ns": int(embargo_ns), "purged": purge, "edges_ns": edges.tolist(), "folds": folds,
              "paths": paths,
              "oos": {**summary(oos["ret"].to_numpy()),
                      "path_mean_bps": json_float(means.mean()) if means.size else None,
                      "share_paths_positive": json_float((means > 0).mean()) if means.size else None},
              "pbo": json_float(np.mean(np.array(ranks) <= 0.5)) if ranks else None,
              "pbo_splits": len(ranks)}
    return record, oos
