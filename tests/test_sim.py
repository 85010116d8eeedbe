"""The execution simulator (issue 9): fill models by hand, the strategy's orders and exits, latency,
fees, CPU = CUDA simulator, the market windows against the book replay, and a run's ``RUN/sim/``."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pandas as pd
import pytest

from gpu_lpi.errors import ConfigError
from gpu_lpi.sim.day import activations, simulate_windows
from gpu_lpi.sim.params import SimSpec
from gpu_lpi.sim.scripted import simulate_orders
from kernels.maker_sim import _level_qty
from tests.sim_markets import BOOK, MS, S, hand_market, orders, view

END = 1000 * S


def market(*events, levels=BOOK):
    return hand_market([(0, END, levels, list(events))])


def fills_of(events, order_rows, **options):
    return simulate_orders(market(*events), orders(*order_rows), **options)


# -- fill models, by hand -----------------------------------------------------------------------------

def test_a_bid_never_fills_without_a_trade_through_it():
    prints_at_bid = [("trade", 10, "sell", 100, 50.0), ("trade", 20, "buy", 101, 50.0)]
    bid = [(1, 0, 1, 100.0, 2.0, -1)]
    assert fills_of(prints_at_bid, bid, fill_model="trade_through").empty
    queued = fills_of(prints_at_bid, bid, fill_model="queue_risk_averse")
    assert queued[["order_id", "ts", "price", "qty"]].values.tolist() == [[1, 10, 100.0, 2.0]]
    through = fills_of(prints_at_bid + [("trade", 30, "sell", 99, 0.001)], bid, fill_model="trade_through")
    assert through[["ts", "price", "qty"]].values.tolist() == [[30, 100.0, 2.0]]   # all of it


def test_partial_fills_are_carried_and_the_rest_cancelled():
    events = [("trade", 10, "sell", 100, 7.0), ("trade", 20, "sell", 100, 1.0)]
    bid = [(1, 0, 1, 100.0, 4.0, 30)]                    # queue ahead 5: 2 then 1 more
    partial = fills_of(events, bid, fill_model="queue_risk_averse", partial_fills=True)
    assert partial[["ts", "qty"]].values.tolist() == [[10, 2.0], [20, 1.0]]
    whole = fills_of(events, bid, fill_model="queue_risk_averse", partial_fills=False)
    assert whole[["ts", "qty"]].values.tolist() == [[10, 4.0]]


def test_latency_makes_a_quote_miss_its_fill():
    events = [("trade", 1 * MS, "sell", 99, 1.0)]
    bid = [(1, 0, 1, 100.0, 1.0, -1)]
    assert len(fills_of(events, bid, fill_model="trade_through", order_latency_ms=0.5)) == 1
    assert fills_of(events, bid, fill_model="trade_through", order_latency_ms=2.0).empty
    # a cancel in flight does not stop a fill that comes first (sent at 0.5 ms, it arrives at 1.4 ms)
    late_cancel = [(1, 0, 1, 100.0, 1.0, MS // 2)]
    assert len(fills_of(events, late_cancel, fill_model="trade_through", order_latency_ms=0.9)) == 1
    early_cancel = [(1, 0, 1, 100.0, 1.0, MS // 20)]        # arrives at 0.95 ms, before the print
    assert fills_of(events, early_cancel, fill_model="trade_through", order_latency_ms=0.9).empty


def test_a_negative_maker_fee_is_a_rebate():
    events = [("trade", 10, "sell", 99, 1.0), ("trade", 20, "buy", 102, 1.0)]
    rows = [(1, 0, 1, 100.0, 2.0, -1), (2, 0, -1, 101.0, 2.0, -1)]
    fills = fills_of(events, rows, fill_model="trade_through", maker_fee_bps=-1.0, taker_fee_bps=5.0)
    assert fills["fee"].tolist() == pytest.approx([-1e-4 * 100.0 * 2.0, -1e-4 * 101.0 * 2.0])


def test_queue_models_credit_cancellations_differently():
    events = [("level", 10, 0, 100, 10.0),        # 2 join behind us: ahead 8, behind 2
              ("level", 20, 0, 100, 6.0),         # 4 cancelled, no trade
              ("trade", 30, "sell", 100, 5.0)]
    levels = {**BOOK, (0, 100): 8.0}
    bid = orders((1, 0, 1, 100.0, 1.0, -1))
    qty = {}
    for model, power in (("queue_risk_averse", 1.0), ("queue_prob", 1.0), ("queue_prob", 2.0)):
        fills = simulate_orders(market(*events, levels=levels), bid, fill_model=model, queue_power=power)
        qty[(model, power)] = fills["qty"].sum()
    assert qty[("queue_risk_averse", 1.0)] == 0.0             # ahead min(8, 6) = 6 > 5 traded
    assert qty[("queue_prob", 1.0)] == pytest.approx(0.2)     # ahead 8 - 4*8/10 = 4.8
    assert qty[("queue_prob", 2.0)] == pytest.approx(5.0 - (8.0 - 4.0 * 64 / 68))


def test_trades_at_the_level_are_not_counted_twice_when_the_level_shrinks():
    events = [("trade", 10, "sell", 100, 3.0), ("level", 11, 0, 100, 2.0),
              ("trade", 20, "sell", 100, 2.0), ("trade", 30, "sell", 100, 1.0)]
    for model in ("queue_risk_averse", "queue_prob"):
        fills = fills_of(events, [(1, 0, 1, 100.0, 1.0, -1)], fill_model=model, queue_power=1.0)
        assert fills[["ts", "qty"]].values.tolist() == [[30, 1.0]], model


def test_post_only_orders_that_would_cross_are_rejected():
    events = [("trade", 10, "sell", 90, 100.0)]
    assert fills_of(events, [(1, 0, 1, 101.0, 1.0, -1)], fill_model="trade_through").empty


def test_a_taker_order_walks_the_book():
    rows = orders((1, 5, 1, np.nan, 7.0, -1))
    rows["taker"] = True
    fills = simulate_orders(market(), rows, taker_fee_bps=5.0)
    assert fills["price"].tolist() == pytest.approx([(5 * 101 + 2 * 102) / 7])
    assert not fills["maker"].any()
    assert fills["fee"].tolist() == pytest.approx([5e-4 * (5 * 101 + 2 * 102)])


# -- the strategy -------------------------------------------------------------------------------------

def strategy(events, spec_values=None, ticks=None, levels=BOOK, windows=None, horizons=(1.0,), target="cpu"):
    """Simulate the hand market's activations (window starts) with ``[sim]`` values."""
    windows = windows or [(0, END, levels, list(events))]
    market = hand_market(windows)
    frames = [view(start, 300.0, **(ticks or {})) for start, *_ in windows]
    ticks_frame = pd.concat(frames, ignore_index=True).sort_values("ts", ignore_index=True)
    acts = activations(ticks_frame, 0)
    values = {"feed_latency_ms": 0.0, "order_latency": "constant", "order_latency_ms": 0.0,
              "latency_activity": 0.0, "capital_usd": 1000.0, "maker_fee_bps": 0.0,
              "taker_fee_bps": 0.0, "tp_lpi": 1.2, "time_stop_s": 120.0, "stop_sigma": 2.5,
              "max_spread_bps": 500.0,         # one tick at 100 is 100 bps
              **(spec_values or {})}
    spec = SimSpec.from_mapping(values)
    return simulate_windows(market, ticks_frame, acts, spec, "TESTUSDT", horizons, target)


