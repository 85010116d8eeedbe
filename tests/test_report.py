"""``gpu-lpi report RUN``: one self-contained page from a run folder (notes/study_schema.md).

The run folders here are fabricated by :func:`make_run` following the schema: per symbol a features
file of a few thousand ticks with planted cascades (price falls, LPI rises past lpi_hi, the state
turns FORCED, exhaustion at the rollover) and an informed repricing; events taken at those ticks
with markouts computed from the features' mid exactly as the schema defines them; a study.json
summarising those events.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import struct
import subprocess
import time
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import gpu_lpi
from gpu_lpi.cli import main
from gpu_lpi.errors import ConfigError
from gpu_lpi.events import markout_column
from gpu_lpi.report import read_window, write_report
from gpu_lpi.store import date_to_ns

DAY = date(2024, 8, 5)
TICK_NS = 250_000_000
N_TICKS = 4_000
HORIZONS = [0.5, 1, 2, 5, 30, 120]
LATENCY_NS = 100_000_000
COST_BPS = 10.0
HOSTILE = "<img src=x onerror=alert(1)>&\"'"
SECTIONS = ["verdict", "markouts", "windows", "distributions", "symbols", "data", "drift", "metadata"]
#: (tick, kind): planted forced cascades exhaust at their tick; the informed repricing is an INFORMED event.
PLANTED = [(1_200, "forced"), (2_000, "informed"), (2_800, "forced")]
_COND = ["cond_panic", "cond_rollover", "cond_oi_flush", "cond_liquidity", "cond_divergence"]


# -- the fabricated run folder ---------------------------------------------------------------------------
def _features(symbol_index: int, depth: bool, oi: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(symbol_index)
    ts = date_to_ns(DAY) + 3_600 * 10**9 + np.arange(N_TICKS, dtype=np.int64) * TICK_NS
    log_price = np.cumsum(rng.normal(0.0, 1e-5, N_TICKS))
    lpi_down, lpi_up = np.abs(rng.normal(0.0, 0.4, N_TICKS)), np.abs(rng.normal(0.0, 0.4, N_TICKS))
    state = np.zeros(N_TICKS, dtype=np.int8)
    state[:240] = -1                                   # warming up
    exhaustion = np.zeros(N_TICKS, dtype=bool)
    for tick, kind in PLANTED:
        ramp = np.exp(-0.5 * ((np.arange(N_TICKS) - (tick - 40)) / 25.0) ** 2)
        if kind == "forced":       # fall of ~60 bps into the exhaustion tick, half recovered after it
            log_price -= 0.006 * np.clip((np.arange(N_TICKS) - (tick - 120)) / 120.0, 0, 1)
            log_price += 0.003 * np.clip((np.arange(N_TICKS) - tick) / 200.0, 0, 1)
            lpi_down += 6.0 * ramp
            state[tick - 120:tick + 40] = 1
            exhaustion[tick] = True
        else:                      # informed repricing up that keeps going
            log_price += 0.004 * np.clip((np.arange(N_TICKS) - (tick - 20)) / 200.0, 0, 1)
            lpi_up += 4.0 * ramp
    mid = (60_000.0 / (symbol_index + 1)) * np.exp(log_price)
    nan = np.full(N_TICKS, np.nan)
    columns = {
        "ts": ts, "book_valid": np.ones(N_TICKS, dtype=bool), "mid": mid, "spread": mid * 1e-5,
        "microprice": mid, "r": np.r_[0.0, np.diff(np.log(mid))], "dollar_volume": rng.exponential(1e5, N_TICKS),
        "v_impact": rng.exponential(1e4, N_TICKS), "adv": np.full(N_TICKS, 1e9),
        "fsi": lpi_down / 2, "ldr": lpi_down / 3, "pi": lpi_up / 2,
        "d_oi": 50.0 * lpi_down + rng.normal(0, 5, N_TICKS) if oi else nan,
        "rv": np.full(N_TICKS, 1e-4), "liq_sell_notional": nan, "liq_buy_notional": nan,
        "z_fsi": lpi_down, "z_ldr": lpi_down, "z_pi": lpi_up, "z_doi": lpi_down if oi else nan,
        "lpi_down": lpi_down, "lpi_up": lpi_up, "state": state,
        "side": np.where(lpi_down >= lpi_up, -1, 1).astype(np.int8),
        "forced_down": state == 1, "forced_up": np.zeros(N_TICKS, dtype=bool),
        **{c: exhaustion.copy() for c in _COND}, "exhaustion": exhaustion,
        "dir": np.where(exhaustion, 1, 0).astype(np.int8), "target_w": np.where(exhaustion, 0.5, 0.0),
        "sigma": np.full(N_TICKS, 1e-4), "leader_forced_down": state == 1,
    }
    if depth:
        columns["depth_bid"] = 2e6 * (1.2 - 0.8 * np.clip(lpi_down / 6, 0, 1))
        columns["depth_ask"] = 2e6 + rng.normal(0, 1e4, N_TICKS)
    return columns


def _mid_at(ts: np.ndarray, mid: np.ndarray, when: int) -> float:
    """The mid of the last tick at or before ``when`` (NaN past the end of the data)."""
    if when > ts[-1]:
        return float("nan")
    return float(mid[np.searchsorted(ts, when, side="right") - 1])


def _events(symbol: str, columns: dict, state_path: str) -> list[dict]:
    ts, mid = columns["ts"], columns["mid"]
    rows = []
    for tick, kind in PLANTED:
        event_ts = int(ts[tick])
        decision = event_ts + LATENCY_NS
        ref = _mid_at(ts, mid, decision)
        direction = 1 if kind == "forced" else -1          # fading the informed move loses
        row = {"symbol": symbol, "ts": event_ts, "decision_ts": decision, "day": DAY.isoformat(),
               "side": "down" if kind == "forced" else "up", "dir": direction,
               "state": "FORCED" if kind == "forced" else "INFORMED", "exhaustion": kind == "forced",
               "lpi": float(max(columns["lpi_down"][tick], columns["lpi_up"][tick])),
               "target_w": 0.5 if kind == "forced" else 0.0, "z_fsi": float(columns["z_fsi"][tick]),
               "z_doi": float(columns["z_doi"][tick]), "z_liq": float("nan"),
               **{c: kind == "forced" for c in _COND}, "state_path": state_path,
               "funding_rate": float("nan"), "funding_regime": "unknown", "ref_price": ref}
        for h in HORIZONS:
            row[markout_column(h)] = direction * (_mid_at(ts, mid, decision + int(h * 1e9)) - ref) / ref * 1e4
        rows.append(row)
    return rows


_EVENT_TYPES = {"symbol": pa.string(), "ts": pa.int64(), "decision_ts": pa.int64(), "day": pa.string(),
                "side": pa.string(), "dir": pa.int8(), "state": pa.string(), "exhaustion": pa.bool_(),
                "lpi": pa.float64(), "target_w": pa.float64(), "z_fsi": pa.float64(), "z_doi": pa.float64(),
                "z_liq": pa.float64(), **{c: pa.bool_() for c in _COND}, "state_path": pa.string(),
                "funding_rate": pa.float64(), "funding_regime": pa.string(), "ref_price": pa.float64(),
                **{markout_column(h): pa.float64() for h in HORIZONS}}


def _summary(values: list[float], horizon: float) -> dict:
    finite = np.array([v for v in values if np.isfinite(v)])
    if not finite.size:
        return {"horizon_s": horizon, "n": 0, **dict.fromkeys(
            ["mean", "median", "p5", "hit_rate", "ci_low", "ci_high"])}
    half = 1.96 * finite.std(ddof=1) / np.sqrt(finite.size) if finite.size > 1 else None
    mean = float(finite.mean())
    return {"horizon_s": horizon, "n": int(finite.size), "mean": mean, "median": float(np.median(finite)),
            "p5": float(np.quantile(finite, 0.05)), "hit_rate": float((finite > 0).mean()),
            "ci_low": mean - half if half is not None else None, "ci_high": mean + half if half is not None else None}


def _study(events: list[dict]) -> dict:
    def group(split, value, rows):
        return {"split": split, "value": value, "n_events": len(rows), "n_days": len({r["day"] for r in rows}),
                "markouts": [_summary([r[markout_column(h)] for r in rows], h) for h in HORIZONS]}

    groups = [group("all", "all", events)]
    for split, key in (("state", "state"), ("side", "side"), ("symbol", "symbol"), ("funding_regime", "funding_regime")):
        for value in sorted({r[key] for r in events}):
            groups.append(group(split, value, [r for r in events if r[key] == value]))
    forced = [r for r in events if r["state"] == "FORCED" and r["exhaustion"]]
    informed = [r for r in events if r["state"] == "INFORMED"]
    groups += [group("kind", "forced_exhaustion", forced), group("kind", "informed", informed)]
    f5 = _summary([r[markout_column(5)] for r in forced], 5)
    i5 = _summary([r[markout_column(5)] for r in informed], 5)
    return {
        "horizons_s": HORIZONS, "latency_ms": 100.0, "fill_reference": "mid",
        "costs_bps": {"maker_fee_bps": 2.0, "taker_fee_bps": 5.0, "maker_round_trip_bps": 4.0,
                      "taker_round_trip_bps": COST_BPS},
        "ci": {"method": "normal approximation", "level": 0.95}, "n_events": len(events), "groups": groups,
        "answer": {"horizon_s": 5.0, "forced_exhaustion_mean_bps": f5["mean"], "forced_ci_low_bps": f5["ci_low"],
                   "informed_mean_bps": i5["mean"], "informed_ci_high_bps": i5["ci_high"], "cost_bps": COST_BPS,
                   "forced_positive_after_costs": None if f5["ci_low"] is None else bool(f5["ci_low"] > COST_BPS),
                   "informed_not_positive": None if i5["ci_high"] is None else bool(i5["ci_high"] <= 0),
                   "text": f"VERDICT: forced exhaustion markout at 5 s is {f5['mean']} bps."},
        "drift_regression": {"pooled": {"n": N_TICKS, "maxlags": 8,
                                        "params": {"const": 0.0, "r_t": -0.05, "forced_exhaustion": 1.2, "informed": -0.3},
                                        "se_hac": {"const": 0.01, "r_t": 0.02, "forced_exhaustion": 0.4, "informed": 0.2},
                                        "t": {"const": 0.0, "r_t": -2.5, "forced_exhaustion": 3.0, "informed": -1.5},
                                        "p": {"const": 1.0, "r_t": 0.01, "forced_exhaustion": 0.003, "informed": 0.13}}},
    }


def make_run(root, symbols=("BTCUSDT", "ETHUSDT"), depth=True, oi=True, with_events=True):
    """A run folder following notes/study_schema.md; returns its path."""
    run = root / "run"
    book_source = "depth_diff" if depth else "trades"
    state_path = "oi" if oi else "proxy"
    events = []
    spans = {}
    for index, symbol in enumerate(symbols):
        columns = _features(index, depth, oi)
        folder = run / "features" / f"symbol={symbol}" / f"date={DAY.isoformat()}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table(columns), folder / "part-0000.parquet")
        spans[symbol] = {("depth_diff" if depth else "trades"): [[int(columns["ts"][0]), int(columns["ts"][-1])]]}
        if with_events:
            events += _events(symbol, columns, state_path)
    pq.write_table(pa.Table.from_pylist(events, schema=pa.schema(_EVENT_TYPES)), run / "events.parquet")
    (run / "study.json").write_text(json.dumps(_study(events), allow_nan=False))
    config = {"data": {"store": "/store", "symbols": list(symbols), "start": DAY.isoformat(), "end": DAY.isoformat()},
              "grid": {"tick_ms": 250}, "params": {"lpi_hi": 3.0, "lpi_exit": 1.2, "window_hours": 2.0},
              "cluster": {"scheduler": "local", "chunk_hours": 24}}
    (run / "run.json").write_text(json.dumps({
        "config": config, "status": "complete", "device": "cpu", "versions": {"python": "3.11", "numpy": "2.4"},
        "book_source": dict.fromkeys(symbols, book_source),
        "degraded": {s: [] if depth else ["no book depth: cond_liquidity from trades only"] for s in symbols},
        "state_path": dict.fromkeys(symbols, state_path),
        "crash_filter": {"leader": symbols[0], "active": True, "reason": "leader listed"},
        "covered_spans_ns": spans, "seconds": {"features": 1.5, "total": 2.0},
        "chunks": {"computed": len(symbols), "existing": 0, "recomputed": 0}, "written": "2024-08-06T00:00:00+00:00"}))
    return run


# -- checks on the page ----------------------------------------------------------------------------------
def _images(page: str) -> list[bytes]:
    tags = re.findall(r"<img\b[^>]*>", page)
    images = []
    for tag in tags:
        match = re.fullmatch(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="[^"<>]*">', tag)
        assert match, f"not an embedded PNG: {tag[:80]}"
        images.append(base64.b64decode(match.group(1), validate=True))
    return images


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _assert_self_contained(page: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//|file:)""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page
    for data in _images(page):
        width, height = _png_size(data)
        assert width > 100 and height > 100


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path)


def test_report_is_one_self_contained_page_with_every_section(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    page = path.read_text(encoding="utf-8")
    _assert_self_contained(page)
    # one figure of markout curves, one per plotted event (4 of 6), one of distributions
    assert len(_images(page)) == 1 + 4 + 1
    for section in SECTIONS:
        assert f'<section id="{section}"' in page
    positions = [page.index(f'<section id="{s}"') for s in SECTIONS]
    assert positions == sorted(positions)
    # the verdict is the first thing after the title, above every figure
    assert page.index("VERDICT: forced exhaustion markout") < page.index("<img")
    assert not list(run_dir.glob(".report.html.*"))
    # the covered span is shown as readable UTC, the fallback columns are filled
    assert "2024-08-05 01:00:00.000 UTC" in page and "depth_diff" in page


def test_largest_events_are_plotted_from_their_window(run_dir):
    """The windows come from the features of the event's symbol, around its tick, nothing more."""
    features = pq.read_table(run_dir / "features" / "symbol=ETHUSDT" / f"date={DAY}" / "part-0000.parquet")
    ts = features.column("ts").to_numpy()
    start, end = int(ts[1000]), int(ts[1500])
    window = read_window(run_dir / "features", "ETHUSDT", start, end)
    assert window["ts"].tolist() == ts[1000:1501].tolist()
    assert np.array_equal(window["mid"].to_numpy(), features.column("mid").to_numpy()[1000:1501])
    assert "depth_bid" in window.columns and "liq_sell_notional" in window.columns
    assert read_window(run_dir / "features", "ETHUSDT", end + 10**12, end + 2 * 10**12).empty
    assert read_window(run_dir / "features", "NOSUCH", start, end).empty


