"""Multiple-testing adjustment of the event study (Holm; Benjamini–Hochberg).

The family: every group of the event study (:func:`gpu_lpi.study.study_groups`: all events, each
kind, state, side, funding regime and symbol) at every horizon, each testing "the mean markout
exceeds the cost line" (H0: mean − cost <= 0), one-sided, from the study's day-clustered t
statistic of the markouts less the cost. Holm controls the family-wise error rate under any
dependence (the groups overlap); Benjamini–Hochberg the false discovery rate (valid under positive
dependence). Both from :func:`statsmodels.stats.multitest.multipletests`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from gpu_lpi.study import study_groups
from gpu_lpi.study_params import StudyParams, markout_column

#: ``multipletests`` method names of the adjustments reported.
METHODS = {"holm": "holm", "bh": "fdr_bh"}


def adjust(p_values, method: str) -> np.ndarray:
    """Adjusted p-values (``"holm"`` or ``"bh"``) of a family; NaN entries stay NaN and are not
    counted in the family."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], method=METHODS[method])[1]
    return out


def one_sided(p_two_sided, mean) -> np.ndarray:
    """One-sided p-values of H0: mean <= 0 from two-sided ones of a symmetric statistic."""
    p, mean = np.asarray(p_two_sided, dtype=np.float64), np.asarray(mean, dtype=np.float64)
    return np.where(mean > 0, p / 2.0, 1.0 - p / 2.0)


def study_p_values(events: pd.DataFrame, study: StudyParams, cost_bps: float, alpha: float) -> dict:
    """The family of the module docstring for one run's events, raw and adjusted.

    Returns
    -------
    dict
        ``family``, ``cost_bps``, ``alpha``, ``n_tests``, rejections per method and ``tests``: per
        (split, value, horizon) the count, mean after costs, raw one-sided p and the adjusted ones.
    """
    shifted = events.assign(**{markout_column(h): events[markout_column(h)] - cost_bps for h in study.horizons_s})
    rows = [{"split": g["split"], "value": g["value"], "horizon_s": m["horizon_s"], "n": m["n"],
             "mean_after_cost_bps": m["mean"],
             "p_raw": None if m["p_value"] is None else float(one_sided(m["p_value"], m["mean"]))}
            for g in study_groups(shifted, study) for m in g["markouts"]]
    raw = np.array([np.nan if r["p_raw"] is None else r["p_raw"] for r in rows])
    adjusted = {name: adjust(raw, name) for name in METHODS}
    for index, row in enumerate(rows):
        for name, values in adjusted.items():
            row[f"p_{name}"] = float(values[index]) if np.isfinite(values[index]) else None
    return {"family": "event-study groups x horizons; H0: mean markout - cost <= 0 (one-sided, day-clustered t)",
            "cost_bps": cost_bps, "alpha": alpha, "n_tests": int(np.isfinite(raw).sum()),
            "rejected_raw": int(np.sum(raw[np.isfinite(raw)] <= alpha)),
            **{f"rejected_{name}": int(np.sum(values[np.isfinite(values)] <= alpha))
               for name, values in adjusted.items()},
            "tests": rows}
