"""One symbol-day of the simulation: activations from the run's features, their market windows, every
scenario in one launch, and the results as tables (spec §5.3, §9.2; DESIGN.md §4 step 8).

An *activation* is a Mode A entry of the signals: a tick with ``event``, ``exhaustion``, state
FORCED and a non-zero ``target_w`` (:mod:`gpu_lpi.signals`). Its window runs from its tick to the
longest episode any scenario can have (:attr:`gpu_lpi.sim.params.SimParams.window_s`) plus the
longest markout horizon, so the fill markouts are read from the same events. The strategy's view
in the window are the feature ticks (LPI of both sides, z(Π), spread, target) -- the features of
the next day too where the window passes midnight.

Outputs (:class:`DayResult`), one row per:

* **episode** (scenario × activation): status (``traded``, ``no_fill``, ``busy`` -- the scenario
  was still in an earlier episode --, ``no_book``), exit reason, entry and exit quantity and
  average price, gross PnL, fees, net PnL (quote currency), the net return in bps of the entry
  notional, start and end, the largest position;
* **fill**: time, price, signed quantity, maker/taker, order kind, and the fill markouts
  ``markout_bps_<τ> = side·(m(t+τ) − p)/p`` (spec §5.3: negative at 0.5–2 s means providing
  liquidity to toxic flow), ``m`` the mid of the replayed book as of ``t + τ``;
* **order**: kind, side, limit price, quantity, filled, sent / arrived / ended, final status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds

from gpu_lpi.sim.engine import launch
from gpu_lpi.sim.market import MarketWindows, load_windows
from gpu_lpi.sim.params import SimSpec
from gpu_lpi.store import NS_PER_DAY
from gpu_lpi.study_params import markout_column
from kernels import maker_sim as k

#: Feature columns the simulation reads.
VIEW_COLUMNS = ("ts", "mid", "spread", "lpi_down", "lpi_up", "z_pi", "target_w", "sigma", "event",
                "exhaustion", "state")
EPISODE_STATUS = {k.EP_BUSY: "busy", k.EP_NO_BOOK: "no_book", k.EP_NO_FILL: "no_fill", k.EP_TRADED: "traded"}
EXIT_REASONS = {k.EXIT_NONE: "", k.EXIT_TP_LPI: "take_profit_lpi", k.EXIT_TP_TARGET: "take_profit_target",
                k.EXIT_SIGMA: "sigma_stop", k.EXIT_TIME: "time_stop", k.EXIT_WINDOW_END: "window_end"}
ORDER_KINDS = {k.ENTRY: "entry", k.EXIT_MAKER: "exit_maker", k.EXIT_TAKER: "exit_taker", k.SCRIPTED: "scripted"}
ORDER_STATUS = {k.OPEN: "open", k.FILLED: "filled", k.CANCELLED: "cancelled", k.REJECTED: "rejected",
                k.EXPIRED: "expired"}


@dataclass
class DayResult:
    """A symbol-day's episodes, fills and orders (module docstring), ``scenario`` in each."""

    episodes: pd.DataFrame
    fills: pd.DataFrame
    orders: pd.DataFrame
    n_events: int = 0


def activations(view: pd.DataFrame, day_start: int) -> pd.DataFrame:
    """Mode A entries of the day (ticks of ``view`` from ``day_start`` to the day's end)."""
    ts = view["ts"].to_numpy()
    entry = (view["event"].to_numpy(bool) & view["exhaustion"].to_numpy(bool)
             & (view["state"].to_numpy() == 1) & (view["target_w"].to_numpy() != 0.0)
             & (ts >= day_start) & (ts < day_start + NS_PER_DAY))
    index = np.flatnonzero(entry)
    target = view["target_w"].to_numpy()[index]
    return pd.DataFrame({"tick": index, "ts": ts[index], "dir": np.sign(target).astype(np.int8),
                         "w": np.abs(target), "sigma": view["sigma"].to_numpy()[index]})


def read_view(run_dir: Path, symbol: str, day: str, reach_ns: int) -> pd.DataFrame:
    """The day's feature ticks, and the next day's up to ``reach_ns`` past midnight."""
    dataset = ds.dataset(run_dir / "features" / f"symbol={symbol}", format="parquet",
                         partitioning="hive", exclude_invalid_files=True)
    next_day = (pd.Timestamp(day) + timedelta(days=1)).strftime("%Y-%m-%d")
    end = pd.Timestamp(day).value + NS_PER_DAY + reach_ns
    table = dataset.to_table(columns=list(VIEW_COLUMNS), filter=pc.field("date").isin([day, next_day])
                             & (pc.field("ts") < end))
    return table.sort_by("ts").to_pandas()


