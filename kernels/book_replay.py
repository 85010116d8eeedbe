"""L2 order-book replay on a dense price ladder (snapshot + diffs, sequence-checked).

The replay is sequential by nature (each diff depends on the book before it), so it is a CPU kernel
(numba); work is parallelized across symbols, not inside one book.

Inputs are the rows of the ``depth_diff`` table grouped into messages (``msg_start[m]`` is the first
row of message ``m``, rows of a message are contiguous), with prices already mapped to ladder indices.
Sequence rules (Binance futures, FORMATS.md B.5):

* a snapshot message (``is_snapshot``) clears the book and loads its levels; the book then waits for
  the first diff with ``U <= lastUpdateId <= u`` (or ``pu == lastUpdateId``); diffs with
  ``u < lastUpdateId`` are stale and skipped;
* after that each diff must have ``pu`` equal to the previous diff's ``u``; otherwise the book is
  invalid (a gap) until the next snapshot;
* messages without ids (``seq_last == -1``, Tardis) are applied in order with no check; a snapshot
  block after diffs resets the book.

A quantity of 0 deletes a level; side ``-1`` rows are markers of empty messages and change nothing.
"""

from __future__ import annotations

import numpy as np

from kernels.jit import njit

#: Per-message status codes returned by :func:`replay_book`.
APPLIED, SNAPSHOT, STALE, NO_BOOK, GAP = 0, 1, 2, 3, 4

_NO_LEVEL = -1


@njit
def _best_bid_from(bid_qty, start):
    index = start
    while index >= 0 and bid_qty[index] <= 0.0:
        index -= 1
    return index


@njit
def _best_ask_from(ask_qty, start):
    index = start
    size = ask_qty.size
    while index < size and ask_qty[index] <= 0.0:
        index += 1
    return index if index < size else _NO_LEVEL


@njit
def _apply_rows(row_start, row_end, side, level, qty, bid_qty, ask_qty, best):
    """Apply level updates; ``best`` = [best bid index, best ask index] is kept up to date."""
    for row in range(row_start, row_end):
        index = level[row]
        if side[row] < 0 or index < 0:
            continue
        if side[row] == 0:
            bid_qty[index] = qty[row]
            if qty[row] > 0.0:
                if index > best[0]:
                    best[0] = index
            elif index == best[0]:
                best[0] = _best_bid_from(bid_qty, index - 1)
        else:
            ask_qty[index] = qty[row]
            if qty[row] > 0.0:
                if best[1] == _NO_LEVEL or index < best[1]:
                    best[1] = index
            elif index == best[1]:
                best[1] = _best_ask_from(ask_qty, index + 1)


@njit
def _band_edge(price_ticks, factor, round_up):
    """``ceil`` (or ``floor``) of ``price_ticks * factor``, tolerant of float rounding."""
    edge = price_ticks * factor
    tolerance = 1e-9 * abs(edge)
    if round_up:
        return np.int64(np.ceil(edge - tolerance))
    return np.int64(np.floor(edge + tolerance))


@njit
def _band_sum(quantities, low, high):
    total = 0.0
    for index in range(max(low, 0), min(high, quantities.size - 1) + 1):
        total += quantities[index]
    return total


