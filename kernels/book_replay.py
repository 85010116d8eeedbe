"""L2 order-book replay on a dense price ladder (snapshot + diffs, sequence-checked), resumable.

The replay is sequential by nature (each diff depends on the book before it), so it is a CPU kernel
(numba); work is parallelized across symbols, not inside one book. Its state (:class:`BookState`:
the ladder's quantities, the best levels and the sequence flags) lives in arrays that persist
between calls, so a long replay is fed one batch of messages at a time in bounded memory and gives
the same book as one call on all messages.

Inputs are the rows of the ``depth_diff`` table grouped into messages (:class:`DepthRows`:
``start[m]`` is the first row of message ``m``, rows of a message are contiguous), with prices
already mapped to ladder indices. Sequence rules (Binance futures, FORMATS.md B.5):

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

from typing import NamedTuple

import numpy as np

from kernels.jit import njit

#: Per-message status codes returned by :func:`replay_messages`.
APPLIED, SNAPSHOT, STALE, NO_BOOK, GAP = 0, 1, 2, 3, 4

_NO_LEVEL = -1
#: Slots of :attr:`BookState.flags`.
_HAS_BOOK, _AWAITING_FIRST, _SNAPSHOT_ID, _LAST_U, _PREVIOUS_WAS_SNAPSHOT = range(5)


class DepthRows(NamedTuple):
    """Depth messages: per message ``start`` (int64[n_msg + 1]), ``is_snapshot``, ``seq_first``,
    ``seq_last``, ``seq_prev`` (Binance ``U``, ``u``, ``pu``; ``lastUpdateId`` for snapshots; -1
    where the source has none); per row ``side`` (0 bid, 1 ask, -1 marker), ``level`` (ladder index,
    -1 off the ladder) and ``qty`` (the new absolute quantity; 0 deletes)."""

    start: np.ndarray
    is_snapshot: np.ndarray
    seq_first: np.ndarray
    seq_last: np.ndarray
    seq_prev: np.ndarray
    side: np.ndarray
    level: np.ndarray
    qty: np.ndarray


class BookState(NamedTuple):
    """A book between calls: quantities per ladder level and side, ``best`` = [best bid index, best
    ask index], and the sequence ``flags`` (has a book, awaiting the first diff, snapshot id, last
    ``u``, previous message was a snapshot)."""

    bid_qty: np.ndarray
    ask_qty: np.ndarray
    best: np.ndarray
    flags: np.ndarray


class SampleRequest(NamedTuple):
    """Where to sample: after message ``sample_msg[k]`` of this call (non-decreasing; -1: before its
    first message, i.e. the book as the previous call left it), with depth bands where ``depth_at``."""

    sample_msg: np.ndarray
    depth_at: np.ndarray


class SampleOutput(NamedTuple):
    """Per sample: ``best_bid``/``best_ask`` (ladder index, -1 where the side is empty or the book
    invalid), ``bid_qty``/``ask_qty`` at the best levels, ``depth_bid``/``depth_ask`` (float64[n_bands,
    n_samples], NaN where invalid or not asked), ``valid``; per message: ``status``."""

    best_bid: np.ndarray
    best_ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    depth_bid: np.ndarray
    depth_ask: np.ndarray
    valid: np.ndarray
    status: np.ndarray


def new_book_state(n_levels: int) -> BookState:
    """An empty book on a ladder of ``n_levels`` levels (no snapshot loaded yet)."""
    flags = np.zeros(5, dtype=np.int64)
    flags[_SNAPSHOT_ID] = -1
    flags[_LAST_U] = -1
    return BookState(np.zeros(n_levels), np.zeros(n_levels), np.array([_NO_LEVEL, _NO_LEVEL], np.int64),
                     flags)


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
def _apply_rows(rows, m, book):
    """Apply the level updates of message ``m``, keeping the best levels up to date."""
    best = book.best
    for row in range(rows.start[m], rows.start[m + 1]):
        index = rows.level[row]
        if rows.side[row] < 0 or index < 0:
            continue
        quantity = rows.qty[row]
        if rows.side[row] == 0:
            book.bid_qty[index] = quantity
            if quantity > 0.0:
                if index > best[0]:
                    best[0] = index
            elif index == best[0]:
                best[0] = _best_bid_from(book.bid_qty, index - 1)
        else:
            book.ask_qty[index] = quantity
            if quantity > 0.0:
                if best[1] == _NO_LEVEL or index < best[1]:
                    best[1] = index
            elif index == best[1]:
                best[1] = _best_ask_from(book.ask_qty, index + 1)


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
def _apply_message(rows, m, book):
    """Apply message ``m`` under the sequence rules; return its status."""
    flags = book.flags
    first, last, prev = rows.seq_first[m], rows.seq_last[m], rows.seq_prev[m]
    status = APPLIED
    if rows.is_snapshot[m]:
        if not (flags[_PREVIOUS_WAS_SNAPSHOT] == 1 and last == flags[_SNAPSHOT_ID]):
            book.bid_qty[:] = 0.0
            book.ask_qty[:] = 0.0
            book.best[0] = _NO_LEVEL
            book.best[1] = _NO_LEVEL
        _apply_rows(rows, m, book)
        flags[_HAS_BOOK] = 1
        flags[_AWAITING_FIRST] = 1 if last >= 0 else 0
        flags[_SNAPSHOT_ID] = last
        status = SNAPSHOT
    elif flags[_HAS_BOOK] == 0:
        status = NO_BOOK
    elif last < 0:
        _apply_rows(rows, m, book)
    elif flags[_AWAITING_FIRST] == 1:
        snapshot_id = flags[_SNAPSHOT_ID]
        if last < snapshot_id:
            status = STALE
        elif (first <= snapshot_id and snapshot_id <= last) or prev == snapshot_id:
            _apply_rows(rows, m, book)
            flags[_AWAITING_FIRST] = 0
            flags[_LAST_U] = last
        else:
            flags[_HAS_BOOK] = 0
            status = GAP
    elif prev == flags[_LAST_U]:
        _apply_rows(rows, m, book)
        flags[_LAST_U] = last
    else:
        flags[_HAS_BOOK] = 0
        status = GAP
    flags[_PREVIOUS_WAS_SNAPSHOT] = 1 if rows.is_snapshot[m] else 0
    return status


@njit
def _sample(book, sample, depth, band_fraction, ladder_base, out):
    """Write the book's top (and depth bands if ``depth``) into sample ``sample`` of ``out``."""
    flags, best = book.flags, book.best
    if flags[_HAS_BOOK] == 0 or flags[_AWAITING_FIRST] == 1:
        return
    out.valid[sample] = True
    out.best_bid[sample] = best[0]
    out.best_ask[sample] = best[1]
    if best[0] != _NO_LEVEL:
        out.bid_qty[sample] = book.bid_qty[best[0]]
        if depth:
            for band in range(band_fraction.size):
                low = _band_edge(ladder_base + best[0], 1.0 - band_fraction[band], True)
                out.depth_bid[band, sample] = _band_sum(book.bid_qty, low - ladder_base, best[0])
    if best[1] != _NO_LEVEL:
        out.ask_qty[sample] = book.ask_qty[best[1]]
        if depth:
            for band in range(band_fraction.size):
                high = _band_edge(ladder_base + best[1], 1.0 + band_fraction[band], False)
                out.depth_ask[band, sample] = _band_sum(book.ask_qty, best[1], high - ladder_base)


