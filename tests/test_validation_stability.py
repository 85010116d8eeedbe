"""Parameter stability (issue 10 item 5) and cross-symbol robustness (item 6) on small grids."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from gpu_lpi.validation.robustness import liquidity_buckets, robustness
from gpu_lpi.validation.stability import heatmaps, neighbours, stability_score, theta_rule

GRID = {"theta_bps": (7.0, 3.0, 5.0), "lpi_hi": (2.5, 3.0)}     # listed out of order on purpose


def _params() -> pd.DataFrame:
    return pd.DataFrame([dict(zip(GRID, values)) for values in itertools.product(*GRID.values())])


def test_neighbours_are_one_grid_step_in_one_name():
    params = _params()       # rows: (7, 2.5) (7, 3) (3, 2.5) (3, 3) (5, 2.5) (5, 3)
    chosen = 4               # θ 5, lpi_hi 2.5: θ 3 and 7 (ascending order) and lpi_hi 3
    assert sorted(neighbours(params, GRID, chosen)) == [0, 2, 5]
    assert sorted(neighbours(params, GRID, 2)) == [3, 4]         # θ 3 has only θ 5 beside it
    performance = np.array([1.0, 0.0, 3.0, 0.0, 2.0, np.nan])
    assert stability_score(performance, chosen, [0, 2, 5]) == pytest.approx((1.0 + 3.0) / 2 / 2.0)
    assert stability_score(-performance, chosen, [0, 2]) is None   # nothing positive to keep
    (heat,) = heatmaps(params, GRID, performance, chosen)
    assert heat["x_values"] == [3.0, 5.0, 7.0] and heat["y_values"] == [2.5, 3.0]
    assert heat["values"] == [[3.0, 2.0, 1.0], [0.0, None, 0.0]] and heat["chosen"] == [5.0, 2.5]


def test_the_theta_rule_passes_fails_or_cannot_be_applied_per_symbol():
    params = _params()
    per_symbol = pd.DataFrame({"KEEPS": [4.0, 0, 3.5, 0, 5.0, 0], "VANISHES": [4.0, 0, 0.5, 0, 5.0, 0],
                               "NEGATIVE": [1.0, 0, 1.0, 0, -1.0, 0]})
    rule = theta_rule(per_symbol, params, 4, floor=0.5)
    verdicts = {r["symbol"]: r["pass"] for r in rule["per_symbol"]}
    assert verdicts == {"KEEPS": True, "VANISHES": False, "NEGATIVE": False}
    keeps = rule["per_symbol"][0]
    assert (keeps["minus_bps"], keeps["chosen_bps"], keeps["plus_bps"]) == (3.5, 5.0, 4.0)
    edge = theta_rule(per_symbol, params, 2, floor=0.5)          # θ 3: θ 1 is not in the grid, θ 5 is
    assert edge["per_symbol"][0]["minus_bps"] is None and edge["per_symbol"][0]["pass"] is True
    sparse = pd.DataFrame({"theta_bps": [3.0, 8.0]})
    lone = theta_rule(pd.DataFrame({"X": [1.0, 2.0]}), sparse, 0, floor=0.5)
    assert lone["per_symbol"][0]["pass"] is None and "not in the sweep" in lone["per_symbol"][0]["reason"]
    assert theta_rule(per_symbol, params.drop(columns="theta_bps"), 0, 0.5)["reason"] == "theta_bps is not swept"


def test_robustness_counts_symbols_with_positive_out_of_sample_means():
    buckets = liquidity_buckets({"A": 1e6, "B": 1e3, "C": 5e4, "D": None, "E": 2e7})
    assert buckets == {"D": "unknown", "B": "low", "C": "low", "A": "mid", "E": "high"}
    assert liquidity_buckets({"A": 1.0}) == {"A": "all"}
    oos = pd.DataFrame({"symbol": ["A", "A", "B", "C", "E"], "ret": [1.0, 2.0, -1.0, 0.5, -3.0]})
    result = robustness(oos, buckets)
    assert result["share_positive"] == pytest.approx(2 / 4)      # A, C of A, B, C, E (D has none)
    assert result["n_symbols_with_oos"] == 4 and result["n_symbols"] == 5
    low = next(b for b in result["per_bucket"] if b["bucket"] == "low")
    assert low["symbols"] == ["B", "C"] and low["mean_bps"] == pytest.approx(-0.25)
