"""``write_report``: ``RUN/report.html``, the event study of a run in one page (DESIGN.md §5).

The page answers the question of spec §9.1 — after forced-flow exhaustion, is the markout robustly
positive after costs, and is it not positive for informed flow? — with the verdict of
``study.json`` ("answer") at the top and the figures that support it right below:

1. verdict (the answer's text and numbers);
2. markout curves: mean markout with its confidence band per state, and forced exhaustion against
   informed flow, with the round-trip cost drawn;
3. the LPI, price, depth and open interest around the largest events (the picture of spec §7.2,
   drawn from the run's features);
4. markout distributions per state at a few horizons;
5. a table per symbol (events by state, mean markouts, hit rate);
6. which data each symbol had and which fallbacks were used (book source, degraded inputs, state
   path, covered spans, crash filter);
7. the drift regression;
8. run metadata (config, versions, device, timings).

A sweep's run folder shows its validation (``validation.json``, :mod:`gpu_lpi.report_validation`)
right after the verdict, and the event study of its chosen combination.

The page is one self-contained file: figures are PNG images embedded as ``data:`` URIs, the style
sheet is inline, there is no script and no external resource, so it opens offline. Every string
taken from the run is HTML-escaped.

Reading the run costs what the page shows, not what the run holds: ``events.parquet`` (one row per
episode) is read whole, the features only inside the windows of the plotted events, file by file
from their ``symbol=<S>/date=<D>`` folders, never as the whole dataset. Figures are drawn with
matplotlib's object-oriented API (:class:`matplotlib.figure.Figure`, Agg canvas, no pyplot), so
writing a report changes no global matplotlib state.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from gpu_lpi.errors import ConfigError
from gpu_lpi.events import markout_column
from gpu_lpi.store import ns_to_date

#: Events whose surroundings the page plots (largest LPI first).
DEFAULT_N_EVENTS = 4
#: Seconds of features plotted before an event's tick (the panic before the exhaustion, spec §7.2).
WINDOW_BEFORE_S = 180.0
#: Seconds plotted after the decision time, at least: the longest markout horizon when longer.
WINDOW_AFTER_S = 60.0
#: Spans listed per symbol and table before the rest are counted.
MAX_SPANS_LISTED = 4
#: Horizons whose markout distributions are drawn, at most.
MAX_DISTRIBUTION_HORIZONS = 3
#: Feature columns read around an event (those present; the others are shown as missing).
WINDOW_COLUMNS = ("ts", "mid", "lpi_down", "lpi_up", "depth_bid", "depth_ask", "d_oi",
                  "liq_sell_notional", "liq_buy_notional", "state", "exhaustion")
_NS = 10**9
_COLORS = {"FORCED": "#c0392b", "INFORMED": "#2166ac", "forced_exhaustion": "#1b7837", "informed": "#2166ac",
           "down": "#c0392b", "up": "#1b7837", "all": "#555555"}
_CYCLE = ("#762a83", "#e08214", "#35978f", "#8c510a", "#01665e")


# -- the run folder --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    """What the report reads of a run folder (the features are read later, per window)."""

    path: Path
    run: dict
    study: dict
    events: pd.DataFrame

    @property
    def horizons(self) -> list[float]:
        return [float(h) for h in self.study.get("horizons_s") or []]

    @property
    def params(self) -> dict:
        return ((self.run.get("config") or {}).get("params")) or {}

    @property
    def symbols(self) -> list[str]:
        listed = ((self.run.get("config") or {}).get("data") or {}).get("symbols") or []
        seen = dict.fromkeys(str(s) for s in listed)
        seen.update(dict.fromkeys(str(s) for s in self.run.get("book_source") or {}))
        seen.update(dict.fromkeys(self.events["symbol"].astype(str).unique()))
        return list(seen)


def _read_json(path: Path) -> dict:
    try:
        content = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    except OSError as err:
        raise ConfigError(f"{path}: not readable ({err.strerror or err})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(content).__name__}")
    return content


def _load(run_dir: Path) -> _Run:
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: is a file, not a run folder; expected the folder `gpu-lpi run` wrote")
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    if not (run_dir / "run.json").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no run.json); run `gpu-lpi run` first")
    if not (run_dir / "study.json").is_file() or not (run_dir / "events.parquet").is_file():
        raise ConfigError(f"{run_dir} has no event study; run `gpu-lpi run` first")
    run, study = _read_json(run_dir / "run.json"), _read_json(run_dir / "study.json")
    events_path = run_dir / "events.parquet"
    try:
        events = ds.dataset(events_path, format="parquet").to_table().to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise ConfigError(f"{events_path}: not a readable Parquet file ({err})") from None
    for column in ("symbol", "ts", "state"):
        if column not in events.columns:
            raise ConfigError(f"{events_path}: column {column!r} missing; expected the event-study schema "
                              "(symbol, ts, decision_ts, state, markout_bps_<h>, ...)")
    horizons = study.get("horizons_s")
    if not isinstance(horizons, list) or not all(isinstance(h, (int, float)) for h in horizons):
        raise ConfigError(f"{run_dir / 'study.json'}: horizons_s: expected a list of seconds, got {horizons!r}")
    for h in horizons:     # a horizon the events lack is shown as unknown, not an error
        if markout_column(h) not in events.columns:
            events[markout_column(h)] = np.nan
    events["symbol"] = events["symbol"].astype(str)
    events["state"] = events["state"].astype(str)
    return _Run(path=run_dir, run=run, study=study, events=events)


def read_window(features_dir: Path, symbol: str, start_ns: int, end_ns: int,
                columns=WINDOW_COLUMNS) -> pd.DataFrame:
    """The features of one symbol with ``start_ns <= ts <= end_ns``, in time order.

    Parameters
    ----------
    features_dir : Path
        ``RUN/features`` (hive folders ``symbol=<S>/date=<D>/part-*.parquet``).
    symbol : str
    start_ns, end_ns : int
        Inclusive bounds of ``ts`` (ns since the epoch, UTC).
    columns : sequence of str, default :data:`WINDOW_COLUMNS`
        Columns wanted; those the files lack are left out of the result (``ts`` always comes back).

    Returns
    -------
    pandas.DataFrame
        Empty (with a ``ts`` column) where the run holds no features in the window. Only the files
        of the days the window meets are opened.
    """
    first, last = ns_to_date(start_ns), ns_to_date(end_ns)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    folder = features_dir / f"symbol={symbol}"
    files = [] if "/" in symbol or os.sep in symbol else \
        [str(f) for day in days for f in sorted((folder / f"date={day.isoformat()}").glob("part-*.parquet"))]
    if not files:
        return pd.DataFrame({"ts": np.array([], dtype=np.int64)})
    try:
        dataset = ds.dataset(files, format="parquet")
        present = [c for c in dict.fromkeys(["ts", *columns]) if c in dataset.schema.names]
        table = dataset.to_table(columns=present,
                                 filter=(ds.field("ts") >= int(start_ns)) & (ds.field("ts") <= int(end_ns)))
    except (pa.ArrowException, OSError) as err:
        raise ConfigError(f"{folder}: features of {days[0]} to {days[-1]} not readable ({err})") from None
    return table.to_pandas().sort_values("ts", kind="stable").reset_index(drop=True)


# -- formatting ------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    """HTML-escaped text of any value from the run."""
    return html.escape(str(value), quote=True)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def _num(value: Any, digits: int = 2) -> str:
    """A number for a table cell, ``–`` for null or NaN."""
    if not _finite(value):
        return "–"
    value = float(value)
    if abs(value) >= 1e6 or 0 < abs(value) < 10 ** -min(digits + 1, 3):
        return f"{value:.{digits}e}"
    return f"{value:,.{digits}f}"


def _utc(ts_ns: Any) -> str:
    if not _finite(ts_ns):
        return "–"
    moment = datetime.fromtimestamp(int(ts_ns) // _NS, tz=timezone.utc) + timedelta(
        microseconds=(int(ts_ns) % _NS) // 1000)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _yes_no(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, "unknown")


def _table(header: list[str], rows: list[list[str]], numeric_from: int | None = None) -> str:
    """An HTML table; cells are already-escaped HTML, those from column ``numeric_from`` on are
    right-aligned."""
    start = len(header) if numeric_from is None else numeric_from
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i >= start else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv(title: str, pairs: list[tuple[str, str]]) -> str:
    """A two-column table of names (escaped here) and already-escaped values."""
    caption = f"<caption>{_e(title)}</caption>" if title else ""
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{caption}<tbody>{body}</tbody></table>'


def _color(name: str, index: int) -> str:
    return _COLORS.get(name, _CYCLE[index % len(_CYCLE)])


def _img(fig: Figure, alt: str, caption: str) -> str:
    """The figure as an embedded PNG ``<figure>`` (``alt`` and ``caption`` are escaped here)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


