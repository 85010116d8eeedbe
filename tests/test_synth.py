"""Tests of ``gpu_lpi.synth``: file formats, sequence ids, book consistency and the planted episodes."""

from __future__ import annotations

import gzip
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import orjson
import pandas as pd
import pytest

from gpu_lpi.synth import synthesize
from gpu_lpi.synth.calibration import MARKETS
from gpu_lpi.synth.market import BACKGROUND_LIQUIDATIONS_PER_HOUR
from tests.conftest import COINM, USDM
from tests.reference import DictBook

START = date(2024, 8, 5)
RATE_SCALE = 0.002
SYMBOLS = ["BTCUSDT", "BTCUSD_PERP"]

# Key layouts of the real captures (shared/data), and of the documented streams they lack.
WS_KEYS = {
    ("trade", False): ("e", "E", "T", "s", "t", "p", "q", "X", "m"),
    ("bookTicker", False): ("e", "u", "s", "b", "B", "a", "A", "T", "E"),
    ("bookTicker", True): ("u", "e", "s", "ps", "b", "B", "a", "A", "T", "E"),
    ("depthUpdate", False): ("e", "E", "T", "s", "U", "u", "pu", "b", "a"),
    ("depthUpdate", True): ("e", "E", "T", "s", "ps", "U", "u", "pu", "b", "a"),
    ("snapshot", False): ("lastUpdateId", "E", "T", "bids", "asks"),
    ("snapshot", True): ("lastUpdateId", "E", "T", "symbol", "pair", "bids", "asks"),
    ("openInterest", False): ("symbol", "openInterest", "time"),
    ("openInterest", True): ("symbol", "pair", "openInterest", "contractType", "time"),
    ("markPriceUpdate", False): ("e", "E", "s", "p", "i", "P", "r", "T"),
    ("forceOrder", False): ("e", "E", "o"),
}
TARDIS_HEADERS = {
    "trades": "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
    "incremental_book_L2": "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount",
    "quotes": "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount",
    "derivative_ticker": "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
                         "predicted_funding_rate,open_interest,last_price,index_price,mark_price",
    "liquidations": "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
}


def _expected_keys(kind: str, inverse: bool) -> tuple[str, ...]:
    return WS_KEYS.get((kind, inverse), WS_KEYS[(kind, False)])


def _kind(message: dict) -> str:
    if "lastUpdateId" in message:
        return "snapshot"
    if "openInterest" in message:
        return "openInterest"
    return message["data"]["e"]


def _read_lines(path):
    """``(local_ts, raw json, decoded)`` per line, asserting the ``<int> <json>`` shape."""
    rows = []
    with gzip.open(path, "rb") as handle:
        for line in handle:
            local_ts, payload = line.rstrip(b"\n").split(b" ", 1)
            assert local_ts.isdigit() and len(local_ts) == 19
            rows.append((int(local_ts), payload, orjson.loads(payload)))
    return rows


@dataclass
class SymbolCapture:
    """One symbol's synthetic capture, decoded once for all tests."""

    days: list[list[tuple[int, bytes, dict]]]
    rows: list[tuple[int, bytes, dict]] = field(init=False)
    series: dict[str, tuple[list[int], list]] = field(init=False)

    def __post_init__(self):
        self.rows = [row for day in self.days for row in day]
        points = defaultdict(list)
        for _, _, message in self.rows:
            if "openInterest" in message:
                points["openInterest"].append((message["time"], Decimal(message["openInterest"])))
            data = message.get("data", {})
            if data.get("e") == "bookTicker":
                bid, ask = Decimal(data["b"]), Decimal(data["a"])
                points["bid"].append((data["T"], bid))
                points["ask"].append((data["T"], ask))
                points["mid"].append((data["T"], (bid + ask) / 2))
                points["spread"].append((data["T"], (ask - bid) / ((bid + ask) / 2)))
            elif data.get("e") == "forceOrder":
                points["forceOrder"].append((data["o"]["T"], data["o"]))
            elif data.get("e") == "trade":
                price, qty = Decimal(data["p"]), Decimal(data["q"])
                points["trade"].append((data["T"], (price, qty, -1 if data["m"] else 1)))
                if data["m"]:
                    points["sell"].append((data["T"], price))
        self.series = {kind: ([t for t, _ in pairs], [v for _, v in pairs]) for kind, pairs in points.items()}
        self.series.setdefault("forceOrder", ([], []))