def test_entry_layers_fill_and_take_profit_exits_by_maker():
    crash = [("trade", 1 * S, "sell", 97, 100.0),
             *(("level", 1 * S, 0, p, 0.0) for p in (100, 99, 98)), ("level", 1 * S, 0, 96, 9.0),
             ("level", 1 * S, 1, 97, 9.0),               # book after the sweep: 96 / 97
             ("trade", 4 * S, "buy", 98, 100.0)]         # lifts our exit ask at 97
    result = strategy(crash, ticks={"lpi_down": lambda ts: np.where(ts < 3 * S, 5.0, 1.0), "sigma": 0.05})
    f = result.fills
    qty = [2.487, 1.492, 0.995]                          # 500 USD / 100.5 at 50/30/20 %, lots of 0.001
    assert f["price"].tolist()[:3] == [100.0, 99.0, 98.0]
    assert f["qty"].tolist()[:3] == pytest.approx(qty)
    assert f["order_kind"].tolist() == ["entry"] * 3 + ["exit_maker"]
    assert f["price"].iloc[3] == 97.0 and f["ts"].iloc[3] == 4 * S
    ep = result.episodes.iloc[0]
    assert ep["status"] == "traded" and ep["exit_reason"] == "take_profit_lpi"
    assert ep["gross_pnl"] == pytest.approx(97.0 * sum(qty) - (100 * qty[0] + 99 * qty[1] + 98 * qty[2]))


