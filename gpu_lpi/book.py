"""Book replay from the tick store's ``depth_diff`` rows (wraps :mod:`kernels.book_replay`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.book_replay import GAP, NO_BOOK, STALE, replay_book

#: Ladders larger than this many levels are clipped to a window around the median price; levels
#: outside it (far-away quotes such as Binance's 1000.00 placeholder bids) are counted and ignored.
MAX_LADDER_LEVELS = 1 << 25
#: Half-width of that window as a fraction of the median price.
CLIPPED_WINDOW_FRACTION = 0.5


@dataclass
class DepthMessages:
    """``depth_diff`` rows grouped into messages, with prices on a ladder of ``tick``-spaced levels."""

    ts: np.ndarray              # int64[n_msg], exchange time of each message
    start: np.ndarray           # int64[n_msg + 1], first row of each message
    is_snapshot: np.ndarray     # bool[n_msg]
    seq_first: np.ndarray
    seq_last: np.ndarray
    seq_prev: np.ndarray
    side: np.ndarray            # int8[n_rows]
    level: np.ndarray           # int64[n_rows], ladder index (-1 off the ladder)
    qty: np.ndarray             # float64[n_rows]
    ladder_base: int            # price in ticks of ladder index 0
    n_levels: int
    tick: float
    off_ladder_rows: int

    @property
    def n_level_updates(self) -> int:
        return int(self.side.size)

    def price(self, index: np.ndarray) -> np.ndarray:
        """Prices of ladder indices (NaN for -1), bit-identical to the decimal prices of the source.

        For decimal ticks (0.1, 0.01, ...) the price is computed as ``ticks / (1 / tick)``, which is
        the correctly rounded double of the decimal price; ``ticks * tick`` would be off by an ulp.
        """
        ticks = (self.ladder_base + index).astype(np.float64)
        per_unit = round(1.0 / self.tick)
        price = ticks / per_unit if abs(per_unit * self.tick - 1.0) < 1e-12 else ticks * self.tick
        return np.where(index >= 0, price, np.nan)


def group_messages(rows: dict[str, np.ndarray], tick: float) -> DepthMessages:
    """Group ``depth_diff`` rows (storage order) into messages and place prices on a ladder.

    A message is a run of rows with the same ``ts``, ``seq_last`` and ``is_snapshot``.
    """
    ts, seq_last, snapshot = rows["ts"], rows["seq_last"], rows["is_snapshot"]
    n = ts.size
    boundary = np.ones(n, dtype=bool)
    if n:
        boundary[1:] = (ts[1:] != ts[:-1]) | (seq_last[1:] != seq_last[:-1]) | (snapshot[1:] != snapshot[:-1])
    first_rows = np.flatnonzero(boundary)
    price_ticks = np.rint(rows["price"] / tick)
    real = np.isfinite(price_ticks) & (rows["side"] >= 0)
    base, n_levels = _ladder_bounds(price_ticks[real])
    level = np.full(n, -1, dtype=np.int64)
    level[real] = price_ticks[real].astype(np.int64) - base
    off = real & ((level < 0) | (level >= n_levels))
    level[off] = -1
    return DepthMessages(
        ts=ts[first_rows], start=np.append(first_rows, n).astype(np.int64),
        is_snapshot=snapshot[first_rows].astype(bool), seq_first=rows["seq_first"][first_rows],
        seq_last=seq_last[first_rows], seq_prev=rows["seq_prev"][first_rows],
        side=rows["side"].astype(np.int8), level=level, qty=rows["qty"].astype(np.float64),
        ladder_base=base, n_levels=n_levels, tick=tick, off_ladder_rows=int(off.sum()))


def _ladder_bounds(price_ticks: np.ndarray) -> tuple[int, int]:
    if price_ticks.size == 0:
        return 0, 1
    low, high = int(price_ticks.min()), int(price_ticks.max())
    if high - low + 1 <= MAX_LADDER_LEVELS:
        return low, high - low + 1
    middle = float(np.median(price_ticks))
    low = max(low, int(middle * (1 - CLIPPED_WINDOW_FRACTION)))
    high = min(high, int(middle * (1 + CLIPPED_WINDOW_FRACTION)))
    return low, high - low + 1


@dataclass
class BookSamples:
    """The replayed book sampled at chosen points."""

    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    depth_bid: np.ndarray       # float64[n_bands, n_samples]
    depth_ask: np.ndarray
    valid: np.ndarray
    status: np.ndarray          # int8[n_msg]

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


def replay(messages: DepthMessages, sample_msg: np.ndarray, bands_bps=(10.0,)) -> BookSamples:
    """Replay ``messages`` and sample the book after each message index in ``sample_msg``.

    Parameters
    ----------
    messages : DepthMessages
    sample_msg : int64 array, non-decreasing
        Message after which to sample (-1: before any message: an invalid sample).
    bands_bps : sequence of float
        Depth bands η in basis points (spec §2.1: D_bid(η), D_ask(η)).
    """
    band_fraction = np.asarray(bands_bps, dtype=np.float64) * 1e-4
    status, best_bid, best_ask, bid_qty, ask_qty, depth_bid, depth_ask, valid = replay_book(
        messages.start, messages.is_snapshot, messages.seq_first, messages.seq_last, messages.seq_prev,
        messages.side, messages.level, messages.qty, messages.n_levels, messages.ladder_base,
        band_fraction, np.asarray(sample_msg, dtype=np.int64))
    return BookSamples(bid=messages.price(best_bid), ask=messages.price(best_ask), bid_qty=bid_qty,
                       ask_qty=ask_qty, depth_bid=depth_bid, depth_ask=depth_ask, valid=valid,
                       status=status)


#: Default longest time since the last depth message for which a sampled book still counts as
#: valid. Binance diff streams update many times a second; a minute of silence means the capture
#: stopped (or the collector was disconnected), and the last book would be stale.
MAX_BOOK_AGE_NS = 60 * 10**9


def sample_at_times(messages: DepthMessages, times_ns: np.ndarray, bands_bps=(10.0,),
                    max_age_ns: int | None = MAX_BOOK_AGE_NS) -> BookSamples:
    """The book as of each time (after the last message with ``ts <= t``; prefix-invariant).

    Samples taken more than ``max_age_ns`` after the last message are marked invalid (NaN), so
    that a capture's end or a feed outage never yields stale book values; ``None`` disables this.
    """
    times_ns = np.asarray(times_ns, dtype=np.int64)
    sample_msg = np.searchsorted(messages.ts, times_ns, side="right") - 1
    samples = replay(messages, sample_msg, bands_bps)
    if max_age_ns is not None and sample_msg.size:
        last_ts = messages.ts[np.maximum(sample_msg, 0)]
        stale = (sample_msg >= 0) & (times_ns - last_ts > max_age_ns)
        if stale.any():
            samples.invalidate(stale)
    return samples
