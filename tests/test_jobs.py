"""Jobs (issue 8): the job spec's [cluster] and [sweep], the task graph, exact chunking, sweeps,
failed tasks reported with the rest finished."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from gpu_lpi.errors import ConfigError
from gpu_lpi.features import compute_features
from gpu_lpi.job_spec import ClusterSpec, load_job_spec
from gpu_lpi.run import run_job
from jobs.runner import JobError
from tests.feature_stores import SYMBOL, T0, random_store

PARAMS = {"window_hours": 0.05, "adv_window_hours": 0.05, "depth_window_hours": 0.05, "min_periods_s": 10.0}
NS_PER_DAY = 86_400 * 10**9


def _spec(store, **sections):
    spec = {"data": {"store": str(store.root), "symbols": [SYMBOL], "start": "2024-08-05", "end": "2024-08-05"},
            "params": dict(PARAMS)}
    for name, values in sections.items():
        spec[name] = {**spec.get(name, {}), **values}
    return spec


@pytest.fixture(scope="module")
def hours_store(tmp_path_factory):
    """Two and a half hours of a random market: three 1 h chunks."""
    return random_store(tmp_path_factory.mktemp("jobs") / "store", seed=3, minutes=150.0, trades_per_minute=200)


def _table(run_dir) -> pa.Table:
    return ds.dataset(run_dir / "features" / f"symbol={SYMBOL}", format="parquet").to_table().sort_by("ts")


def _bytes(table: pa.Table) -> bytes:
    """The table as one Parquet file: equal bytes = equal values, NaN payloads included."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(None), sink)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("cluster, message", [
    ({"scheduler": "cluster"}, "cluster.scheduler: expected one of sync, local, local-cuda or a scheduler address"),
    ({"scheduler": 8786}, "cluster.scheduler: expected one of"),
    ({"n_workers": 0}, r"cluster.n_workers: expected a whole number >= 1"),
    ({"threads_per_worker": 1.5}, r"cluster.threads_per_worker: expected a whole number >= 1"),
    ({"retries": -1}, r"cluster.retries: expected a whole number >= 0"),
    ({"memory_limit": "lots"}, "cluster.memory_limit: expected"),
    ({"rmm_pool_size": "20GB"}, r"cluster.rmm_pool_size: only with scheduler = \"local-cuda\""),
    ({"scheduler": "tcp://h:8786", "n_workers": 2}, "cluster.n_workers: set where the workers are started"),
    ({"chunk_hours": 7}, "cluster.chunk_hours: expected a whole number of hours dividing 24"),
    ({"workers": 2}, "cluster.workers: unknown key"),
    ({"n_workers": 4}, r"cluster.n_workers: not used with scheduler = \"sync\""),
    ({"scheduler": "tcp://h:8786", "memory_limit": "1GB"}, "cluster.memory_limit: set where the workers are started"),
])
def test_cluster_settings_are_checked(hours_store, cluster, message):
    with pytest.raises(ConfigError, match=message):
        load_job_spec(_spec(hours_store, cluster=cluster))


def test_cluster_settings_that_are_accepted():
    spec = ClusterSpec.from_mapping({"scheduler": "local", "n_workers": 2, "memory_limit": "4GB"})
    assert (spec.n_workers, spec.memory_limit, spec.is_address) == (2, "4GB", False)
    assert ClusterSpec.from_mapping({"scheduler": "tcp://10.0.0.1:8786"}).is_address
    assert ClusterSpec.from_mapping({"scheduler": "local-cuda", "rmm_pool_size": "20GB"}).rmm_pool_size == "20GB"
    moved = spec.with_scheduler("tcp://10.0.0.1:8786")     # gpu-lpi run --scheduler ADDRESS
    assert moved.is_address and moved.n_workers is None and moved.memory_limit == "auto"   # not its to set


