"""``gpu-lpi demo``: synth -> ingest -> run -> report in a fresh folder, then a short summary.

On generated data it shows how the LPI behaves inside the planted episodes (labels.parquet) against
the rest of the day and how the run's events score against them (:mod:`gpu_lpi.truth`); on the real
captures (``../shared/data`` when present) it shows the ingest report and feature summaries, once
with the whole book and once from the trades alone (the fallback of stores without a book). Every
run ends with its ``report.html``; the demo's last line names the first.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from gpu_lpi.errors import ConfigError
from gpu_lpi.ingest import ingest
from gpu_lpi.report import write_report
from gpu_lpi.truth import score_events

#: Marker file that identifies a folder the demo made (and may therefore delete and remake).
MARKER = ".gpu-lpi-demo"
SYNTH_SYMBOLS = ["BTCUSDT", "ETHUSDT"]
SYNTH_START = date(2024, 8, 5)
#: Event-rate scale of the demo's synthetic day: a tenth of the calibrated rates keeps the demo to
#: a minute or two on a laptop while every planted episode stays in the data.
SYNTH_RATE_SCALE = 0.1
DEFAULT_REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _fresh_folder(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ConfigError(f"--out {out}: folder exists and was not made by the demo; choose a new one")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by gpu-lpi demo; safe to delete\n")


#: Robust-window parameters of the two demo runs. The synthetic day uses the spec's 2 h window; the
#: real captures last 6-11 minutes, so their windows are 6 minutes (as in jobs/specs/real_captures.toml).
SYNTH_PARAMS = {"window_hours": 2.0}
REAL_PARAMS = {"window_hours": 0.1, "adv_window_hours": 0.1, "depth_window_hours": 0.1, "min_periods_s": 60.0}
#: The synthetic run's ``[sim]``: the three fill models, each a scenario of one launch.
SYNTH_SIM = ['fill_model = ["trade_through", "queue_risk_averse", "queue_prob"]']


def _job_spec(path: Path, store: Path, symbols: list[str], start: date, end: date, params: dict,
              sim: list[str] | None = None) -> Path:
    quoted = ", ".join(f'"{s}"' for s in symbols)
    lines = ["[data]", f'store = "{store.resolve()}"', f"symbols = [{quoted}]",
             f"start = {start.isoformat()}", f"end = {end.isoformat()}", "", "[grid]", "tick_ms = 250",
             "", "[params]", *(f"{key} = {value}" for key, value in params.items())]
    if sim is not None:
        lines += ["", "[sim]", *sim]
    path.write_text("\n".join(lines) + "\n")
    return path


def _features(run_dir: Path):
    return ds.dataset(run_dir / "features", format="parquet", partitioning="hive").to_table().to_pandas()


def _feature_summary(run_dir: Path, echo) -> None:
    frame = _features(run_dir)
    echo(f"  {'symbol':<12} {'ticks':>10} {'with LPI':>10} {'lpi_down p50/p99/max':>24} "
         f"{'lpi_up p50/p99/max':>24} {'spread bps p50':>15}")
    for symbol, rows in frame.groupby("symbol", observed=True):
        def stats(column):
            values = rows[column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if not values.size:
                return "n/a"
            return f"{np.median(values):.2f}/{np.quantile(values, 0.99):.2f}/{values.max():.2f}"

        spread_bps = (rows["spread"] / rows["mid"] * 1e4).median()
        with_lpi = int(np.isfinite(rows["lpi_down"].to_numpy(dtype=float)).sum())
        echo(f"  {symbol:<12} {len(rows):>10,} {with_lpi:>10,} {stats('lpi_down'):>24} {stats('lpi_up'):>24} "
             f"{spread_bps:>15.3f}")


def _episode_summary(run_dir: Path, labels_path: Path, echo) -> None:
    """Peak LPI of the matching side inside each kind of planted episode vs. outside them."""
    frame = _features(run_dir)
    labels = pq.read_table(labels_path).to_pandas()
    echo(f"  {'episode':<16} {'count':>5} {'median peak LPI (matching side)':>32} {'p99 LPI outside':>16}")
    outside = np.ones(len(frame), dtype=bool)
    peaks: dict[str, list[float]] = {}
    ts, symbols = frame["ts"].to_numpy(), frame["symbol"].astype(str).to_numpy()
    for row in labels.itertuples():
        inside = (symbols == row.symbol) & (ts >= row.ts_start) & (ts <= row.ts_end)
        outside &= ~inside
        column = "lpi_down" if row.side == "down" else "lpi_up"
        values = frame[column].to_numpy(dtype=float)[inside]
        if np.isfinite(values).any():
            peaks.setdefault(f"{row.kind}/{row.side}", []).append(float(np.nanmax(values)))
    baseline = frame[["lpi_down", "lpi_up"]].to_numpy(dtype=float)[outside]
    p99 = np.nanquantile(baseline, 0.99) if np.isfinite(baseline).any() else float("nan")
    for name, values in sorted(peaks.items()):
        echo(f"  {name:<16} {len(values):>5} {np.median(values):>32.2f} {p99:>16.2f}")


def _truth_summary(result, labels_path: Path, horizon_s: float, echo) -> None:
    """How the run's Mode A events score against the planted episodes."""
    score = score_events(result.events(), pq.read_table(labels_path).to_pandas(), horizon_s)

    def share(value):
        return "n/a" if value is None else f"{value:.2f}"

    def bps(value):
        return "n/a" if value is None else f"{value:+.1f} bps"

    echo(f"  planted truth: {score['trades']} Mode A events; precision {share(score['precision'])}, "
         f"recall {share(score['recall'])} of {score['forced_episodes']} forced episodes; "
         f"{score['fades_of_informed']} fades of informed repricings; {horizon_s:g} s markout: "
         f"forced {bps(score['forced_markout_bps'])}, informed {bps(score['informed_markout_bps'])}")


