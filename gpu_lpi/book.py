"""L2 book replay from the tick store's ``depth_diff`` rows (wraps :mod:`kernels.book_replay`).

The replay is streamed: rows are read a row group at a time and fed to the kernel, whose book (a
dense price ladder per side and the sequence state) persists between feeds, so memory is that of the
ladder plus one row group whatever the range replayed. The book is sampled *as of* chosen times
(after the last message with ``ts <= t``): a time is answered as soon as a later message has been
read. Feeding the rows in pieces gives the same book, bit for bit, as feeding them at once.

Which rows are replayed for a range of times: from the latest snapshot at or before the first time
(:func:`last_snapshot_ts`, found from row-group statistics without reading the rows in between) to
the last time. The ladder spans the prices of those rows (:func:`ladder_for_range`, also from
statistics); it is clipped around the middle of that range when larger than
:data:`MAX_LADDER_LEVELS` (far placeholder quotes), and levels outside it are counted and ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kernels.book_replay import (GAP, NO_BOOK, STALE, BookState, DepthRows, SampleRequest,
                                 SampleOutput, new_book_state, replay_messages)

#: Ladders larger than this many levels are clipped to a window around the middle price; levels
#: outside it (far-away quotes such as Binance's 1000.00 placeholder bids) are counted and ignored.
MAX_LADDER_LEVELS = 1 << 25
#: Half-width of that window as a fraction of the middle price.
CLIPPED_WINDOW_FRACTION = 0.5
#: Default longest time since the last depth message for which a sampled book still counts as
#: valid. Binance diff streams update many times a second; a minute of silence means the capture
#: stopped (or the collector was disconnected), and the last book would be stale.
MAX_BOOK_AGE_NS = 60 * 10**9
#: How far back the replay looks for a snapshot before the first sampled time.
SNAPSHOT_SEARCH_DAYS = 31
#: Columns of ``depth_diff`` the replay reads.
REPLAY_COLUMNS = ("ts", "seq_first", "seq_last", "seq_prev", "side", "price", "qty", "is_snapshot")


@dataclass(frozen=True)
class Ladder:
    """A dense price ladder: index ``i`` is the price ``(base + i)·tick``."""

    base: int
    n_levels: int
    tick: float

    @classmethod
    def spanning(cls, low_price: float, high_price: float, tick: float,
                 center_price: float | None = None) -> "Ladder":
        """The ladder from ``low_price`` to ``high_price``; when that is more than
        :data:`MAX_LADDER_LEVELS` levels, the window of that many levels at most
        :data:`CLIPPED_WINDOW_FRACTION` of the price either side of ``center_price`` (a typical
        price of the rows; default the middle of the range)."""
        if not (np.isfinite(low_price) and np.isfinite(high_price)) or high_price < low_price:
            return cls(0, 1, tick)
        low, high = int(round(low_price / tick)), int(round(high_price / tick))
        if high - low + 1 > MAX_LADDER_LEVELS:
            center = (low + high) / 2 if center_price is None else center_price / tick
            half = min(center * CLIPPED_WINDOW_FRACTION, MAX_LADDER_LEVELS // 2 - 1)
            low, high = max(low, int(center - half)), min(high, int(center + half))
        return cls(low, high - low + 1, tick)

    def index(self, price: np.ndarray) -> np.ndarray:
        """Ladder index of each price (-1 where off the ladder or not a price)."""
        ticks = np.rint(price / self.tick)
        level = np.full(price.size, -1, dtype=np.int64)
        real = np.isfinite(ticks)
        level[real] = ticks[real].astype(np.int64) - self.base
        level[(level < 0) | (level >= self.n_levels)] = -1
        return level

    def price(self, index: np.ndarray) -> np.ndarray:
        """Prices of ladder indices (NaN for -1), bit-identical to the decimal prices of the source.

        For decimal ticks (0.1, 0.01, ...) the price is computed as ``ticks / (1 / tick)``, which is
        the correctly rounded double of the decimal price; ``ticks * tick`` would be off by an ulp.
        """
        ticks = (self.base + index).astype(np.float64)
        per_unit = round(1.0 / self.tick)
        price = ticks / per_unit if abs(per_unit * self.tick - 1.0) < 1e-12 else ticks * self.tick
        return np.where(index >= 0, price, np.nan)


@dataclass
class DepthMessages:
    """``depth_diff`` rows grouped into messages, with prices on a ladder."""

    ts: np.ndarray              # int64[n_msg], exchange time of each message
    rows: DepthRows             # the kernel's view: message starts, flags, ids, row sides/levels/qty
    ladder: Ladder
    off_ladder_rows: int

    @property
    def n_messages(self) -> int:
        return int(self.ts.size)

    @property
    def n_level_updates(self) -> int:
        return int(self.rows.side.size)

    @property
    def is_snapshot(self) -> np.ndarray:
        return self.rows.is_snapshot

    @property
    def seq_last(self) -> np.ndarray:
        return self.rows.seq_last


def message_starts(rows: dict[str, np.ndarray]) -> np.ndarray:
    """First row of each message: a message is a run of rows with one ``ts``, ``seq_last`` and
    ``is_snapshot``."""
    ts, seq_last, snapshot = rows["ts"], rows["seq_last"], rows["is_snapshot"]
    boundary = np.ones(ts.size, dtype=bool)
    boundary[1:] = (ts[1:] != ts[:-1]) | (seq_last[1:] != seq_last[:-1]) | (snapshot[1:] != snapshot[:-1])
    return np.flatnonzero(boundary)


def group_messages(rows: dict[str, np.ndarray], tick: float, ladder: Ladder | None = None) -> DepthMessages:
    """Group ``depth_diff`` rows (storage order) into messages, prices on ``ladder`` (default: the
    ladder spanning the rows' prices)."""
    real = rows["side"] >= 0
    if ladder is None:
        prices = rows["price"][real & np.isfinite(rows["price"])]
        ladder = Ladder.spanning(prices.min() if prices.size else np.nan,
                                 prices.max() if prices.size else np.nan, tick,
                                 float(np.median(prices)) if prices.size else None)
    first = message_starts(rows)
    level = ladder.index(rows["price"])
    off = real & np.isfinite(rows["price"]) & (level < 0)
    level[~real] = -1
    kernel_rows = DepthRows(
        start=np.append(first, rows["ts"].size).astype(np.int64),
        is_snapshot=rows["is_snapshot"][first].astype(np.bool_),
        seq_first=rows["seq_first"][first].astype(np.int64), seq_last=rows["seq_last"][first].astype(np.int64),
        seq_prev=rows["seq_prev"][first].astype(np.int64), side=rows["side"].astype(np.int8),
        level=level, qty=rows["qty"].astype(np.float64))
    return DepthMessages(ts=rows["ts"][first].astype(np.int64), rows=kernel_rows, ladder=ladder,
                         off_ladder_rows=int(off.sum()))


@dataclass
class BookSamples:
    """The replayed book sampled at chosen points (NaN values where invalid)."""

    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    depth_bid: np.ndarray       # float64[n_bands, n_samples]
    depth_ask: np.ndarray
    valid: np.ndarray
    status: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))  # per message replayed

    @classmethod
    def empty(cls, n_samples: int, n_bands: int) -> "BookSamples":
        return cls(*(np.full(n_samples, np.nan) for _ in range(4)), np.full((n_bands, n_samples), np.nan),
                   np.full((n_bands, n_samples), np.nan), np.zeros(n_samples, dtype=bool))

    def invalidate(self, mask: np.ndarray) -> None:
        """Mark the samples in ``mask`` invalid (NaN values)."""
        for values in (self.bid, self.ask, self.bid_qty, self.ask_qty):
            values[mask] = np.nan
        self.depth_bid[:, mask] = np.nan
        self.depth_ask[:, mask] = np.nan
        self.valid[mask] = False

    def counts(self) -> dict[str, int]:
        """How many messages were skipped, and why."""
        return {"gaps": int((self.status == GAP).sum()), "stale": int((self.status == STALE).sum()),
                "before_snapshot": int((self.status == NO_BOOK).sum())}


