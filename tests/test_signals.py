"""Signals (gpu_lpi.signals, kernels.signals): against the tick-by-tick reference, known answers,
prefix invariance, start invariance, and the CPU = CUDA-simulator parity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from gpu_lpi.errors import ConfigError
from gpu_lpi.params import FeatureParams
from gpu_lpi.signals import SIGNAL_COLUMNS, add_signals, load_mode_b, state_path
from tests import reference
from tests.conftest import cuda_device_present, run_under_cuda_simulator

PARAMS = FeatureParams(refractory_s=5.0, time_stop_s=10.0, sigma_window_s=2.0, min_periods_s=0.5)
FEEDS = [(True, True, True), (True, False, True), (False, True, True), (False, False, True),
         (False, False, False)]


def market(n: int = 4000, seed: int = 0) -> dict:
    """Feature columns with planted pressure bumps on both sides (and NaN gaps)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    bumps_down = sum(12 * np.exp(-0.5 * ((t - c) / 15.0) ** 2) for c in (400, 1500, 1530, 2600))
    bumps_up = sum(9 * np.exp(-0.5 * ((t - c) / 10.0) ** 2) for c in (900, 3300))
    noise = lambda scale: rng.normal(0, scale, n)  # noqa: E731
    drift = np.cumsum(noise(2e-4)) - 0.01 * np.tanh((t - 400) / 20) - 0.01 * np.tanh((t - 1500) / 20)
    columns = {
        "mid": 100 * np.exp(drift + 0.01 * np.tanh((t - 900) / 10)),
        "lpi_down": bumps_down + noise(0.4), "lpi_up": bumps_up + noise(0.4),
        "z_fsi": bumps_down / 3 + noise(0.5), "z_fsi_up": bumps_up / 3 + noise(0.5),
        "z_ldr": bumps_down / 4 + noise(0.5), "z_ldr_up": bumps_up / 4 + noise(0.5),
        "z_doi": 0.4 * (bumps_down + bumps_up) + noise(0.5), "z_pi": noise(1.0) + bumps_down / 4,
        "z_liq_sell": bumps_down / 2 + noise(0.5), "z_liq_buy": bumps_up / 2 + noise(0.5),
        "rv": rng.gamma(2.0, 1e-9, n),
    }
    for name in ("lpi_down", "lpi_up", "z_fsi", "z_doi", "mid"):
        gap = rng.integers(0, n - 20)
        columns[name][gap:gap + 5] = np.nan
    return columns


def signals_of(columns, feeds=(True, True, True), params=PARAMS, origin=0, target="cpu") -> dict:
    columns = {name: np.array(values) for name, values in columns.items()}
    has_oi, has_liquidations, has_depth = feeds
    add_signals(columns, params, np, target, block_origin=origin, has_oi=has_oi,
                has_liquidations=has_liquidations, has_depth=has_depth)
    return columns


