"""The validation's input: a table of trial returns, one row per (trial, period).

A *trial* is one configuration that was tried (a sweep's combination). Its returns are rows of

======== ========================================================================================
trial    the trial's id (a sweep's combination id, ``0000``...)
symbol   where the return was earned
t0, t1   the label span in ns since the epoch: when the return's position was decided, and when
         its outcome was known (purged CV removes training rows whose span overlaps a test block)
period   the row's period label (the UTC day)
ret      the return after costs, in bps
======== ========================================================================================

and each trial's parameter values live in a second table (``trial`` and one column per swept
name). Nothing downstream (Sharpe ratios, CV, stability, robustness) reads anything else, so any
producer of returns plugs in: :func:`event_study_returns` gives the event study's (one row per Mode A
event: the markout at the objective horizon less the cost line); an execution simulator's per-episode
or per-day PnL is the same table with its own rows
(:func:`gpu_lpi.validation.sweep.write_validation`'s ``returns``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gpu_lpi.study import event_kind, read_events
from gpu_lpi.study_params import markout_column

#: Columns of the trial-returns table, in order.
RETURN_COLUMNS = ("trial", "symbol", "t0", "t1", "period", "ret")


def event_study_returns(events: pd.DataFrame, trial: str, horizon_s: float, cost_bps: float) -> pd.DataFrame:
    """One trial's returns from its events: per Mode A event (state FORCED with exhaustion, the
    study's ``forced_exhaustion`` kind) with a markout at ``horizon_s``, the markout less
    ``cost_bps``; its span runs from the decision time to the end of the horizon."""
    markout = events[markout_column(horizon_s)].to_numpy(dtype=np.float64)
    keep = (event_kind(events).to_numpy() == "forced_exhaustion") & np.isfinite(markout)
    chosen = events[keep]
    t0 = chosen["decision_ts"].to_numpy(np.int64)
    return pd.DataFrame({"trial": trial, "symbol": chosen["symbol"].astype(str).to_numpy(), "t0": t0,
                         "t1": t0 + int(round(horizon_s * 1e9)), "period": chosen["day"].astype(str).to_numpy(),
                         "ret": markout[keep] - cost_bps}, columns=list(RETURN_COLUMNS))


def sweep_returns(folders: dict[str, Path], horizon_s: float, cost_bps: float) -> pd.DataFrame:
    """The trial returns of a sweep: :func:`event_study_returns` of each combination's run folder
    (``{trial id: folder}``), in the trials' order."""
    frames = [event_study_returns(read_events(folder), trial, horizon_s, cost_bps)
              for trial, folder in folders.items()]
    return _returns_table(frames)


#: ``returns`` of validation.json where a sweep's trials are the simulator's episodes.
SIM_RETURNS = "simulated episodes: net PnL after fees in bps of the entry notional (RUN/sim/)"


def sim_returns(folders: dict[str, Path], scenario: int = 0) -> pd.DataFrame:
    """The trial returns of a sweep run with ``[sim]``: per combination, the traded episodes of
    ``scenario``, their net return after fees in bps of the entry notional; the span runs from the
    entry decision to flat."""
    from gpu_lpi.sim.outputs import read_part

    frames = []
    for trial, folder in folders.items():
        episodes = read_part(folder, "episodes")
        if episodes.empty:
            continue
        traded = episodes[(episodes["scenario"] == scenario) & (episodes["status"] == "traded")]
        frames.append(pd.DataFrame({
            "trial": trial, "symbol": traded["symbol"].astype(str).to_numpy(),
            "t0": traded["start_ts"].to_numpy(np.int64), "t1": traded["end_ts"].to_numpy(np.int64),
            "period": pd.to_datetime(traded["start_ts"], unit="ns").dt.strftime("%Y-%m-%d").to_numpy(),
            "ret": traded["net_bps"].to_numpy(np.float64)}, columns=list(RETURN_COLUMNS)))
    return _returns_table(frames)


def _returns_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The trial-returns frames as one table of :data:`RETURN_COLUMNS` (empty where there are none)."""
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(RETURN_COLUMNS))
    return table.astype({"t0": np.int64, "t1": np.int64, "ret": np.float64})
