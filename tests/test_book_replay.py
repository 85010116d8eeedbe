"""L2 book replay: against Binance's own book ticker on real captures, and a dict-based reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from gpu_lpi.book import Ladder, group_messages, replay, replay_stream, sample_at_times
from kernels.book_replay import APPLIED, GAP, NO_BOOK, SNAPSHOT, STALE
from tests.reference import DictBook


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "BTCUSD_PERP"])
def test_replayed_top_equals_book_ticker_at_matching_update_ids(real_store, symbol):
    """Wherever a bookTicker's ``u`` is the final update id of a diff, the replayed best bid and ask
    after that diff equal the bookTicker's: at 100% of such points once the book is valid."""
    store, _ = real_store
    tick = store.symbol_info(symbol)["tick_size"]
    messages = group_messages(store.read_arrays("depth_diff", symbol), tick)
    ticker = store.read_arrays("book_ticker", symbol)
    diff_msgs = np.flatnonzero(~messages.is_snapshot)
    by_id = dict(zip(messages.seq_last[diff_msgs].tolist(), diff_msgs.tolist()))
    matched = [(by_id[u], row) for row, u in enumerate(ticker["update_id"].tolist()) if u in by_id]
    matched.sort()
    msg_index = np.array([m for m, _ in matched])
    rows = np.array([r for _, r in matched])
    samples = replay(messages, msg_index)
    assert len(matched) > 1000
    valid = samples.valid
    # The only points without a valid book are diffs met before a capture's snapshot was loaded.
    np.testing.assert_array_equal(valid, samples.status[msg_index] == APPLIED)
    assert set(samples.status[msg_index[~valid]].tolist()) <= {NO_BOOK}
    assert valid.mean() > 0.99
    np.testing.assert_array_equal(samples.bid[valid], ticker["bid"][rows][valid])
    np.testing.assert_array_equal(samples.ask[valid], ticker["ask"][rows][valid])
    np.testing.assert_array_equal(samples.bid_qty[valid], ticker["bid_qty"][rows][valid])
    np.testing.assert_array_equal(samples.ask_qty[valid], ticker["ask_qty"][rows][valid])


def _random_stream(rng, n_msgs=400, with_ids=True):
    """Depth rows of a random book: snapshots, diffs, a few stale diffs, gaps and a re-snapshot."""
    rows = {k: [] for k in ("ts", "seq_first", "seq_last", "seq_prev", "side", "price", "qty", "is_snapshot")}
    events = []   # (kind, rows) in order, to drive the reference

    def add(ts, first, last, prev, levels, snapshot):
        for side, price, qty in levels or [(-1, np.nan, np.nan)]:
            for key, value in zip(rows, (ts, first, last, prev, side, price, qty, snapshot)):
                rows[key].append(value)
        events.append((snapshot, first, last, prev, levels))

    def levels(count, mid, snapshot):
        out = []
        for _ in range(count):
            side = int(rng.integers(0, 2))
            offset = int(rng.integers(1, 40))
            price = round((mid - offset if side == 0 else mid + offset) * 0.5, 1)
            qty = 0.0 if (not snapshot and rng.random() < 0.35) else float(rng.integers(1, 50))
            out.append((side, price, qty))
        return out

    u, ts, mid = 1000, 0, 2000
    add(ts, u - 5, u - 1, u - 6, levels(3, mid, False), False)       # before any snapshot
    snapshot_id = u + 10
    add(ts + 1, snapshot_id, snapshot_id, -1, levels(60, mid, True), True)
    add(ts + 2, u, u + 5, u - 1, levels(2, mid, False), False)         # stale: u < lastUpdateId
    u = u + 5
    for i in range(n_msgs):
        ts += 1
        first, last = u + 1, u + int(rng.integers(1, 4))
        if first > snapshot_id or last >= snapshot_id:
            first = min(first, snapshot_id)
        prev = u
        if i == n_msgs // 2:                                              # a gap
            prev = u - 1
        if i == n_msgs // 2 + 20:                                         # re-snapshot
            snapshot_id = last + 3
            add(ts, snapshot_id, snapshot_id, -1, levels(60, mid, True), True)
            ts += 1
            first, prev = snapshot_id - 1, last
            last = snapshot_id + 2
        add(ts, first, last, prev, levels(int(rng.integers(0, 6)), mid, False), False)
        u = last
        mid += int(rng.integers(-1, 2))
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    if not with_ids:
        for key in ("seq_first", "seq_last", "seq_prev"):
            arrays[key] = np.full(arrays[key].size, -1)
    return arrays, events


