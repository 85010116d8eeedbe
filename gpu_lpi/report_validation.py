"""The report's validation section (``RUN/validation.json``, :mod:`gpu_lpi.validation.sweep`).

A sweep's run folder holds no event study of its own: its page shows the validation first, then
the event study of the chosen combination (:func:`study_folder`). The section gives the trial count
and every trial's Sharpe ratio against the expected maximum of that many unskilled trials, the
chosen configuration's PSR, DSR and minimum track record, the out-of-sample results of the purged
cross-validation (per split and path, and the PBO), the stability score with a heatmap per pair of
swept names, the θ ± 2 bps rule per symbol, the cross-symbol robustness, and the event study's
p-values beside their Holm and Benjamini–Hochberg adjustments. Drawn with the helpers of
:mod:`gpu_lpi.report` (escaped HTML, embedded PNGs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from gpu_lpi.report import _e, _img, _kv, _note, _num, _read_json, _table
from gpu_lpi.validation.sweep import VALIDATION_FILE

#: Tests of the multiple-testing table shown (smallest raw p first); the rest are counted.
MAX_TESTS_SHOWN = 15


def study_folder(run_dir: Path) -> Path:
    """The run folder whose event study the page shows: a sweep's chosen combination (its first
    where none was chosen), else ``run_dir`` itself."""
    if not (run_dir / "sweep.parquet").is_file() or not (run_dir / "run.json").is_file():
        return run_dir
    validation = read_validation(run_dir) or {}
    chosen = (validation.get("chosen") or {}).get("id")
    if chosen is None:
        combinations = _read_json(run_dir / "run.json").get("sweep") or [{}]
        chosen = combinations[0].get("id")
    return run_dir / "sweep" / str(chosen) if chosen is not None else run_dir


def read_validation(run_dir: Path) -> dict | None:
    """``RUN/validation.json``, None where the run has none."""
    path = Path(run_dir) / VALIDATION_FILE
    return _read_json(path) if path.is_file() else None


def validation_section(run_dir: Path) -> str | None:
    """The section's HTML, None for a run without ``validation.json``."""
    validation = read_validation(run_dir)
    if validation is None:
        return None
    parts = [_summary(validation), _trials_figure(validation)]
    if validation.get("chosen") is None:
        parts.append(_note(f"Nothing was chosen: {validation.get('reason', 'no trial could be scored')}."))
        return "".join(parts)
    parts += [_cv(validation.get("cv") or {}), _stability(validation.get("stability") or {}),
              _robustness(validation.get("robustness") or {}), _tests(validation.get("multiple_testing") or {})]
    return "".join(parts)


def _summary(v: dict) -> str:
    settings, chosen = v.get("settings") or {}, v.get("chosen") or {}
    params = ", ".join(f"{k} = {val}" for k, val in (chosen.get("params") or {}).items())
    rows = [("trials (configurations tried)", _e(v.get("n_trials"))),
            ("trials with a Sharpe ratio", _e(v.get("n_trials_with_sharpe"))),
            ("trials with distinct returns", _e(v.get("n_distinct_trials"))),
            ("returns", _e(f"{settings.get('returns', '?')}; horizon {settings.get('horizon_s')} s, "
                           f"cost {settings.get('cost_bps')} bps")),
            ("chosen by", _e(settings.get("metric"))),
            ("variance of the trials' Sharpe ratios", _num(v.get("sr_variance"), 4)),
            ("expected max Sharpe of N unskilled trials", _num(v.get("expected_max_sr"), 4))]
    if chosen:
        rows += [("chosen configuration", _e(f"{chosen.get('id')}: {params}")),
                 ("returns of the chosen", _e(chosen.get("n"))),
                 ("mean after costs", f"{_num(chosen.get('mean_bps'))} bps"),
                 ("Sharpe ratio (per return)", _num(chosen.get("sr"), 4)),
                 ("skew, kurtosis", f"{_num(chosen.get('skew'))}, {_num(chosen.get('kurtosis'))}"),
                 ("PSR (vs 0)", _num(chosen.get("psr"), 4)),
                 ("DSR (Deflated Sharpe ratio)", f"<strong>{_num(chosen.get('dsr'), 4)}</strong>"),
                 ("min track record (returns, PSR ≥ 1 − α)", _num(chosen.get("min_track_record_length"), 1))]
    return _kv("trials and the chosen configuration", rows)


