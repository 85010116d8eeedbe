"""Stores with trades only (book source ``trades``): implied quotes, invariants, run.json, the CLI,
and the real captures without their book tables against the full book."""

from __future__ import annotations

import gzip
import json

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from gpu_lpi.book_at_ticks import (AGG_TRADES_DEGRADATION, BOOK_SOURCES, DEGRADATIONS, degradations,
                                   implied_book, lpi_weights)
from gpu_lpi.chunk_inputs import book_source_of, load_chunk, plan_reads, trade_table_of
from gpu_lpi.errors import ConfigError
from gpu_lpi.features import compute_features
from gpu_lpi.grid import TickGrid
from gpu_lpi.params import FeatureParams
from gpu_lpi.run import run_job
from gpu_lpi.schema import TABLES, TRADE_KIND_MARKET
from gpu_lpi.store import TickStore
from tests.conftest import run_under_cuda_simulator
from tests.feature_stores import MS, SYMBOL, T0, build_store, random_store
from tests.test_features import SMALL, _assert_same, _check_prefix_invariance

TICK = 250 * MS
BOOK_TABLES = set(BOOK_SOURCES) - {"trades"}
TINY = FeatureParams(window_hours=0.001, adv_window_hours=0.001, depth_window_hours=0.001,
                     min_periods_s=0.5, implied_quote_max_age_s=2.0)


def without_book(store: TickStore, root) -> TickStore:
    """A copy of ``store`` without its book tables (rows and covered spans): a trades-only store."""
    copy = TickStore(root)
    with copy.transaction() as tx:
        tx.write_symbols(store.symbols())
        for span in store.coverage_table().to_pylist():
            if span["table"] not in BOOK_TABLES:
                tx.cover(span["table"], span["symbol"], span["start_ns"], span["end_ns"], span["source"])
        for table in store.tables():
            if table in BOOK_TABLES or table == "symbols":
                continue
            for symbol in store.symbols_in(table):
                tx.write(table, symbol, store.read(table, symbol))
    return copy


# -- known answers ----------------------------------------------------------------------------------
@pytest.fixture
def known_stores(tmp_path):
    """A full store (one old book ticker) and its trades-only copy; ticks t_k = T0 + k·250 ms."""
    trades = [  # ts offset (ms), price, aggressor sold?, kind
        (-1_500, 100.00, True, 0),    # bid 100.00
        (-1_000, 100.02, False, 0),   # ask 100.02
        (100, 99.98, True, 1),        # insurance-fund trade: not a quote
        (400, 99.90, True, 0),        # bid 99.90, below b(t1)·(1 − θ) = 99.95: impact sell in tick 2
        (1_300, 99.95, False, 0),     # ask 99.95 (the ask of -1 s went stale after t4)
        (1_600, 99.97, True, 0),      # sell above the ask: crossed, both 99.97 from t7
        (1_800, 99.96, False, 0),     # a buy and then, in the same ns, a sell above it:
        (1_800, 99.99, True, 0),      # crossed, the later (the sell) wins: both 99.99
    ]
    ts, price, sold, kind = zip(*trades)
    quotes = {"ts": [T0 - 3_600_000 * MS], "bid": [1.0], "ask": [2.0], "bid_qty": [1.0], "ask_qty": [1.0]}
    full = build_store(tmp_path / "full", quotes, {
        "ts": T0 + np.array(ts) * MS, "price": list(price), "qty": [2.0] * len(ts),
        "is_buyer_maker": list(sold), "kind": np.array(kind, dtype=np.int8)})
    return full, without_book(full, tmp_path / "trades")


