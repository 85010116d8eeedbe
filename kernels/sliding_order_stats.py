"""Exact sliding-window median and MAD on the CPU, O(1) amortised work per step.

The series is replaced by the global ranks of its valid values (see
:func:`kernels.rolling_order_stats.rank_valid_values`). A window is a set of ranks,
held as a bitset over all ranks with a one-bit-per-word summary level, so that the
next or previous member of the window is found with a couple of bit scans.

Three cursors slide with the window:

* the lower median, the rank at order position ``k = (count - 1) // 2``, with the
  number of members below it;
* a block ``[block_low, block_high]`` of consecutive members holding the ``k + 1``
  smallest absolute deviations from the median. Deviations are unimodal along the
  rank order (they fall towards the median and rise after it), so these deviations
  are contiguous, the block always touches the median, and it is repaired after each
  step by sliding it towards smaller deviations. The ``k``-th smallest deviation is
  the larger deviation at the block's ends; for an even count the next one is the
  smaller deviation just outside it.

Each step moves every cursor by a few members on typical data, so the cost per step
does not grow with the window. Deviations are computed as ``abs(value - median)``,
the same floating-point operations as ``numpy.median(numpy.abs(w - numpy.median(w)))``,
so results are bit-identical to that reference.

The output range is cut into chunks processed in parallel; each chunk starts from an
empty window ``window - 1`` ticks before its first output, so chunked results equal
unchunked ones exactly.
"""

import numba
import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

from kernels.jit import njit

_ALL_BITS = np.uint64(0xFFFFFFFFFFFFFFFF)
_ONE = np.uint64(1)

# Slots of the cursor state vector.
_COUNT = 0  # valid values in the window
_MEDIAN = 1  # rank of the lower median
_BELOW = 2  # members with a rank below the lower median
_BLOCK_LOW = 3  # lowest rank of the smallest-deviation block
_BLOCK_HIGH = 4  # highest rank of the smallest-deviation block
_IN_BLOCK = 5  # members in [block_low, block_high]
_STATE_SIZE = 6


@njit
def _lowest_bit(word):
    return np.int64(trailing_zeros(word))


@njit
def _highest_bit(word):
    return np.int64(63 - leading_zeros(word))


@njit
def _add_member(words, summary, rank):
    word = rank >> 6
    words[word] |= _ONE << np.uint64(rank & 63)
    summary[word >> 6] |= _ONE << np.uint64(word & 63)


@njit
def _remove_member(words, summary, rank):
    word = rank >> 6
    words[word] &= ~(_ONE << np.uint64(rank & 63))
    if words[word] == 0:
        summary[word >> 6] &= ~(_ONE << np.uint64(word & 63))


@njit
def _next_member(words, summary, rank):
    """Smallest member rank above ``rank``, or -1."""
    first = rank + 1
    word = first >> 6
    if word >= words.size:
        return np.int64(-1)
    bits = words[word] & (_ALL_BITS << np.uint64(first & 63))
    if bits != 0:
        return (word << 6) + _lowest_bit(bits)
    next_word = word + 1
    group = next_word >> 6
    if group >= summary.size:
        return np.int64(-1)
    group_bits = summary[group] & (_ALL_BITS << np.uint64(next_word & 63))
    while group_bits == 0:
        group += 1
        if group >= summary.size:
            return np.int64(-1)
        group_bits = summary[group]
    word = (group << 6) + _lowest_bit(group_bits)
    return (word << 6) + _lowest_bit(words[word])


@njit
def _previous_member(words, summary, rank):
    """Largest member rank below ``rank``, or -1."""
    if rank <= 0:
        return np.int64(-1)
    last = rank - 1
    word = last >> 6
    bits = words[word] & (_ALL_BITS >> np.uint64(63 - (last & 63)))
    if bits != 0:
        return (word << 6) + _highest_bit(bits)
    if word == 0:
        return np.int64(-1)
    last_word = word - 1
    group = last_word >> 6
    group_bits = summary[group] & (_ALL_BITS >> np.uint64(63 - (last_word & 63)))
    while group_bits == 0:
        group -= 1
        if group < 0:
            return np.int64(-1)
        group_bits = summary[group]
    word = (group << 6) + _highest_bit(group_bits)
    return (word << 6) + _highest_bit(words[word])