def _trials_figure(v: dict) -> str:
    trials = v.get("trials") or []
    srs = np.array([np.nan if t.get("sr") is None else t["sr"] for t in trials], dtype=np.float64)
    if not np.isfinite(srs).any():
        return _note("No trial has a Sharpe ratio (too few returns).")
    fig = Figure(figsize=(8.0, 3.2), layout="constrained")
    ax = fig.subplots()
    chosen = (v.get("chosen") or {}).get("id")
    colors = ["#1b7837" if t.get("id") == chosen else "#8c8c8c" for t in trials]
    ax.bar(np.arange(len(trials)), np.nan_to_num(srs), color=colors)
    if v.get("expected_max_sr") is not None:
        ax.axhline(v["expected_max_sr"], color="#c0392b", linestyle="--",
                   label=f"expected max of {len(trials)} unskilled trials")
        ax.legend(fontsize=8)
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    ax.set_xlabel("trial (combination)")
    ax.set_ylabel("Sharpe ratio per return")
    ax.set_title(f"{len(trials)} trials; chosen in green")
    return _img(fig, "trial Sharpe ratios", "Every trial's full-sample Sharpe ratio (the DSR deflates the chosen "
                                            "one by the expected maximum of this many trials).")


def _cv(cv: dict) -> str:
    if "skipped" in cv:
        return "<h3>cross-validation</h3>" + _note(f"Not run: {cv['skipped']}.")
    oos = cv.get("oos") or {}
    rows = [("time blocks N, test blocks k", _e(f"{cv.get('n_groups')}, {cv.get('test_groups')}")),
            ("splits, backtest paths", _e(f"{cv.get('n_splits')}, {cv.get('n_paths')}")),
            ("embargo", f"{_num((cv.get('embargo_ns') or 0) / 1e9, 1)} s"),
            ("out-of-sample returns (all splits)", _e(oos.get("n"))),
            ("out-of-sample mean after costs", f"{_num(oos.get('mean_bps'))} bps"),
            ("out-of-sample Sharpe ratio, PSR", f"{_num(oos.get('sr'), 4)}, {_num(oos.get('psr'), 4)}"),
            ("share of paths with a positive mean", _num(oos.get("share_paths_positive"))),
            ("PBO (probability of backtest overfitting)", _num(cv.get("pbo"))),
            ]
    folds = [[_e(",".join(map(str, f.get("test_groups") or []))), _e(f.get("chosen") or "–"),
              _num(f.get("train_score"), 4), _e((f.get("oos") or {}).get("n")),
              _num((f.get("oos") or {}).get("mean_bps")), _num((f.get("oos") or {}).get("sr"), 4)]
             for f in cv.get("folds") or []]
    idle = sum(f.get("chosen") is None for f in cv.get("folds") or [])
    note = _note(f"{idle} of {cv.get('n_splits')} splits chose no trial: none had min_events returns in their "
                 "training blocks (more data, fewer blocks or a lower min_events).") if idle else ""
    return ("<h3>purged cross-validation</h3>" + _kv("", rows) + note
            + _table(["test blocks", "chosen on training", "training score", "test returns", "test mean (bps)",
                      "test Sharpe"], folds, numeric_from=2))


def _stability(stability: dict) -> str:
    parts = ["<h3>parameter stability</h3>",
             _kv("", [("stability score (neighbours / chosen)", _num(stability.get("score"))),
                      ("neighbours", _e(", ".join(stability.get("neighbours") or []) or "none"))])]
    for heat in stability.get("heatmaps") or []:
        parts.append(_heatmap(heat, stability.get("metric", "score")))
    theta = stability.get("theta") or {}
    if theta.get("reason"):
        parts.append(_note(f"θ ± {theta.get('delta_bps', 2):g} bps rule: {theta['reason']}."))
    else:
        rows = [[_e(r["symbol"]), _num(r.get("theta")), _num(r.get("minus_bps")), _num(r.get("chosen_bps")),
                 _num(r.get("plus_bps")), _e({True: "pass", False: "FAIL", None: "–"}[r.get("pass")]),
                 _e(r.get("reason") or "")] for r in theta.get("per_symbol") or []]
        parts.append(_table(["symbol", "θ (bps)", "θ − 2: mean (bps)", "θ: mean (bps)", "θ + 2: mean (bps)",
                             "rule", "why"], rows, numeric_from=1))
    return "".join(parts)


