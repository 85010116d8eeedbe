"""Exact sliding-window median and MAD (or non-zero MAD) on the CPU, O(1) amortised work per step.

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

The *non-zero MAD* (the robust scale of :func:`gpu_lpi.robust.robust_z`: the median of the
deviations of the members that are neither 0 nor the median) keeps the same kind of block over
the *kept* members. The excluded members are two contiguous rank ranges, the ranks valued 0 (fixed)
and those valued at the median (a binary search per step), so the next kept member is a bit scan
that jumps over them; the kept deviations are again unimodal along the rank order, so the block
of the smallest ones holds the kept member just below the median or the one just above it. A
Fenwick tree over the ranks counts the members of a rank range in O(log m): the excluded members,
and the block's members when its ends have moved (an excluded range lies wholly inside the block
or outside it, its ends being kept).

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
from kernels.wavelet_matrix import first_rank_at_least

_ALL_BITS = np.uint64(0xFFFFFFFFFFFFFFFF)
_ONE = np.uint64(1)

# Slots of the cursor state vector.
_COUNT = 0  # valid values in the window
_MEDIAN = 1  # rank of the lower median
_BELOW = 2  # members with a rank below the lower median
_BLOCK_LOW = 3  # lowest rank of the smallest-deviation block (of kept members: non-zero MAD)
_BLOCK_HIGH = 4  # highest rank of the smallest-deviation block
_IN_BLOCK = 5  # members in [block_low, block_high] (the plain MAD)
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
def _insert(state, words, summary, rank, track_block):
    """Add a member; ``track_block``: keep the MAD block's member count (the plain MAD)."""
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
    if track_block and state[_BLOCK_LOW] <= rank <= state[_BLOCK_HIGH]:
        state[_IN_BLOCK] += 1


@njit
def _delete(state, words, summary, rank, track_block):
    """Remove a member; ``track_block`` as in :func:`_insert`."""
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
    if track_block and state[_BLOCK_LOW] <= rank <= state[_BLOCK_HIGH]:
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


# -- the non-zero MAD: the MAD of the members that are neither 0 nor the median -------------------
@njit
def _tree_add(tree, rank, delta):
    """Add ``delta`` to the member count of ``rank`` in the Fenwick tree ``tree``."""
    index = rank + 1
    while index < tree.size:
        tree[index] += delta
        index += index & -index


@njit
def _members_below(tree, rank):
    """Members with a rank below ``rank`` (a Fenwick prefix sum)."""
    total = 0
    index = rank
    while index > 0:
        total += tree[index]
        index -= index & -index
    return total


@njit
def _members_in(tree, low, high):
    """Members with a rank in ``[low, high]`` (0 for an empty range)."""
    if low > high:
        return 0
    return _members_below(tree, high + 1) - _members_below(tree, low)


@njit
def _is_member(words, rank):
    return (words[rank >> 6] >> np.uint64(rank & 63)) & _ONE != 0


@njit
def _next_kept(words, summary, rank, excluded):
    """Smallest member above ``rank`` outside both excluded rank ranges, or -1.

    ``excluded`` holds ``(zero_low, zero_high, center_low, center_high)``: the ranks valued 0 and
    the ranks valued at the median (an empty range has ``low > high``).
    """
    member = _next_member(words, summary, rank)
    while member >= 0:
        if excluded[0] <= member <= excluded[1]:
            member = _next_member(words, summary, excluded[1])
        elif excluded[2] <= member <= excluded[3]:
            member = _next_member(words, summary, excluded[3])
        else:
            return member
    return np.int64(-1)


@njit
def _previous_kept(words, summary, rank, excluded):
    """Largest member below ``rank`` outside both excluded rank ranges, or -1."""
    member = _previous_member(words, summary, rank)
    while member >= 0:
        if excluded[0] <= member <= excluded[1]:
            member = _previous_member(words, summary, excluded[0])
        elif excluded[2] <= member <= excluded[3]:
            member = _previous_member(words, summary, excluded[2])
        else:
            return member
    return np.int64(-1)


@njit
def _is_kept(words, rank, excluded):
    return (rank >= 0 and _is_member(words, rank)
            and not excluded[0] <= rank <= excluded[1]
            and not excluded[2] <= rank <= excluded[3])


@njit
def _excluded_inside(tree, low, high, range_low, range_high):
    """Members of the excluded rank range ``[range_low, range_high]`` inside the block
    ``[low, high]``, whose ends are kept: the range lies wholly inside it or outside."""
    if range_low <= range_high and low < range_low and range_high < high:
        return _members_in(tree, range_low, range_high)
    return 0


@njit
def _kept_deviation(sorted_values, rank, center):
    return np.inf if rank < 0 else _deviation(sorted_values, rank, center)