@njit
def _insert(state, words, summary, rank):
    _add_member(words, summary, rank)
    state[_COUNT] += 1
    if state[_COUNT] == 1:
        state[_MEDIAN] = rank
        state[_BELOW] = 0
        state[_BLOCK_LOW] = rank
        state[_BLOCK_HIGH] = rank
        state[_IN_BLOCK] = 1
        return
    if rank < state[_MEDIAN]:
        state[_BELOW] += 1
    if state[_BLOCK_LOW] <= rank <= state[_BLOCK_HIGH]:
        state[_IN_BLOCK] += 1


@njit
def _delete(state, words, summary, rank):
    _remove_member(words, summary, rank)
    state[_COUNT] -= 1
    if state[_COUNT] == 0:
        return
    if rank < state[_MEDIAN]:
        state[_BELOW] -= 1
    elif rank == state[_MEDIAN]:
        successor = _next_member(words, summary, rank)
        if successor >= 0:
            state[_MEDIAN] = successor
        else:
            state[_MEDIAN] = _previous_member(words, summary, rank)
            state[_BELOW] -= 1
    if state[_BLOCK_LOW] <= rank <= state[_BLOCK_HIGH]:
        state[_IN_BLOCK] -= 1
        if state[_IN_BLOCK] == 0:
            state[_BLOCK_LOW] = state[_MEDIAN]
            state[_BLOCK_HIGH] = state[_MEDIAN]
            state[_IN_BLOCK] = 1
        elif rank == state[_BLOCK_LOW]:
            state[_BLOCK_LOW] = _next_member(words, summary, rank)
        elif rank == state[_BLOCK_HIGH]:
            state[_BLOCK_HIGH] = _previous_member(words, summary, rank)


@njit
def _settle_median(state, words, summary):
    """Move the median cursor to order position ``(count - 1) // 2``."""
    target = (state[_COUNT] - 1) // 2
    while state[_BELOW] > target:
        state[_MEDIAN] = _previous_member(words, summary, state[_MEDIAN])
        state[_BELOW] -= 1
    while state[_BELOW] < target:
        state[_MEDIAN] = _next_member(words, summary, state[_MEDIAN])
        state[_BELOW] += 1


@njit
def _median_value(state, words, summary, sorted_values):
    lower = sorted_values[state[_MEDIAN]]
    if state[_COUNT] % 2 == 1:
        return lower
    upper = sorted_values[_next_member(words, summary, state[_MEDIAN])]
    return (lower + upper) / 2.0


@njit
def _deviation(sorted_values, rank, center):
    return abs(sorted_values[rank] - center)


@njit
def _touch_median(state, words, summary):
    """Grow the block until it holds the lower median or the member after it."""
    median = state[_MEDIAN]
    after_median = _next_member(words, summary, median)
    if after_median < 0:
        after_median = median
    while state[_BLOCK_HIGH] < median:
        state[_BLOCK_HIGH] = _next_member(words, summary, state[_BLOCK_HIGH])
        state[_IN_BLOCK] += 1
    while state[_BLOCK_LOW] > after_median:
        state[_BLOCK_LOW] = _previous_member(words, summary, state[_BLOCK_LOW])
        state[_IN_BLOCK] += 1
    return after_median


@njit
def _resize_block(state, words, summary, sorted_values, center, after_median, size):
    """Grow or shrink the block to ``size`` members, keeping the smallest deviations."""
    median = state[_MEDIAN]
    while state[_IN_BLOCK] > size:
        low, high = state[_BLOCK_LOW], state[_BLOCK_HIGH]
        low_deviation = _deviation(sorted_values, low, center)
        high_deviation = _deviation(sorted_values, high, center)
        low_is_median = low == median or low == after_median
        if low_deviation > high_deviation or (
            low_deviation == high_deviation and not low_is_median
        ):
            state[_BLOCK_LOW] = _next_member(words, summary, low)
        else:
            state[_BLOCK_HIGH] = _previous_member(words, summary, high)
        state[_IN_BLOCK] -= 1
    while state[_IN_BLOCK] < size:
        before = _previous_member(words, summary, state[_BLOCK_LOW])
        after = _next_member(words, summary, state[_BLOCK_HIGH])
        if after < 0 or (
            before >= 0
            and _deviation(sorted_values, before, center)
            <= _deviation(sorted_values, after, center)
        ):
            state[_BLOCK_LOW] = before
        else:
            state[_BLOCK_HIGH] = after
        state[_IN_BLOCK] += 1


