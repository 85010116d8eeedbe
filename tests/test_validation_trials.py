"""The validation over a generic table of trial returns (per-day PnL, as a simulator would give):
the best of many unskilled trials looks good in sample and is deflated and fails out of sample; a
skilled trial among them survives both."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from gpu_lpi.validation.params import ValidationParams
from gpu_lpi.validation.sweep import validate_trials

DAY_NS = 86_400 * 10**9
GRID = {"theta_bps": tuple(float(t) for t in range(1, 11)), "lpi_hi": (2.0, 2.5, 3.0, 3.5, 4.0)}


def _table(skilled: str | None, seed: int = 7, days: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    combos = list(itertools.product(*GRID.values()))
    ids = [f"{i:04d}" for i in range(len(combos))]
    params = pd.DataFrame(combos, columns=list(GRID), index=ids)
    t0 = np.arange(days, dtype=np.int64) * DAY_NS
    frames = [pd.DataFrame({"trial": trial, "symbol": np.where(np.arange(days) % 2, "AAA", "BBB"), "t0": t0,
                            "t1": t0 + DAY_NS - 1, "period": np.arange(days).astype(str),
                            "ret": rng.normal(0.25 if trial == skilled else 0.0, 1.0, days)})
              for trial in ids]
    return pd.concat(frames, ignore_index=True), params


def test_the_best_of_fifty_unskilled_trials_is_deflated_and_fails_out_of_sample():
    table, params = _table(skilled=None)
    buckets = {"AAA": "low", "BBB": "high"}
    record = validate_trials(table, params, GRID, ["AAA", "BBB"], ValidationParams(n_folds=5), buckets)
    chosen = record["chosen"]
    assert record["n_trials"] == record["n_distinct_trials"] == 50
    twins = pd.concat([table, table[table["trial"] == "0000"].assign(trial="twin")], ignore_index=True)
    with_twin = pd.concat([params, params.iloc[:1].rename(index={"0000": "twin"})])
    assert validate_trials(twins, with_twin, GRID, ["AAA", "BBB"], ValidationParams(), {})["n_distinct_trials"] == 50
    assert chosen["psr"] > 0.9                           # looks significant on its own ...
    assert chosen["dsr"] < 0.5                           # ... not after 50 trials
    assert abs(record["cv"]["oos"]["mean_bps"]) < 0.1    # and earns nothing out of sample


def test_a_skilled_trial_survives_deflation_and_cross_validation():
    table, params = _table(skilled="0023")
    settings = ValidationParams(n_folds=5, test_folds=2, embargo_s=86_400.0)
    record = validate_trials(table, params, GRID, ["AAA", "BBB"], settings, {"AAA": "low", "BBB": "high"})
    assert record["chosen"]["id"] == "0023" and record["chosen"]["dsr"] > 0.95
    assert all(f["chosen"] == "0023" and f["chosen_params"] == {"theta_bps": 5.0, "lpi_hi": 3.5}
               for f in record["cv"]["folds"])
    assert record["cv"]["n_paths"] == 4 and record["cv"]["oos"]["share_paths_positive"] == 1.0
    assert record["cv"]["pbo"] == 0.0          # out of sample it ranks in the upper half every time
    assert record["robustness"]["share_positive"] == 1.0
    # a spike on the grid: its neighbours are unskilled
    assert record["stability"]["score"] < 0.3
    assert [r["pass"] for r in record["stability"]["theta"]["per_symbol"]] == [False, False]


def test_trials_without_enough_returns_are_counted_and_nothing_is_chosen(tmp_path):
    from gpu_lpi.atomic_files import write_json
    from gpu_lpi.report_validation import validation_section
    from gpu_lpi.validation.trials import RETURN_COLUMNS

    table, params = _table(skilled=None, days=3)
    record = validate_trials(table, params, GRID, ["AAA", "BBB"], ValidationParams(min_events=5), {})
    assert record["n_trials"] == 50 and record["chosen"] is None and "5 or more returns" in record["reason"]
    empty = validate_trials(pd.DataFrame(columns=list(RETURN_COLUMNS)), params, GRID, ["AAA"], ValidationParams(), {})
    assert empty["n_trials"] == 50 and empty["n_trials_with_sharpe"] == 0 and empty["cv"]["skipped"]
    write_json(tmp_path / "validation.json", empty)
    section = validation_section(tmp_path)
    assert "trials (configurations tried)</th><td>50</td>" in section and "Nothing was chosen" in section