@pytest.fixture(scope="module")
def ws_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_ws")
    summary = synthesize(out, "binance-ws", SYMBOLS, START, 2, seed=11, rate_scale=RATE_SCALE)
    captures = {symbol: SymbolCapture([_read_lines(out / f"{symbol.lower()}_{day}.gz")
                                       for day in ("20240805", "20240806")]) for symbol in SYMBOLS}
    return out, summary, captures


@pytest.fixture(scope="module")
def labels(ws_run):
    return pd.read_parquet(ws_run[0] / "labels.parquet")


def test_same_arguments_give_byte_identical_files(tmp_path):
    first = synthesize(tmp_path / "a", "tardis", ["ETHUSDT"], START, 1, seed=5, rate_scale=0.001)
    second = synthesize(tmp_path / "b", "tardis", ["ETHUSDT"], START, 1, seed=5, rate_scale=0.001)
    assert [p.name for p in first.files] == [p.name for p in second.files]
    for a, b in zip(first.files + (first.labels_path,), second.files + (second.labels_path,)):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_unknown_symbol_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="NOPE.*known symbols: BTCUSDT"):
        synthesize(tmp_path, "binance-ws", ["NOPE"], START, 1, seed=1)


def test_files_are_named_like_the_captures_and_split_at_midnight(ws_run):
    out, summary, lines = ws_run
    assert sorted(p.name for p in summary.files) == sorted(
        f"{s.lower()}_{d}.gz" for s in SYMBOLS for d in ("20240805", "20240806"))
    day_two_ns = 1_722_902_400_000_000_000
    for capture in lines.values():
        first_day, second_day = capture.days
        assert first_day[-1][0] < day_two_ns <= second_day[0][0]
        stamps = [row[0] for row in capture.rows]
        assert stamps == sorted(stamps)


def test_every_message_has_the_key_layout_of_the_real_captures(ws_run):
    for symbol, capture in ws_run[2].items():
        inverse = symbol.endswith("_PERP")
        seen = set()
        for _, _, message in capture.rows:
            kind = _kind(message)
            body = message if kind in ("snapshot", "openInterest") else message["data"]
            assert tuple(body) == _expected_keys(kind, inverse), (kind, tuple(body))
            if kind not in ("snapshot", "openInterest"):
                assert tuple(message) == ("stream", "data")
                assert message["stream"].startswith(symbol.lower() + "@")
            seen.add(kind)
        assert seen == {"trade", "bookTicker", "depthUpdate", "snapshot", "openInterest", "markPriceUpdate",
                        "forceOrder"}


@pytest.mark.realdata
def test_key_layouts_match_the_real_files():
    if not USDM.is_dir() or not COINM.is_dir():
        pytest.skip("real captures not available")
    for path in list(USDM.glob("btcusdt_20240808.gz")) + list(COINM.glob("btcusd_perp_20240808.gz")):
        inverse = "perp" in path.name
        for _, _, message in _read_lines(path)[:3000]:
            kind = _kind(message)
            body = message if kind == "snapshot" else message["data"]
            assert tuple(body) == _expected_keys(kind, inverse)


def test_numbers_are_strings_at_the_symbol_precision(ws_run):
    trade = next(m["data"] for _, _, m in ws_run[2]["BTCUSDT"].rows if "data" in m and m["data"]["e"] == "trade")
    assert len(trade["p"].split(".")[1]) == 2 and len(trade["q"].split(".")[1]) == 3
    coin = next(m["data"] for _, _, m in ws_run[2]["BTCUSD_PERP"].rows if "data" in m and m["data"]["e"] == "trade")
    assert len(coin["p"].split(".")[1]) == 1 and coin["q"].isdigit()
    deletes = [level for _, _, m in ws_run[2]["BTCUSDT"].rows if "data" in m and m["data"]["e"] == "depthUpdate"
               for level in m["data"]["b"] if Decimal(level[1]) == 0]
    assert deletes and all(qty == "0.000" for _, qty in deletes)