def test_known_implied_quotes_staleness_and_crossed_pairs(known_stores):
    full, trades_only = known_stores
    assert book_source_of(full, SYMBOL) == "book_ticker" and book_source_of(trades_only, SYMBOL) == "trades"
    table = compute_features(trades_only, SYMBOL, T0, T0 + 20 * TICK, TINY, "cpu").to_pydict()
    assert table["ts"] == [T0 + k * TICK for k in range(20)]
    mid = np.array(table["mid"])
    spread = np.array(table["spread"])
    expected_mid = [100.01, 100.01, 99.96, 99.96, 99.96, np.nan, 99.925, 99.97, 99.99]
    np.testing.assert_allclose(mid[:9], expected_mid, rtol=0, atol=1e-9)
    np.testing.assert_allclose(spread[[0, 2, 6, 7, 8]], [0.02, 0.12, 0.05, 0.0, 0.0], atol=1e-9)
    assert table["book_valid"][:9] == [True] * 5 + [False] + [True] * 3
    # the last trades (T0 + 1.8 s) are 2 s old at T0 + 3.8 s: valid at t15, both sides stale from t16
    assert all(table["book_valid"][8:16]) and not any(table["book_valid"][16:])
    assert table["r"][1] == 0.0                                    # the insurance-fund trade moved nothing
    assert table["r"][2] == pytest.approx(np.log(99.96 / 100.01), rel=1e-12)
    assert table["v_impact"][2] == 99.90 * 2.0                     # against the implied bid at t1
    assert table["v_impact"][3] == 0.0 and np.isnan(table["v_impact"][6])   # no quote at t5
    for name in ("microprice", "depth_bid", "depth_ask", "ldr", "ldr_up", "z_ldr", "z_ldr_up"):
        assert np.isnan(np.asarray(table[name], dtype=float)).all(), name
    # the trade sums do not depend on where the book comes from
    with_book = compute_features(full, SYMBOL, T0, T0 + 20 * TICK, TINY, "cpu").to_pydict()
    assert with_book["dollar_volume"] == table["dollar_volume"]


