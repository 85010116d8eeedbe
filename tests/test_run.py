"""run_job: job spec validation, run folder layout, resume, chunking."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from gpu_lpi.errors import ConfigError
from gpu_lpi.features import FEATURE_COLUMNS
from gpu_lpi.run import load_job_spec, run_job
from tests.feature_stores import SYMBOL, random_store

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
    assert result.chunks == {"computed": 1, "existing": 0, "empty": 0}
    table = result.features()
    assert table.num_rows == 86_400 * 4
    assert set(FEATURE_COLUMNS) <= set(table.column_names)
    assert np.isfinite(table.column("lpi_down").to_numpy()).sum() > 300
    meta = orjson.loads((out / "run.json").read_bytes())
    assert meta["status"] == "complete" and meta["device"] == "cpu"
    assert meta["book_source"] == {SYMBOL: "book_ticker"}
    assert meta["config"]["params"]["theta_bps"] == 5.0 and meta["config"]["grid"]["tick_ms"] == 250
    assert {"numpy", "numba", "pyarrow", "cupy"} <= set(meta["versions"])
    assert {"io", "book", "grid", "features", "robust_z", "total"} <= set(meta["seconds"])
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
    assert hourly.chunks["computed"] == 24
    pieces, whole = hourly.features().sort_by("ts"), day.sort_by("ts")
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
    assert loaded.resolved()["study"] == {"horizons_s": [1, 5]}
    with pytest.raises(ConfigError, match="not valid TOML"):
        (tmp_path / "bad.toml").write_text("[data\n")
        load_job_spec(tmp_path / "bad.toml")