def simulate_day(store, symbol: str, day: str, view: pd.DataFrame, spec: SimSpec, horizons_s,
                 target: str = "cpu") -> DayResult:
    """Every scenario of ``spec`` (already resolved against the job's params) over the day."""
    day_start = pd.Timestamp(day).value
    acts = activations(view, day_start)
    scenarios = spec.scenarios
    if acts.empty:
        return DayResult(*_empty_frames(horizons_s))
    reach = int(round((max(s.window_s for s in scenarios) + max(horizons_s) + 1.0) * 1e9))
    starts = acts["ts"].to_numpy()
    market = load_windows(store, symbol, [(t, t + reach) for t in starts], spec.band_bps)
    return simulate_windows(market, view, acts, spec, symbol, horizons_s, target)


def simulate_windows(market: MarketWindows, view: pd.DataFrame, acts: pd.DataFrame, spec: SimSpec,
                     symbol: str, horizons_s, target: str = "cpu") -> DayResult:
    """Every scenario of ``spec`` over the activations ``acts`` (:func:`activations`; one window of
    ``market`` each, in order) with the strategy's view ``view`` (feature ticks)."""
    episode_reach = int(round(max(s.window_s for s in spec.scenarios) * 1e9))
    record = _record(market, view, acts, episode_reach, np.stack(
        [s.row(spec.fees_for(symbol, s)) for s in spec.scenarios]))
    result = launch(k.simulate, record, len(spec.scenarios), len(acts),
                    {"tick_size": market.tick_size, "lot_size": market.lot_size,
                     "contract_size": market.contract_size, "rate_ref": market.rate_ref}, target)
    return DayResult(_episodes(result, acts, market, symbol), _fills(result, acts, market, symbol, horizons_s),
                     _orders(result, acts, symbol), market.n_events)


def _record(market: MarketWindows, view: pd.DataFrame, acts: pd.DataFrame, reach: int,
            scenario: np.ndarray) -> k.Market:
    ts = view["ts"].to_numpy().astype(np.int64)
    first = acts["tick"].to_numpy()
    last = np.searchsorted(ts, acts["ts"].to_numpy() + reach, side="right")
    ticks = np.concatenate([np.arange(a, b) for a, b in zip(first, last)])
    bounds = np.concatenate([[0], np.cumsum(last - first)])
    mid = view["mid"].to_numpy()[ticks]
    return k.Market(
        ev_ts=market.ev_ts, ev_kind=market.ev_kind, ev_side=market.ev_side, ev_price=market.ev_price,
        ev_qty=market.ev_qty, ev_bid=market.ev_bid, ev_ask=market.ev_ask, ev_delay=market.ev_delay,
        ev_rate=market.ev_rate, lv_key=market.lv_key, lv_ev=market.lv_ev, lv_qty=market.lv_qty,
        a_ev0=market.w_ev0, a_ev1=market.w_ev1, a_lv0=market.w_lv0, a_lv1=market.w_lv1,
        a_tk0=bounds[:-1].astype(np.int64), a_tk1=bounds[1:].astype(np.int64),
        a_bid0=market.w_bid0, a_ask0=market.w_ask0, a_delay0=market.w_delay0, a_rate0=market.w_rate0,
        a_dir=acts["dir"].to_numpy(np.int8), a_w=acts["w"].to_numpy(np.float64),
        a_sigma=acts["sigma"].to_numpy(np.float64), tk_ts=ts[ticks],
        tk_lpi_down=view["lpi_down"].to_numpy(np.float64)[ticks],
        tk_lpi_up=view["lpi_up"].to_numpy(np.float64)[ticks],
        tk_z_pi=view["z_pi"].to_numpy(np.float64)[ticks],
        tk_spread_bps=(view["spread"].to_numpy(np.float64)[ticks] / mid * 1e4),
        tk_target_w=np.abs(view["target_w"].to_numpy(np.float64)[ticks]), scenario=scenario)