class BookReplay:
    """A book being replayed: feed it messages in order, sample it as you go."""

    def __init__(self, ladder: Ladder, bands_bps=(10.0,)):
        self.ladder = ladder
        self.band_fraction = np.asarray(bands_bps, dtype=np.float64) * 1e-4
        self.state: BookState = new_book_state(ladder.n_levels)
        self.last_ts: int | None = None   # exchange time of the last message fed
        self.status: list[np.ndarray] = []

    def feed(self, messages: DepthMessages, sample_msg: np.ndarray, depth_at: np.ndarray | None = None,
             out: BookSamples | None = None, out_at: np.ndarray | None = None) -> BookSamples:
        """Apply ``messages``, sampling the book after message ``sample_msg[k]`` (-1: before the first).

        Samples are written into ``out`` at positions ``out_at`` (default: a new :class:`BookSamples`
        of ``len(sample_msg)``). Depth bands are computed only where ``depth_at`` is true (default:
        everywhere).
        """
        sample_msg = np.asarray(sample_msg, dtype=np.int64)
        count = sample_msg.size
        if depth_at is None:
            depth_at = np.ones(count, dtype=bool)
        result = SampleOutput(
            best_bid=np.full(count, -1, np.int64), best_ask=np.full(count, -1, np.int64),
            bid_qty=np.full(count, np.nan), ask_qty=np.full(count, np.nan),
            depth_bid=np.full((self.band_fraction.size, count), np.nan),
            depth_ask=np.full((self.band_fraction.size, count), np.nan), valid=np.zeros(count, np.bool_),
            status=np.empty(messages.n_messages, np.int8))
        replay_messages(messages.rows, self.state, SampleRequest(sample_msg, depth_at.astype(np.bool_)),
                        self.band_fraction, self.ladder.base, result)
        self.status.append(result.status)
        if messages.n_messages:
            self.last_ts = int(messages.ts[-1])
        samples = BookSamples(self.ladder.price(result.best_bid), self.ladder.price(result.best_ask),
                              result.bid_qty, result.ask_qty, result.depth_bid, result.depth_ask,
                              result.valid, result.status)
        if out is None:
            return samples
        at = np.arange(count) if out_at is None else out_at
        for name in ("bid", "ask", "bid_qty", "ask_qty", "valid"):
            getattr(out, name)[at] = getattr(samples, name)
        out.depth_bid[:, at] = samples.depth_bid
        out.depth_ask[:, at] = samples.depth_ask
        return out