def test_features_outside_the_event_windows_are_never_read(run_dir):
    """A run can hold months: the page opens only the days its windows meet (here a corrupt file
    on another day, which any read of the whole dataset would trip over)."""
    other = run_dir / "features" / "symbol=BTCUSDT" / "date=2024-09-01"
    other.mkdir(parents=True)
    (other / "part-0000.parquet").write_bytes(b"not parquet")
    page = write_report(run_dir).read_text()
    assert len(_images(page)) == 6


def test_many_events_keep_the_page_small_and_fast(tmp_path):
    run = make_run(tmp_path)
    events = pq.read_table(run / "events.parquet")
    many = pa.concat_tables([events] * 2_000)          # 12,000 events on the same windows
    pq.write_table(many, run / "events.parquet")
    begin = time.perf_counter()
    page = write_report(run, n_events=3).read_text()
    seconds = time.perf_counter() - begin
    assert len(_images(page)) == 1 + 3 + 1
    assert seconds < 60, seconds                         # generous: a shared 2-core machine


def test_strings_from_the_run_are_escaped(tmp_path):
    run = make_run(tmp_path, symbols=(HOSTILE, "ETHUSDT"))
    study = json.loads((run / "study.json").read_text())
    study["answer"]["text"] = "<b>bold</b> claim & more"
    (run / "study.json").write_text(json.dumps(study))
    page = write_report(run).read_text()
    _assert_self_contained(page)
    assert HOSTILE not in page and "<b>bold</b>" not in page
    assert html.escape(HOSTILE, quote=True) in page and "&lt;b&gt;bold&lt;/b&gt; claim &amp; more" in page
    assert len(_images(page)) == 6                     # the hostile symbol's windows were found and drawn