def _reference_replay(events, band, with_ids=True):
    """Statuses and (bid, ask, bid depth, ask depth) after each message, by the textbook rules."""
    book, has_book, awaiting, snapshot_id, last_u, previous_snapshot = DictBook(), False, False, None, None, False
    statuses, tops = [], []
    for snapshot, first, last, prev, levels in events:
        if not with_ids:
            first = last = prev = -1
        if snapshot:
            if not (previous_snapshot and last == snapshot_id):
                book.clear()
            status, has_book, awaiting, snapshot_id = SNAPSHOT, True, last >= 0, last
            apply = True
        elif not has_book:
            status, apply = NO_BOOK, False
        elif last < 0:
            status, apply = APPLIED, True
        elif awaiting:
            if last < snapshot_id:
                status, apply = STALE, False
            elif first <= snapshot_id <= last or prev == snapshot_id:
                status, apply, awaiting, last_u = APPLIED, True, False, last
            else:
                status, apply, has_book = GAP, False, False
        elif prev == last_u:
            status, apply, last_u = APPLIED, True, last
        else:
            status, apply, has_book = GAP, False, False
        if apply:
            for side, price, qty in levels:
                book.set(side, price, qty)
        previous_snapshot = snapshot
        statuses.append(status)
        if has_book and not awaiting and book.bids and book.asks:
            tops.append((book.best_bid(), book.best_ask(), book.depth(0, band), book.depth(1, band)))
        else:
            tops.append(None)
    return statuses, tops


@pytest.mark.parametrize("with_ids", [True, False])
def test_replay_equals_dict_book_reference(with_ids):
    rng = np.random.default_rng(11)
    rows, events = _random_stream(rng, with_ids=with_ids)
    band_bps = 25.0
    messages = group_messages(rows, 0.1)
    assert len(messages.ts) == len(events)
    samples = replay(messages, np.arange(len(events)), bands_bps=[band_bps])
    statuses, tops = _reference_replay(events, band_bps * 1e-4, with_ids)
    assert samples.status.tolist() == statuses
    if with_ids:
        assert {GAP, STALE, NO_BOOK, SNAPSHOT, APPLIED} <= set(statuses)
    for i, top in enumerate(tops):
        if top is None:
            continue
        assert samples.valid[i]
        assert samples.bid[i] == pytest.approx(top[0], abs=1e-9)
        assert samples.ask[i] == pytest.approx(top[1], abs=1e-9)
        assert samples.depth_bid[0, i] == pytest.approx(top[2], abs=1e-9)
        assert samples.depth_ask[0, i] == pytest.approx(top[3], abs=1e-9)


def test_sample_at_times_uses_only_past_messages():
    rng = np.random.default_rng(5)
    rows, _ = _random_stream(rng, n_msgs=100)
    messages = group_messages(rows, 0.1)
    times = np.arange(0, messages.ts.max() + 2) - 0.5
    full = sample_at_times(messages, times.astype(np.int64))
    cut = 60
    keep = rows["ts"] <= cut
    truncated = sample_at_times(group_messages({k: v[keep] for k, v in rows.items()}, 0.1),
                                times.astype(np.int64))
    upto = times <= cut
    np.testing.assert_array_equal(full.bid[upto], truncated.bid[upto])
    np.testing.assert_array_equal(full.depth_bid[:, upto], truncated.depth_bid[:, upto])
    np.testing.assert_array_equal(full.valid[upto], truncated.valid[upto])


def _batches(rows, sizes):
    """The rows cut into pyarrow tables of the given sizes (cycled), as the store streams them."""
    table = pa.table(rows)
    at, k = 0, 0
    while at < table.num_rows:
        yield table.slice(at, sizes[k % len(sizes)])
        at += sizes[k % len(sizes)]
        k += 1


@pytest.mark.parametrize("sizes", [[1], [3, 7, 2], [50], [10**6]])
def test_streamed_replay_equals_one_replay(sizes):
    """Fed in batches of any size (messages cut across batches), the replay samples the same book
    at every time, depth bands only where asked, bit for bit."""
    rng = np.random.default_rng(7)
    rows, _ = _random_stream(rng, n_msgs=300)
    rows["ts"] = rows["ts"] * 1_000     # several messages per time unit below
    messages = group_messages(rows, 0.1)
    times = np.sort(rng.integers(-5, int(rows["ts"].max()) + 5_000, 700)).astype(np.int64)
    depth_at = rng.random(times.size) < 0.5
    whole = sample_at_times(messages, times, bands_bps=(25.0,), max_age_ns=20_000)
    streamed = replay_stream(_batches(rows, sizes), messages.ladder, times, (25.0,), depth_at,
                             max_age_ns=20_000)
    assert whole.valid.sum() > 100 and (~whole.valid).sum() > 10
    for name in ("valid", "bid", "ask", "bid_qty", "ask_qty"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(whole, name), err_msg=name)
    np.testing.assert_array_equal(streamed.depth_bid[:, depth_at], whole.depth_bid[:, depth_at])
    np.testing.assert_array_equal(streamed.depth_ask[:, depth_at], whole.depth_ask[:, depth_at])
    assert np.isnan(streamed.depth_bid[:, ~depth_at]).all()
    np.testing.assert_array_equal(streamed.status, whole.status)


def test_ladder_clips_far_placeholder_quotes():
    ladder = Ladder.spanning(1.0, 1e9, 0.1, center_price=60_000.0)
    assert ladder.n_levels <= 1 << 25
    levels = ladder.index(np.array([1.0, 30_001.0, 60_000.0, 89_999.0, 1e9, np.nan]))
    assert levels.tolist()[0] == -1 and levels.tolist()[4:] == [-1, -1]
    assert (levels[1:4] >= 0).all()
    np.testing.assert_array_equal(ladder.price(levels[1:4]), [30_001.0, 60_000.0, 89_999.0])