def replay(messages: DepthMessages, sample_msg: np.ndarray, bands_bps=(10.0,)) -> BookSamples:
    """Replay ``messages`` from an empty book and sample it after each message index in ``sample_msg``.

    Parameters
    ----------
    messages : DepthMessages
    sample_msg : int64 array, non-decreasing
        Message after which to sample (-1: before any message: an invalid sample).
    bands_bps : sequence of float
        Depth bands η in basis points (spec §2.1: D_bid(η), D_ask(η)).
    """
    return BookReplay(messages.ladder, bands_bps).feed(messages, sample_msg)


def sample_at_times(messages: DepthMessages, times_ns: np.ndarray, bands_bps=(10.0,),
                    max_age_ns: int | None = MAX_BOOK_AGE_NS) -> BookSamples:
    """The book as of each time (after the last message with ``ts <= t``; prefix-invariant).

    Samples taken more than ``max_age_ns`` after the last message are marked invalid (NaN), so
    that a capture's end or a feed outage never yields stale book values; ``None`` disables this.
    """
    times_ns = np.asarray(times_ns, dtype=np.int64)
    sample_msg = np.searchsorted(messages.ts, times_ns, side="right") - 1
    samples = replay(messages, sample_msg, bands_bps)
    _invalidate_stale(samples, sample_msg, messages.ts, times_ns, max_age_ns)
    return samples


def _invalidate_stale(samples, sample_msg, message_ts, times_ns, max_age_ns, previous_ts=None) -> None:
    if max_age_ns is None or not sample_msg.size:
        return
    if message_ts.size:
        last_ts = np.where(sample_msg >= 0, message_ts[np.maximum(sample_msg, 0)],
                           -2**62 if previous_ts is None else previous_ts)
    else:
        last_ts = np.full(sample_msg.size, -2**62 if previous_ts is None else previous_ts)
    stale = times_ns - last_ts > max_age_ns
    if stale.any():
        samples.invalidate(stale)


def replay_stream(batches: Iterable[pa.Table], ladder: Ladder, times_ns: np.ndarray, bands_bps=(10.0,),
                  depth_at: np.ndarray | None = None,
                  max_age_ns: int | None = MAX_BOOK_AGE_NS) -> BookSamples:
    """The book as of each of the sorted ``times_ns``, replaying row batches in storage order.

    Equivalent to :func:`sample_at_times` on all rows at once, in the memory of one batch. Times
    before the first message, or more than ``max_age_ns`` after the last one before them, are
    invalid. ``depth_at`` (bool per time, default all) says where depth bands are computed.
    """
    times_ns = np.asarray(times_ns, dtype=np.int64)
    book = BookReplay(ladder, bands_bps)
    out = BookSamples.empty(times_ns.size, len(bands_bps))
    depth_at = np.ones(times_ns.size, dtype=bool) if depth_at is None else depth_at
    done = 0                    # times answered so far
    carry: dict[str, np.ndarray] | None = None

    def answer(rows: dict[str, np.ndarray], upto: int) -> None:
        nonlocal done
        messages = group_messages(rows, ladder.tick, ladder)
        picked = slice(done, upto)
        sample_msg = np.searchsorted(messages.ts, times_ns[picked], side="right") - 1
        previous_ts = book.last_ts
        part = book.feed(messages, sample_msg, depth_at[picked])
        _invalidate_stale(part, sample_msg, messages.ts, times_ns[picked], max_age_ns,
                          previous_ts if previous_ts is not None else -2**62)
        _copy_into(out, part, picked)
        done = upto

    for batch in batches:
        rows = _arrays(batch)
        if carry is not None:
            rows = {name: np.concatenate([carry[name], rows[name]]) for name in rows}
        if not rows["ts"].size:
            continue
        last = message_starts(rows)[-1]        # the last message may go on in the next batch
        carry = {name: values[last:] for name, values in rows.items()}
        head = {name: values[:last] for name, values in rows.items()}
        # times before the carried message's time have seen every message they need
        upto = int(np.searchsorted(times_ns, rows["ts"][last], side="left"))
        if head["ts"].size or upto > done:
            answer(head, max(upto, done))
    answer(carry if carry is not None else _arrays(pa.table({n: [] for n in REPLAY_COLUMNS})),
           times_ns.size)
    out.status = np.concatenate(book.status) if book.status else np.empty(0, np.int8)
    return out