@pytest.mark.parametrize("sections, message", [
    ({"sweep": {"thetabps": [4.0]}}, "sweep.thetabps: unknown parameter"),
    ({"sweep": {"theta_bps": []}}, "sweep.theta_bps: expected a non-empty list"),
    ({"sweep": {"theta_bps": 4.0}}, "sweep.theta_bps: expected a non-empty list"),
    ({"sweep": {"theta_bps": [4.0, 4.0]}}, "sweep.theta_bps: a value is listed more than once"),
    ({"sweep": {"theta_bps": [4, 4.0]}}, "sweep.theta_bps: a value is listed more than once"),
    ({"sweep": {"lpi_hi": [3.0, 2.5], "lpi_exit": [1.2, 2.8]}},
     r"\[sweep\] combination lpi_hi=2.5, lpi_exit=2.8: params.lpi_exit: expected less than lpi_hi"),
    ({"sweep": {"tick_ms": [100, 250]}}, "sweep.tick_ms: the tick cannot be swept"),
    ({"sweep": {"theta_bps": list(range(1, 201)), "eta_bps": list(range(1, 101))}}, r"20,000 combinations"),
    ({"sweep": {"lpi_exit": [1.0, 5.0]}}, r"combination lpi_exit=5.0: params.lpi_exit"),   # > lpi_hi
    ({"sim": {"fees": 1}}, r"sim\.fees: expected a table of symbols"),
    ({"sweep": {"theta_bps": [3.0]}, "cv": {"folds": 5}}, r"cv.folds: unknown key"),
])
def test_sweeps_and_unbuilt_stages_are_checked(hours_store, sections, message):
    with pytest.raises(ConfigError, match=message):
        load_job_spec(_spec(hours_store, **sections))


def test_a_sweep_is_the_cartesian_grid_in_order(hours_store):
    spec = load_job_spec(_spec(hours_store, sweep={"theta_bps": [4.0, 6.0], "lpi_hi": [2.5, 3.0, 3.5]}))
    grid = [(job.params.theta_bps, job.params.lpi_hi) for job in spec.combinations()]
    assert grid == [(4.0, 2.5), (4.0, 3.0), (4.0, 3.5), (6.0, 2.5), (6.0, 3.0), (6.0, 3.5)]
    assert all(not job.sweep and job.params.window_hours == 0.05 for job in spec.combinations())


def test_one_hour_one_day_and_no_chunks_give_the_same_features(hours_store, tmp_path):
    """Chunked = unchunked exactly: 1 h chunks (three, each loading its own history), 1 day chunks,
    and the whole day computed in one call."""
    hourly = run_job(_spec(hours_store, cluster={"chunk_hours": 1}), out=tmp_path / "hourly", device="cpu")
    daily = run_job(_spec(hours_store), out=tmp_path / "daily", device="cpu")
    assert hourly.chunks["computed"] == 3 and daily.chunks["computed"] == 1
    whole = compute_features(hours_store, SYMBOL, T0, T0 + NS_PER_DAY,
                             load_job_spec(_spec(hours_store)).params, device="cpu").drop_columns(["symbol"])
    pieces, day = _table(tmp_path / "hourly"), _table(tmp_path / "daily")
    assert pieces.num_rows == day.num_rows == whole.num_rows == 150 * 60 * 4
    assert _bytes(pieces) == _bytes(day)
    assert _bytes(pieces.select(whole.column_names)) == _bytes(whole)
    assert hourly.n_events == daily.n_events
    assert (tmp_path / "hourly" / "events.parquet").read_bytes() == (tmp_path / "daily" / "events.parquet").read_bytes()


def test_a_sweep_writes_one_result_set_per_combination_and_resumes(hours_store, tmp_path):
    spec = _spec(hours_store, sweep={"theta_bps": [3.0, 8.0], "lpi_hi": [2.5, 3.0]})
    result = run_job(spec, out=tmp_path / "sweep", device="cpu")
    table = result.table()
    assert table["id"].tolist() == ["0000", "0001", "0002", "0003"]
    assert table[["theta_bps", "lpi_hi"]].values.tolist() == [[3.0, 2.5], [3.0, 3.0], [8.0, 2.5], [8.0, 3.0]]
    for combination, run in zip(result.combinations, result.runs):
        assert run.out == tmp_path / "sweep" / "sweep" / combination["id"]
        recorded = orjson.loads((run.out / "run.json").read_bytes())["config"]["params"]
        assert (recorded["theta_bps"], recorded["lpi_hi"]) == (combination["theta_bps"], combination["lpi_hi"])
        assert (run.out / "events.parquet").exists() and (run.out / "study.json").exists()
    impact = {run.out.name: _table(run.out).column("v_impact").to_numpy() for run in result.runs}
    assert (impact["0000"] == impact["0001"]).all()           # lpi_hi does not change the features
    assert (impact["0000"] >= impact["0002"]).all() and (impact["0000"] > impact["0002"]).any()  # θ does
    assert orjson.loads((tmp_path / "sweep" / "run.json").read_bytes())["status"] == "complete"
    again = run_job(spec, out=tmp_path / "sweep", device="cpu")
    assert all(run.chunks == {"computed": 0, "existing": 1, "recomputed": 0} for run in again.runs)


