"""The report's execution-simulation section (``RUN/sim/``, :mod:`gpu_lpi.sim.outputs`).

It shows what a researcher checks first: per scenario (the best 20 by net PnL) the episodes
traded, PnL after fees, hit rate, Sharpe per episode and drawdown, and the mean entry-fill markout
at each study horizon (spec §5.3: negative at 0.5–2 s means the quotes were filled by toxic flow);
the fill-markout curves and the cumulative net PnL of the default scenario (0) and the best; the
fills of the best scenario; and which symbols were not simulated, and why. Drawn with the helpers
of :mod:`gpu_lpi.report` (escaped HTML, embedded PNGs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gpu_lpi.report import _e, _img, _kv, _note, _num, _read_json, _table, _utc
from gpu_lpi.sim.outputs import read_part, read_scenarios

SCENARIOS_SHOWN = 20
FILLS_SHOWN = 30


def sim_section(run_dir: Path) -> str | None:
    """The section's HTML, or None where the run has no simulation."""
    if not (run_dir / "sim" / "sim.json").is_file():
        return None
    summary = _read_json(run_dir / "sim" / "sim.json")
    scenarios = read_scenarios(run_dir)
    horizons = summary.get("horizons_s") or []
    markouts = [f"fill_markout_bps_{h:g}" for h in horizons]
    parts = [_kv("", [("scenarios", _e(summary.get("n_scenarios"))),
                      ("episodes traded (all scenarios)", _e(summary.get("episodes_traded"))),
                      ("best scenario (net PnL)", _e(summary.get("best_scenario"))),
                      ("symbols not simulated", _e("; ".join(f"{s}: {r}" for s, r in
                                                      (summary.get("skipped") or {}).items()) or "none"))])]
    if scenarios.empty or not scenarios["traded"].sum():
        return "".join(parts) + _note("No scenario traded: no Mode A entry was filled.")
    grid = list(summary.get("grid") or {})
    shown = scenarios.sort_values("net_pnl", ascending=False).head(SCENARIOS_SHOWN)
    header = ["scenario", *grid, "traded", "net PnL", "fees", "mean net bps", "hit rate", "Sharpe/episode",
              "max drawdown", *(f"fill markout {h:g} s" for h in horizons)]
    rows = [[_e(int(r["scenario"])), *(_e(r[g]) for g in grid), _e(int(r["traded"])), _num(r["net_pnl"]),
             _num(r["fees"]), _num(r["mean_net_bps"]), _num(r["hit_rate"]), _num(r["sharpe_per_episode"]),
             _num(r["max_drawdown"]), *(_num(r[m]) for m in markouts)] for _, r in shown.iterrows()]
    parts.append(_table(header, rows, numeric_from=1 + len(grid)))
    best = int(shown.iloc[0]["scenario"])
    picked = sorted({0, best})
    parts.append(_curves(scenarios, picked, horizons, markouts, read_part(run_dir, "episodes")))
    fills = read_part(run_dir, "fills")
    fills = fills[fills["scenario"] == best].sort_values("ts").head(FILLS_SHOWN)
    parts.append(f"<h3>Fills of scenario {best} (first {FILLS_SHOWN})</h3>" + _table(
        ["symbol", "time (UTC)", "kind", "price", "qty", "maker", *(f"markout {h:g} s" for h in horizons)],
        [[_e(r["symbol"]), _e(_utc(r["ts"])), _e(r["order_kind"]), _num(r["price"], 4), _num(r["qty"], 4),
          _e("yes" if r["maker"] else "no"), *(_num(r[f"markout_bps_{h:g}"]) for h in horizons)]
         for _, r in fills.iterrows()], numeric_from=3))
    return "".join(parts)


def _curves(scenarios: pd.DataFrame, picked: list[int], horizons, markouts, episodes: pd.DataFrame) -> str:
    fig = Figure(figsize=(11.0, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    for s in picked:
        row = scenarios[scenarios["scenario"] == s].iloc[0]
        values = np.array([row[m] for m in markouts], dtype=float)
        finite = np.isfinite(values)        # a markout past the data's end is NaN
        left.plot(np.asarray(horizons, dtype=float)[finite], values[finite], marker="o", label=f"scenario {s}")
        traded = episodes[(episodes["scenario"] == s) & (episodes["status"] == "traded")].sort_values("end_ts")
        right.step(pd.to_datetime(traded["end_ts"], unit="ns"), np.cumsum(traded["net_pnl"]), where="post",
                   label=f"scenario {s}")
    left.axhline(0.0, color="#999", lw=0.8)
    if horizons:                            # explicit limits: a log axis with no finite point has none
        left.set_xscale("log")
        left.set_xlim(min(horizons) / 1.5, max(horizons) * 1.5)
        left.set_xticks(horizons, [f"{h:g}" for h in horizons])
        left.minorticks_off()
    left.set(xlabel="horizon after the fill (s)", ylabel="entry-fill markout (bps)", title="Fill markouts")
    right.set(xlabel="episode end (UTC)", ylabel="cumulative net PnL", title="Net PnL after fees")
    for ax in (left, right):
        ax.legend(fontsize=8)
    return _img(fig, "fill markouts and cumulative PnL",
                "Quantity-weighted mean markout of entry fills by horizon, and cumulative net PnL by episode, "
                "for the default scenario (0) and the best by net PnL.")