def test_sigma_stop_exits_by_taker_walking_the_bids():
    crash = [("trade", 1 * S, "sell", 97, 100.0),
             *(("level", 1 * S, 0, p, 0.0) for p in (100, 99, 98)), ("level", 1 * S, 0, 96, 3.0),
             ("level", 1 * S, 0, 95, 9.0), ("level", 1 * S, 1, 97, 9.0)]
    result = strategy(crash, {"stop_sigma": 2.5}, ticks={"sigma": 0.001})
    ep = result.episodes.iloc[0]
    assert ep["exit_reason"] == "sigma_stop"
    taker = result.fills[result.fills["order_kind"] == "exit_taker"]
    assert len(taker) == 1 and taker["ts"].iloc[0] == 1 * S   # the tick at 1 s sees data up to 1 s
    total = 2.487 + 1.492 + 0.995
    assert taker["price"].iloc[0] == pytest.approx((3 * 96 + (total - 3) * 95) / total)


def test_time_stop_and_the_window_are_honoured():
    crash = [("trade", 1 * S, "sell", 97, 100.0)]
    result = strategy(crash, {"time_stop_s": 30.0})
    ep = result.episodes.iloc[0]
    assert ep["exit_reason"] == "time_stop"
    taker = result.fills[result.fills["order_kind"] == "exit_taker"]
    assert taker["ts"].iloc[0] == 30 * S


def test_the_toxicity_gate_pulls_quotes_and_requotes_at_the_new_touch():
    events = [("level", 2 * S, 0, 100, 0.0),          # while gated the touch drops to 99
              ("trade", 3 * S, "sell", 98, 100.0)]    # after the gate: through 99 and 98 (not 100)
    toxic = {"z_pi": lambda ts: np.where((ts >= 250 * MS) & (ts < 2500 * MS), 9.0, 0.0)}
    result = strategy(events, {"z_pi_max": 3.0, "fill_model": "trade_through"}, ticks=toxic)
    o = result.orders
    pulled = o[(o["status"] == "cancelled") & (o["end_ts"] <= 2500 * MS)]
    assert pulled["kind"].tolist() == ["entry"] * 3 and (pulled["end_ts"] == 250 * MS).all()
    requoted = o[(o["kind"] == "entry") & (o["submit_ts"] == 2500 * MS)]
    assert sorted(requoted["price"]) == [97.0, 98.0, 99.0]
    entry = result.fills[result.fills["order_kind"] == "entry"]
    assert sorted(entry["price"]) == [99.0]           # only the 99 bid is above the 98 print


def test_an_order_latency_can_miss_the_entry():
    crash = [("trade", 1 * S, "sell", 97, 100.0)]
    quick = strategy(crash, {"order_latency_ms": 500.0})
    slow = strategy(crash, {"order_latency_ms": 1500.0})
    assert quick.episodes["status"].iloc[0] == "traded"
    assert slow.episodes["status"].iloc[0] == "no_fill"