def test_a_failed_chunk_is_reported_after_the_others_finish(hours_store, tmp_path, monkeypatch):
    """One task fails: the other chunks are written, the events of the failed day are not run,
    run.json says which and why, the command ends with one line; the re-run redoes only it."""
    import gpu_lpi.run as run_module

    real = run_module.compute_feature_variants

    def broken(store, symbol, start, end, *args, **kwargs):
        if start == T0 + 3_600 * 10**9:
            raise OSError("disk on fire")
        return real(store, symbol, start, end, *args, **kwargs)

    monkeypatch.setattr(run_module, "compute_feature_variants", broken)
    out = tmp_path / "run"
    spec = _spec(hours_store, cluster={"chunk_hours": 1})
    with pytest.raises(JobError, match=r"1 of 4 tasks failed \(first: features-TESTUSDT-2024-08-05-0100: "
                                       r"OSError: disk on fire\), 1 did not run for want of their results, "
                                       r"2 finished; re-run") as raised:
        run_job(spec, out=out, device="cpu")
    assert "\n" not in str(raised.value)
    recorded = orjson.loads((out / "run.json").read_bytes())
    assert recorded["status"] == "failed"
    assert recorded["errors"] == [
        {"task": "features-TESTUSDT-2024-08-05-0100", "error": "OSError: disk on fire"},
        {"task": "events-TESTUSDT-2024-08-05", "error": "not run: features-TESTUSDT-2024-08-05-0100 failed"}]
    folder = out / "features" / f"symbol={SYMBOL}" / "date=2024-08-05"
    assert sorted(p.name for p in folder.iterdir()) == ["part-0000.parquet", "part-0200.parquet"]
    monkeypatch.setattr(run_module, "compute_feature_variants", real)
    again = run_job(spec, out=out, device="cpu")
    assert again.chunks == {"computed": 1, "existing": 2, "recomputed": 0}
    clean = run_job(spec, out=tmp_path / "clean", device="cpu")
    assert _bytes(_table(out)) == _bytes(_table(tmp_path / "clean"))
    assert clean.n_events == again.n_events


def test_run_json_records_where_it_ran_and_memory_per_stage(hours_store, tmp_path):
    run_job(_spec(hours_store), out=tmp_path / "run", device="cpu")
    recorded = orjson.loads((tmp_path / "run" / "run.json").read_bytes())
    assert recorded["cluster"] == {"scheduler": "sync", "address": None, "workers": 0, "dashboard": None}
    assert set(recorded["peak_rss_mib"]) == {"features", "events", "study"}
    assert all(value > 50 for value in recorded["peak_rss_mib"].values())
    assert recorded["resolved_spec"]["cluster"]["scheduler"] == "sync"
    assert "scheduler" not in recorded["config"]["cluster"]      # resuming does not depend on it


def test_a_run_folder_resumes_under_another_scheduler(hours_store, tmp_path):
    from distributed import Client, LocalCluster

    run_job(_spec(hours_store), out=tmp_path / "run", device="cpu")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        again = run_job(_spec(hours_store), out=tmp_path / "run", device="cpu", client=client)
    assert again.chunks == {"computed": 0, "existing": 1, "recomputed": 0}
    assert again.cluster["workers"] == 1


def test_every_shipped_job_spec_is_valid():
    from pathlib import Path

    specs = sorted((Path(__file__).resolve().parents[1] / "jobs" / "specs").glob("*.toml"))
    assert {p.stem for p in specs} >= {"quick", "universe_study", "sweep", "demo", "real_captures"}
    for path in specs:
        spec = load_job_spec(path)
        assert spec.symbols and spec.combinations()


