"""Events and the event study (gpu_lpi.events, gpu_lpi.study): markouts against hand-computed
values, day-clustered intervals against the textbook formula, the verdict, the drift regression,
and [study] validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpu_lpi.errors import ConfigError
from gpu_lpi.atomic_files import write_frame
from gpu_lpi.events import build_events, markout_column
from gpu_lpi.signals import SIGNAL_COLUMNS
from gpu_lpi.study import answer, drift_regression, markout_stats, study_groups
from gpu_lpi.study_params import StudyParams
from gpu_lpi.store import TickStore
from tests.feature_stores import DAY_NS, T0

TICK_NS = 250_000_000


def write_features(run_dir, symbol: str, mids: np.ndarray, events: dict[int, dict], start_ns=T0,
                   per_file: int | None = None) -> np.ndarray:
    """A run folder's feature files for one symbol: ``mids`` on consecutive ticks from ``start_ns``,
    with ``event`` set at the given tick indices (their other signal columns from the dicts)."""
    n = mids.size
    ts = start_ns + TICK_NS * np.arange(n, dtype=np.int64)
    columns = {"ts": ts, "symbol": np.full(n, symbol), "mid": mids, "spread": np.full(n, 0.02),
               "r": np.append(np.nan, np.diff(np.log(mids))), "lpi_down": np.zeros(n),
               "lpi_up": np.zeros(n), "z_fsi": np.zeros(n), "z_fsi_up": np.zeros(n),
               "z_doi": np.zeros(n), "z_liq_sell": np.zeros(n), "z_liq_buy": np.zeros(n)}
    for name in SIGNAL_COLUMNS:
        columns.setdefault(name, np.zeros(n, dtype=bool if name.startswith(("cond_", "forced", "ex", "ev"))
                                          else np.int8 if name in ("state", "side", "dir", "exit_reason")
                                          else np.float64))
    for index, values in events.items():
        columns["event"][index] = True
        for name, value in values.items():
            columns[name][index] = value
    days = (ts // DAY_NS) * DAY_NS
    for day in np.unique(days):
        rows = np.flatnonzero(days == day)
        chunk = per_file or rows.size
        for first in range(0, rows.size, chunk):
            part = rows[first:first + chunk]
            folder = run_dir / "features" / f"symbol={symbol}" / f"date={pd.Timestamp(day).date()}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({k: v[part] for k, v in columns.items()}),
                           folder / f"part-{first:06d}.parquet")
    return ts


def test_markouts_by_hand(tmp_path):
    """mid(decision + h) vs the reference at decision = ts + latency, signed by dir, in bps; a
    time's mid is the last tick's at or before it (no look-ahead); NaN past the data."""
    n = 2000
    mids = 100.0 + 0.01 * np.arange(n)
    ts = write_features(tmp_path, "AAA", mids, {
        100: {"dir": 1, "side": -1, "state": 1, "exhaustion": True},
        1700: {"dir": -1, "side": 1, "state": 0}})
    study = StudyParams(horizons_s=[0.5, 1, 120], latency_ms=100, answer_horizon_s=1)
    events = build_events(tmp_path, TickStore(tmp_path / "nostore"), ["AAA"], TICK_NS, study,
                          {"AAA": "oi"})
    assert events["ts"].tolist() == [ts[100], ts[1700]]
    assert events["state"].tolist() == ["FORCED", "INFORMED"] and events["side"].tolist() == ["down", "up"]
    # decision = ts + 100 ms: the book as of then is the event tick's; +0.5 s is 2 ticks later
    reference_price = mids[100]
    assert events["ref_price"][0] == reference_price
    assert events["decision_ts"][0] == ts[100] + 100_000_000
    expected = (mids[100 + 2] - reference_price) / reference_price * 1e4
    assert events[markout_column(0.5)][0] == pytest.approx(expected, rel=1e-12)
    expected_sell = -(mids[1700 + 4] - mids[1700]) / mids[1700] * 1e4          # +1 s, dir = -1
    assert events[markout_column(1)][1] == pytest.approx(expected_sell, rel=1e-12)
    assert np.isnan(events[markout_column(120)][1])                             # past the data
    assert events["funding_regime"].tolist() == ["unknown", "unknown"]
    touch = build_events(tmp_path, TickStore(tmp_path / "nostore"), ["AAA"], TICK_NS,
                         StudyParams(horizons_s=[1], fill_reference="touch", answer_horizon_s=1), {})
    assert touch["ref_price"].tolist() == [mids[100] - 0.01, mids[1700] + 0.01]  # bid for a buy, ask for a sell


def test_markouts_reach_into_the_next_day(tmp_path):
    n = 4000
    start = T0 + DAY_NS - 1000 * TICK_NS          # 1,000 ticks before midnight
    mids = np.linspace(100, 101, n)
    write_features(tmp_path, "AAA", mids, {990: {"dir": 1, "side": -1}}, start_ns=start, per_file=700)
    study = StudyParams(horizons_s=[30], answer_horizon_s=30)
    events = build_events(tmp_path, TickStore(tmp_path / "nostore"), ["AAA"], TICK_NS, study, {})
    decision = 990
    assert events[markout_column(30)][0] == pytest.approx(
        (mids[decision + 120] - mids[decision]) / mids[decision] * 1e4, rel=1e-12)


def test_markout_stats_and_day_clustered_interval():
    rng = np.random.default_rng(3)
    values = rng.normal(2.0, 5.0, 60)
    days = np.repeat(np.arange(6), 10).astype(str)
    stats = markout_stats(values, days, 0.95)
    assert stats["n"] == 60 and stats["mean"] == pytest.approx(values.mean())
    assert stats["median"] == pytest.approx(np.median(values))
    assert stats["p5"] == pytest.approx(np.percentile(values, 5))
    assert stats["hit_rate"] == pytest.approx((values > 0).mean())
    # textbook cluster-robust variance of a mean, with the small-sample factor G/(G-1)·(N-1)/(N-K)
    residual = values - values.mean()
    scores = np.array([residual[days == d].sum() for d in np.unique(days)])
    groups, n = scores.size, values.size
    se = np.sqrt((scores ** 2).sum() / n ** 2 * groups / (groups - 1) * (n - 1) / (n - 1))
    from scipy import stats as scipy_stats

    half = scipy_stats.t.ppf(0.975, groups - 1) * se
    assert stats["ci_low"] == pytest.approx(values.mean() - half, rel=1e-9)
    assert stats["ci_high"] == pytest.approx(values.mean() + half, rel=1e-9)
    assert stats["ci_method"] == "clustered by day"
    one_day = markout_stats(values, np.zeros(60).astype(str), 0.95)
    assert one_day["ci_method"].startswith("HC1")
    assert markout_stats(np.array([np.nan]), np.array(["d"]), 0.95)["mean"] is None


def _events(kinds: dict[str, tuple[float, int]], horizons=(30.0,)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for kind, (mean, count) in kinds.items():
        for i in range(count):
            rows.append({"symbol": "AAA", "day": f"2024-08-{1 + i % 5:02d}",
                         "state": "INFORMED" if kind == "informed" else "FORCED",
                         "exhaustion": kind == "forced_exhaustion", "side": "down",
                         "funding_regime": "neutral",
                         **{markout_column(h): rng.normal(mean, 3.0) for h in horizons}})
    return pd.DataFrame(rows)


def test_verdict_reads_the_answer_off_the_groups():
    study = StudyParams(horizons_s=[30], answer_horizon_s=30)
    good = answer(study_groups(_events({"forced_exhaustion": (25.0, 40), "informed": (-10.0, 40)}), study), study)
    assert good["forced_positive_after_costs"] is True and good["informed_not_positive"] is True
    assert "robustly positive after costs" in good["text"]
    bad = answer(study_groups(_events({"forced_exhaustion": (1.0, 40), "informed": (30.0, 40)}), study), study)
    assert bad["forced_positive_after_costs"] is False and bad["informed_not_positive"] is False
    empty = answer(study_groups(_events({"informed": (0.0, 5)}), study), study)
    assert empty["forced_positive_after_costs"] is None and "Too few" in empty["text"]
    groups = study_groups(_events({"forced_exhaustion": (25.0, 4)}), study)
    assert {(g["split"], g["value"]) for g in groups} >= {("all", "all"), ("kind", "informed"),
                                                           ("state", "FORCED"), ("symbol", "AAA")}


def test_drift_regression_finds_a_planted_drift(tmp_path):
    """r_{t+1} = μ·dir at forced-exhaustion event ticks + β·r_t + noise: the regression recovers
    μ and β."""
    rng = np.random.default_rng(1)
    n = 20_000
    event_ticks = rng.choice(np.arange(100, n - 2), 300, replace=False)
    r = np.zeros(n)
    directions = rng.choice([-1, 1], n)
    for i in range(1, n):
        r[i] = 0.2 * r[i - 1] + rng.normal(0, 1e-4)
        if i - 1 in set(event_ticks.tolist()):
            r[i] += 5e-4 * directions[i - 1]
    mids = 100 * np.exp(np.cumsum(r))
    events = {int(i): {"dir": int(directions[i]), "state": 1, "exhaustion": True} for i in event_ticks}
    write_features(tmp_path, "AAA", mids, events, per_file=6000)
    fit = drift_regression(tmp_path, "AAA", TICK_NS, StudyParams())
    assert fit["params"]["forced_exhaustion"] == pytest.approx(5.0, abs=1.0)   # bps
    assert fit["params"]["r_t"] == pytest.approx(0.2, abs=0.05)
    assert fit["t"]["forced_exhaustion"] > 5 and "informed" not in fit["params"]


@pytest.mark.parametrize("table, message", [
    ({"horizons_s": []}, "study.horizons_s"), ({"horizons_s": [1, 1]}, "repeated"),
    ({"latency_ms": -1}, "study.latency_ms"), ({"fill_reference": "bid"}, "fill_reference"),
    ({"answer_horizon_s": 7}, "answer_horizon_s"), ({"typo": 1}, "study.typo: unknown key"),
    ({"funding_low": 0.01, "funding_high": 0.0}, "funding_low"),
    ({"horizons_s": [0.5, 0.5000001]}, "distinct to 6 significant digits"),   # one column name
    ({"horizons_s": [1 + i / 1000 for i in range(1001)]}, "at most 1000 horizons")])
def test_bad_study_settings_are_one_line_errors(table, message):
    with pytest.raises(ConfigError, match=message):
        StudyParams.from_mapping(table)


def test_write_events_leaves_no_temporary_file_when_interrupted(tmp_path, monkeypatch):
    """Ctrl-C while events.parquet is written: neither the file nor a temporary one is left."""
    def interrupted(table, where, **kwargs):
        open(where, "wb").write(b"PAR1 half")
        raise KeyboardInterrupt
    monkeypatch.setattr(pq, "write_table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_frame(pd.DataFrame({"ts": [1]}), tmp_path / "events.parquet")
    assert list(tmp_path.iterdir()) == []