def _run_and_report(job: Path, run_dir: Path, device: str, echo):
    """``gpu-lpi run`` then ``gpu-lpi report``; the run's result."""
    from gpu_lpi.run import run_job

    result = run_job(job, out=run_dir, device=device)
    echo(result.summary())
    echo(f"  report: {write_report(run_dir)}")
    return result


def run_demo(out_dir: Path, real_data: Path | None = None, seed: int = 7, device: str = "auto",
             rate_scale: float = SYNTH_RATE_SCALE, echo=print) -> Path:
    """Run the demo into ``out_dir`` (made fresh); return it.

    ``real_data`` defaults to ``../shared/data`` next to the repository; a folder without captures
    skips that part. ``rate_scale`` scales the synthetic day's calibrated event rates.
    """
    from gpu_lpi.synth import synthesize

    out = Path(out_dir)
    _fresh_folder(out)
    echo(f"[1/4] synth: {', '.join(SYNTH_SYMBOLS)}, 1 day from {SYNTH_START}, seed {seed}")
    raw = out / "raw-synth"
    synthesize(raw, "binance-ws", SYNTH_SYMBOLS, SYNTH_START, 1, seed, rate_scale=rate_scale, progress=True)
    echo("[2/4] ingest synthetic captures")
    store = out / "store-synth"
    report = ingest([p for p in sorted(raw.glob("*.gz"))], "binance-ws", store, progress=True)
    echo(report.summary())
    echo("[3/4] run features, signals, the event study and the execution simulation on the synthetic "
         "store, then the report")
    run_dir = out / "run-synth"
    job = _job_spec(out / "job-synth.toml", store, SYNTH_SYMBOLS, SYNTH_START, SYNTH_START, SYNTH_PARAMS,
                    SYNTH_SIM)
    result = _run_and_report(job, run_dir, device, echo)
    _feature_summary(run_dir, echo)
    _episode_summary(run_dir, raw / "labels.parquet", echo)
    _truth_summary(result, raw / "labels.parquet", result.answer["horizon_s"], echo)

    real = Path(real_data) if real_data is not None else DEFAULT_REAL_DATA
    captures = sorted(real.rglob("*.gz")) if real.is_dir() else []
    if captures:
        echo(f"[4/4] real captures in {real}: ingest + run + report, with the book and from trades alone")
        real_store = out / "store-real"
        real_report = ingest(captures, "binance-ws", real_store, progress=True)
        echo(real_report.summary())
        from gpu_lpi.store import TickStore

        store_obj = TickStore(real_store)
        symbols = store_obj.symbols_in("depth_diff")
        days = sorted({d for s in symbols for d in store_obj.dates("depth_diff", s)})
        real_run = out / "run-real"
        job = _job_spec(out / "job-real.toml", real_store, symbols, days[0], days[-1], REAL_PARAMS)
        _run_and_report(job, real_run, device, echo)
        _feature_summary(real_run, echo)
        trades_store = out / "store-real-trades"
        ingest(captures, "binance-ws", trades_store, tables=("trades",), progress=True)
        job = _job_spec(out / "job-real-trades.toml", trades_store, symbols, days[0], days[-1], REAL_PARAMS)
        _run_and_report(job, out / "run-real-trades", device, echo)
        _feature_summary(out / "run-real-trades", echo)
    else:
        echo(f"[4/4] no real captures at {real}: skipped")
    echo(f"\nresults: {out.resolve()}  (run-*/report.html, run-*/events.parquet, run-*/study.json, "
         "run-*/features/, run-*/run.json, store-*/_reports/)")
    echo(f"report: {(run_dir / 'report.html').resolve()}")
    return out
