"""run_job: job spec validation, run folder layout, resume, chunking."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from gpu_lpi.errors import ConfigError
from gpu_lpi.features import FEATURE_COLUMNS
from gpu_lpi.params import FeatureParams
from gpu_lpi.job_spec import load_job_spec
from gpu_lpi.run import run_job
from tests.feature_stores import MS, SYMBOL, T0, random_store

PARAMS = {"window_hours": 0.01, "adv_window_hours": 0.01, "depth_window_hours": 0.01,
          "min_periods_s": 5.0}


def _spec(store, **overrides):
    spec = {"data": {"store": str(store.root), "symbols": [SYMBOL], "start": "2024-08-05",
                     "end": "2024-08-05"},
            "grid": {"tick_ms": 250}, "params": dict(PARAMS), "cluster": {"chunk_hours": 24}}
    for section, values in overrides.items():
        spec[section] = {**spec.get(section, {}), **values}
    return spec


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return random_store(tmp_path_factory.mktemp("run") / "store", seed=1, minutes=2.0)


def test_run_writes_partitions_and_run_json_and_resumes(store, tmp_path):
    out = tmp_path / "run"
    result = run_job(_spec(store), out=out, device="cpu")
    part = out / "features" / f"symbol={SYMBOL}" / "date=2024-08-05" / "part-0000.parquet"
    assert part.exists() and not (out / "features" / "_tmp").exists()
    assert result.chunks == {"computed": 1, "existing": 0, "recomputed": 0}
    table = result.features()
    assert table.num_rows == 2 * 60 * 4          # ticks the store covers on the job's day
    assert set(FEATURE_COLUMNS) <= set(table.column_names)
    assert np.isfinite(table.column("lpi_down").to_numpy()).sum() > 300
    meta = orjson.loads((out / "run.json").read_bytes())
    assert meta["status"] == "complete" and meta["device"] == "cpu"
    assert meta["book_source"] == {SYMBOL: "book_ticker"}
    assert meta["config"]["params"]["theta_bps"] == 5.0 and meta["config"]["grid"]["tick_ms"] == 250
    assert {"numpy", "numba", "pyarrow", "cupy"} <= set(meta["versions"])
    assert {"load", "grid", "features", "robust_z", "io", "total"} <= set(meta["seconds"])
    covered = meta["covered_spans_ns"][SYMBOL]
    assert covered["book_ticker"] == [[T0, T0 + int(2.0 * 60e9)]]   # the job's day only
    mtime = part.stat().st_mtime_ns
    again = run_job(_spec(store), out=out, device="cpu")
    assert again.chunks["existing"] == 1 and again.chunks["computed"] == 0
    assert part.stat().st_mtime_ns == mtime
    with pytest.raises(ConfigError, match="different config"):
        run_job(_spec(store, params={"theta_bps": 6.0}), out=out, device="cpu")


def test_chunk_hours_do_not_change_results(store, tmp_path):
    day = run_job(_spec(store), out=tmp_path / "day", device="cpu").features()
    hourly = run_job(_spec(store, cluster={"chunk_hours": 1}), out=tmp_path / "hourly",
                     device="cpu")
    assert hourly.chunks["computed"] == 1     # the store covers the first minutes of the day only
    pieces, whole = hourly.features().sort_by("ts"), day.sort_by("ts")
    assert whole.num_rows == 2 * 60 * 4        # covered ticks of the day
    assert pieces.column("ts").equals(whole.column("ts"))
    for name in FEATURE_COLUMNS:
        np.testing.assert_array_equal(pieces.column(name).to_numpy(), whole.column(name).to_numpy(),
                                      err_msg=name)


@pytest.mark.parametrize("overrides, message", [
    ({"params": {"thetabps": 5}}, "params.thetabps: unknown parameter"),
    ({"data": {"colour": 1}}, "data.colour: unknown key"),
    ({"grid": {"tick_ms": 0}}, r"params.tick_ms: expected a value in \[1"),
    ({"params": {"tick_ms": 100}}, r"params.tick_ms: set the tick in \[grid\]"),
    ({"cluster": {"chunk_hours": 5}}, "cluster.chunk_hours: expected a whole number of hours dividing 24"),
    ({"data": {"end": "2024-08-01"}}, "data.end: expected a date on or after"),
    ({"data": {"start": "yesterday"}}, "data.start: expected a date YYYY-MM-DD"),
    ({"data": {"symbols": []}}, "data.symbols: expected a non-empty list"),
    ({"params": {"w1": "high"}}, "params.w1: expected a number"),
])
def test_bad_specs_name_the_field(store, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_job_spec(_spec(store, **overrides))


def test_unknown_section_and_symbol(store, tmp_path):
    with pytest.raises(ConfigError, match=r"\[colours\]: unknown section"):
        load_job_spec({**_spec(store), "colours": {}})
    with pytest.raises(ConfigError, match="data.symbols: NOPE has no reference data"):
        run_job(_spec(store, data={"symbols": ["NOPE"]}), out=tmp_path / "r", device="cpu")


def test_toml_file_with_relative_store(store, tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(f'[data]\nstore = "{store.root}"\nsymbols = ["{SYMBOL}"]\nstart = 2024-08-05\n'
                    f'end = 2024-08-05\n[params]\nwindow_hours = 0.5\n[study]\nhorizons_s = [1, 5]\n')
    loaded = load_job_spec(spec)
    assert loaded.params.window_hours == 0.5 and loaded.name == "job"
    assert loaded.resolved()["study"]["horizons_s"] == [1.0, 5.0]
    assert loaded.resolved()["study"]["answer_horizon_s"] == 5.0     # the one closest to 30 s
    with pytest.raises(ConfigError, match="not valid TOML"):
        (tmp_path / "bad.toml").write_text("[data\n")
        load_job_spec(tmp_path / "bad.toml")


def _more_trades(store, at_ns):
    """One more trade in the store (a later ingest adding data to a finished chunk's range)."""
    import pyarrow as pa

    from gpu_lpi.schema import TABLES

    rows = pa.table({"ts": [at_ns], "price": [100.0], "qty": [3.0], "is_buyer_maker": [True],
                     "notional": [300.0], "kind": pa.array([0], pa.int8()), "trade_id": [10**9],
                     "local_ts": pa.nulls(1, pa.int64())}, schema=TABLES["trades"].schema)
    with store.transaction() as tx:
        tx.write("trades", SYMBOL, rows)


def test_rerun_recomputes_chunks_whose_inputs_changed(tmp_path):
    """The issue's case: a run re-run after its store gained data said "already done" and kept
    stale outputs."""
    store = random_store(tmp_path / "store", seed=4, minutes=2.0)
    out = tmp_path / "run"
    spec = _spec(store, cluster={"chunk_hours": 12})
    first = run_job(spec, out=out, device="cpu")
    assert first.chunks == {"computed": 1, "existing": 0, "recomputed": 0}
    before = first.features().column("dollar_volume").to_numpy()
    _more_trades(store, T0 + 30_000 * MS)
    again = run_job(spec, out=out, device="cpu")
    assert again.chunks == {"computed": 1, "existing": 0, "recomputed": 1}
    assert "1 of them recomputed because their inputs changed" in again.summary()
    after = again.features().column("dollar_volume").to_numpy()
    tick = int((T0 + 30_000 * MS) // (250 * MS) - T0 // (250 * MS))
    assert after[tick] == pytest.approx(before[tick] + 300.0)
    third = run_job(spec, out=out, device="cpu")
    assert third.chunks == {"computed": 0, "existing": 1, "recomputed": 0}


@pytest.mark.parametrize("chunk_hours", [1, 6, 12, 24])
def test_days_and_chunks_without_data_make_no_partitions(store, tmp_path, chunk_hours):
    """The issue's case: a job starting the day before the data, or chunk_hours 1, 6, 12, crashed."""
    spec = _spec(store, data={"start": "2024-08-03", "end": "2024-08-06"},
                 cluster={"chunk_hours": chunk_hours})
    result = run_job(spec, out=tmp_path / "run", device="cpu")
    files = sorted(p.relative_to(tmp_path / "run" / "features").as_posix()
                   for p in (tmp_path / "run" / "features").rglob("*.parquet"))
    # the store covers 2024-08-04 23:59 to 2024-08-05 00:02
    expected = [f"symbol={SYMBOL}/date=2024-08-04/part-{24 - chunk_hours:02d}00.parquet",
                f"symbol={SYMBOL}/date=2024-08-05/part-0000.parquet"]
    assert files == expected
    ts = result.features().column("ts").to_numpy()
    assert ts.min() >= T0 - 60_000 * MS and ts.max() < T0 + 120_000 * MS   # covered ticks only


def test_outside_its_coverage_an_input_is_missing_not_zero(tmp_path):
    """Book tickers cover 00:00-00:02 and trades 00:00-00:04 (as when an archive day of trades meets
    a short capture): after 00:02 the book is missing (not frozen for book_max_age_s) while volume is
    known; trades of a second store cover only 00:00-00:01: volume after that is NaN, not 0."""
    from gpu_lpi.features import compute_features
    from tests.feature_stores import build_store

    quote_ts = T0 + np.arange(0, 120_000, 100) * MS
    quotes = {"ts": quote_ts, "bid": np.full(quote_ts.size, 100.0), "ask": np.full(quote_ts.size, 100.02),
              "bid_qty": np.ones(quote_ts.size), "ask_qty": np.ones(quote_ts.size)}
    trade_ts = T0 + np.arange(500, 240_000, 1_000) * MS
    trades = {"ts": trade_ts, "price": np.full(trade_ts.size, 100.0), "qty": np.ones(trade_ts.size),
              "is_buyer_maker": np.zeros(trade_ts.size, bool)}
    params = FeatureParams(window_hours=0.01, adv_window_hours=0.01, depth_window_hours=0.01,
                           min_periods_s=5.0)
    for covers, name in (((T0, T0 + 240_000 * MS), "long"), ((T0, T0 + 60_000 * MS), "short")):
        store = build_store(tmp_path / name, quotes, trades, covered={
            "book_ticker": (int(quote_ts[0]), int(quote_ts[-1]) + 1), "trades": covers})
        table = compute_features(store, SYMBOL, T0, T0 + 240_000 * MS, params, device="cpu")
        ts = table.column("ts").to_numpy()
        valid = table.column("book_valid").to_numpy(zero_copy_only=False)
        volume = table.column("dollar_volume").to_numpy()
        book_end = quote_ts[-1] + 1
        assert valid[(ts > T0 + 1_000 * MS) & (ts < book_end)].all()
        assert not valid[ts >= book_end].any()          # not frozen past the capture's end
        trades_end = covers[1]
        assert np.isfinite(volume[(ts > T0 + 250 * MS) & (ts < trades_end)]).all()
        assert np.isnan(volume[ts >= trades_end]).all()   # missing, not zero
        assert ts.max() == T0 + 240_000 * MS - 250 * MS if name == "long" else ts.max() < book_end


@pytest.mark.parametrize("start, end", [("0001-01-01", "9999-12-31"), ("2024-01-01", "2300-01-01")])
def test_absurd_date_ranges_are_rejected_at_once(store, start, end):
    with pytest.raises(ConfigError, match="expected a date between"):
        load_job_spec(_spec(store, data={"start": start, "end": end}))


def test_long_date_ranges_cost_what_the_data_holds(store, tmp_path):
    import time

    begin = time.perf_counter()
    result = run_job(_spec(store, data={"start": "2017-01-01", "end": "2199-12-31"},
                           cluster={"chunk_hours": 1}), out=tmp_path / "run", device="cpu")
    assert result.chunks["computed"] == 2
    assert time.perf_counter() - begin < 60


@pytest.mark.realdata
@pytest.mark.parametrize("chunk_hours", [1, 6, 24])
def test_shipped_real_captures_spec_runs(real_store, tmp_path, chunk_hours):
    """The issue's case: jobs/specs/real_captures.toml (and chunk_hours 1, 6, 12) crashed."""
    import tomllib

    from tests.conftest import REPO

    spec = tomllib.loads((REPO / "jobs" / "specs" / "real_captures.toml").read_text())
    spec["data"]["store"] = str(real_store[0].root)
    spec["data"]["start"] = "2024-07-17"          # a day before the data, too
    spec["cluster"]["chunk_hours"] = chunk_hours
    result = run_job(spec, out=tmp_path / "run", device="cpu")
    table = result.features()
    days = {(s, str(d)) for s, d in zip(table.column("symbol").to_pylist(), table.column("date").to_pylist())}
    assert days == {("BTCUSDT", "2024-07-18"), ("BTCUSDT", "2024-07-19"), ("BTCUSDT", "2024-08-08"),
                    ("BTCUSDT", "2024-08-09"), ("ETHUSDT", "2024-07-18"), ("ETHUSDT", "2024-07-19"),
                    ("ETHUSDT", "2024-08-08"), ("ETHUSDT", "2024-08-09"), ("BTCUSD_PERP", "2024-08-08"),
                    ("BTCUSD_PERP", "2024-08-09")}
    assert np.isfinite(table.column("lpi_down").to_numpy()).sum() > 5_000
    meta = orjson.loads((tmp_path / "run" / "run.json").read_bytes())
    assert len(meta["covered_spans_ns"]["BTCUSDT"]["depth_diff"]) == 2
    # the August capture's chunks replay from its own snapshot, not from July's (a new capture)
    import pyarrow.parquet as pq

    from gpu_lpi.run import INPUTS_KEY
    august = sorted((tmp_path / "run" / "features" / "symbol=BTCUSDT" / "date=2024-08-08").glob("*.parquet"))
    for part in august:
        for piece in orjson.loads(pq.read_metadata(part).metadata[INPUTS_KEY]):
            start = next(r["start_ns"] for r in piece["reads"] if r["table"] == "depth_diff")
            assert start >= int(np.datetime64("2024-08-08T23:54", "ns").astype(np.int64))


def test_a_store_without_covered_spans_is_refused(tmp_path):
    import shutil

    store = random_store(tmp_path / "store", seed=5, minutes=1.0)
    shutil.rmtree(store.root / "coverage")
    with pytest.raises(ConfigError, match="records no covered time spans for TESTUSDT"):
        run_job(_spec(store), out=tmp_path / "run", device="cpu")


@pytest.mark.parametrize("prepare, message", [
    (lambda out: out.write_text("x"), "is a file, not a folder"),
    (lambda out: out.mkdir() or (out / "run.json").write_text("{broken"), "its run.json is not readable"),
    (lambda out: out.mkdir() or (out / "run.json").write_text("[1, 2]"), "holds a run with a different config"),
])
def test_unusable_run_folders_are_one_line_errors(store, tmp_path, prepare, message):
    out = tmp_path / "out"
    prepare(out)
    with pytest.raises(ConfigError, match=message):
        run_job(_spec(store), out=out, device="cpu")


def test_repeated_symbols_are_refused(store):
    with pytest.raises(ConfigError, match="data.symbols: TESTUSDT listed more than once"):
        load_job_spec(_spec(store, data={"symbols": [SYMBOL, SYMBOL]}))


def test_the_scheduler_of_the_job_spec_is_used_or_refused(store, tmp_path, monkeypatch):
    """The red team's case: ``[cluster] scheduler`` was accepted and ignored."""
    from distributed import LocalCluster

    import jobs.cluster as cluster_module

    monkeypatch.setattr(cluster_module, "SCHEDULER_TIMEOUT", "1s")
    with pytest.raises(ConfigError, match="cluster.scheduler: cannot reach a Dask scheduler"):
        run_job(_spec(store, cluster={"scheduler": "tcp://127.0.0.1:1"}), out=tmp_path / "r1", device="cpu")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        result = run_job(_spec(store, cluster={"scheduler": cluster.scheduler_address}), out=tmp_path / "r2",
                         device="cpu")
        assert result.chunks["computed"] == 1
        assert "features-TESTUSDT" in cluster.scheduler.task_prefixes     # the chunk ran there