@njit
def replay_messages(rows, book, request, band_fraction, ladder_base, out):
    """Apply every message of ``rows`` to ``book`` in order, sampling it as ``request`` asks.

    Parameters
    ----------
    rows : DepthRows
    book : BookState
        Updated in place (pass the state the previous call left to continue a replay).
    request : SampleRequest
    band_fraction : float64[n_bands]
        Depth bands as fractions of price (10 bps = 0.001): the bid band holds the levels priced at
        or above ``best_bid * (1 - band)``, the ask band those at or below ``best_ask * (1 + band)``.
    ladder_base : int
        Price (in ticks) of ladder index 0: index ``i`` is the price ``(ladder_base + i) * tick``.
    out : SampleOutput
        Written in place; its sample fields must hold -1 / NaN / False on entry.
    """
    sample_msg = request.sample_msg
    n_samples = sample_msg.size
    sample = 0
    while sample < n_samples and sample_msg[sample] < 0:
        _sample(book, sample, request.depth_at[sample], band_fraction, ladder_base, out)
        sample += 1
    for m in range(rows.start.size - 1):
        out.status[m] = _apply_message(rows, m, book)
        while sample < n_samples and sample_msg[sample] == m:
            _sample(book, sample, request.depth_at[sample], band_fraction, ladder_base, out)
            sample += 1