def _episodes(result, acts: pd.DataFrame, market: MarketWindows, symbol: str) -> pd.DataFrame:
    a = result.arrays
    n_s, n_a = result.n_scenarios, len(acts)
    pick = (np.arange(n_s)[:, None] * result.n_act + np.arange(n_a)[None, :]).ravel()
    direction = np.tile(acts["dir"].to_numpy(np.float64), n_s)
    entry_qty, exit_qty = a["ep_entry_qty"][pick], a["ep_exit_qty"][pick]
    entry_cost, exit_cost = a["ep_entry_cost"][pick], a["ep_exit_cost"][pick]
    gross = direction * (exit_cost - entry_cost) * market.contract_size
    fees = a["ep_fees"][pick]
    with np.errstate(invalid="ignore", divide="ignore"):
        entry_price = np.where(entry_qty > 0, entry_cost / entry_qty, np.nan)
        exit_price = np.where(exit_qty > 0, exit_cost / exit_qty, np.nan)
        notional = entry_cost * market.contract_size
        net_bps = np.where(notional > 0, (gross - fees) / notional * 1e4, np.nan)
    return pd.DataFrame({
        "scenario": np.repeat(np.arange(n_s), n_a), "symbol": symbol,
        "activation_ts": np.tile(acts["ts"].to_numpy(), n_s), "dir": direction.astype(np.int8),
        "status": pd.Categorical.from_codes(a["ep_status"][pick], list(EPISODE_STATUS.values())),
        "exit_reason": [EXIT_REASONS[int(r)] for r in a["ep_reason"][pick]],
        "entry_qty": entry_qty, "entry_price": entry_price, "exit_qty": exit_qty, "exit_price": exit_price,
        "gross_pnl": gross, "fees": fees, "net_pnl": gross - fees, "net_bps": net_bps,
        "start_ts": a["ep_start"][pick], "end_ts": a["ep_end"][pick], "max_position": a["ep_max_pos"][pick]})


def _rows(result, counts: str, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the used rows of every scenario's block, and their scenario."""
    used = result.arrays[counts]
    scenario = np.repeat(np.arange(result.n_scenarios), used)
    offset = np.arange(used.sum()) - np.repeat(np.cumsum(used) - used, used)
    return scenario * cap + offset, scenario


def _fills(result, acts, market: MarketWindows, symbol: str, horizons_s) -> pd.DataFrame:
    a = result.arrays
    rows, scenario = _rows(result, "n_fills", result.fill_cap)
    order_rows = scenario * result.order_cap + a["fl_order"][rows]
    activation = a["or_act"][order_rows]
    ts, price, qty = a["fl_ts"][rows], a["fl_price"][rows], a["fl_qty"][rows]
    frame = pd.DataFrame({
        "scenario": scenario, "symbol": symbol, "activation_ts": acts["ts"].to_numpy()[activation],
        "ts": ts, "price": price, "qty": qty, "maker": a["fl_maker"][rows].astype(bool),
        "order_kind": [ORDER_KINDS[int(x)] for x in a["or_kind"][order_rows]],
        "order": a["fl_order"][rows]})
    side = np.sign(qty)
    for horizon in horizons_s:
        later = market.mid_at(activation, ts + int(round(horizon * 1e9)))
        frame[markout_column(horizon)] = side * (later - price) / price * 1e4
    return frame


def _orders(result, acts, symbol: str) -> pd.DataFrame:
    a = result.arrays
    rows, scenario = _rows(result, "n_orders", result.order_cap)
    end = a["or_end"][rows]
    return pd.DataFrame({
        "scenario": scenario, "symbol": symbol, "order": rows - scenario * result.order_cap,
        "activation_ts": acts["ts"].to_numpy()[a["or_act"][rows]],
        "kind": [ORDER_KINDS[int(x)] for x in a["or_kind"][rows]], "side": a["or_side"][rows],
        "price": a["or_price"][rows], "qty": a["or_qty"][rows], "filled": a["or_filled"][rows],
        "submit_ts": a["or_submit"][rows], "arrive_ts": a["or_arrive"][rows],
        "end_ts": np.where(end >= k.INF, -1, end),
        "status": [ORDER_STATUS[int(x)] for x in a["or_status"][rows]]})


def _empty_frames(horizons_s):
    episodes = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in (
        ("scenario", np.int64), ("symbol", object), ("activation_ts", np.int64), ("dir", np.int8),
        ("status", object), ("exit_reason", object), ("entry_qty", float), ("entry_price", float),
        ("exit_qty", float), ("exit_price", float), ("gross_pnl", float), ("fees", float),
        ("net_pnl", float), ("net_bps", float), ("start_ts", np.int64), ("end_ts", np.int64),
        ("max_position", float))})
    fills = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in (
        ("scenario", np.int64), ("symbol", object), ("activation_ts", np.int64), ("ts", np.int64),
        ("price", float), ("qty", float), ("maker", bool), ("order_kind", object), ("order", np.int64),
        *((markout_column(h), float) for h in horizons_s))})
    orders = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in (
        ("scenario", np.int64), ("symbol", object), ("order", np.int64), ("activation_ts", np.int64),
        ("kind", object), ("side", np.int8), ("price", float), ("qty", float), ("filled", float),
        ("submit_ts", np.int64), ("arrive_ts", np.int64), ("end_ts", np.int64), ("status", object))})
    return episodes, fills, orders