def test_zero_events_still_render_data_and_fallbacks(tmp_path):
    run = make_run(tmp_path, with_events=False)
    page = write_report(run).read_text()
    _assert_self_contained(page)
    for section in SECTIONS:
        assert f'<section id="{section}"' in page
    assert "No events in this run" in page
    assert "depth_diff" in page and "BTCUSDT" in page and "ETHUSDT" in page


def test_trades_only_run_without_open_interest(tmp_path):
    run = make_run(tmp_path, depth=False, oi=False)
    page = write_report(run).read_text()
    _assert_self_contained(page)
    assert len(_images(page)) == 6
    assert "trades" in page and "no book depth: cond_liquidity from trades only" in page and "proxy" in page


def test_one_state_and_unknown_markouts(tmp_path):
    run = make_run(tmp_path)
    events = pq.read_table(run / "events.parquet").to_pandas()
    events = events[events["state"] == "FORCED"]
    events[markout_column(120)] = np.nan
    events = events.drop(columns=[markout_column(30)])
    pq.write_table(pa.Table.from_pandas(events, preserve_index=False), run / "events.parquet")
    study = json.loads((run / "study.json").read_text())
    study["groups"] = [g for g in study["groups"] if g["value"] not in ("INFORMED", "informed")]
    for group in study["groups"]:
        group["markouts"][-1].update(dict.fromkeys(["mean", "median", "p5", "hit_rate", "ci_low", "ci_high"]))
    study["answer"].update(informed_mean_bps=None, informed_ci_high_bps=None, informed_not_positive=None)
    (run / "study.json").write_text(json.dumps(study))
    page = write_report(run).read_text()
    _assert_self_contained(page)
    assert len(_images(page)) == 1 + 4 + 1
    assert "unknown" in page