def test_lpi_without_depth_drops_ldr_and_keeps_the_weights_sum(random_trades_only):
    table = compute_features(random_trades_only, SYMBOL, T0, T0 + 60_000 * MS, SMALL, "cpu")
    z_fsi, z_fsi_up, z_pi = (table.column(n).to_numpy() for n in ("z_fsi", "z_fsi_up", "z_pi"))
    w1, w2, w3 = lpi_weights("trades", SMALL.w1, SMALL.w2, SMALL.w3)
    assert (w1, w2) == (pytest.approx(0.5 / 0.7), 0.0) and w1 + w2 + w3 == pytest.approx(1.0)
    lpi_down, lpi_up = table.column("lpi_down").to_numpy(), table.column("lpi_up").to_numpy()
    known = np.isfinite(z_fsi) & np.isfinite(z_pi)
    assert known.sum() > 100
    np.testing.assert_allclose(lpi_down[known], (w1 * z_fsi + w3 * z_pi)[known], rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(lpi_up, w1 * z_fsi_up + w3 * z_pi, rtol=1e-14, atol=1e-14, equal_nan=True)
    np.testing.assert_array_equal(np.isfinite(lpi_down), known)
    assert lpi_weights("depth_diff", 0.5, 0.3, 0.2) == (0.5, 0.3, 0.2)
    assert lpi_weights("trades", 0.5, 0.3, -0.5) == (0.5, 0.0, -0.5)     # nothing to rescale


def test_implied_book_on_its_own():
    """Per time: the latest trade of each side with ts <= t; no quote where a side has no trade
    within the age limit; crossed and locked pairs collapsed to the later trade."""
    trades = {"ts": np.array([10, 20, 30, 30, 50], dtype=np.int64),
              "price": np.array([5.0, 6.0, 6.0, 7.0, 4.0]),
              "is_buyer_maker": np.array([True, False, True, False, True])}
    times = np.array([9, 10, 20, 29, 30, 45, 50, 66, 80])
    book = implied_book(trades, times, max_age_ns=15)
    nan = np.nan
    np.testing.assert_array_equal(book.bid, [nan, nan, 5.0, nan, 6.0, 6.0, nan, nan, nan])
    np.testing.assert_array_equal(book.ask, [nan, nan, 6.0, nan, 7.0, 7.0, nan, nan, nan])
    longer = implied_book(trades, times, max_age_ns=25)
    np.testing.assert_array_equal(longer.bid, [nan, nan, 5.0, 5.0, 6.0, 6.0, 4.0, nan, nan])
    np.testing.assert_array_equal(longer.ask, [nan, nan, 6.0, 6.0, 7.0, 7.0, 7.0, nan, nan])
    assert np.isnan(book.bid_qty).all() and np.isnan(book.depth_bid).all()
    crossed = implied_book({**trades, "price": np.array([5.0, 6.0, 6.5, 6.0, 4.0])}, np.array([30]), 15)
    assert crossed.bid[0] == crossed.ask[0] == 6.0                 # crossed: both at the later buy's price


def test_only_trades_read_from_the_staleness_limit_back(tmp_path):
    """The implied quotes of a chunk's first (sub-sample) time come from trades before the range
    that the ticks aggregate: the trades read starts ``implied_quote_max_age_s`` earlier."""
    quotes = {"ts": [T0], "bid": [1.0], "ask": [2.0], "bid_qty": [1.0], "ask_qty": [1.0]}
    full = build_store(tmp_path / "full", quotes, {
        "ts": [T0 - 5_000 * MS, T0 - 4_000 * MS], "price": [100.0, 100.02], "qty": [1.0, 1.0],
        "is_buyer_maker": [True, False]})
    store = without_book(full, tmp_path / "trades")
    params = FeatureParams(implied_quote_max_age_s=10.0)
    grid = TickGrid(first_tick=T0 // TICK, count=4, tick_ns=TICK, output_start=0)
    read = next(r for r in plan_reads(store, SYMBOL, grid, params, "trades") if r.table == "trades")
    assert read.start_ns == T0 - TICK - 10_000_000_000
    inputs = load_chunk(store, SYMBOL, grid, params)
    np.testing.assert_allclose(inputs.book.mid(), 100.01, rtol=1e-15)
    np.testing.assert_allclose(inputs.sub_mids, 100.01, rtol=1e-15)
    assert inputs.book_source == "trades" and inputs.trades_covered.all()
    shorter = load_chunk(store, SYMBOL, grid, FeatureParams(implied_quote_max_age_s=3.0))
    assert shorter.fingerprint != inputs.fingerprint and np.isnan(shorter.book.mid()).all()


def test_quotes_never_carry_over_from_an_earlier_capture(tmp_path):
    """Two captures 90 s apart (two covered spans): with an age limit longer than the gap, the
    second capture's quotes still start from its own trades, like its L2 book would."""
    quotes = {"ts": [T0], "bid": [1.0], "ask": [2.0], "bid_qty": [1.0], "ask_qty": [1.0]}
    full = build_store(tmp_path / "full", quotes, {
        "ts": T0 + np.array([-100_000, -99_000, 1_100, 1_600]) * MS, "price": [100.0, 100.02, 101.0, 101.02],
        "qty": [1.0] * 4, "is_buyer_maker": [True, False, True, False]},
        covered={"trades": (T0 - 120_000 * MS, T0 - 90_000 * MS)})
    store = without_book(full, tmp_path / "trades")
    with store.transaction() as tx:
        tx.cover("trades", SYMBOL, T0, T0 + 10_000 * MS, "second capture")
    assert len(store.coverage(SYMBOL, "trades")) == 2
    params = FeatureParams(implied_quote_max_age_s=300.0, window_hours=0.001, adv_window_hours=0.001,
                           depth_window_hours=0.001, min_periods_s=0.5)
    table = compute_features(store, SYMBOL, T0 - 100_000 * MS, T0 + 3_000 * MS, params, "cpu").to_pandas()
    mid = table.set_index("ts")["mid"]
    assert mid[T0 - 98_000 * MS] == pytest.approx(100.01)               # inside the first capture
    assert np.isnan(mid[[T0, T0 + 250 * MS, T0 + 1_500 * MS]]).all()    # not carried into the second
    assert mid[T0 + 1_750 * MS] == pytest.approx(101.01)


def test_a_store_without_book_or_trades_is_a_one_line_error(tmp_path):
    store = TickStore(tmp_path / "store")
    with store.transaction() as tx:
        tx.write_symbols(build_store(tmp_path / "other", {"ts": [T0], "bid": [1.0], "ask": [2.0],
                                                           "bid_qty": [1.0], "ask_qty": [1.0]}).symbols())
    with pytest.raises(ConfigError, match=r"TESTUSDT has no book data .*book_ticker, trades or agg_trades\)"):
        book_source_of(store, SYMBOL)


def as_agg_trades(store: TickStore, root) -> TickStore:
    """A copy of ``store`` whose market trades are ``agg_trades`` rows (and that has no ``trades``)."""
    copy = TickStore(root)
    with copy.transaction() as tx:
        tx.write_symbols(store.symbols())
        for span in store.coverage_table().to_pylist():
            table = "agg_trades" if span["table"] == "trades" else span["table"]
            tx.cover(table, span["symbol"], span["start_ns"], span["end_ns"], span["source"])
        rows = store.read("trades", SYMBOL)
        rows = rows.filter(pa.compute.equal(rows.column("kind"), TRADE_KIND_MARKET))
        ids = rows.column("trade_id")
        tx.write("agg_trades", SYMBOL, pa.table(
            {**{name: rows.column(name) for name in ("ts", "price", "qty", "is_buyer_maker", "notional",
                                                        "local_ts")},
             "trade_id": ids, "first_trade_id": ids, "last_trade_id": ids},
            schema=TABLES["agg_trades"].schema))
        for table in set(store.tables()) - {"trades", "symbols"}:
            tx.write(table, SYMBOL, store.read(table, SYMBOL))
    return copy


# -- invariants ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_trades_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("trades_only")
    return without_book(random_store(root / "full", seed=3, minutes=3.0), root / "trades")


def test_prefix_invariance_trades_only(random_trades_only, tmp_path):
    full, _, _ = _check_prefix_invariance(random_trades_only, SYMBOL, T0, T0 + 180_000 * MS,
                                          T0 + 100_123 * MS, SMALL, tmp_path)
    assert np.isfinite(full.column("lpi_down").to_numpy()).sum() > 500
    assert full.column("book_valid").to_numpy(zero_copy_only=False).mean() > 0.99
    assert np.nansum(full.column("v_impact").to_numpy()) > 0


def test_chunked_and_pieces_equal_unchunked_trades_only(random_trades_only, monkeypatch):
    import gpu_lpi.features as features

    whole = compute_features(random_trades_only, SYMBOL, T0, T0 + 180_000 * MS, SMALL, "cpu")
    cut = T0 + 77 * TICK
    _assert_same(whole, pa.concat_tables([
        compute_features(random_trades_only, SYMBOL, T0, cut, SMALL, "cpu"),
        compute_features(random_trades_only, SYMBOL, cut, T0 + 180_000 * MS, SMALL, "cpu")]))
    monkeypatch.setattr(features, "MAX_PIECE_TICKS", 97)
    _assert_same(whole, compute_features(random_trades_only, SYMBOL, T0, T0 + 180_000 * MS, SMALL, "cpu"))


def test_aggregate_trades_stand_in_for_trades(random_trades_only, tmp_path):
    """A store of Binance aggregate trades only (an aggTrades archive) gives the features of the
    same market trades stored as trades; with a book too, the flow features come from them."""
    agg = as_agg_trades(random_trades_only, tmp_path / "agg")
    assert book_source_of(agg, SYMBOL) == "trades" and trade_table_of(agg, SYMBOL) == "agg_trades"
    _assert_same(compute_features(random_trades_only, SYMBOL, T0, T0 + 120_000 * MS, SMALL, "cpu"),
                 compute_features(agg, SYMBOL, T0, T0 + 120_000 * MS, SMALL, "cpu"))
    with_book = random_store(tmp_path / "full", seed=3, minutes=3.0)
    agg_with_book = as_agg_trades(with_book, tmp_path / "agg_book")
    assert book_source_of(agg_with_book, SYMBOL) == "book_ticker"
    _assert_same(compute_features(with_book, SYMBOL, T0, T0 + 120_000 * MS, SMALL, "cpu"),
                 compute_features(agg_with_book, SYMBOL, T0, T0 + 120_000 * MS, SMALL, "cpu"))
    assert degradations("trades", "agg_trades") == degradations("trades") + [AGG_TRADES_DEGRADATION]


SIMULATOR_SCRIPT = """
import tempfile
from pathlib import Path
import numpy as np
from gpu_lpi.book_at_ticks import implied_book
from gpu_lpi.features import FEATURE_COLUMNS, compute_features
from tests.feature_stores import MS, SYMBOL, T0, random_store
from tests.test_features import SMALL
from tests.test_trades_only import without_book
root = Path(tempfile.mkdtemp())
store = without_book(random_store(root / "full", seed=2, minutes=1.0), root / "trades")
cpu = compute_features(store, SYMBOL, T0, T0 + 60_000 * MS, SMALL, "cpu")
gpu = compute_features(store, SYMBOL, T0, T0 + 60_000 * MS, SMALL, "gpu")
for name in FEATURE_COLUMNS:
    np.testing.assert_allclose(gpu.column(name).to_numpy(), cpu.column(name).to_numpy(),
                               rtol=1e-9, atol=1e-300, equal_nan=True, err_msg=name)
assert np.isfinite(cpu.column("lpi_down").to_numpy()).sum() > 100
rng = np.random.default_rng(1)
trades = {"ts": np.sort(rng.integers(0, 10**6, 3000)), "price": rng.normal(100, 1, 3000),
          "is_buyer_maker": rng.random(3000) < 0.5}
times = np.arange(0, 10**6, 997)
on_cpu, on_gpu = implied_book(trades, times, 5_000), implied_book(trades, times, 5_000, target="gpu")
np.testing.assert_array_equal(on_cpu.bid, on_gpu.bid)
np.testing.assert_array_equal(on_cpu.ask, on_gpu.ask)
assert np.isfinite(on_cpu.bid).mean() > 0.5 and (on_cpu.bid == on_cpu.ask).any()
print("simulator parity ok")
"""


def test_trades_only_under_cuda_simulator_matches_cpu():
    assert "simulator parity ok" in run_under_cuda_simulator(SIMULATOR_SCRIPT)


PTX_SCRIPT = """
from kernels import implied_quotes as k, per_tick_cuda
ints, floats = np.zeros(4, np.int64), np.zeros(4)
arguments = (4, k.ImpliedQuoteInputs(ints, ints, ints, ints, floats, ints), k.ImpliedQuotes(floats, floats),
             k.QuoteAge(5))
ptx, _ = cuda.compile_ptx(per_tick_cuda.element_function(k.implied_quotes),
                          tuple(typeof(value) for value in arguments), cc=(9, 0))
assert ".entry" in ptx
print("compiled")
"""


def test_implied_quotes_launcher_compiles_to_ptx():
    """The real CUDA compiler accepts the implied-quote launcher (``tests/test_cuda_ptx.py`` covers
    the kernels of a run with a book)."""
    from tests.conftest import run_ptx_script

    assert "compiled" in run_ptx_script(PTX_SCRIPT)


# -- run.json and the command line ---------------------------------------------------------------------
def _spec(store):
    return {"data": {"store": str(store.root), "symbols": [SYMBOL], "start": "2024-08-05",
                     "end": "2024-08-05"},
            "params": {"window_hours": 0.01, "adv_window_hours": 0.01, "depth_window_hours": 0.01,
                       "min_periods_s": 5.0}}


def test_run_json_records_the_source_and_what_it_degrades(random_trades_only, tmp_path):
    assert set(DEGRADATIONS) == set(BOOK_SOURCES) and degradations("depth_diff") == []
    result = run_job(_spec(random_trades_only), out=tmp_path / "run", device="cpu")
    meta = orjson.loads((tmp_path / "run" / "run.json").read_bytes())
    assert meta["book_source"] == {SYMBOL: "trades"} and result.degraded == {SYMBOL: degradations("trades")}
    degraded = meta["degraded"][SYMBOL]
    assert degraded == degradations("trades")
    assert any(line.startswith("depth: unavailable") for line in degraded)
    assert any(line.startswith("quotes: implied") for line in degraded)
    assert any("(w1 + w2 + w3)/(w1 + w3)" in line for line in degraded)
    assert np.isfinite(result.features().column("lpi_down").to_numpy()).sum() > 300


def _market_trades_file(path, rng, layout: str) -> None:
    """Three minutes of ETHUSDT trades from 01:00 on 2024-08-05, as a Tardis ``trades`` CSV or a
    Binance archive ``aggTrades`` CSV."""
    ts_us = np.sort(rng.integers(0, 180_000_000, 2_000)) + 1_722_816_000 * 10**6 + 3_600 * 10**6
    mid = 2_680.0 + np.cumsum(rng.normal(0.0, 0.05, ts_us.size))
    sell = rng.random(ts_us.size) < 0.5
    price = np.round(np.where(sell, mid - 0.005, mid + 0.005), 2)
    qty = rng.uniform(0.01, 2.0, ts_us.size)
    if layout == "tardis":
        lines = ["exchange,symbol,timestamp,local_timestamp,id,side,price,amount"]
        lines += [f"binance-futures,ETHUSDT,{t},{t + 1500},{1000 + i},{'sell' if s else 'buy'},"
                  f"{p:.2f},{q:.3f}"
                  for i, (t, s, p, q) in enumerate(zip(ts_us, sell, price, qty))]
    else:
        lines = ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"]
        lines += [f"{1000 + i},{p:.2f},{q:.3f},{5000 + 2 * i},{5001 + 2 * i},{t // 1000},{str(s).lower()}"
                  for i, (t, s, p, q) in enumerate(zip(ts_us, sell, price, qty))]
    with gzip.open(path, "wt") as out:
        out.write("\n".join(lines) + "\n")


@pytest.mark.parametrize("fmt, name, trade_table", [
    ("tardis", "binance-futures_trades_2024-08-05_ETHUSDT.csv.gz", "trades"),
    ("binance-archive", "ETHUSDT-aggTrades-2024-08-05.csv.gz", "agg_trades"),
])
def test_cli_ingest_and_run_of_trades_only_files(tmp_path, fmt, name, trade_table):
    """``gpu-lpi ingest`` of a Tardis trades file, or of a Binance archive aggTrades file, alone, then
    ``gpu-lpi run``: the whole pipeline runs on trades only."""
    from click.testing import CliRunner

    from gpu_lpi.cli import main

    raw = tmp_path / name
    _market_trades_file(raw, np.random.default_rng(7), fmt)
    runner = CliRunner()
    ingested = runner.invoke(main, ["ingest", "--format", fmt, str(raw), "--store", str(tmp_path / "store")],
                             catch_exceptions=False)
    assert ingested.exit_code == 0 and "rejected: 0" in ingested.output, ingested.output
    assert TickStore(tmp_path / "store").tables() == [trade_table]
    job = tmp_path / "job.toml"
    job.write_text(f'[data]\nstore = "{tmp_path / "store"}"\nsymbols = ["ETHUSDT"]\nstart = 2024-08-05\n'
                   'end = 2024-08-05\n[params]\nwindow_hours = 0.05\nmin_periods_s = 30.0\n')
    done = runner.invoke(main, ["run", str(job), "--out", str(tmp_path / "run"), "--device", "cpu"],
                         catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "ETHUSDT: trades" in done.output
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "complete" and meta["book_source"] == {"ETHUSDT": "trades"}
    assert meta["degraded"]["ETHUSDT"] == degradations("trades", trade_table)
    assert list(meta["covered_spans_ns"]["ETHUSDT"]) == [trade_table]
    features = ds.dataset(tmp_path / "run" / "features", format="parquet", partitioning="hive").to_table()
    assert features.num_rows == 345_600                    # an archive or Tardis file covers its day
    valid = features.column("book_valid").to_numpy(zero_copy_only=False)
    assert 740 <= valid.sum() <= 760                       # the three minutes of trades and 10 s after
    lpi = features.column("lpi_down").to_numpy()
    assert np.isfinite(lpi).sum() > 300 and np.isnan(features.column("ldr").to_numpy()).all()


# -- the real captures without their book tables -----------------------------------------------------
#: The USD-M captures (BTCUSDT and ETHUSDT each): July 23:57:30-00:05 and August 23:54-00:00.
REAL_WINDOWS = (("2024-07-18T23:57:30", "2024-07-19T00:05:00"),
                ("2024-08-08T23:54:00", "2024-08-09T00:00:00"))
REAL = FeatureParams(window_hours=0.05, adv_window_hours=0.05, depth_window_hours=0.05, min_periods_s=60.0)
MOVE_TICKS = 4          # a "move": the change of log mid over one second
TOP_MOVES = 10


@pytest.fixture(scope="module")
def real_trades_only(real_store, tmp_path_factory) -> TickStore:
    """The store of the real captures with its book tables removed."""
    return without_book(real_store[0], tmp_path_factory.mktemp("real_trades_only") / "store")


@pytest.mark.realdata
def test_real_captures_ingested_as_trades_only_give_the_same_features(real_captures, real_trades_only,
                                                                     tmp_path):
    """``ingest --tables trades`` of the captures makes the store the book tables were removed from."""
    from gpu_lpi.ingest import ingest

    usdm = [path for path in real_captures if path.parent.name == "binance-usdm-ws"]
    ingest(usdm, "binance-ws", tmp_path / "store", tables=["trades"])
    start, end = REAL_WINDOWS[0]
    _assert_same(compute_features(real_trades_only, "ETHUSDT", start, end, REAL, "cpu"),
                 compute_features(TickStore(tmp_path / "store"), "ETHUSDT", start, end, REAL, "cpu"))


@pytest.fixture(scope="module")
def real_pairs(real_store, real_trades_only):
    """Per USD-M capture and symbol, the full features and those of the store without book tables,
    joined on the tick (pandas, ``_t`` = trades only)."""
    full, trades_only = real_store[0], real_trades_only
    pairs = {}
    for start, end in REAL_WINDOWS:
        for symbol in ("BTCUSDT", "ETHUSDT"):
            assert book_source_of(full, symbol) == "depth_diff"
            assert book_source_of(trades_only, symbol) == "trades"
            with_book = compute_features(full, symbol, start, end, REAL, "cpu").to_pandas().set_index("ts")
            implied = compute_features(trades_only, symbol, start, end, REAL, "cpu").to_pandas()
            implied = implied.set_index("ts")
            pairs[symbol, start[:10]] = with_book.join(implied, rsuffix="_t", how="inner")
    return pairs


def _largest_moves(move, count: int = TOP_MOVES, apart: int = MOVE_TICKS * TICK) -> list[int]:
    """Times of the ``count`` largest |move| values at least ``apart`` ns from each other."""
    picked: list[int] = []
    for t in move.abs().dropna().sort_values(ascending=False).index:
        if all(abs(t - u) >= apart for u in picked):
            picked.append(int(t))
            if len(picked) == count:
                break
    return picked


@pytest.mark.realdata
def test_real_captures_implied_quotes_track_the_book(real_pairs):
    for key, joined in real_pairs.items():
        valid, valid_t = joined["book_valid"].astype(bool), joined["book_valid_t"].astype(bool)
        assert valid_t[valid].mean() > 0.97, key
        both = joined[valid & valid_t]
        error_bps = ((both["mid_t"] - both["mid"]).abs() / both["mid"] * 1e4)
        assert (error_bps <= 1.0).mean() > 0.95 and error_bps.median() < 0.05, (key, error_bps.describe())
        assert (both["spread_t"] >= 0).all() and (both["spread_t"] == 0).mean() < 0.2, key
        assert np.isnan(joined["microprice_t"]).all() and np.isnan(joined["ldr_t"]).all()
        np.testing.assert_array_equal(joined["dollar_volume_t"], joined["dollar_volume"])


@pytest.mark.realdata
def test_real_captures_trades_only_and_full_lpi_agree_on_the_largest_moves(real_pairs):
    """The largest one-second moves of the full book's mid are those of the implied mid (same time,
    same sign), and there the trades-only LPI of the move's side is high in its own distribution, as
    the full LPI is in its."""
    found, percentiles, percentiles_full, rank_corrs = 0, [], [], []
    for key, joined in real_pairs.items():
        joined = joined[joined["lpi_down"].notna() & joined["lpi_down_t"].notna()]
        move = np.log(joined["mid"]).diff(MOVE_TICKS)
        move_t = np.log(joined["mid_t"]).diff(MOVE_TICKS)
        largest_t = np.array(_largest_moves(move_t))
        for t in _largest_moves(move):
            near = largest_t[np.abs(largest_t - t) <= MOVE_TICKS * TICK]
            found += bool(near.size) and bool((np.sign(move_t[near]) == np.sign(move[t])).any())
            for suffix, out in (("_t", percentiles), ("", percentiles_full)):
                down = joined[f"lpi_down{suffix}"].rolling(MOVE_TICKS).max()
                up = joined[f"lpi_up{suffix}"].rolling(MOVE_TICKS).max()
                pooled = np.sort(np.concatenate([down.dropna(), up.dropna()]))
                side = down[t] if move[t] < 0 else up[t]
                out.append(np.searchsorted(pooled, side) / pooled.size)
        rank_corrs.append(joined["lpi_down"].rank().corr(joined["lpi_down_t"].rank()))
    total = TOP_MOVES * len(real_pairs)
    assert found >= 0.8 * total, (found, total)
    assert np.median(percentiles) > 0.6 and np.mean(np.array(percentiles) > 0.5) > 0.65, percentiles
    assert np.median(percentiles_full) > 0.75, percentiles_full
    assert np.mean(rank_corrs) > 0.1 and min(rank_corrs) > 0.0, rank_corrs     # over all ticks