def _depth_and_snapshot(rows):
    snapshot = next(m for _, _, m in rows if "lastUpdateId" in m)
    diffs = [m["data"] for _, _, m in rows if "data" in m and m["data"]["e"] == "depthUpdate"]
    return snapshot, diffs


def test_update_ids_chain_across_the_midnight_split(ws_run):
    for capture in ws_run[2].values():
        snapshot, diffs = _depth_and_snapshot(capture.rows)
        for previous, diff in zip(diffs, diffs[1:]):
            assert diff["pu"] == previous["u"] and previous["u"] < diff["U"] <= diff["u"]
        last_id = snapshot["lastUpdateId"]
        before = [d for d in diffs if d["u"] < last_id]
        first = diffs[len(before)]
        assert len(before) >= 2 and first["U"] <= last_id <= first["u"]


def _top(book: DictBook):
    bid, ask = book.best_bid(), book.best_ask()
    return bid, book.bids.get(bid), ask, book.asks.get(ask)


def test_book_ticker_equals_the_book_after_each_diff_that_moves_the_top(ws_run):
    for capture in ws_run[2].values():
        tickers = {m["data"]["u"]: m["data"] for _, _, m in capture.rows
                   if "data" in m and m["data"]["e"] == "bookTicker"}
        snapshot, diffs = _depth_and_snapshot(capture.rows)
        book = DictBook()
        for side, levels in ((0, snapshot["bids"]), (1, snapshot["asks"])):
            for price, qty in levels:
                book.set(side, Decimal(price), Decimal(qty))
        top = _top(book)
        checked = 0
        for diff in (d for d in diffs if d["u"] >= snapshot["lastUpdateId"]):
            for side, levels in ((0, diff["b"]), (1, diff["a"])):
                for price, qty in levels:
                    book.set(side, Decimal(price), Decimal(qty))
            new_top = _top(book)
            if new_top != top:
                ticker = tickers[diff["u"]]
                assert tuple(Decimal(ticker[k]) for k in "bBaA") == new_top
                checked += 1
            top = new_top
        assert checked > 100


def _value_at(series, ms):
    """Last value at or before ``ms`` of a ``(times, values)`` series."""
    times, values = series
    return values[bisect_right(times, ms) - 1]


def _window(series, start, end):
    times, values = series
    return values[bisect_left(times, start):bisect_right(times, end)]