def test_an_activation_while_busy_is_skipped():
    crash = [("trade", 1 * S, "sell", 97, 100.0)]
    windows = [(0, END, BOOK, crash), (10 * S, END, BOOK, [])]
    result = strategy(None, windows=windows)
    assert result.episodes["status"].tolist() == ["traded", "busy"]


def test_a_grid_runs_every_scenario_and_rebates_raise_pnl():
    crash = [("trade", 1 * S, "sell", 97, 100.0), ("level", 1 * S, 1, 97, 9.0),
             ("trade", 4 * S, "buy", 98, 100.0)]
    result = strategy(crash, {"maker_fee_bps": [2.0, -1.0]},
                      ticks={"lpi_down": lambda ts: np.where(ts < 3 * S, 5.0, 1.0)})
    pnl = result.episodes.set_index("scenario")
    assert pnl.loc[0, "gross_pnl"] == pnl.loc[1, "gross_pnl"]
    assert pnl.loc[1, "net_pnl"] > pnl.loc[1, "gross_pnl"] > pnl.loc[0, "net_pnl"]


def test_sim_settings_are_checked():
    with pytest.raises(ConfigError, match=r"sim.fill_model: expected one of"):
        SimSpec.from_mapping({"fill_model": "optimistic"})
    with pytest.raises(ConfigError, match=r"sim.layer_fractions: .*summing to at most 1"):
        SimSpec.from_mapping({"layer_fractions": [0.9, 0.9, 0.9]})
    with pytest.raises(ConfigError, match=r"sim.order_latency_max_ms: .*\(in the scenario order_latency_ms=200.0\)"):
        SimSpec.from_mapping({"order_latency_ms": [50.0, 200.0]})
    with pytest.raises(ConfigError, match=r"sim.bogus: unknown key"):
        SimSpec.from_mapping({"bogus": 1})
    grid = SimSpec.from_mapping({"fill_model": ["trade_through", "queue_prob"],
                                 "layer_ticks": [[0, 1, 2], [0, 2, 4]]})
    with_layers = [(s.fill_model, s.layer_ticks) for s in grid.scenarios]
    assert with_layers == [("trade_through", (0, 1, 2)), ("trade_through", (0, 2, 4)),
                           ("queue_prob", (0, 1, 2)), ("queue_prob", (0, 2, 4))]
    with pytest.raises(ConfigError, match=r"layer_fractions: expected 2 .*\(in the scenario"):
        SimSpec.from_mapping({"layer_ticks": [[0], [0, 2]], "layer_fractions": [[1.0]]})


# -- CPU = GPU (CUDA simulator) -----------------------------------------------------------------------

_PARITY = """
import numpy as np
from tests.test_sim import END, random_scripted_case, strategy
from gpu_lpi.sim.scripted import simulate_orders
crash = [("trade", 10**9, "sell", 97, 100.0), ("level", 10**9, 1, 97, 9.0), ("trade", 4 * 10**9, "buy", 98, 100.0)]
values = {"fill_model": ["trade_through", "queue_risk_averse", "queue_prob"],
          "order_latency": "uniform", "order_latency_ms": 10.0, "order_latency_max_ms": 900.0}
for target in ("cpu", "gpu"):
    result = strategy(crash, values, ticks={"lpi_down": lambda ts: np.where(ts < 3 * 10**9, 5.0, 1.0)},
                      target=target)
    market, script = random_scripted_case(7)
    fills = simulate_orders(market, script, fill_model="queue_prob", device=target)
    print(target, result.fills.to_json(), result.orders.to_json(), result.episodes.to_json(), fills.to_json())
"""


def test_cpu_and_cuda_simulator_give_identical_fills_and_pnl():
    from tests.conftest import run_under_cuda_simulator

    lines = run_under_cuda_simulator(_PARITY, timeout=900).splitlines()
    cpu, gpu = (line.split(" ", 1)[1] for line in lines if line.startswith(("cpu ", "gpu ")))
    assert cpu == gpu