def test_imports_flow_from_jobs_to_gpu_lpi_to_kernels():
    """DESIGN.md §1: no module of gpu_lpi imports jobs when it is loaded (run_job and the command
    line hand over to jobs/ inside a function), and kernels import neither."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def top_level_imports(path):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                yield node.module

    for package, forbidden in (("gpu_lpi", ("jobs",)), ("kernels", ("jobs", "gpu_lpi"))):
        for path in (root / package).rglob("*.py"):
            for name in top_level_imports(path):
                assert name.split(".")[0] not in forbidden, f"{path.relative_to(root)} imports {name}"


def test_a_parameter_block_reads_and_computes_the_features_once(hours_store, tmp_path, monkeypatch):
    """Combinations that differ in signal parameters only share one task per chunk (one read of
    the inputs, one computation of the features), and each combination's files are the bytes of
    the same job run alone -- also where the combinations need different histories (refractory_s)."""
    import gpu_lpi.run as run_module

    calls = []
    real = run_module.compute_feature_variants

    def counting(store, symbol, start, end, variants, *args, **kwargs):
        calls.append(len(variants))
        return real(store, symbol, start, end, variants, *args, **kwargs)

    monkeypatch.setattr(run_module, "compute_feature_variants", counting)
    sweep = {"theta_bps": [3.0, 8.0], "lpi_hi": [2.0, 3.0], "refractory_s": [20.0, 240.0]}
    result = run_job(_spec(hours_store, sweep=sweep, cluster={"chunk_hours": 1}), out=tmp_path / "sweep",
                     device="cpu")
    assert calls == [4] * 6          # 3 chunks x 2 blocks (θ), each computing its 4 signal variants
    monkeypatch.setattr(run_module, "compute_feature_variants", real)
    for combination in (result.combinations[0], result.combinations[5]):
        params = {**PARAMS, **{k: v for k, v in combination.items() if k != "id"}}
        alone = run_job(_spec(hours_store, params=params, cluster={"chunk_hours": 1}),
                        out=tmp_path / f"alone-{combination['id']}", device="cpu")
        swept = tmp_path / "sweep" / "sweep" / combination["id"]
        assert _bytes(_table(swept)) == _bytes(_table(alone.out))
        assert (swept / "events.parquet").read_bytes() == (alone.out / "events.parquet").read_bytes()
    panic = {c["id"]: _table(tmp_path / "sweep" / "sweep" / c["id"]).column("cond_panic").to_numpy(zero_copy_only=False)
             for c in result.combinations}
    assert panic["0000"].sum() > panic["0002"].sum() > 0     # lpi_hi 2 against 3: the signals differ


def test_the_scheduler_option_is_checked_and_named(hours_store, tmp_path):
    from jobs.runner import run_job_spec

    with pytest.raises(ConfigError, match="^--scheduler: expected one of sync, local, local-cuda"):
        run_job_spec(_spec(hours_store), out=tmp_path / "run", device="cpu", scheduler="nowhere")
    assert not (tmp_path / "run").exists()


def test_a_run_folder_is_written_by_one_run_at_a_time(hours_store, tmp_path):
    """The red team's case: two runs into one folder raced (one deleted the other's files)."""
    from gpu_lpi.run import RUN_LOCK
    from gpu_lpi.store.locking import FileLock

    out = tmp_path / "run"
    out.mkdir()
    import subprocess
    import sys
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from gpu_lpi.store.locking import FileLock; "
                               f"lock = FileLock({str(out / RUN_LOCK)!r}); assert lock.try_acquire(); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=r"--out .*: in use by process \d+"):
            run_job(_spec(hours_store), out=out, device="cpu")
    finally:
        holder.kill()
        holder.wait()
    assert run_job(_spec(hours_store), out=out, device="cpu").chunks["computed"] == 1   # a dead holder holds nothing
    assert FileLock(out / RUN_LOCK).try_acquire()      # released when the run ended


def test_run_folders_are_absolute_and_outside_the_store(hours_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_job(_spec(hours_store), out="relative", device="cpu")
    assert result.out == tmp_path / "relative" and result.out.is_absolute()   # workers elsewhere agree
    with pytest.raises(ConfigError, match="is inside the tick store"):
        run_job(_spec(hours_store), out=hours_store.root / "runs" / "x", device="cpu")
    assert not (hours_store.root / "runs").exists()


def test_a_job_without_data_in_its_dates_is_an_error(hours_store, tmp_path):
    spec = _spec(hours_store, data={"start": "2024-09-01", "end": "2024-09-02"})
    with pytest.raises(ConfigError, match=r"holds no data of TESTUSDT from 2024-09-01 to 2024-09-02; "
                                          r"it covers TESTUSDT 2024-08-04..2024-08-05"):
        run_job(spec, out=tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


def test_a_failed_sweep_says_so_at_the_top_and_per_combination(hours_store, tmp_path, monkeypatch):
    import gpu_lpi.run as run_module

    def broken(store, symbol, start, end, variants, *args, **kwargs):
        if any(v.theta_bps == 8.0 for v in variants):
            raise OSError("disk on fire")
        return real(store, symbol, start, end, variants, *args, **kwargs)

    real = run_module.compute_feature_variants
    monkeypatch.setattr(run_module, "compute_feature_variants", broken)
    out = tmp_path / "sweep"
    with pytest.raises(JobError, match="1 of 4 tasks failed"):
        run_job(_spec(hours_store, sweep={"theta_bps": [3.0, 8.0]}), out=out, device="cpu")
    assert orjson.loads((out / "run.json").read_bytes())["status"] == "failed"
    good, bad = (orjson.loads((out / "sweep" / i / "run.json").read_bytes()) for i in ("0000", "0001"))
    assert good["status"] == bad["status"] == "failed"
    assert good["errors"] == []
    assert [e["task"] for e in bad["errors"]] == ["features-TESTUSDT-2024-08-05-0000-b001",
                                                  "events-TESTUSDT-2024-08-05-0001"]