@njit
def _slide_block(state, words, summary, sorted_values, center):
    """Slide the block while that swaps an end for a strictly smaller deviation."""
    while True:
        low, high = state[_BLOCK_LOW], state[_BLOCK_HIGH]
        after = _next_member(words, summary, high)
        if after >= 0 and _deviation(sorted_values, after, center) < _deviation(
            sorted_values, low, center
        ):
            state[_BLOCK_LOW] = _next_member(words, summary, low)
            state[_BLOCK_HIGH] = after
            continue
        before = _previous_member(words, summary, low)
        if before >= 0 and _deviation(sorted_values, before, center) < _deviation(
            sorted_values, high, center
        ):
            state[_BLOCK_HIGH] = _previous_member(words, summary, high)
            state[_BLOCK_LOW] = before
            continue
        return


@njit
def _median_absolute_deviation(state, words, summary, sorted_values, center):
    """Settle the block on the current median and read the MAD off its ends."""
    after_median = _touch_median(state, words, summary)
    size = (state[_COUNT] - 1) // 2 + 1
    _resize_block(state, words, summary, sorted_values, center, after_median, size)
    _slide_block(state, words, summary, sorted_values, center)
    low, high = state[_BLOCK_LOW], state[_BLOCK_HIGH]
    kth = max(
        _deviation(sorted_values, low, center), _deviation(sorted_values, high, center)
    )
    if state[_COUNT] % 2 == 1:
        return kth
    before = _previous_member(words, summary, low)
    after = _next_member(words, summary, high)
    if before < 0:
        following = _deviation(sorted_values, after, center)
    elif after < 0:
        following = _deviation(sorted_values, before, center)
    else:
        following = min(
            _deviation(sorted_values, before, center),
            _deviation(sorted_values, after, center),
        )
    return (kth + following) / 2.0


@njit
def _median_mad_chunk(
    ranks, sorted_values, window, min_periods, first_output, end, median_out, mad_out
):
    """Fill ``median_out[first_output:end]`` and ``mad_out[first_output:end]``."""
    word_count = max(1, (sorted_values.size + 63) >> 6)
    words = np.zeros(word_count, dtype=np.uint64)
    summary = np.zeros((word_count + 63) >> 6, dtype=np.uint64)
    state = np.zeros(_STATE_SIZE, dtype=np.int64)
    start = max(0, first_output - window + 1)
    for index in range(start, end):
        if ranks[index] >= 0:
            _insert(state, words, summary, ranks[index])
        leaving = index - window
        if leaving >= start and ranks[leaving] >= 0:
            _delete(state, words, summary, ranks[leaving])
        if state[_COUNT] == 0:
            if index >= first_output:
                median_out[index] = np.nan
                mad_out[index] = np.nan
            continue
        _settle_median(state, words, summary)
        center = _median_value(state, words, summary, sorted_values)
        mad = _median_absolute_deviation(state, words, summary, sorted_values, center)
        if index >= first_output:
            enough = state[_COUNT] >= min_periods
            median_out[index] = center if enough else np.nan
            mad_out[index] = mad if enough else np.nan


@njit(parallel=True)
def sliding_median_mad(ranks, sorted_values, window, min_periods, chunk_count):
    """Trailing-window median and MAD from the ranks of a series' valid values.

    Parameters
    ----------
    ranks : numpy.ndarray of int64, shape (n,)
        Global rank of each value among the valid values, -1 where the value is NaN.
    sorted_values : numpy.ndarray of float64, shape (m,)
        The valid values in ascending order; ``sorted_values[ranks[i]] == x[i]``.
    window : int
        Window length in ticks (NaN ticks included), >= 1.
    min_periods : int
        Fewest valid values for an output, >= 1.
    chunk_count : int
        Number of independent chunks the output range is split into (parallelism).

    Returns
    -------
    median, mad : numpy.ndarray of float64, shape (n,)
    """
    n = ranks.size
    median_out = np.empty(n, dtype=np.float64)
    mad_out = np.empty(n, dtype=np.float64)
    chunk_length = (n + chunk_count - 1) // chunk_count
    for chunk in numba.prange(chunk_count):
        first = chunk * chunk_length
        end = min(n, first + chunk_length)
        if first < end:
            _median_mad_chunk(
                ranks, sorted_values, window, min_periods, first, end, median_out, mad_out
            )
    return median_out, mad_out
