"""A validated sweep end to end (issue 10 "done when"): a sweep over three parameters on a generated
store writes RUN/validation.json with the trial count, every trial's Sharpe ratio and the chosen
configuration's DSR, and its report shows them; the job spec's [cv] is checked."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

import gpu_lpi
from gpu_lpi.errors import ConfigError
from gpu_lpi.job_spec import load_job_spec
from gpu_lpi.report import write_report
from gpu_lpi.run import run_job
from gpu_lpi.study import read_events
from tests.test_jobs import _spec, hours_store  # noqa: F401  (the generated store of the jobs' tests)

SWEEP = {"theta_bps": [3.0, 5.0, 7.0], "lpi_hi": [2.0, 3.0], "refractory_s": [20.0, 120.0]}
CV = {"n_folds": 4, "test_folds": 2, "min_events": 2, "embargo_s": 30.0}
#: The random market's liquidations fall at random times, seldom within 5 s of its impact trades:
#: the former state rule (impact and confirmation anywhere within 120 s, z(liq) > 1) gives it the
#: Mode A events that a validation needs.
STATE = {"state_onset_s": 120.0, "state_hold_s": 0.0, "z_liq_hi": 1.0}


@pytest.fixture(scope="module")
def validated(hours_store, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("validated") / "sweep"
    run_job(_spec(hours_store, sweep=SWEEP, cv=CV, params=STATE), out=out, device="cpu")
    return out


def _validation(out) -> dict:
    return orjson.loads((out / "validation.json").read_bytes())


def test_a_validated_sweep_counts_its_trials_and_deflates_the_chosen_one(validated):
    v = _validation(validated)
    assert v["n_trials"] == 12 and [t["id"] for t in v["trials"]] == [f"{i:04d}" for i in range(12)]
    cost = v["settings"]["cost_bps"]
    assert cost == 7.0 and v["settings"]["horizon_s"] == 30.0
    for trial in v["trials"]:      # each trial's Sharpe ratio from its own events: Mode A, 30 s, less costs
        events = read_events(validated / "sweep" / trial["id"])
        mode_a = events[(events["state"] == "FORCED") & events["exhaustion"]]["markout_bps_30"].dropna() - cost
        assert trial["n"] == len(mode_a)
        if len(mode_a) >= 2:
            assert trial["sr"] == pytest.approx(mode_a.mean() / mode_a.std(ddof=1), rel=1e-9)
    chosen = v["chosen"]
    scores = [t["score"] if t["score"] is not None else -np.inf for t in v["trials"]]
    assert chosen["id"] == v["trials"][int(np.argmax(scores))]["id"]
    srs = [np.nan if t["sr"] is None else t["sr"] for t in v["trials"]]
    assert chosen["dsr"] is not None and chosen["dsr"] == pytest.approx(
        gpu_lpi.deflated_sharpe(chosen["sr"], srs, chosen["n"], chosen["skew"], chosen["kurtosis"]))
    assert chosen["dsr"] < chosen["psr"]               # deflating by 12 trials costs something
    cv = v["cv"]
    assert (cv["n_splits"], cv["n_paths"], len(cv["paths"]), cv["embargo_ns"]) == (6, 3, 3, 30 * 10**9)
    assert {f["chosen"] for f in cv["folds"]} <= {t["id"] for t in v["trials"]} | {None}
    assert cv["oos"]["n"] == sum(f["oos"]["n"] for f in cv["folds"])
    theta = v["stability"]["theta"]
    assert [r["symbol"] for r in theta["per_symbol"]] == ["TESTUSDT"]
    assert theta["per_symbol"][0]["pass"] in (True, False)
    assert len(v["stability"]["heatmaps"]) == 3
    assert v["robustness"]["n_symbols"] == 1
    assert v["multiple_testing"]["trial"] == chosen["id"] and v["multiple_testing"]["n_tests"] > 0


def test_the_report_of_a_validated_sweep_shows_trials_and_dsr(validated):
    page = write_report(validated, n_events=0).read_text()
    v = _validation(validated)
    assert 'id="validation"' in page and page.index('id="validation"') < page.index('id="markouts"')
    assert "trials (configurations tried)</th><td>12</td>" in page
    assert f"<strong>{v['chosen']['dsr']:,.4f}</strong>" in page
    assert 'alt="stability heatmap theta_bps x lpi_hi"' in page
    assert f"event study below: {v['chosen']['id']}" in page


def test_changing_cv_revalidates_without_recomputing(validated, hours_store):  # noqa: F811
    again = run_job(_spec(hours_store, sweep=SWEEP, cv={**CV, "test_folds": 1, "metric": "mean_bps"},
                          params=STATE), out=validated, device="cpu")
    assert all(run.chunks["computed"] == 0 for run in again.runs)
    v = _validation(validated)
    assert (v["cv"]["n_splits"], v["cv"]["n_paths"], v["settings"]["metric"]) == (4, 1, "mean_bps")


@pytest.mark.parametrize("cv, message", [
    ({"folds": 5}, r"cv.folds: unknown key"),
    ({"n_folds": 1}, r"cv.n_folds: expected a whole number in \[2, 20\]"),
    ({"n_folds": 4, "test_folds": 4}, r"cv.test_folds: expected fewer than n_folds=4"),
    ({"embargo_s": 60, "embargo_fraction": 0.01}, r"cv.embargo_s: set the embargo either"),
    ({"horizon_s": 7}, r"cv.horizon_s: expected one of \[study\] horizons_s"),
    ({"metric": "sortino"}, r"cv.metric: expected one of sharpe, mean_bps, t_stat"),
    ({"cost": "zero"}, r"cv.cost: expected one of verdict, maker, taker"),
    ({"embargo_fraction": 0.9}, r"cv.embargo_fraction: expected a number in \[0.0, 0.5\]"),
])
def test_cv_settings_are_checked(hours_store, cv, message):  # noqa: F811
    with pytest.raises(ConfigError, match=message):
        load_job_spec(_spec(hours_store, sweep=SWEEP, cv=cv))


def test_cv_needs_a_sweep(hours_store):  # noqa: F811
    with pytest.raises(ConfigError, match=r"\[cv\]: validates the trials of a sweep"):
        load_job_spec(_spec(hours_store, cv=CV))