def _copy_into(out: BookSamples, part: BookSamples, at: slice) -> None:
    for name in ("bid", "ask", "bid_qty", "ask_qty", "valid"):
        getattr(out, name)[at] = getattr(part, name)
    out.depth_bid[:, at] = part.depth_bid
    out.depth_ask[:, at] = part.depth_ask


_EMPTY_TYPES = {"ts": np.int64, "seq_first": np.int64, "seq_last": np.int64, "seq_prev": np.int64,
                "side": np.int8, "price": np.float64, "qty": np.float64, "is_snapshot": np.bool_}


def _arrays(batch: pa.Table) -> dict[str, np.ndarray]:
    if batch.num_rows == 0:
        return {name: np.empty(0, dtype) for name, dtype in _EMPTY_TYPES.items()}
    return {name: batch.column(name).to_numpy() for name in REPLAY_COLUMNS}


# -- what to replay, from statistics ------------------------------------------------------------------
def _row_group_stats(path: str, column: str):
    """Per row group of a file: (ts min, ts max, column min, column max), None where unknown."""
    meta = pq.ParquetFile(path).metadata
    names = meta.schema.names
    ts_at, column_at = names.index("ts"), names.index(column)
    for index in range(meta.num_row_groups):
        group = meta.row_group(index)
        ts, values = group.column(ts_at).statistics, group.column(column_at).statistics
        known = ts is not None and ts.has_min_max
        yield (index, ts.min if known else None, ts.max if known else None,
               values.min if values is not None and values.has_min_max else None,
               values.max if values is not None and values.has_min_max else None)


def last_snapshot_ts(store, symbol: str, at_or_before: int, search_days: int = SNAPSHOT_SEARCH_DAYS,
                     not_before: int | None = None) -> int | None:
    """Time of the latest ``depth_diff`` snapshot in ``[not_before, at_or_before]`` (None: none found
    within ``search_days`` days).

    Reads only the row groups whose statistics say they hold a snapshot.
    """
    from gpu_lpi.store import date_to_ns, ns_to_date

    day = ns_to_date(at_or_before)
    low = -2**63 if not_before is None else not_before
    for back in range(search_days + 1):
        current = day - timedelta(days=back)
        if date_to_ns(current) + 86_400 * 10**9 <= low:
            break
        best = None
        for path in store.partition_paths("depth_diff", symbol, date_to_ns(current), at_or_before + 1):
            parquet = pq.ParquetFile(path)
            for index, ts_min, ts_max, _, has_snapshot in _row_group_stats(path, "is_snapshot"):
                if has_snapshot is False or (ts_min is not None and (ts_min > at_or_before or ts_max < low)):
                    continue
                rows = parquet.read_row_group(index, columns=["ts", "is_snapshot"])
                ts = rows.column("ts").to_numpy()
                hit = ts[rows.column("is_snapshot").to_numpy(zero_copy_only=False)
                         & (ts <= at_or_before) & (ts >= low)]
                if hit.size:
                    best = int(hit.max()) if best is None else max(best, int(hit.max()))
        if best is not None:
            return best
    return None


def ladder_for_range(store, symbol: str, start_ns: int, end_ns: int, tick: float) -> Ladder:
    """The ladder spanning the prices of ``depth_diff`` rows in ``[start_ns, end_ns)``, from
    row-group statistics; a clipped ladder is centred on the median price of the first row group."""
    low, high, first = np.inf, -np.inf, None
    for path in store.partition_paths("depth_diff", symbol, start_ns, end_ns):
        for index, ts_min, ts_max, price_min, price_max in _row_group_stats(path, "price"):
            if ts_min is not None and (ts_max < start_ns or ts_min >= end_ns):
                continue
            if price_min is not None:
                low, high = min(low, price_min), max(high, price_max)
                first = first or (path, index)
    center = None
    if first is not None and round((high - low) / tick) + 1 > MAX_LADDER_LEVELS:
        prices = pq.ParquetFile(first[0]).read_row_group(first[1], columns=["price"]).column("price")
        center = float(np.nanmedian(prices.to_numpy(zero_copy_only=False)))
    return Ladder.spanning(low, high, tick, center)