# -- sections --------------------------------------------------------------------------------------------
def _mean_ci(answer: dict, mean: str, low: str, high: str) -> str:
    """``mean bps (low .. high)`` from the answer's fields (an end it does not give is ``–``)."""
    return f"{_num(answer.get(mean))} bps ({_num(answer.get(low))} .. {_num(answer.get(high))})"


def _verdict(run: _Run) -> str:
    answer = run.study.get("answer") or {}
    forced, informed = answer.get("forced_positive_after_costs"), answer.get("informed_not_positive")
    tone = "good" if forced is True and informed is True else "bad" if forced is False or informed is False \
        else "unknown"
    horizon = answer.get("horizon_s")
    rows = [("answer horizon", f"{float(horizon):g} s" if _finite(horizon) else "–"),
            ("round-trip cost", f"{_num(answer.get('cost_bps'))} bps"),
            ("forced exhaustion: mean markout (CI)", _mean_ci(answer, "forced_exhaustion_mean_bps",
                                                                "forced_ci_low_bps", "forced_ci_high_bps")),
            ("informed flow: mean markout (CI)", _mean_ci(answer, "informed_mean_bps", "informed_ci_low_bps",
                                                          "informed_ci_high_bps")),
            ("forced exhaustion positive after costs", _yes_no(forced)),
            ("informed flow not positive", _yes_no(informed)),
            ("events", _e(run.study.get("n_events", len(run.events))))]
    ci = run.study.get("ci") or {}
    ci_text = f"Confidence intervals: {ci.get('method', 'not stated')}, level {ci.get('level', '?')}."
    text = answer.get("text") or "study.json gives no verdict text."
    return (f'<section id="verdict" class="verdict {tone}"><h2>Verdict</h2><p class="answer">{_e(text)}</p>'
            + _kv("", rows) + _note(ci_text) + "</section>")