@njit
def _nonzero_mad(state, words, summary, tree, sorted_values, center, excluded):
    """The non-zero MAD of the window: the median of ``|x - center|`` over the members *kept*, those
    neither 0 nor at ``center`` (0 if there are none).

    Along the rank order the kept members' deviations fall towards ``center`` and rise after it,
    so the ``q + 1`` smallest (``q = (kept - 1) // 2``) are a block of consecutive kept members
    holding the kept member just below ``center`` or the one just above (the *anchors*). As for the
    MAD, the block is the previous tick's, its ends moved inward onto kept members, made to touch
    an anchor, resized and slid; its member count comes from the Fenwick tree ``tree`` (the
    excluded rank ranges are wholly inside the block or outside it, as its ends are kept).
    """
    center_low = first_rank_at_least(sorted_values, center, False)
    center_high = first_rank_at_least(sorted_values, center, True) - 1
    excluded[2], excluded[3] = center_low, center_high
    if center == 0.0:  # one excluded range
        excluded[2], excluded[3] = 1, 0
    out = _members_in(tree, excluded[0], excluded[1]) + _members_in(tree, excluded[2], excluded[3])
    kept = state[_COUNT] - out
    if kept == 0:
        return 0.0
    below = _previous_kept(words, summary, center_low, excluded)  # the anchors
    above = _next_kept(words, summary, center_high, excluded)
    if below < 0:
        below = above
    if above < 0:
        above = below
    low, high = state[_BLOCK_LOW], state[_BLOCK_HIGH]
    if not _is_kept(words, low, excluded):
        low = _next_kept(words, summary, low, excluded)
    if not _is_kept(words, high, excluded):
        high = _previous_kept(words, summary, high, excluded)
    if low < 0 or high < 0 or low > high:
        low = high = below
    size = (_members_in(tree, low, high)
            - _excluded_inside(tree, low, high, excluded[0], excluded[1])
            - _excluded_inside(tree, low, high, excluded[2], excluded[3]))
    while high < below:  # touch an anchor
        high = _next_kept(words, summary, high, excluded)
        size += 1
    while low > above:
        low = _previous_kept(words, summary, low, excluded)
        size += 1
    wanted = (kept - 1) // 2 + 1
    while size > wanted:  # shrink from the larger deviation, keeping an anchor
        low_deviation = _deviation(sorted_values, low, center)
        high_deviation = _deviation(sorted_values, high, center)
        if low_deviation > high_deviation or (
            low_deviation == high_deviation and low != below and low != above
        ):
            low = _next_kept(words, summary, low, excluded)
        else:
            high = _previous_kept(words, summary, high, excluded)
        size -= 1
    while size < wanted:  # grow by the smaller deviation outside
        before = _previous_kept(words, summary, low, excluded)
        after = _next_kept(words, summary, high, excluded)
        if _kept_deviation(sorted_values, before, center) <= _kept_deviation(sorted_values, after,
                                                                             center):
            low = before
        else:
            high = after
        size += 1
    while True:  # slide while that swaps an end for a strictly smaller deviation
        after = _next_kept(words, summary, high, excluded)
        if _kept_deviation(sorted_values, after, center) < _deviation(sorted_values, low, center):
            low = _next_kept(words, summary, low, excluded)
            high = after
            continue
        before = _previous_kept(words, summary, low, excluded)
        if _kept_deviation(sorted_values, before, center) < _deviation(sorted_values, high, center):
            high = _previous_kept(words, summary, high, excluded)
            low = before
            continue
        break
    state[_BLOCK_LOW], state[_BLOCK_HIGH] = low, high
    kth = max(_deviation(sorted_values, low, center), _deviation(sorted_values, high, center))
    if kept % 2 == 1:
        return kth
    following = min(_kept_deviation(sorted_values, _previous_kept(words, summary, low, excluded),
                                    center),
                    _kept_deviation(sorted_values, _next_kept(words, summary, high, excluded),
                                    center))
    return (kth + following) / 2.0


@njit
def _median_mad_chunk(
    ranks, sorted_values, window, min_periods, nonzero, first_output, end, median_out, mad_out
):
    """Fill ``median_out[first_output:end]`` and ``mad_out[first_output:end]``."""
    word_count = max(1, (sorted_values.size + 63) >> 6)
    words = np.zeros(word_count, dtype=np.uint64)
    summary = np.zeros((word_count + 63) >> 6, dtype=np.uint64)
    state = np.zeros(_STATE_SIZE, dtype=np.int64)
    tree = np.zeros(sorted_values.size + 1 if nonzero else 1, dtype=np.int32)
    excluded = np.empty(4, dtype=np.int64)
    excluded[0] = first_rank_at_least(sorted_values, 0.0, False)
    excluded[1] = first_rank_at_least(sorted_values, 0.0, True) - 1
    start = max(0, first_output - window + 1)
    for index in range(start, end):
        if ranks[index] >= 0:
            _insert(state, words, summary, ranks[index], not nonzero)
            if nonzero:
                _tree_add(tree, ranks[index], 1)
        leaving = index - window
        if leaving >= start and ranks[leaving] >= 0:
            _delete(state, words, summary, ranks[leaving], not nonzero)
            if nonzero:
                _tree_add(tree, ranks[leaving], -1)
        if state[_COUNT] == 0:
            if index >= first_output:
                median_out[index] = np.nan
                mad_out[index] = np.nan
            continue
        _settle_median(state, words, summary)
        center = _median_value(state, words, summary, sorted_values)
        if nonzero:
            mad = _nonzero_mad(state, words, summary, tree, sorted_values, center, excluded)
        else:
            mad = _median_absolute_deviation(state, words, summary, sorted_values, center)
        if index >= first_output:
            enough = state[_COUNT] >= min_periods
            median_out[index] = center if enough else np.nan
            mad_out[index] = mad if enough else np.nan


@njit(parallel=True)
def sliding_median_mad(ranks, sorted_values, window, min_periods, chunk_count, nonzero=False):
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
    nonzero : bool, default False
        Give the non-zero MAD instead of the MAD: the median of ``|x - median|`` over the
        window's values that are neither 0 nor the median (0 where there are none).

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
                ranks, sorted_values, window, min_periods, nonzero, first, end, median_out,
                mad_out)
    return median_out, mad_out
