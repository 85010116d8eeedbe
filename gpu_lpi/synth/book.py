"""Dense-ladder L2 book used by the simulator (numba).

The book is ``qty[side, index]`` (lots, int64) on a ladder of :data:`LADDER_SIZE` ticks starting at
``state.base_tick``; ``side`` is :data:`BID` or :data:`ASK`. ``state.best_bid`` / ``state.best_ask``
hold the best indices (:data:`NO_BID` / :data:`NO_ASK` when a side is empty). Levels changed since
the last depth diff are kept in ``dirty`` (keys ``side * LADDER_SIZE + index``) and de-duplicated by
``stamp``, which holds the diff batch number that last marked each level.
"""

from __future__ import annotations

import numpy as np

from kernels.jit import njit

BID, ASK = 0, 1
#: Ladder length in ticks (2**19: +-26 % of the price of BTCUSDT around the start).
LADDER_SIZE = 1 << 19
NO_BID, NO_ASK = -1, LADDER_SIZE


def new_ladder() -> tuple[np.ndarray, np.ndarray]:
    """Return empty ``(qty, stamp)`` arrays of shape ``(2, LADDER_SIZE)``."""
    return np.zeros((2, LADDER_SIZE), dtype=np.int64), np.full((2, LADDER_SIZE), -1, dtype=np.int64)


@njit
def next_bid_at_or_below(qty, index):
    """Highest bid index <= ``index`` holding quantity, or :data:`NO_BID`."""
    while index >= 0 and qty[BID, index] == 0:
        index -= 1
    return index


@njit
def next_ask_at_or_above(qty, index):
    """Lowest ask index >= ``index`` holding quantity, or :data:`NO_ASK`."""
    while index < LADDER_SIZE and qty[ASK, index] == 0:
        index += 1
    return index


@njit
def top_of_book(state, qty):
    """Return ``(bid index, bid qty, ask index, ask qty)``; quantities are 0 for an empty side."""
    bid_qty = qty[BID, state.best_bid] if state.best_bid != NO_BID else 0
    ask_qty = qty[ASK, state.best_ask] if state.best_ask != NO_ASK else 0
    return state.best_bid, bid_qty, state.best_ask, ask_qty


@njit
def set_level(state, qty, side, index, new_qty):
    """Set one level's quantity and keep the best indices right."""
    qty[side, index] = new_qty
    if side == BID:
        if new_qty > 0 and index > state.best_bid:
            state.best_bid = index
        elif new_qty == 0 and index == state.best_bid:
            state.best_bid = next_bid_at_or_below(qty, index - 1)
    else:
        if new_qty > 0 and index < state.best_ask:
            state.best_ask = index
        elif new_qty == 0 and index == state.best_ask:
            state.best_ask = next_ask_at_or_above(qty, index + 1)


@njit
def mark_dirty(state, stamp, dirty, side, index):
    """Record that a level changed in the current diff batch (once per batch)."""
    if stamp[side, index] != state.batch_stamp:
        stamp[side, index] = state.batch_stamp
        dirty[state.batch_count] = side * LADDER_SIZE + index
        state.batch_count += 1


@njit
def depth_between(qty, side, best, stop):
    """Total quantity from ``best`` to ``stop`` inclusive, walking away from the touch."""
    total = 0
    step = -1 if side == BID else 1
    index = best
    while (index >= stop if side == BID else index <= stop) and 0 <= index < LADDER_SIZE:
        total += qty[side, index]
        index += step
    return total


@njit
def copy_side(qty, side, best, max_levels, level_price, level_qty, start):
    """Copy up to ``max_levels`` non-empty levels from ``best`` outwards; return how many."""
    step = -1 if side == BID else 1
    index = best
    count = 0
    while count < max_levels and 0 <= index < LADDER_SIZE:
        if qty[side, index] > 0:
            level_price[start + count] = index
            level_qty[start + count] = qty[side, index]
            count += 1
        index += step
    return count