def test_a_sparse_run_still_renders(tmp_path):
    """Only the required event columns, no study groups or answer, a bare run.json, no features."""
    run = make_run(tmp_path)
    events = pq.read_table(run / "events.parquet").to_pandas()[["symbol", "ts", "state", markout_column(5)]]
    events["lpi"] = np.nan
    pq.write_table(pa.Table.from_pandas(events, preserve_index=False), run / "events.parquet")
    (run / "study.json").write_text(json.dumps({"horizons_s": [5]}))
    (run / "run.json").write_text(json.dumps({"config": {}}))
    shutil.rmtree(run / "features")
    page = write_report(run).read_text()
    _assert_self_contained(page)
    assert len(_images(page)) == 4 + 1        # no curves without groups; windows say they hold no features
    assert "no markout curves" in page and "study.json gives no verdict text" in page and "not &#x27;complete&#x27;" in page


def test_an_unreadable_feature_file_in_a_window_is_a_one_line_error(run_dir):
    (run_dir / "features" / "symbol=BTCUSDT" / f"date={DAY}" / "part-0000.parquet").write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["report", str(run_dir)])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0
    assert "symbol=BTCUSDT: features of 2024-08-05 to 2024-08-05 not readable" in result.output


@pytest.mark.parametrize("remove", ["study.json", "events.parquet"])
def test_a_run_without_event_study_is_a_one_line_error(run_dir, remove):
    (run_dir / remove).unlink()
    with pytest.raises(ConfigError, match=r"has no event study; run `gpu-lpi run` first"):
        write_report(run_dir)
    result = CliRunner().invoke(main, ["report", str(run_dir)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.strip().count("\n") == 0
    assert "Traceback" not in result.output and not (run_dir / "report.html").exists()


def test_bad_run_folders_are_one_line_errors(tmp_path, run_dir):
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no such run folder" in result.output
    assert result.output.strip().count("\n") == 0
    (tmp_path / "job.toml").write_text("[data]\n")
    result = CliRunner().invoke(main, ["report", str(tmp_path / "job.toml")])
    assert result.exit_code == 2 and "job.toml: is a file, not a run folder" in result.output
    assert result.output.strip().count("\n") == 0
    (run_dir / "study.json").write_text("{not json")
    with pytest.raises(ConfigError, match="study.json: not valid JSON"):
        write_report(run_dir)
    (run_dir / "run.json").unlink()
    with pytest.raises(ConfigError, match="not a run folder"):
        write_report(run_dir)


def test_cli_prints_the_report_path_and_api_exports_it(run_dir):
    result = CliRunner().invoke(main, ["report", str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(run_dir / "report.html")
    assert gpu_lpi.write_report is write_report


_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: Injected into a copy of the page (the report itself has no script): records load errors and, on
#: load, how many images decoded to a non-zero natural size.
_PROBE = """<script>
var errors = [];
window.addEventListener('error', function (e) { errors.push(String(e.message || (e.target && e.target.tagName))); }, true);
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var shown = images.filter(function (i) { return i.complete && i.naturalWidth > 0 && i.naturalHeight > 0; });
  document.body.setAttribute('data-probe', JSON.stringify({images: images.length, shown: shown.length, errors: errors}));
});
</script>"""


def test_report_loads_in_headless_chromium(run_dir, tmp_path):
    browser = next((b for b in map(shutil.which, _BROWSERS) if b), None)
    if browser is None:
        pytest.skip("no Chromium or Chrome on PATH (looked for: " + ", ".join(_BROWSERS) + ")")
    page = write_report(run_dir).read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                             "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'data-probe="([^"]*)"', result.stdout)
    assert match, "the page did not finish loading: " + result.stderr[-2000:]
    loaded = json.loads(html.unescape(match.group(1)))
    assert loaded == {"images": 6, "shown": 6, "errors": []}
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,4000",
                    f"--screenshot={shot}", (run_dir / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    width, height = _png_size(shot.read_bytes())
    assert (width, height) == (1280, 4000)
