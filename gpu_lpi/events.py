"""Events of a run and their markouts (spec §9.1; DESIGN.md §4 step 7, §5 ``RUN/events.parquet``).

An event is a tick where :mod:`gpu_lpi.signals` set ``event`` (the first exhaustion candidate of an
episode). :func:`build_events` reads them from the run's feature files one symbol-day at a time,
and adds for each:

* the decision time ``decision_ts = ts + latency`` and the fill reference at it: the mid
  (``fill_reference = "mid"``), or the touch a maker order would rest at (``"touch"``: the bid for
  a buy, the ask for a sell);
* the markout at each horizon ``h``: ``dir·(m(decision_ts + h) − ref)/ref`` in basis points, with
  ``m(T)`` the mid of the last grid tick at or before ``T`` (the book as of ``T``, no look-ahead;
  NaN where that tick is missing or has no valid book: a gap, or the end of the data);
* the funding rate in force at ``ts`` (the store's ``funding`` table, as of ``ts``, at most
  :data:`FUNDING_MAX_AGE_NS` old) and its regime: ``high_positive`` (rate > ``funding_high``),
  ``negative`` (rate < ``funding_low``), ``neutral``, or ``unknown`` without funding data.

Prices are those of the tick grid: the markouts' time resolution is Δ. The mids at the horizons are
gathered on the run's device (``xp.searchsorted`` over the day's tick times).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds

from gpu_lpi.device import to_device, to_host
from gpu_lpi.store import NS_PER_DAY, TickStore
from gpu_lpi.study_params import StudyParams, markout_column

#: A funding rate older than this is unknown (Binance funds every 8 h at most).
FUNDING_MAX_AGE_NS = 9 * 3_600 * 10**9
#: Columns copied from the feature table into each event.
_EVENT_COLUMNS = ("ts", "side", "dir", "state", "exhaustion", "lpi_down", "lpi_up", "target_w",
                  "z_fsi", "z_fsi_up", "z_doi", "z_liq_sell", "z_liq_buy", "cond_panic",
                  "cond_rollover", "cond_oi_flush", "cond_liquidity", "cond_divergence")


def _features_dataset(run_dir: Path, symbol: str) -> ds.Dataset:
    """The features of one symbol (hive column ``date``; only its folder is listed)."""
    return ds.dataset(run_dir / "features" / f"symbol={symbol}", format="parquet", partitioning="hive",
                      exclude_invalid_files=True)


def feature_dates(run_dir: Path, symbol: str) -> list[str]:
    """The dates of ``symbol`` that the run's features hold."""
    folder = run_dir / "features" / f"symbol={symbol}"
    return sorted(p.name.removeprefix("date=") for p in folder.glob("date=*") if p.is_dir())


def build_events(run_dir: Path, store: TickStore, symbols, tick_ns: int, study: StudyParams,
                 state_paths: dict[str, str], xp=np) -> pd.DataFrame:
    """The events of a run with their markouts (module docstring), one row per event.

    :func:`day_events` per symbol-day, then :func:`finish_events` (the pieces a distributed run
    computes as tasks).

    Parameters
    ----------
    run_dir : Path
        A run folder whose ``features/`` are complete.
    store : TickStore
        For the funding rates.
    symbols : iterable of str
    tick_ns : int
    study : StudyParams
    state_paths : dict
        Per symbol, how its state was confirmed (:func:`gpu_lpi.signals.state_path`).
    xp : module
        ``numpy`` or ``cupy``: where the markouts are gathered.

    Returns
    -------
    pandas.DataFrame
        Columns as ``RUN/events.parquet`` (DESIGN.md §5), sorted by symbol and time.
    """
    frames = [day_events(run_dir, symbol, day, tick_ns, study, xp)
              for symbol in symbols for day in feature_dates(run_dir, symbol)]
    return finish_events(frames, store, study, state_paths)


def day_events(run_dir: Path, symbol: str, day: str, tick_ns: int, study: StudyParams,
               xp=np) -> pd.DataFrame:
    """The events of one symbol-day with their markouts (no funding regime yet)."""
    dataset = _features_dataset(run_dir, symbol)
    events = _day_events(dataset, symbol, day, set(dataset.schema.names))
    if len(events):
        _add_markouts(events, dataset, symbol, day, tick_ns, study, xp)
    return events


def finish_events(frames: list[pd.DataFrame], store: TickStore, study: StudyParams,
                  state_paths: dict[str, str]) -> pd.DataFrame:
    """Symbol-days' :func:`day_events` -> the run's events: funding regime, state path, order."""
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return _empty_events(study)
    events = pd.concat(frames, ignore_index=True)
    _add_funding(events, store, study)
    events["state_path"] = events["symbol"].map(state_paths).fillna("unknown")
    return events[_ordered_columns(study)].sort_values(["symbol", "ts"], ignore_index=True)