def _heatmap(heat: dict, metric: str) -> str:
    values = np.array([[np.nan if c is None else c for c in row] for row in heat["values"]], dtype=np.float64)
    xs, ys = heat["x_values"], heat["y_values"]
    fig = Figure(figsize=(1.2 * len(xs) + 2.4, 0.7 * len(ys) + 1.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", aspect="auto", origin="lower")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_xticks(range(len(xs)), [f"{x}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y}" for y in ys])
    for i in range(len(ys)):
        for j in range(len(xs)):
            chosen = [xs[j], ys[i]] == list(heat.get("chosen") or [])
            ax.text(j, i, ("*" if chosen else "") + _num(values[i, j], 3), ha="center", va="center", fontsize=8,
                    fontweight="bold" if chosen else "normal")
    ax.set_xlabel(heat["x"])
    ax.set_ylabel(heat["y"])
    return _img(fig, f"stability heatmap {heat['x']} x {heat['y']}",
                f"Full-sample {metric} over {heat['x']} and {heat['y']}, the other swept names at the chosen "
                "values (* the chosen point).")


def _robustness(robust: dict) -> str:
    rows = [[_e(r["symbol"]), _e(r["bucket"]), _e(r["n"]), _num(r.get("mean_bps")), _num(r.get("hit_rate")),
             _e({True: "yes", False: "no", None: "–"}[r.get("positive")])] for r in robust.get("per_symbol") or []]
    buckets = [[_e(r["bucket"]), _e(", ".join(r["symbols"])), _e(r["n"]), _num(r.get("mean_bps"))]
               for r in robust.get("per_bucket") or []]
    share = robust.get("share_positive")
    return ("<h3>cross-symbol robustness (out of sample)</h3>"
            + _kv("", [("share of symbols with a positive mean after costs",
                        _e(f"{_num(share)} ({robust.get('n_symbols_with_oos')} of {robust.get('n_symbols')} "
                           "symbols have out-of-sample returns)"))])
            + _table(["symbol", "liquidity", "returns", "mean (bps)", "hit rate", "positive"], rows, numeric_from=2)
            + _table(["liquidity bucket", "symbols", "returns", "mean (bps)"], buckets, numeric_from=2))


def _tests(tests: dict) -> str:
    rows = sorted((t for t in tests.get("tests") or [] if t.get("p_raw") is not None), key=lambda t: t["p_raw"])
    shown = [[_e(t["split"]), _e(t["value"]), _num(t["horizon_s"], 1), _e(t["n"]), _num(t.get("mean_after_cost_bps")),
              _num(t["p_raw"], 4), _num(t.get("p_holm"), 4), _num(t.get("p_bh"), 4)] for t in rows[:MAX_TESTS_SHOWN]]
    head = _kv("", [("family", _e(tests.get("family", "?"))), ("tests", _e(tests.get("n_tests"))),
                    (f"rejected at α = {tests.get('alpha')}: raw, Holm, BH",
                     _e(f"{tests.get('rejected_raw')}, {tests.get('rejected_holm')}, {tests.get('rejected_bh')}"))])
    more = _note(f"{len(rows) - MAX_TESTS_SHOWN} more tests in validation.json.") if len(rows) > MAX_TESTS_SHOWN else ""
    return ("<h3>multiple testing (event study of the chosen configuration)</h3>" + head
            + _table(["split", "value", "horizon (s)", "n", "mean − cost (bps)", "p raw", "p Holm", "p BH"],
                     shown, numeric_from=2) + more)