# -- against a reference engine, and without look-ahead -----------------------------------------------

def random_scripted_case(seed: int, n_events: int = 400, n_orders: int = 120):
    """A random book walk with trades and level updates, and random orders around the touch."""
    rng = np.random.default_rng(seed)
    events, mid = [], 100
    for i in range(n_events):
        ts = (i + 1) * MS
        mid += int(rng.integers(-1, 2)) if rng.random() < 0.1 else 0
        if rng.random() < 0.5:
            aggressor = "sell" if rng.random() < 0.5 else "buy"
            price = mid - int(rng.integers(0, 3)) if aggressor == "sell" else mid + 1 + int(rng.integers(0, 3))
            events.append(("trade", ts, aggressor, price, float(rng.integers(1, 6))))
        else:
            side = int(rng.integers(0, 2))
            price = mid - int(rng.integers(0, 4)) if side == 0 else mid + 1 + int(rng.integers(0, 4))
            events.append(("level", ts, side, price, float(rng.integers(0, 9))))
    submit = np.sort(rng.integers(0, n_events * MS, n_orders))
    side = rng.choice([1, -1], n_orders)
    price = 100 + rng.integers(-3, 4, n_orders)
    cancel = np.where(rng.random(n_orders) < 0.5, submit + rng.integers(1, 50, n_orders) * MS, -1)
    script = orders(*zip(range(n_orders), submit, side, price.astype(float),
                         rng.integers(1, 5, n_orders).astype(float), cancel))
    return market(*events), script