def _day_events(dataset: ds.Dataset, symbol: str, day: str, available: set[str]) -> pd.DataFrame:
    columns = [c for c in _EVENT_COLUMNS if c in available]
    table = dataset.to_table(columns=columns, filter=(pc.field("date") == day)
                             & (pc.field("event") == True))  # noqa: E712
    frame = table.to_pandas()
    for name in set(_EVENT_COLUMNS) - set(columns):
        frame[name] = np.nan
    down = frame["side"].to_numpy() < 0
    out = pd.DataFrame({
        "symbol": symbol, "ts": frame["ts"].astype(np.int64), "day": day,
        "side": np.where(down, "down", "up"), "dir": frame["dir"].astype(np.int8),
        "state": np.where(frame["state"].to_numpy() == 1, "FORCED", "INFORMED"),
        "exhaustion": frame["exhaustion"].astype(bool),
        "lpi": np.where(down, frame["lpi_down"], frame["lpi_up"]),
        "target_w": frame["target_w"].astype(np.float64),
        "z_fsi": np.where(down, frame["z_fsi"], frame["z_fsi_up"]),
        "z_doi": frame["z_doi"].astype(np.float64),
        "z_liq": np.where(down, frame["z_liq_sell"], frame["z_liq_buy"]).astype(np.float64),
    })
    for name in ("cond_panic", "cond_rollover", "cond_oi_flush", "cond_liquidity", "cond_divergence"):
        out[name] = frame[name].astype(bool)
    return out


def _add_markouts(events: pd.DataFrame, dataset: ds.Dataset, symbol: str, day: str, tick_ns: int,
                  study: StudyParams, xp) -> None:
    """Fill reference and markouts of one symbol-day's events (reads that day and the next)."""
    latency_ns = int(round(study.latency_ms * 1e6))
    reach_ns = latency_ns + int(round(max(study.horizons_s) * 1e9)) + tick_ns
    start = pd.Timestamp(day).value
    next_day = (pd.Timestamp(day) + timedelta(days=1)).strftime("%Y-%m-%d")
    days = [day] if int(events["ts"].max()) + reach_ns < start + NS_PER_DAY else [day, next_day]
    table = dataset.to_table(columns=["ts", "mid", "spread"], filter=(
        pc.field("date").isin(days)
        & (pc.field("ts") <= int(events["ts"].max()) + reach_ns)))
    table = table.sort_by("ts")
    times = to_device(table.column("ts").to_numpy(), xp)
    mids = to_device(table.column("mid").to_numpy(zero_copy_only=False), xp)
    spreads = to_device(table.column("spread").to_numpy(zero_copy_only=False), xp)
    decision = to_device(events["ts"].to_numpy() + latency_ns, xp)
    direction = to_device(events["dir"].to_numpy().astype(np.float64), xp)

    def at(when, values):
        """The value of the last tick at or before ``when`` (NaN when that tick is not the one
        just before: a gap, or past the data)."""
        index = xp.searchsorted(times, when, side="right") - 1
        safe = xp.maximum(index, 0)
        hit = (index >= 0) & (when - times[safe] < tick_ns)
        return xp.where(hit, values[safe], np.nan)

    reference = at(decision, mids)
    if study.fill_reference == "touch":
        reference = reference - direction * 0.5 * at(decision, spreads)
    events["decision_ts"] = to_host(decision).astype(np.int64)
    events["ref_price"] = to_host(reference)
    for horizon in study.horizons_s:
        later = at(decision + int(round(horizon * 1e9)), mids)
        events[markout_column(horizon)] = to_host(direction * (later - reference) / reference * 1e4)


def _add_funding(events: pd.DataFrame, store: TickStore, study: StudyParams) -> None:
    """Funding rate in force at each event and its regime."""
    rates = np.full(len(events), np.nan)
    for symbol in events["symbol"].unique():
        rows = np.flatnonzero(events["symbol"].to_numpy() == symbol)
        times = events["ts"].to_numpy()[rows]
        if not store.dates("funding", symbol):
            continue
        funding = store.read_arrays("funding", symbol, int(times.min()) - FUNDING_MAX_AGE_NS,
                                    int(times.max()) + 1, ("ts", "rate"))
        if not funding["ts"].size:
            continue
        index = np.searchsorted(funding["ts"], times, side="right") - 1
        safe = np.maximum(index, 0)
        fresh = (index >= 0) & (times - funding["ts"][safe] <= FUNDING_MAX_AGE_NS)
        rates[rows] = np.where(fresh, funding["rate"][safe], np.nan)
    events["funding_rate"] = rates
    events["funding_regime"] = np.select(
        [np.isnan(rates), rates > study.funding_high, rates < study.funding_low],
        ["unknown", "high_positive", "negative"], "neutral")


def _ordered_columns(study: StudyParams) -> list[str]:
    return ["symbol", "ts", "decision_ts", "day", "side", "dir", "state", "exhaustion", "lpi",
            "target_w", "z_fsi", "z_doi", "z_liq", "cond_panic", "cond_rollover", "cond_oi_flush",
            "cond_liquidity", "cond_divergence", "state_path", "funding_rate", "funding_regime",
            "ref_price", *(markout_column(h) for h in study.horizons_s)]


def _empty_events(study: StudyParams) -> pd.DataFrame:
    types = {"ts": "int64", "decision_ts": "int64", "dir": "int8", "exhaustion": "bool",
             **{c: "bool" for c in _ordered_columns(study) if c.startswith("cond_")},
             **{c: "object" for c in ("symbol", "day", "side", "state", "state_path", "funding_regime")}}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, "float64")) for c in _ordered_columns(study)})