def test_labels_have_the_documented_columns(labels):
    assert list(labels.columns) == ["symbol", "ts_start", "ts_end", "kind", "side", "violent"]
    assert str(labels["ts_start"].dtype) == "int64" and str(labels["ts_end"].dtype) == "int64"
    assert set(labels["kind"]) == {"forced", "informed"} and set(labels["side"]) <= {"down", "up"}
    assert (labels["ts_end"] > labels["ts_start"]).all()
    per_day = labels.groupby([labels["symbol"], labels["ts_start"] // 86_400_000_000_000])["kind"]
    assert per_day.nunique().eq(2).all() and per_day.size().between(3, 8).all()


def _episodes(labels, kind, captures):
    for row in labels[labels.kind == kind].itertuples():
        yield row, captures[row.symbol], row.ts_start // 1_000_000, row.ts_end // 1_000_000


def _outside_episodes(labels, symbol, stamps_ms):
    """The stamps outside every planted episode of ``symbol``, and the hours outside them."""
    own = labels[labels.symbol == symbol]
    windows = [(r.ts_start // 1_000_000, r.ts_end // 1_000_000) for r in own.itertuples()]
    outside = [t for t in stamps_ms if not any(lo <= t <= hi for lo, hi in windows)]
    hours = (2 * 86_400_000 - sum(hi - lo for lo, hi in windows)) / 3_600_000
    return outside, hours


def test_force_orders_crowd_forced_episodes_and_are_rare_elsewhere(ws_run, labels):
    """Every forced episode prints liquidations, many times the rate outside episodes, where lone
    liquidations arrive at the nominal background rate (Poisson); Binance's one per second holds."""
    for symbol, capture in ws_run[2].items():
        stamps = capture.series["forceOrder"][0]
        outside, hours = _outside_episodes(labels, symbol, stamps)
        expected = BACKGROUND_LIQUIDATIONS_PER_HOUR * hours
        assert abs(len(outside) - expected) < 5 * expected ** 0.5, (len(outside), expected)
        for row in labels[(labels.symbol == symbol) & (labels.kind == "forced")].itertuples():
            lo, hi = row.ts_start // 1_000_000, row.ts_end // 1_000_000
            inside = sum(lo <= t <= hi for t in stamps)
            assert inside / ((hi - lo) / 3_600_000) > 10 * BACKGROUND_LIQUIDATIONS_PER_HOUR, (symbol, inside)
        assert all(b - a >= 1000 for a, b in zip(stamps, stamps[1:]))


def test_block_orders_print_impact_trades_outside_episodes(ws_run, labels):
    """Outside every episode, trades priced 5 bps or more through the touch 250 ms before them
    come at about the profile's measured rate of impact ticks (background block orders)."""
    for symbol, capture in ws_run[2].items():
        bid_times, bids = capture.series["bid"]
        ask_times, asks = capture.series["ask"]
        through = []
        for t, (price, _, sign) in zip(*capture.series["trade"]):
            at = bisect_right(bid_times, t - 250) - 1
            if at < 0:
                continue
            if (sign < 0 and price < bids[at] * Decimal("0.9995")) or (sign > 0 and price > asks[at] * Decimal("1.0005")):
                if not through or t - through[-1] > 250:       # one per block
                    through.append(t)
        outside, hours = _outside_episodes(labels, symbol, through)
        rate = MARKETS[symbol].impact_blocks_per_hour
        assert 0.4 * rate < len(outside) / hours < 1.5 * rate, (symbol, len(outside), hours)


def test_forced_episodes_flush_oi_overshoot_and_partly_revert(ws_run, labels):
    reverted_shares = []
    for row, capture, start, end in _episodes(labels, "forced", ws_run[2]):
        oi = capture.series["openInterest"]
        assert _value_at(oi, end) < _value_at(oi, start)
        mids = capture.series["mid"]
        sign = -1 if row.side == "down" else 1
        before, after = _value_at(mids, start), _value_at(mids, end)
        extreme = max(sign * m for m in _window(mids, start, end)) * sign
        assert sign * (extreme - before) / before > Decimal("0.004")
        reverted_shares.append((after - extreme) / (before - extreme))
    assert all(share > Decimal("0.1") for share in reverted_shares)
    assert Decimal("0.2") < sum(reverted_shares) / len(reverted_shares) < Decimal("0.9")


def test_forced_sells_walk_the_book_below_the_earlier_best_bid(ws_run, labels):
    for row, capture, start, end in _episodes(labels, "forced", ws_run[2]):
        if row.side == "up":
            continue
        bids = capture.series["bid"]
        walk = max((_value_at(bids, t - 250) - price) / _value_at(bids, t - 250)
                   for t, price in zip(*capture.series["sell"]) if start <= t <= end)
        assert walk > Decimal("0.0005")


def _walk_noise(symbol, price, duration_ms):
    """Three standard deviations of the latent random walk over ``duration_ms`` (price units): an
    episode's own path keeps its move, the walk on top of it may take some of it back."""
    sigma = MARKETS[symbol].volatility_per_day * (duration_ms / 86_400_000) ** 0.5
    return Decimal(3 * sigma) * price


def _at_background_rate(count, hours):
    """``count`` liquidations in ``hours`` are no more than the lone ones of the background (Poisson)."""
    expected = BACKGROUND_LIQUIDATIONS_PER_HOUR * hours
    return count <= expected + 4 * expected ** 0.5 + 3


def test_informed_episodes_keep_their_move_without_oi_drop_or_liquidations(ws_run, labels):
    """No OI drop, their move kept, and no liquidations beyond the market's lone ones."""
    liquidations = hours = 0
    for row, capture, start, end in _episodes(labels, "informed", ws_run[2]):
        oi = capture.series["openInterest"]
        assert _value_at(oi, end) >= _value_at(oi, start)
        liquidations += len(_window(capture.series["forceOrder"], start, end))
        hours += (end - start) / 3_600_000
        mids = capture.series["mid"]
        sign = -1 if row.side == "down" else 1
        before, after = _value_at(mids, start), _value_at(mids, end)
        extreme = max(sign * m for m in _window(mids, start, end)) * sign
        noise = _walk_noise(row.symbol, before, end - start)
        assert sign * (after - before) >= Decimal("0.7") * sign * (extreme - before) - noise
    assert _at_background_rate(liquidations, hours), (liquidations, hours)


@pytest.fixture(scope="module")
def tardis_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_tardis")
    synthesize(out, "tardis", ["BTCUSDT", "BTCUSD_PERP"], START, 2, seed=3, rate_scale=0.001)
    return out


def _csv_rows(path):
    with gzip.open(path, "rt") as handle:
        return handle.read().splitlines()


@pytest.mark.parametrize("data_type", list(TARDIS_HEADERS))
def test_tardis_files_have_exact_headers_and_microsecond_times(tardis_run, data_type):
    for exchange, symbol in (("binance-futures", "BTCUSDT"), ("binance-delivery", "BTCUSD_PERP")):
        for day in ("2024-08-05", "2024-08-06"):
            rows = _csv_rows(tardis_run / f"{exchange}_{data_type}_{day}_{symbol}.csv.gz")
            assert rows[0] == TARDIS_HEADERS[data_type]
            assert len(rows) > 1
            width = rows[0].count(",")
            for row in rows[1:]:
                fields = row.split(",")
                assert fields[:2] == [exchange, symbol] and row.count(",") == width
                assert len(fields[2]) == 16 and len(fields[3]) == 16 and fields[2].isdigit()
                assert abs(int(fields[3]) - int(fields[2])) < 5_000_000


def test_tardis_book_files_start_each_day_with_a_snapshot_block(tardis_run):
    first = _csv_rows(tardis_run / "binance-futures_incremental_book_L2_2024-08-05_BTCUSDT.csv.gz")[1:]
    second = _csv_rows(tardis_run / "binance-futures_incremental_book_L2_2024-08-06_BTCUSDT.csv.gz")[1:]
    flags = [row.split(",")[4] for row in first]
    assert set(flags) == {"true", "false"} and flags[0] == "false" and "true" in flags[:5000]
    assert second[0].split(",")[4] == "true"
    snapshot = [row.split(",") for row in second if row.split(",")[4] == "true"]
    assert {fields[5] for fields in snapshot} == {"bid", "ask"}
    quotes = _csv_rows(tardis_run / "binance-futures_quotes_2024-08-05_BTCUSDT.csv.gz")[1:]
    ask_amount, ask, bid, bid_amount = (Decimal(x) for x in quotes[100].split(",")[4:])
    assert ask > bid and ask_amount > 0 and bid_amount > 0


def test_tardis_liquidations_and_ticker_fields(tardis_run):
    liquidations = _csv_rows(tardis_run / "binance-futures_liquidations_2024-08-05_BTCUSDT.csv.gz")[1:]
    assert liquidations and all(row.split(",")[4] == "" and row.split(",")[5] in ("buy", "sell")
                                for row in liquidations)
    ticker = _csv_rows(tardis_run / "binance-futures_derivative_ticker_2024-08-05_BTCUSDT.csv.gz")[-1]
    funding_ts, rate, predicted, oi, last, index, mark = ticker.split(",")[4:]
    assert len(funding_ts) == 16 and predicted == "" and abs(Decimal(rate) - Decimal("0.0001")) < Decimal("0.0001")
    assert Decimal(oi) > 0 and Decimal(last) > 0 and abs(Decimal(mark) / Decimal(index) - 1) < Decimal("0.01")



# --- violent informed repricings: cascade-sized flow, informed mechanism ----------------------------

#: Impact threshold θ of the spec (trades this far beyond the touch ``IMPACT_LAG_MS`` before them).
IMPACT_THETA = Decimal("0.0005")
IMPACT_LAG_MS = 250


def _impact_flow(capture, start, end, sign, inverse):
    """Peak notional and peak count per second of the trades of side ``sign`` through θ beyond the
    touch 250 ms earlier, over ``[start, end]``; notional in contracts for an inverse symbol (only
    compared within a symbol)."""
    touch = capture.series["bid" if sign < 0 else "ask"]
    notional, count = defaultdict(Decimal), defaultdict(int)
    times, trades = capture.series["trade"]
    lo, hi = bisect_left(times, start), bisect_right(times, end)
    for t, (price, qty, side) in zip(times[lo:hi], trades[lo:hi]):
        reference = _value_at(touch, t - IMPACT_LAG_MS)
        if side == sign and sign * (price - reference) > IMPACT_THETA * reference:
            notional[(t - start) // 1000] += qty if inverse else qty * price
            count[(t - start) // 1000] += 1
    return max(notional.values(), default=Decimal(0)), Decimal(max(count.values(), default=0))


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


@pytest.fixture(scope="module")
def impact_flows(ws_run, labels):
    """Per symbol and kind (``forced``, ``violent`` informed, ``calm`` informed): the impact flow of
    each label, as ``(peak notional per second, peak impact trades per second)``."""
    flows = defaultdict(list)
    for row in labels.itertuples():
        kind = row.kind if row.kind == "forced" else ("violent" if row.violent else "calm")
        flows[row.symbol, kind].append(_impact_flow(ws_run[2][row.symbol], row.ts_start // 1_000_000,
                                                    row.ts_end // 1_000_000, -1 if row.side == "down" else 1,
                                                    row.symbol.endswith("_PERP")))
    return flows


def test_labels_mark_cascades_and_half_the_informed_repricings_violent(labels):
    assert labels["violent"].dtype == bool
    assert labels[labels.kind == "forced"]["violent"].all()
    informed = labels[labels.kind == "informed"]
    per_day = informed.groupby([informed["symbol"], informed["ts_start"] // 86_400_000_000_000])["violent"]
    assert per_day.nunique().eq(2).all()


def test_violent_informed_flow_is_cascade_sized(impact_flows):
    """Peak impact notional and impact trades per second, relative to the median cascade of the
    symbol: the median violent informed repricing is within a factor 2, each one of the same order
    (a factor 8: one sweep on a fresh book makes a peak); calm ones are far below (a background
    block trade inside one makes a peak of one block, a fraction of a cascade's)."""
    for measure in (0, 1):
        ratios, calm = [], []
        for symbol in SYMBOLS:
            cascade = _median([flow[measure] for flow in impact_flows[symbol, "forced"]])
            assert cascade > 0
            ratios += [flow[measure] / cascade for flow in impact_flows[symbol, "violent"]]
            calm += [flow[measure] / cascade for flow in impact_flows[symbol, "calm"]]
        assert len(ratios) >= 2 * len(SYMBOLS) and calm
        assert Decimal("0.5") <= _median(ratios) <= 2
        assert all(Decimal(1) / 8 <= ratio <= 8 for ratio in ratios)
        assert _median(calm) < Decimal("0.05") and all(ratio < Decimal("0.5") for ratio in calm)


def _oi_change(oi, start, end):
    return (_value_at(oi, end) - _value_at(oi, start)) / _value_at(oi, start)


def test_open_interest_rises_in_violent_informed_repricings_and_falls_in_cascades(ws_run, labels):
    for _, capture, start, end in _episodes(labels, "forced", ws_run[2]):
        assert _oi_change(capture.series["openInterest"], start, end) < Decimal("-0.005")
    violent = [(capture, start, end) for row, capture, start, end in _episodes(labels, "informed", ws_run[2])
               if row.violent]
    assert violent
    for capture, start, end in violent:
        assert _oi_change(capture.series["openInterest"], start, end) > Decimal("0.005")


def _reverted_share(capture, row, start, end, allowance=Decimal(0)):
    """Share of the move given back by ``end``, beyond ``allowance`` (price units), on the mid as of
    each second (the move: its 90th percentile over the label, so that the instant after a sweep,
    before makers re-quote, does not count as the extreme; the end: the median over its last 10 s,
    so that a background block trade just before it, whose hole makers fill at their next requote,
    does not count as a reversal)."""
    mids = capture.series["mid"]
    sign = -1 if row.side == "down" else 1
    before = _value_at(mids, start)
    moves = sorted(sign * (_value_at(mids, t) - before) for t in range(start, end + 1, 1000))
    extreme = moves[int(0.9 * (len(moves) - 1))]
    settled = _median([_value_at(mids, t) for t in range(end - 10_000, end + 1, 1000)])
    return (extreme - sign * (settled - before) - allowance) / extreme


def _mean_spread(capture, start, end):
    """Time-weighted mean relative spread over ``[start, end]`` (ms), from the book tickers."""
    times, values = capture.series["spread"]
    lo, hi = bisect_right(times, start), bisect_right(times, end)
    edges = [start] + times[lo:hi] + [end]
    levels = [_value_at(capture.series["spread"], start)] + values[lo:hi]
    return sum(level * (b - a) for level, a, b in zip(levels, edges, edges[1:])) / (end - start)


def test_violent_informed_moves_last_and_their_spread_shocks_are_smaller(ws_run, labels):
    """Cascades revert and keep the book wide while the pressure lasts; violent informed repricings
    keep (or extend) their move, and makers re-quote, so their spread shock is smaller."""
    cascade_spreads, cascade_reverted = defaultdict(list), []
    for row, capture, start, end in _episodes(labels, "forced", ws_run[2]):
        cascade_spreads[row.symbol].append(_mean_spread(capture, start, end))
        cascade_reverted.append(_reverted_share(capture, row, start, end))
    reverted, beyond_walk = [], []       # the share given back; beyond what the random walk can take
    for row, capture, start, end in _episodes(labels, "informed", ws_run[2]):
        if not row.violent:
            continue
        noise = _walk_noise(row.symbol, _value_at(capture.series["mid"], start), end - start)
        reverted.append(_reverted_share(capture, row, start, end))
        beyond_walk.append(_reverted_share(capture, row, start, end, noise))
        calm_before = _mean_spread(capture, start - 600_000, start)
        assert calm_before < _mean_spread(capture, start, end) < _median(cascade_spreads[row.symbol]) / 2
    assert reverted and all(share < Decimal("0.2") for share in beyond_walk)
    assert _median(reverted) < Decimal("0.1") < Decimal("0.3") < _median(cascade_reverted)


def _tardis_points(out, data_type, symbol, column):
    """``(times ms, values)`` of one column of a Tardis data type over both days (empty fields skipped)."""
    exchange = "binance-delivery" if symbol.endswith("_PERP") else "binance-futures"
    points = []
    for day in ("2024-08-05", "2024-08-06"):
        for row in _csv_rows(out / f"{exchange}_{data_type}_{day}_{symbol}.csv.gz")[1:]:
            fields = row.split(",")
            if fields[column]:
                points.append((int(fields[2]) // 1000, Decimal(fields[column])))
    return [t for t, _ in points], [v for _, v in points]


def test_tardis_open_interest_and_liquidations_tell_cascades_from_violent_informed(tardis_run):
    labels = pd.read_parquet(tardis_run / "labels.parquet")
    assert labels["violent"].any() and (labels["kind"] == "informed").any()
    for symbol in ("BTCUSDT", "BTCUSD_PERP"):
        oi = _tardis_points(tardis_run, "derivative_ticker", symbol, 7)
        liquidations = _tardis_points(tardis_run, "liquidations", symbol, 7)[0]
        informed_hits = informed_hours = 0
        for row in labels[labels.symbol == symbol].itertuples():
            start, end = row.ts_start // 1_000_000, row.ts_end // 1_000_000
            hits = [t for t in liquidations if start <= t <= end]
            change = _oi_change(oi, start, end)
            if row.kind == "forced":
                assert len(hits) / ((end - start) / 3_600_000) > 10 * BACKGROUND_LIQUIDATIONS_PER_HOUR
                assert change < Decimal("-0.005")
            else:
                informed_hits += len(hits)
                informed_hours += (end - start) / 3_600_000
                assert change > 0
                assert change > Decimal("0.005") or not row.violent
        assert _at_background_rate(informed_hits, informed_hours), (symbol, informed_hits, informed_hours)
        outside, hours = _outside_episodes(labels, symbol, liquidations)
        assert _at_background_rate(len(outside), hours) and len(outside) > 0.5 * BACKGROUND_LIQUIDATIONS_PER_HOUR * hours