@pytest.mark.parametrize("model", ["trade_through", "queue_risk_averse", "queue_prob"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scripted_fills_match_the_reference_engine(model, seed):
    from tests.reference import reference_scripted_fills

    market_windows, script = random_scripted_case(seed)
    fills = simulate_orders(market_windows, script, fill_model=model, queue_power=1.5, order_latency_ms=0.3)
    expected = reference_scripted_fills(market_windows, script, model, queue_power=1.5, latency_ns=300_000)
    assert len(fills) > 5
    got = fills.sort_values(["ts", "order_id"])[["order_id", "ts", "price", "qty"]].to_numpy()
    assert got.shape == np.asarray(expected).shape
    np.testing.assert_allclose(got, np.asarray(expected, dtype=float), rtol=0, atol=1e-9)


def test_truncating_the_market_after_t_changes_no_fill_before_t():
    market_windows, script = random_scripted_case(4)
    full = simulate_orders(market_windows, script, fill_model="queue_prob")
    cut = 200 * MS
    keep = market_windows.ev_ts <= cut
    short = hand_market([(0, END, BOOK, [e for e in _events_of(market_windows) if e[1] <= cut])])
    assert keep.sum() < keep.size
    truncated = simulate_orders(short, script, fill_model="queue_prob")
    before = full[full["ts"] <= cut].reset_index(drop=True)
    assert len(before) > 3
    pd.testing.assert_frame_equal(before, truncated[truncated["ts"] <= cut].reset_index(drop=True))


def _events_of(m):
    return [("trade" if kind == 0 else "level", int(ts), ("sell" if side == 0 else "buy") if kind == 0 else int(side),
             int(price), float(qty)) for kind, ts, side, price, qty in
            zip(m.ev_kind, m.ev_ts, m.ev_side, m.ev_price, m.ev_qty)]


# -- a run: RUN/sim/ on a generated market, resumed; the market windows against the replay -----------

@pytest.fixture(scope="module")
def synth_run(tmp_path_factory):
    """A generated BTCUSDT day (binance-ws, planted cascades), ingested and run with a [sim] grid."""
    from datetime import date

    from gpu_lpi.ingest import ingest
    from gpu_lpi.run import run_job
    from gpu_lpi.synth import synthesize

    work = tmp_path_factory.mktemp("sim_run")
    synthesize(work / "raw", "binance-ws", ["BTCUSDT"], date(2024, 8, 5), 1, 1, rate_scale=0.05)
    ingest(sorted((work / "raw").glob("*.gz")), "binance-ws", work / "store")
    spec = {"data": {"store": str(work / "store"), "symbols": ["BTCUSDT"], "start": "2024-08-05",
                     "end": "2024-08-05"},
            "sim": {"fill_model": ["trade_through", "queue_prob"], "maker_fee_bps": [2.0, -0.5]}}
    return spec, work, run_job(spec, out=work / "run", device="cpu")


def test_a_run_writes_run_sim_and_resumes_it(synth_run):
    from gpu_lpi.report import write_report
    from gpu_lpi.run import run_job

    spec, work, result = synth_run
    sim = work / "run" / "sim"
    scenarios = result.sim_scenarios()
    assert list(scenarios["scenario"]) == [0, 1, 2, 3]
    assert (scenarios["activations"] >= 1).all() and (scenarios["traded"] >= 1).all(), scenarios
    assert result.sim["n_scenarios"] == 4 and result.sim["skipped"] == {}
    fills = result.sim_table("fills")
    assert {"markout_bps_0.5", "markout_bps_120"} <= set(fills.columns) and len(fills) > 0
    rebate = scenarios.set_index(["fill_model", "maker_fee_bps"])
    assert (rebate.loc[("queue_prob", -0.5), "net_pnl"] > rebate.loc[("queue_prob", 2.0), "net_pnl"])
    parts = sorted(p for p in sim.rglob("*.parquet") if "parts" in p.parts)
    before = {p: p.read_bytes() for p in parts}
    mtimes = {p: p.stat().st_mtime_ns for p in parts}
    again = run_job(spec, out=work / "run", device="cpu")
    assert {p: p.read_bytes() for p in parts} == before
    assert {p: p.stat().st_mtime_ns for p in parts} == mtimes           # kept, not recomputed
    assert again.sim_scenarios().equals(scenarios)
    page = write_report(work / "run").read_text()
    assert "Execution simulation" in page and "Fills of scenario" in page



def test_the_report_draws_a_scenario_whose_fill_markouts_are_all_missing():
    """Fills too close to the data's end have no markout (NaN); the log-scaled axis must still draw."""
    from gpu_lpi.report_sim import _curves

    scenarios = pd.DataFrame({"scenario": [0], "fill_markout_bps_0.5": [np.nan], "fill_markout_bps_30": [np.nan]})
    episodes = pd.DataFrame({"scenario": [0], "status": ["traded"], "end_ts": [10**18], "net_pnl": [0.0]})
    html = _curves(scenarios, [0], [0.5, 30.0], ["fill_markout_bps_0.5", "fill_markout_bps_30"], episodes)
    assert "<img" in html

Levels = namedtuple("Levels", "lv_key lv_ev lv_qty a_lv0 a_lv1")


def test_market_windows_agree_with_the_book_replay(synth_run):
    """Best bid, ask and the bid's quantity from the windows' events and level index equal the
    book replay's at the depth events' times."""
    from gpu_lpi.book import ladder_for_range, last_snapshot_ts, replay_stream
    from gpu_lpi.sim.market import load_windows
    from gpu_lpi.store import TickStore

    _, work, result = synth_run
    store = TickStore(work / "store")
    episodes = result.sim_table("episodes")
    starts = np.unique(episodes["activation_ts"].to_numpy())[:2]
    windows = [(int(t), int(t) + 60 * S) for t in starts]
    market = load_windows(store, "BTCUSDT", windows)
    tick = market.tick_size
    for w, (start, end) in enumerate(windows):
        lo, hi = market.w_ev0[w], market.w_ev1[w]
        times = np.unique(market.ev_ts[lo:hi][market.ev_kind[lo:hi] == 1])[::7]
        snapshot = last_snapshot_ts(store, "BTCUSDT", start)
        ladder = ladder_for_range(store, "BTCUSDT", snapshot, end + 1, tick)
        samples = replay_stream(store.iter_batches("depth_diff", "BTCUSDT", snapshot, end + 1), ladder, times)
        at = lo + np.searchsorted(market.ev_ts[lo:hi], times, side="right") - 1
        assert np.array_equal(market.ev_bid[at] * tick, np.round(samples.bid / tick) * tick)
        assert np.array_equal(market.ev_ask[at] * tick, np.round(samples.ask / tick) * tick)
        index = Levels(market.lv_key, market.lv_ev, market.lv_qty, market.w_lv0, market.w_lv1)
        bid_qty = [_level_qty(index, w, 0, int(b), int(i)) for b, i in zip(market.ev_bid[at], at)]
        assert np.allclose(bid_qty, samples.bid_qty)


def test_trades_that_add_up_to_the_queue_exactly_fill_nothing():
    levels = {**BOOK, (0, 100): 0.3}
    events = [("trade", 10, "sell", 100, 0.1), ("trade", 20, "sell", 100, 0.2)]    # 0.1 + 0.2 - 0.3 != 0
    bid = orders((1, 0, 1, 100.0, 0.001, -1))
    assert simulate_orders(market(*events, levels=levels), bid).empty
    more = events + [("trade", 30, "sell", 100, 0.001)]
    assert simulate_orders(market(*more, levels=levels), bid)["ts"].tolist() == [30]


def test_a_window_starting_before_the_book_is_in_sync_gets_it_when_it_is(synth_run):
    from gpu_lpi.book import last_snapshot_ts
    from gpu_lpi.sim.market import load_windows
    from gpu_lpi.store import TickStore

    _, work, _ = synth_run
    store = TickStore(work / "store")
    snapshot = last_snapshot_ts(store, "BTCUSDT", pd.Timestamp("2024-08-05T12:00").value)
    market = load_windows(store, "BTCUSDT", [(snapshot, snapshot + 30 * S)])
    assert market.w_bid0[0] == -1                      # at the snapshot itself: not yet in sync
    assert market.lv_key.size > 100 and (market.ev_bid >= 0).mean() > 0.9


def test_a_sweep_with_one_sim_scenario_is_validated_by_its_simulated_pnl(synth_run, tmp_path):
    import orjson

    from gpu_lpi.run import run_job

    spec, work, _ = synth_run
    sweep = {**spec, "sim": {"fill_model": "queue_prob"}, "sweep": {"lpi_exit": [1.0, 1.2]}}
    run_job(sweep, out=tmp_path / "sweep", device="cpu")
    validation = orjson.loads((tmp_path / "sweep" / "validation.json").read_bytes())
    assert validation["settings"]["returns"].startswith("simulated episodes")
    assert validation["n_trials"] == 2, validation.keys()


def test_a_taker_exit_arriving_after_the_position_is_flat_trades_nothing():
    """The time stop sends a taker exit while a maker exit is resting; the maker fills first."""
    crash = [("trade", 1 * S, "sell", 97, 100.0),
             *(("level", 1 * S, 0, p, 0.0) for p in (100, 99, 98)), ("level", 1 * S, 0, 96, 9.0),
             ("level", 1 * S, 1, 97, 9.0),               # book after the sweep: 96 / 97
             ("trade", int(30.1 * S), "buy", 98, 100.0)]          # lifts the maker exit in flight
    result = strategy(crash, {"time_stop_s": 30.0, "order_latency_ms": 200.0},
                      ticks={"lpi_down": lambda ts: np.where(ts < 29 * S, 5.0, 1.0), "sigma": 0.05})
    kinds = result.fills["order_kind"].tolist()
    assert kinds.count("exit_maker") == 1 and "exit_taker" not in kinds, result.orders
    assert result.episodes["exit_qty"].iloc[0] == pytest.approx(result.episodes["entry_qty"].iloc[0])