@njit
def replay_book(msg_start, msg_is_snapshot, msg_seq_first, msg_seq_last, msg_seq_prev,
                side, level, qty, n_levels, ladder_base, band_fraction, sample_msg):
    """Replay a book and sample it after chosen messages.

    Parameters
    ----------
    msg_start : int64[n_msg + 1]
        First row of each message, plus the total row count.
    msg_is_snapshot : bool[n_msg]
    msg_seq_first, msg_seq_last, msg_seq_prev : int64[n_msg]
        Binance ``U``, ``u``, ``pu`` (``lastUpdateId`` for snapshots); -1 where the source has none.
    side, level : int8[n_rows], int64[n_rows]
        Row side (0 bid, 1 ask, -1 marker) and ladder index (-1 = off the ladder, ignored).
    qty : float64[n_rows]
        New absolute quantity of the level (0 deletes).
    n_levels : int
        Ladder size.
    ladder_base : int
        Price (in ticks) of ladder index 0: index ``i`` is the price ``(ladder_base + i) * tick``.
    band_fraction : float64[n_bands]
        Depth bands as fractions of price (10 bps = 0.001): the bid band holds the levels priced at
        or above ``best_bid * (1 - band)``, the ask band those at or below ``best_ask * (1 + band)``.
    sample_msg : int64[n_samples]
        Non-decreasing message indices; the book is sampled after applying that message (-1: before
        any message).

    Returns
    -------
    status : int8[n_msg]
        :data:`APPLIED`, :data:`SNAPSHOT`, :data:`STALE`, :data:`NO_BOOK` or :data:`GAP` per message.
    best_bid, best_ask : int64[n_samples]
        Ladder index of the best levels (-1 where the side is empty or the book invalid).
    bid_top_qty, ask_top_qty : float64[n_samples]
    depth_bid, depth_ask : float64[n_bands, n_samples]
        Quantity within each band (NaN where the book is invalid).
    valid : bool[n_samples]
    """
    n_msg = msg_start.size - 1
    n_samples = sample_msg.size
    n_bands = band_fraction.size
    bid_qty = np.zeros(n_levels)
    ask_qty = np.zeros(n_levels)
    best = np.array([_NO_LEVEL, _NO_LEVEL], dtype=np.int64)
    status = np.empty(n_msg, dtype=np.int8)
    best_bid = np.full(n_samples, _NO_LEVEL, dtype=np.int64)
    best_ask = np.full(n_samples, _NO_LEVEL, dtype=np.int64)
    bid_top_qty = np.full(n_samples, np.nan)
    ask_top_qty = np.full(n_samples, np.nan)
    depth_bid = np.full((n_bands, n_samples), np.nan)
    depth_ask = np.full((n_bands, n_samples), np.nan)
    valid = np.zeros(n_samples, dtype=np.bool_)

    has_book = False        # a snapshot was loaded and no gap since
    awaiting_first = False  # snapshot loaded, first diff not yet applied
    snapshot_id = -1
    last_u = -1
    previous_was_snapshot = False
    sample = 0
    while sample < n_samples and sample_msg[sample] < 0:
        sample += 1
    for m in range(n_msg):
        first, last, prev = msg_seq_first[m], msg_seq_last[m], msg_seq_prev[m]
        if msg_is_snapshot[m]:
            if not (previous_was_snapshot and last == snapshot_id):
                bid_qty[:] = 0.0
                ask_qty[:] = 0.0
                best[0] = _NO_LEVEL
                best[1] = _NO_LEVEL
            _apply_rows(msg_start[m], msg_start[m + 1], side, level, qty, bid_qty, ask_qty, best)
            has_book = True
            awaiting_first = last >= 0
            snapshot_id = last
            status[m] = SNAPSHOT
        elif not has_book:
            status[m] = NO_BOOK
        elif last < 0:
            _apply_rows(msg_start[m], msg_start[m + 1], side, level, qty, bid_qty, ask_qty, best)
            status[m] = APPLIED
        elif awaiting_first:
            if last < snapshot_id:
                status[m] = STALE
            elif (first <= snapshot_id and snapshot_id <= last) or prev == snapshot_id:
                _apply_rows(msg_start[m], msg_start[m + 1], side, level, qty, bid_qty, ask_qty, best)
                awaiting_first = False
                last_u = last
                status[m] = APPLIED
            else:
                has_book = False
                status[m] = GAP
        elif prev == last_u:
            _apply_rows(msg_start[m], msg_start[m + 1], side, level, qty, bid_qty, ask_qty, best)
            last_u = last
            status[m] = APPLIED
        else:
            has_book = False
            status[m] = GAP
        previous_was_snapshot = msg_is_snapshot[m]

        while sample < n_samples and sample_msg[sample] == m:
            if has_book and not awaiting_first:
                valid[sample] = True
                best_bid[sample] = best[0]
                best_ask[sample] = best[1]
                if best[0] != _NO_LEVEL:
                    bid_top_qty[sample] = bid_qty[best[0]]
                    for band in range(n_bands):
                        low = _band_edge(ladder_base + best[0], 1.0 - band_fraction[band], True)
                        depth_bid[band, sample] = _band_sum(bid_qty, low - ladder_base, best[0])
                if best[1] != _NO_LEVEL:
                    ask_top_qty[sample] = ask_qty[best[1]]
                    for band in range(n_bands):
                        high = _band_edge(ladder_base + best[1], 1.0 + band_fraction[band], False)
                        depth_ask[band, sample] = _band_sum(ask_qty, best[1], high - ladder_base)
            sample += 1
    return status, best_bid, best_ask, bid_top_qty, ask_top_qty, depth_bid, depth_ask, valid