def _groups(run: _Run, split: str) -> list[dict]:
    return [g for g in run.study.get("groups") or [] if isinstance(g, dict) and g.get("split") == split]


def _curve_arrays(group: dict) -> tuple[np.ndarray, ...]:
    points = sorted((m for m in group.get("markouts") or [] if _finite(m.get("horizon_s"))),
                    key=lambda m: m["horizon_s"])

    def column(key):
        return np.array([float(m[key]) if _finite(m.get(key)) else np.nan for m in points])

    return column("horizon_s"), column("mean"), column("ci_low"), column("ci_high")


def _markout_curves(run: _Run) -> str:
    panels = [(split, title) for split, title in (("state", "by state"),
                                                  ("kind", "forced exhaustion vs informed"))
              if _groups(run, split)]
    if not panels:
        return _note("study.json holds no state or kind groups: no markout curves to draw.")
    costs = run.study.get("costs_bps") or {}
    cost = (run.study.get("answer") or {}).get("cost_bps")
    fig = Figure(figsize=(5.6 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (split, title) in zip(axes, panels):
        drawn = 0
        for index, group in enumerate(_groups(run, split)):
            h, mean, low, high = _curve_arrays(group)
            if not np.isfinite(mean).any():
                continue
            color = _color(str(group.get("value")), index)
            ax.plot(h, mean, marker="o", color=color, label=f"{group.get('value')} (n={group.get('n_events', '?')})")
            ax.fill_between(h, low, high, color=color, alpha=0.18, linewidth=0)
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "no finite markouts", transform=ax.transAxes, ha="center", color="#777777")
        ax.axhline(0.0, color="#999999", linewidth=0.8)
        if _finite(cost):
            ax.axhline(float(cost), color="#d6604d", linestyle="--", linewidth=1.2, label=f"cost {float(cost):g} bps")
        maker = costs.get("maker_round_trip_bps")
        if _finite(maker) and maker != cost:
            ax.axhline(float(maker), color="#f4a582", linestyle=":", linewidth=1.2,
                       label=f"maker round trip {float(maker):g} bps")
        ax.set_xscale("log")
        if run.horizons:
            ax.set_xticks(run.horizons, [f"{h:g}" for h in run.horizons])
            ax.minorticks_off()
        ax.set_xlabel("horizon after decision (s)")
        ax.set_title(f"mean markout {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[0].set_ylabel("markout (bps)")
    caption = ("Mean markout after the decision time per horizon; bands: the study's confidence interval. "
               "A trade pays when its curve stays above the dashed cost line.")
    return _img(fig, "markout curves", caption)


def _largest_events(events: pd.DataFrame, n: int) -> pd.DataFrame:
    size = events["lpi"].abs() if "lpi" in events.columns else pd.Series(0.0, index=events.index)
    return events.assign(_size=size.fillna(-np.inf)).sort_values("_size", ascending=False, kind="stable").head(n)


@dataclass(frozen=True)
class _Window:
    """The features around one event; ``x`` is seconds from the event's tick."""

    frame: pd.DataFrame
    x: np.ndarray

    def series(self, column: str) -> np.ndarray | None:
        """The column as floats, None where the features lack it or hold no finite value there."""
        if column not in self.frame.columns:
            return None
        values = self.frame[column].to_numpy(dtype=float)
        return values if np.isfinite(values).any() else None


def _missing(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777")


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _price_panel(ax, window: _Window, event: dict, horizons: list[float]) -> None:
    mid = window.series("mid")
    if mid is None:
        _missing(ax, "no mid price in the features")
    else:
        ax.plot(window.x, mid, color="#333333", linewidth=1.0, label="mid")
        decision_s = (event["decision_ts"] - event["ts"]) / _NS
        ahead = np.array([decision_s + h for h in horizons if decision_s + h <= window.x[-1]])
        if ahead.size:     # the mids the markouts are taken at
            at = np.searchsorted(window.x, ahead, side="right") - 1
            ax.plot(ahead, mid[at], marker="|", markersize=10, color="#d6604d", linestyle="",
                    label="markout horizons")
        if _finite(event.get("ref_price")):
            ax.plot([decision_s], [float(event["ref_price"])], marker="o", color="#d6604d", linestyle="",
                    label="fill reference")
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_ylabel("price")


def _lpi_panel(ax, window: _Window, params: dict) -> None:
    for column, color in (("lpi_down", "#c0392b"), ("lpi_up", "#1b7837")):
        values = window.series(column)
        if values is not None:
            ax.plot(window.x, values, color=color, linewidth=1.0, label=column)
    for name, style in (("lpi_hi", "--"), ("lpi_exit", ":")):
        if _finite(params.get(name)):
            ax.axhline(float(params[name]), color="#555555", linestyle=style, linewidth=0.9,
                       label=f"{name} {float(params[name]):g}")
    state = window.series("state")
    if state is not None and (state == 1).any():
        ax.fill_between(window.x, 0, 1, where=state == 1, transform=ax.get_xaxis_transform(), color="#c0392b",
                        alpha=0.08, linewidth=0, label="state FORCED")
    if window.frame.empty:
        _missing(ax, "the run holds no features in this window")
    ax.set_ylabel("LPI")


def _depth_panel(ax, window: _Window, book_source: str) -> None:
    sides = [(window.series(c), c, color) for c, color in (("depth_bid", "#2166ac"), ("depth_ask", "#b2182b"))]
    if all(values is None for values, _, _ in sides):
        _missing(ax, f"no book depth (book source: {book_source})")
    for values, label, color in sides:
        if values is not None:
            ax.plot(window.x, values, color=color, linewidth=1.0, label=label)
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_ylabel("depth in band")


def _flow_panel(ax, window: _Window, state_path: str) -> None:
    d_oi = window.series("d_oi")
    liquidations = [(window.series(c), c, color)
                    for c, color in (("liq_sell_notional", "#c0392b"), ("liq_buy_notional", "#1b7837"))]
    if d_oi is not None:
        ax.plot(window.x, d_oi, color="#762a83", linewidth=1.0, label="d_oi (OI drop)")
        ax.set_ylabel("OI drop")
    elif any(values is not None for values, _, _ in liquidations):
        for values, label, color in liquidations:
            if values is not None:
                ax.plot(window.x, values, color=color, linewidth=1.0, label=label)
        ax.set_ylabel("liquidations")
    else:
        _missing(ax, f"no open interest or liquidations (state path: {state_path})")
        ax.set_ylabel("OI / liq.")
    ax.yaxis.set_major_formatter(EngFormatter())


def _event_window_figure(run: _Run, event: dict) -> str:
    symbol, ts = event["symbol"], int(event["ts"])
    event["decision_ts"] = int(event["decision_ts"]) if _finite(event.get("decision_ts")) else ts
    after = max([WINDOW_AFTER_S, *run.horizons]) * 1.1
    start, end = ts - int(WINDOW_BEFORE_S * _NS), event["decision_ts"] + int(after * _NS)
    frame = read_window(run.path / "features", symbol, start, end)
    window = _Window(frame, (frame["ts"].to_numpy(dtype=np.int64) - ts) / _NS)
    fig = Figure(figsize=(11.0, 7.6))
    fig.subplots_adjust(left=0.09, right=0.83, top=0.94, bottom=0.08, hspace=0.12)
    price, lpi, depth, flow = fig.subplots(4, 1, sharex=True)
    _price_panel(price, window, event, run.horizons)
    _lpi_panel(lpi, window, run.params)
    _depth_panel(depth, window, (run.run.get("book_source") or {}).get(symbol, "not recorded"))
    _flow_panel(flow, window, (run.run.get("state_path") or {}).get(symbol, event.get("state_path", "not recorded")))
    for ax in (price, lpi, depth, flow):
        ax.axvline(0.0, color="#d6604d", linewidth=1.0)
        ax.axvline((event["decision_ts"] - ts) / _NS, color="#d6604d", linewidth=1.0, linestyle="--")
        ax.grid(alpha=0.3)
        _legend(ax)
    flow.set_xlabel("seconds from the event tick (solid: event, dashed: decision time)")
    flow.set_xlim(-WINDOW_BEFORE_S, (end - ts) / _NS)
    kind = "exhaustion" if bool(event.get("exhaustion", False)) else "no exhaustion"
    title = (f"{symbol}   {event.get('side', '?')}   {event['state']}   {kind}   at {_utc(ts)}   "
             f"LPI {_num(event.get('lpi'))}")
    price.set_title(title, fontsize=10)
    markouts = ", ".join(f"{h:g} s {_num(event.get(markout_column(h)), 1)}" for h in run.horizons)
    return _img(fig, f"event window {symbol} {_utc(ts)}", f"{title}. Markouts (bps): {markouts}.")


def _event_windows(run: _Run, n: int) -> str:
    if run.events.empty:
        return _note("No events in this run: no event windows to draw.")
    chosen = _largest_events(run.events, n)
    intro = _note(f"The {len(chosen)} events with the largest LPI of {len(run.events)}: mid price, LPI down/up "
                  "(lpi_hi and lpi_exit dashed and dotted, FORCED state shaded), book depth in the band, "
                  "and the OI drop (or liquidations).")
    return intro + "".join(_event_window_figure(run, event) for event in chosen.to_dict("records"))


def _distribution_horizons(run: _Run) -> list[float]:
    horizons = run.horizons
    if not horizons:
        return []
    answer_h = (run.study.get("answer") or {}).get("horizon_s")
    chosen = {horizons[min(1, len(horizons) - 1)], horizons[-1]}
    if _finite(answer_h):
        chosen.add(float(answer_h))
    return sorted(chosen)[:MAX_DISTRIBUTION_HORIZONS]


def _distributions(run: _Run) -> str:
    horizons = _distribution_horizons(run)
    if run.events.empty or not horizons:
        return _note("No events in this run: no markout distributions to draw.")
    cost = (run.study.get("answer") or {}).get("cost_bps")
    states = sorted(run.events["state"].unique())
    fig = Figure(figsize=(4.2 * len(horizons), 3.6), layout="constrained")
    axes = fig.subplots(1, len(horizons), squeeze=False)[0]
    for ax, h in zip(axes, horizons):
        values = run.events[markout_column(h)].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if not finite.size:
            ax.text(0.5, 0.5, "no finite markouts", transform=ax.transAxes, ha="center", color="#777777")
        else:
            low, high = np.quantile(finite, [0.01, 0.99])
            bins = np.linspace(low, high if high > low else low + 1.0, 41)
            for index, state in enumerate(states):
                mask = (run.events["state"] == state).to_numpy()
                own = values[mask & np.isfinite(values)]
                if own.size:
                    ax.hist(np.clip(own, bins[0], bins[-1]), bins=bins, density=True, histtype="stepfilled",
                            alpha=0.35, color=_color(state, index), edgecolor=_color(state, index),
                            label=f"{state} (n={own.size})")
            ax.legend(fontsize=8, loc="upper right")
        ax.axvline(0.0, color="#999999", linewidth=0.8)
        if _finite(cost):
            ax.axvline(float(cost), color="#d6604d", linestyle="--", linewidth=1.2)
        ax.set_title(f"markout at {h:g} s")
        ax.set_xlabel("markout (bps)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("density")
    return _img(fig, "markout distributions", "Markout distributions per state (densities; the 1st to 99th "
                "percentile of all events, tails gathered into the end bins); dashed: the round-trip cost.")


def _symbol_table(run: _Run) -> str:
    events = run.events
    if events.empty:
        return _note("No events in this run.")
    answer_h = (run.study.get("answer") or {}).get("horizon_s")
    hit_h = float(answer_h) if _finite(answer_h) else (run.horizons[-1] if run.horizons else None)
    exhaustion = events["exhaustion"].astype(bool) if "exhaustion" in events.columns else \
        pd.Series(False, index=events.index)
    header = ["symbol", "events", *[f"mean {h:g} s" for h in run.horizons],
              f"hit rate {hit_h:g} s" if hit_h is not None else "hit rate"]
    rows = []
    for symbol, own in events.groupby("symbol", sort=True):
        subsets = [("all", own), *((s, own[own["state"] == s]) for s in sorted(own["state"].unique())),
                   ("FORCED + exhaustion", own[(own["state"] == "FORCED") & exhaustion.loc[own.index]])]
        for name, subset in subsets:
            means = [_num(subset[markout_column(h)].mean()) for h in run.horizons]
            hit = None
            if hit_h is not None:
                values = subset[markout_column(hit_h)].dropna()
                hit = (values > 0).mean() if len(values) else None
            rows.append([_e(symbol) if name == "all" else "", f"{_e(name)}: {len(subset)}", *means,
                         f"{_num(hit * 100, 0)} %" if _finite(hit) else "–"])
    note = _note("Mean markouts in bps over the events with a known future mid; hit rate: the share of "
                 "markouts above zero.")
    return _table(header, rows, numeric_from=2) + note


def _spans_text(spans: Any) -> str:
    if not isinstance(spans, list) or not spans:
        return "none"
    valid = [s for s in spans if isinstance(s, (list, tuple)) and len(s) == 2 and all(_finite(v) for v in s)]
    hours = sum(int(b) - int(a) for a, b in valid) / (3600 * _NS)
    listed = [f"{_utc(a)} → {_utc(b)}" for a, b in valid[:MAX_SPANS_LISTED]]
    more = f"<br>… and {len(valid) - MAX_SPANS_LISTED} more" if len(valid) > MAX_SPANS_LISTED else ""
    return "<br>".join(_e(s) for s in listed) + more + f"<br><small>{len(valid)} span(s), {hours:,.2f} h</small>"


def _data_sections(run: _Run) -> str:
    info = run.run
    rows = []
    state_paths = info.get("state_path") or {}
    for symbol in run.symbols:
        path = state_paths.get(symbol)
        if path is None and not run.events.empty:
            own = run.events.loc[run.events["symbol"] == symbol]
            if "state_path" in own.columns and len(own):
                path = ", ".join(sorted(own["state_path"].astype(str).unique()))
        degraded = (info.get("degraded") or {}).get(symbol) or []
        degraded_text = "<br>".join(_e(d) for d in degraded) if isinstance(degraded, list) else _e(degraded)
        spans = (info.get("covered_spans_ns") or {}).get(symbol) or {}
        covered = "".join(f"<div><b>{_e(table)}</b><br>{_spans_text(s)}</div>" for table, s in spans.items()) \
            if isinstance(spans, dict) and spans else "not recorded"
        rows.append([_e(symbol), _e((info.get("book_source") or {}).get(symbol, "not recorded")),
                     degraded_text or "none", _e(path if path is not None else "not recorded"), covered])
    table = _table(["symbol", "book source", "degraded", "state path", "covered spans (UTC)"], rows) if rows \
        else _note("run.json names no symbols.")
    crash = info.get("crash_filter")
    crash_html = (_kv("crash filter", [(k, _e(v)) for k, v in crash.items()])
                  if isinstance(crash, dict) and crash else _note("run.json records no crash filter."))
    return table + crash_html


def _drift_table(run: _Run) -> str:
    drift = run.study.get("drift_regression") or {}
    rows = []
    for key, fit in drift.items():
        if not isinstance(fit, dict):
            continue
        params = fit.get("params") or {}
        for index, (name, value) in enumerate(params.items()):
            rows.append([_e(key) if index == 0 else "", _e(fit.get("n", "?")) if index == 0 else "",
                         _e(fit.get("maxlags", "?")) if index == 0 else "", _e(name), _num(value, 4),
                         _num((fit.get("se_hac") or {}).get(name), 4), _num((fit.get("t") or {}).get(name)),
                         _num((fit.get("p") or {}).get(name), 4)])
    if not rows:
        return _note("study.json holds no drift regression.")
    return (_table(["fit", "n", "HAC lags", "coefficient", "estimate", "HAC s.e.", "t", "p"], rows, numeric_from=4)
            + _note("Regression of the forward return on the current return and indicators of forced "
                    "exhaustion and informed flow, with heteroscedasticity- and autocorrelation-consistent "
                    "(Newey-West) standard errors."))


def _json_block(value: Any) -> str:
    return f"<pre>{_e(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())}</pre>"


def _metadata(run: _Run) -> str:
    info = run.run
    top = [("run folder", _e(run.path.resolve())), ("status", _e(info.get("status", "?"))),
           ("device", _e(info.get("device", "?"))), ("written", _e(info.get("written", "?"))),
           ("latency", f"{_num(run.study.get('latency_ms'), 1)} ms"),
           ("fill reference", _e(run.study.get("fill_reference", "?"))),
           ("costs (bps)", _e(", ".join(f"{k} {v}" for k, v in (run.study.get("costs_bps") or {}).items())))]
    versions = [(k, _e(v)) for k, v in (info.get("versions") or {}).items()]
    seconds = [(k, _num(v)) for k, v in (info.get("seconds") or {}).items()]
    chunks = [(k, _e(v)) for k, v in (info.get("chunks") or {}).items()]
    parts = [_kv("study and run", top)]
    for title, rows in (("versions", versions), ("seconds", seconds), ("chunks", chunks)):
        if rows:
            parts.append(_kv(title, rows))
    return ('<div class="meta">' + "".join(parts) + "</div><h3>config</h3>"
            + _json_block(info.get("config") or {}))


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:18px 28px 60px;background:#fff}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:1.8em}
h3{font-size:1em}.sub{color:#666;margin:0}
.verdict{border-left:6px solid #999;background:#f4f4f4;padding:4px 18px 10px;margin-top:14px}
.verdict.good{border-color:#1b7837;background:#eef7ef}.verdict.bad{border-color:#c0392b;background:#fbefed}
.verdict h2{border:0;margin-top:.6em}.answer{font-size:1.1em;font-weight:600}
table{border-collapse:collapse;margin:8px 0 12px;font-size:.9em}
th,td{border:1px solid #ddd;padding:3px 8px;vertical-align:top;text-align:left}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{background:none;font-weight:normal;color:#555}caption{text-align:left;font-weight:600;padding:2px 0}
figure{margin:10px 0 22px}
img{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#555;font-size:.88em}
.note{color:#555;font-size:.9em}.meta{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:.82em}
"""


def _page(run: _Run, n_events: int, validation: str | None = None, sim: str | None = None) -> str:
    config = run.run.get("config") or {}
    data = config.get("data") or {}
    subtitle = (f"{', '.join(run.symbols) or 'no symbols'} · {data.get('start', '?')} to {data.get('end', '?')} · "
                f"{len(run.events)} event(s)")
    warning = ""
    if run.run.get("status") != "complete":
        warning = _note(f"run.json status is {run.run.get('status')!r}, not 'complete': the run may be unfinished.")
    sections = [
        ("markouts", "Markout curves", _markout_curves(run)),
        ("windows", "Around the largest events", _event_windows(run, n_events)),
        ("distributions", "Markout distributions", _distributions(run)),
        ("symbols", "Per symbol", _symbol_table(run)),
        ("data", "Data and fallbacks per symbol", _data_sections(run)),
        ("drift", "Drift regression", _drift_table(run)),
        ("metadata", "Run", _metadata(run)),
    ]
    if sim is not None:
        sections.insert(1, ("sim", "Execution simulation (fills, markouts, PnL)", sim))
    if validation is not None:     # a sweep: its validation, then the chosen combination's study
        sections.insert(0, ("validation", f"Validation of the sweep (event study below: {run.path.name})",
                            validation))
    body = "".join(f'<section id="{key}"><h2>{title}</h2>{content}</section>' for key, title, content in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>gpu-lpi report: {_e(run.path.name)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>Liquidation-cascade event study</h1><p class=\"sub\">{_e(subtitle)}</p>{warning}"
            f"{_verdict(run)}{body}</main></body></html>\n")


def write_report(run_dir, n_events: int = DEFAULT_N_EVENTS) -> Path:
    """Write ``RUN/report.html``: the event study of a run as one self-contained page.

    Parameters
    ----------
    run_dir : path
        A run folder holding ``run.json``, ``study.json``, ``events.parquet`` and ``features/``
        (what ``gpu-lpi run`` writes, see ``notes/study_schema.md``), or a sweep's run folder: its
        validation (:mod:`gpu_lpi.report_validation`) and the chosen combination's event study.
    n_events : int, default :data:`DEFAULT_N_EVENTS`
        How many of the largest events (by ``|lpi|``) get a figure of their surroundings.

    Returns
    -------
    Path
        ``RUN/report.html``, written atomically (a temporary file renamed over it).

    Raises
    ------
    gpu_lpi.errors.ConfigError
        The folder does not exist, is not a run folder, holds no event study, or one of its files is
        unreadable.
    """
    from gpu_lpi.report_sim import sim_section    # these use this module's helpers
    from gpu_lpi.report_validation import study_folder, validation_section

    run_dir = Path(run_dir)
    run = _load(study_folder(run_dir))
    page = _page(run, max(0, int(n_events)), validation_section(run_dir), sim_section(run.path))
    target = run_dir / "report.html"
    tmp = run_dir / f".report.html.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{target}: cannot write the report ({err.strerror or err})") from None
    return target