@pytest.mark.parametrize("feeds", FEEDS)
def test_signals_match_the_tick_by_tick_reference(feeds):
    columns = market()
    got = signals_of(columns, feeds)
    expected = reference.signals({**columns, "sigma": got["sigma"]}, PARAMS, *feeds)
    for name in ("state", "side", "event", "target_w"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    np.testing.assert_array_equal(got["exhaustion"], expected["candidate"] & expected["oi_flush"])
    assert got["event"].sum() >= 3 and (got["target_w"] != 0).any(), "the planted bumps make events"


def test_every_signal_column_is_added_with_its_type():
    got = signals_of(market())
    for name in SIGNAL_COLUMNS:
        assert got[name].size == got["mid"].size, name
    assert got["state"].dtype == np.int8 and got["event"].dtype == bool
    assert set(np.unique(got["state"])) <= {-1, 0, 1}


def test_known_answer_sell_cascade_exhaustion_and_exits():
    """A sell cascade whose LPI peaks and decays while the price still makes new lows: one event at
    the first tick where every condition holds, a long position sized from the panic's peak, closed
    by the LPI exit."""
    n = 200
    lpi = np.concatenate([np.linspace(0, 10, 100), np.linspace(10, 0, 100)])
    mid = 100 - 0.01 * np.minimum(np.arange(n), 130)         # new lows until tick 130
    z_ldr = np.concatenate([np.linspace(0, 5, 100), np.linspace(5, 0, 100)])
    columns = {"mid": mid, "lpi_down": lpi, "lpi_up": np.zeros(n), "z_fsi": np.full(n, 3.0),
               "z_fsi_up": np.zeros(n), "z_ldr": z_ldr, "z_ldr_up": np.zeros(n),
               "z_doi": np.full(n, 2.0), "z_pi": np.zeros(n), "z_liq_sell": np.zeros(n),
               "z_liq_buy": np.zeros(n), "rv": np.full(n, 1e-8)}
    params = FeatureParams(refractory_s=30.0, time_stop_s=60.0, sigma_window_s=2.0, min_periods_s=0.25,
                           rollover_from_peak=1.0)     # the spec's rules as written
    got = signals_of(columns, (True, False, True), params)
    # the peak is 10 at ticks 99 and 100; tick 101 equals LPI_98 (not below it), tick 102 is the first
    # below each of its last K = 3 values; the divergence holds there for τ = 4 ticks (τ_min = 1 s):
    # the mid is lower than at tick 98 and LPI_102 < LPI_98
    assert np.flatnonzero(got["event"]).tolist() == [102]
    assert got["state"][102] == 1 and got["dir"][102] == 1 and got["exhaustion"][102]
    sigma = got["sigma"][102]
    expected_w = params.w_max * np.tanh((lpi.max() - params.lpi_hi) / 2) / (sigma * 1e4)   # the panic's
    held = np.flatnonzero(got["target_w"])
    np.testing.assert_allclose(got["target_w"][102], expected_w, rtol=1e-12)
    np.testing.assert_allclose(sigma, np.sqrt(1e-8 * params.seconds_to_ticks(params.time_stop_s)))
    exit_tick = np.flatnonzero(lpi < params.lpi_exit)
    exit_tick = exit_tick[exit_tick > 102][0]
    assert held[0] == 102 and held[-1] == exit_tick - 1 and got["exit_reason"][exit_tick] == 1


def test_rollover_waits_for_the_lpi_to_come_off_its_peak():
    """With the default rollover_from_peak = 0.5 the first event is the first tick where the LPI is
    at most half its 30 s peak (and every other condition holds): dips of a noisy plateau are not
    rollovers."""
    n = 300
    t = np.arange(n)
    phase = t % 16          # a sawtooth plateau: 12 ticks up from 8.5 to 10, 4 ticks down (dips of 15 %)
    sawtooth = np.where(phase < 12, 8.5 + 1.5 * phase / 11, 10 - 1.5 * (phase - 11) / 4)
    plateau = np.where(t < 100, 8.5 * t / 100, sawtooth)
    lpi = np.where(t < 200, plateau, 10 - 0.1 * (t - 200))
    columns = {"mid": 100 - 0.01 * t, "lpi_down": lpi, "lpi_up": np.zeros(n), "z_fsi": np.full(n, 3.0),
               "z_fsi_up": np.zeros(n), "z_ldr": -t.astype(float), "z_ldr_up": np.zeros(n),
               "z_doi": np.full(n, 2.0), "z_pi": np.zeros(n), "z_liq_sell": np.zeros(n),
               "z_liq_buy": np.zeros(n), "rv": np.full(n, 1e-8)}
    literal = signals_of(columns, (True, False, True),
                         FeatureParams(refractory_s=10.0, rollover_from_peak=1.0, min_periods_s=0.25))
    default = signals_of(columns, (True, False, True), FeatureParams(refractory_s=10.0, min_periods_s=0.25))
    assert np.flatnonzero(literal["event"])[0] < 200          # the spec's rule fires in the plateau
    first = np.flatnonzero(lpi <= 5.0)
    assert np.flatnonzero(default["event"]).tolist() == [first[first >= 200][0]]


def cascade(lpi, z_ldr):
    """Columns of a FORCED sell cascade with the given LPI and z(LDR), the price making new lows."""
    n = lpi.size
    return {"mid": 100 - 0.01 * np.arange(n), "lpi_down": lpi, "lpi_up": np.zeros(n),
            "z_fsi": np.full(n, 3.0), "z_fsi_up": np.zeros(n), "z_ldr": z_ldr, "z_ldr_up": np.zeros(n),
            "z_doi": np.full(n, 2.0), "z_pi": np.zeros(n), "z_liq_sell": np.zeros(n),
            "z_liq_buy": np.zeros(n), "rv": np.full(n, 1e-8)}


def test_rollover_reads_the_level_when_inputs_repeat():
    """Inputs that update every second tick make a staircase: the LPI never falls K = 3 ticks in a
    row, but it is below each of its last 3 values at every step down, which is the rollover."""
    t = np.arange(300)
    falling = 10 - 0.05 * (t - 100)
    lpi = np.where(t < 100, 0.1 * t, falling)
    lpi = lpi[t - t % 2]                                     # each value held for two ticks
    z_ldr = np.where(t < 100, 0.3 * t, 30 - 0.3 * (t - 100))[t - t % 2]
    got = signals_of(cascade(lpi, z_ldr), (True, False, True),
                     FeatureParams(refractory_s=10.0, min_periods_s=0.25))
    steps = np.flatnonzero(got["cond_rollover"])
    assert steps.size and (steps % 2 == 0).all()             # at the steps down, not between them
    assert lpi[steps[0]] <= 0.5 * lpi.max() < lpi[steps[0] - 2]
    falls = np.diff(lpi) < 0
    assert not (falls[:-2] & falls[1:-1] & falls[2:]).any()  # never 3 falling ticks in a row


def test_liquidity_reformation_waits_for_the_book_to_refill():
    """A lull between two waves: the LPI halves and the price makes new lows, but z(LDR) stays near
    its peak (the makers are not back): no event. The event comes where z(LDR) is at most
    rollover_from_peak times its 30 s peak; with rollover_from_peak = 1, right after the peak."""
    t = np.arange(300)
    lpi = np.where(t < 100, 0.1 * t, np.where(t < 120, 10 - 0.28 * (t - 100), 4.4 - 0.01 * (t - 120)))
    lull = 30 - 0.02 * (t - 100)                                  # thin book, hardly improving
    z_ldr = np.where(t < 100, 0.3 * t, np.where(t < 180, lull, lull[180] - 1.0 * (t - 180)))
    params = FeatureParams(refractory_s=200.0, min_periods_s=0.25)
    got = signals_of(cascade(lpi, z_ldr), (True, False, True), params)
    window = params.seconds_to_ticks(params.rollover_peak_s)
    peak = pd.Series(z_ldr).rolling(window, min_periods=1).max().to_numpy()
    refilled = np.flatnonzero((z_ldr <= params.rollover_from_peak * peak) & (t > 100))
    assert refilled[0] > 180 and (lpi[120:180] <= 0.5 * lpi.max()).all()   # the lull passes the rollover
    assert np.flatnonzero(got["event"]).tolist() == [refilled[0]]
    spec = signals_of(cascade(lpi, z_ldr), (True, False, True),
                      dataclasses.replace(params, rollover_from_peak=1.0))
    assert 100 < np.flatnonzero(spec["event"])[0] < 120


def collapse(bottom: float, n: int = 300):
    """A sell cascade whose LPI peaks at 10 (tick 100), decays to ~6 and then falls in one update to
    ``bottom`` at tick 200, as the book refills (z(LDR) 3x the LPI); the mid falls until tick 195."""
    t = np.arange(n)
    lpi = np.where(t < 100, 0.1 * t, np.where(t < 200, 10 - 0.04 * (t - 100), bottom))
    columns = cascade(lpi, 3 * lpi)
    columns["mid"] = 100 - 0.01 * np.minimum(t, 195)
    return columns


def test_panic_occurred_in_the_peak_window_and_sizes_the_trade():
    """The LPI falls from 6 to 2 in one tick at the bottom: no tick has both LPI > lpi_hi and LPI at
    most half its peak, but the panic occurred within the peak window, so the exhaustion is that
    tick; Mode A is sized from the panic's peak. The price is flat from tick 195 (no new low over
    1 s), below its value 2-3 s before: the divergence holds for some τ. Falling below lpi_exit at
    once, the episode is over: no event."""
    params = FeatureParams(refractory_s=10.0, min_periods_s=0.25, sigma_window_s=2.0)
    got = signals_of(collapse(2.0), (True, False, True), params)
    assert np.flatnonzero(got["event"]).tolist() == [200]
    assert got["state"][200] == 1 and got["exhaustion"][200] and got["dir"][200] == 1
    expected_w = params.w_max * np.tanh((10.0 - params.lpi_hi) / 2) / (got["sigma"][200] * 1e4)
    np.testing.assert_allclose(got["target_w"][200], expected_w, rtol=1e-12)
    assert not signals_of(collapse(1.0), (True, False, True), params)["event"].any()


def test_both_sides_starting_at_once_fade_the_side_the_price_moved_to():
    """A panic thins the whole book: both sides' LPI collapse together at the bottom and, after a
    one-tick bounce, each side's divergence holds for some τ. The active side is the one the price
    moved to over rollover_peak_s (down), not the one with the larger LPI (up)."""
    columns = collapse(2.0)
    columns["mid"][200:] = columns["mid"][196] + 0.001                 # a bounce over the last second
    for side in ("lpi", "z_fsi", "z_ldr"):
        down = "lpi_down" if side == "lpi" else side
        columns[f"{side}_up"] = 1.01 * columns[down]
    columns["z_liq_buy"] = columns["z_liq_sell"]
    got = signals_of(columns, (True, False, True), FeatureParams(refractory_s=10.0, min_periods_s=0.25))
    assert got["event"][200] and got["side"][200] == -1 and got["dir"][200] == 1
    assert columns["lpi_up"][200] > columns["lpi_down"][200]


def test_time_stop_and_sigma_stop():
    n = 400
    lpi = np.concatenate([np.linspace(0, 10, 100), np.linspace(10, 8, 300)])   # never below lpi_exit
    base = {"lpi_down": lpi, "lpi_up": np.zeros(n), "z_fsi": np.full(n, 3.0), "z_fsi_up": np.zeros(n),
            "z_ldr": np.concatenate([np.zeros(100), -np.arange(300.0)]), "z_ldr_up": np.zeros(n),
            "z_doi": np.full(n, 2.0), "z_pi": np.zeros(n), "z_liq_sell": np.zeros(n),
            "z_liq_buy": np.zeros(n), "rv": np.full(n, 1e-8)}
    params = FeatureParams(refractory_s=300.0, time_stop_s=20.0, sigma_window_s=2.0, min_periods_s=0.25,
                           rollover_from_peak=1.0)
    falling = 100 - 0.001 * np.minimum(np.arange(n), 110)
    got = signals_of({**base, "mid": falling}, (True, False, True), params)
    entry = np.flatnonzero(got["event"])[0]
    stop = entry + params.seconds_to_ticks(params.time_stop_s)
    assert got["exit_reason"][stop] == 2 and got["target_w"][stop - 1] != 0 and got["target_w"][stop] == 0
    crash = falling.copy()
    crash[entry + 5:] *= 0.9                         # far beyond 2.5 σ against the long
    got = signals_of({**base, "mid": crash}, (True, False, True), params)
    assert got["exit_reason"][entry + 5] == 3 and not got["target_w"][entry + 5:].any()


def test_prefix_invariance_and_start_invariance():
    """Truncating after t changes nothing at or before t; starting later (history cut) changes nothing
    once the signal lookback is covered."""
    columns = market()
    full = signals_of(columns)
    cut = 2900
    truncated = signals_of({k: v[:cut] for k, v in columns.items()})
    start = 700
    late = signals_of({k: v[start:] for k, v in columns.items()}, origin=start)
    settled = PARAMS.signal_lookback_ticks
    for name in SIGNAL_COLUMNS:
        np.testing.assert_array_equal(truncated[name], full[name][:cut], err_msg=name)
        np.testing.assert_array_equal(late[name][settled:], full[name][start + settled:], err_msg=name)


def test_state_paths_and_mode_b_loading():
    assert state_path(True, True, True) == "liquidations" and state_path(True, False, True) == "oi"
    assert state_path(False, False, True).startswith("proxy (liquidity shock")
    assert state_path(False, False, False).startswith("proxy (impact per dollar")
    assert load_mode_b("flat") is None
    assert load_mode_b("tests.test_signals:trend_rule") is trend_rule
    for bad in ("nomodule", "no.such.module:f", "tests.test_signals:missing"):
        with pytest.raises(ConfigError, match="params.mode_b"):
            load_mode_b(bad)


def trend_rule(frame):
    """A Mode B plug-in for the tests: long 0.1 while the 4-tick return is positive."""
    return np.where(frame["mid"].pct_change(4).to_numpy() > 0, 0.1, 0.0)


def test_bad_signal_params_are_one_line_errors():
    with pytest.raises(ConfigError, match="divergence_max_s"):
        FeatureParams(divergence_min_s=3.0, divergence_max_s=1.0)
    with pytest.raises(ConfigError, match="crash_leader: expected a string"):
        FeatureParams(crash_leader=5)
    with pytest.raises(ConfigError, match="no multiple of the tick"):
        FeatureParams(tick_ms=1000, divergence_min_s=1.2, divergence_max_s=1.8)


SIMULATOR_SCRIPT = """
import numpy as np
import pandas as pd
from tests.test_signals import market, signals_of
from gpu_lpi.signals import SIGNAL_COLUMNS
columns = {k: v[:1500] for k, v in market().items()}
for feeds in [(True, True, True), (False, False, False)]:
    cpu = signals_of(columns, feeds)
    gpu = signals_of(columns, feeds, target="gpu")
    for name in SIGNAL_COLUMNS:
        np.testing.assert_array_equal(cpu[name], gpu[name], err_msg=name)
print("signals simulator parity ok")
"""


def test_signal_kernels_under_cuda_simulator_match_cpu():
    assert "signals simulator parity ok" in run_under_cuda_simulator(SIMULATOR_SCRIPT)


def raising_rule(frame):
    raise ValueError("broken plug-in")


def infinite_rule(frame):
    return np.full(len(frame), np.inf)


@pytest.mark.parametrize("rule, message", [("tests.test_signals:raising_rule", "the rule raised ValueError"),
                                           ("tests.test_signals:infinite_rule", "not a finite number")])
def test_a_failing_mode_b_rule_is_a_one_line_error(rule, message):
    from gpu_lpi.signals import apply_mode_b

    columns = signals_of(market(600))
    with pytest.raises(ConfigError, match=message):
        apply_mode_b(columns, load_mode_b(rule), np.arange(600), np)


def test_mode_b_targets_apply_at_informed_flat_ticks_only():
    from gpu_lpi.signals import apply_mode_b

    columns = signals_of(market())
    before = columns["target_w"].copy()
    apply_mode_b(columns, trend_rule, np.arange(before.size), np)
    informed_flat = (columns["state"] == 0) & (before == 0)
    expected = np.where(informed_flat, np.nan_to_num(trend_rule(pd.DataFrame({"mid": columns["mid"]}))), before)
    np.testing.assert_array_equal(columns["target_w"], expected)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_device_present(), reason="needs CuPy and a CUDA GPU")
def test_signals_on_a_real_gpu_equal_the_cpu_exactly():
    """Same inputs: flags, states, events and exits bit for bit; σ and the targets to 1e-12 (the GPU
    may fuse multiply-adds, the project's documented tolerance for float features)."""
    import cupy

    columns = market()
    for feeds in FEEDS:
        cpu = signals_of(columns, feeds)
        gpu = {name: cupy.asarray(values) for name, values in columns.items()}
        add_signals(gpu, PARAMS, cupy, "gpu", block_origin=0, has_oi=feeds[0],
                    has_liquidations=feeds[1], has_depth=feeds[2])
        for name in SIGNAL_COLUMNS:
            if name in ("sigma", "target_w"):
                np.testing.assert_allclose(cupy.asnumpy(gpu[name]), cpu[name], rtol=1e-12, atol=0,
                                           equal_nan=True, err_msg=name)
            else:
                np.testing.assert_array_equal(cupy.asnumpy(gpu[name]), cpu[name], err_msg=name)
