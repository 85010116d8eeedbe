"""Holm and Benjamini–Hochberg adjustment (issue 10 item 4) on cases computed by hand, and the event
study's family of one-sided tests after costs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from gpu_lpi.study_params import StudyParams, markout_column
from gpu_lpi.validation.multiple_testing import adjust, one_sided, study_p_values


def test_holm_and_bh_against_hand_computed_values():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # Holm: sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> running max 0.06
    assert adjust(p, "holm")[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: 0.005·4/1 = 0.02, 0.01·4/2 = 0.02, 0.03·4/3 = 0.04, 0.04·4/4 = 0.04 (running min from the top)
    assert adjust(p, "bh")[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert np.isnan(adjust(p, "holm")[4]) and np.isnan(adjust(p, "bh")[4])     # not in the family
    # BH steps up: 0.01·3 = 0.03 is lowered to 0.012·3/2 = 0.018; Holm caps at 1
    assert adjust([0.01, 0.012, 0.5], "bh") == pytest.approx([0.018, 0.018, 0.5])
    assert adjust([0.6, 0.7], "holm") == pytest.approx([1.0, 1.0])
    assert one_sided([0.1, 0.1], [1.0, -1.0]) == pytest.approx([0.05, 0.95])


def test_the_event_study_family_tests_each_group_after_costs():
    rng = np.random.default_rng(4)
    rows = []
    for symbol, mean in (("AAA", 30.0), ("BBB", 7.0)):
        for i in range(120):
            rows.append({"symbol": symbol, "day": f"2024-08-{1 + i % 6:02d}", "state": "FORCED", "exhaustion": True,
                         "side": "down", "funding_regime": "neutral", markout_column(30.0): rng.normal(mean, 10.0)})
    events = pd.DataFrame(rows)
    study = StudyParams(horizons_s=(30.0,))
    result = study_p_values(events, study, cost_bps=7.0, alpha=0.05)
    tests = {(t["split"], t["value"]): t for t in result["tests"]}
    assert result["n_tests"] == sum(t["p_raw"] is not None for t in result["tests"])
    assert tests[("symbol", "AAA")]["p_raw"] < 1e-6                  # 30 bps against a 7 bps cost
    assert tests[("symbol", "BBB")]["p_raw"] > 0.01                   # at the cost: no evidence
    # the raw p is the one-sided day-clustered t test of the mean after costs > 0
    after = events.loc[events["symbol"] == "BBB", markout_column(30.0)].to_numpy() - 7.0
    days = events.loc[events["symbol"] == "BBB", "day"].to_numpy()
    scores = np.array([(after[days == d] - after.mean()).sum() for d in np.unique(days)])
    se = np.sqrt((scores ** 2).sum() / after.size ** 2 * 6 / 5)
    reference = scipy_stats.t.sf(after.mean() / se, 5)
    assert tests[("symbol", "BBB")]["p_raw"] == pytest.approx(reference, rel=1e-6)
    for t in result["tests"]:
        if t["p_raw"] is not None:
            assert t["p_holm"] >= t["p_bh"] - 1e-15 and t["p_bh"] >= t["p_raw"] - 1e-15
    assert result["rejected_holm"] <= result["rejected_bh"] <= result["rejected_raw"]
