"""Wavelet matrix over a rank sequence, and per-window median/MAD queries on it.

The wavelet matrix (Claude, Navarro & Ordonez 2015) of the valid values' ranks answers
"k-th smallest value among positions [start, stop)" in one top-down pass over its
``levels = ceil(log2 m)`` bit levels, whatever the window length, so every output is an
independent query with a cost flat in the window (as in the GPU median filter of
Moroto & Umetani 2022). Only valid (non-NaN) values are stored, which keeps ``m`` and
the number of levels as small as possible; a tick's window maps to a position range
through the count of valid values before it.

Layout: ``directory[level, word] = (bits, zeros_before)``, 64 bit-packed level bits
and the count of zero bits before them, interleaved so that one rank query reads one
16-byte entry. The matrix is built with array operations (a stable partition per
level), so the same :func:`build_wavelet_matrix` runs on NumPy and on CuPy.

The query is a per-tick kernel (:mod:`kernels.per_tick`): one body, run in a loop on the CPU or by
one CUDA thread per tick on the GPU, where its helpers become device functions.

MAD search. With ``count`` values in the window, ``k = (count - 1) // 2`` and the
sorted window ``y``, the left deviations ``center - y[k - t]`` and the right
deviations ``y[k + 1 + t] - center`` are two ascending sequences. The ``k``-th smallest
deviation is found by the classic binary search over how many of the ``k + 1``
smallest deviations come from the left; each probe reads the two order statistics it
compares with one fused two-cursor descent, so a MAD costs O(log(count) * levels). The same
search gives any deviation order statistic: the *non-zero MAD* (the robust scale of a zero-inflated
feature, :func:`gpu_lpi.robust.robust_z`), the median of the deviations of the values that are
neither 0 nor the median, skips those values' deviations, whose counts are rank queries (one
descent each; the CPU computes the same by the sliding algorithm of
:mod:`kernels.sliding_order_stats`). The *side MAD* (one half of the double MAD) is cheaper: the
median of the values above (or below) the median is one order statistic of that side, whose
start is a rank count.
"""

from collections import namedtuple
from typing import NamedTuple

import numpy as np

from kernels.jit import njit
from kernels.per_tick import empty_record, per_tick

_ONE = np.uint64(1)
_MASK_1 = np.uint64(0x5555555555555555)
_MASK_2 = np.uint64(0x3333333333333333)
_MASK_4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_LOW_7_BITS = np.uint64(0x7F)

WaveletMatrix = namedtuple("WaveletMatrix", ["directory", "level_zeros"])
WaveletMatrix.__doc__ = """Bit-packed wavelet matrix.

Attributes
----------
directory : array of uint64, shape (levels, words + 1, 2)
    ``[..., 0]`` the level's bits, 64 per word, position ``p`` at bit ``p % 64`` of
    word ``p // 64``; ``[..., 1]`` the number of zero bits before that word.
level_zeros : array of int64, shape (levels,)
    Number of zero bits on each level (where the ones' partition starts).
"""


def build_wavelet_matrix(symbols, xp=np):
    """Build the wavelet matrix of a sequence of distinct ranks ``0 .. m - 1``.

    Parameters
    ----------
    symbols : array of int64, shape (m,)
        The sequence, owned by ``xp``.
    xp : module, default numpy
        ``numpy`` or ``cupy``; both build the identical structure.

    Returns
    -------
    WaveletMatrix
    """
    size = symbols.size
    levels = max(1, int(size - 1).bit_length())
    word_count = (size + 63) // 64
    directory = xp.zeros((levels, word_count + 1, 2), dtype=xp.uint64)
    level_zeros = xp.zeros(levels, dtype=xp.int64)
    padded_bits = xp.zeros(word_count * 64, dtype=xp.uint8)
    current = symbols
    for level in range(levels):
        bits = ((current >> (levels - 1 - level)) & 1).astype(xp.uint8)
        padded_bits[:size] = bits
        packed = xp.packbits(padded_bits, bitorder="little").view(xp.uint64)
        directory[level, :word_count, 0] = packed
        zeros_per_word = 64 - padded_bits.reshape(word_count, 64).sum(axis=1, dtype=xp.int64)
        directory[level, 1:, 1] = xp.cumsum(zeros_per_word).astype(xp.uint64)
        is_zero = bits == 0
        level_zeros[level] = is_zero.sum()
        current = xp.concatenate((current[is_zero], current[~is_zero]))
    return WaveletMatrix(directory, level_zeros)


@njit(refcounts=False)
def _popcount(word):
    word = word - ((word >> _ONE) & _MASK_1)
    word = (word & _MASK_2) + ((word >> np.uint64(2)) & _MASK_2)
    word = (word + (word >> np.uint64(4))) & _MASK_4
    word = word + (word >> np.uint64(8))
    word = word + (word >> np.uint64(16))
    word = word + (word >> np.uint64(32))
    return word & _LOW_7_BITS


@njit(refcounts=False)
def _zeros_before(directory, level, position):
    word_index = position >> 6
    offset = position & 63
    below_offset = directory[level, word_index, 0] & ((_ONE << np.uint64(offset)) - _ONE)
    ones = np.int64(_popcount(below_offset))
    return np.int64(directory[level, word_index, 1]) + offset - ones


@njit(refcounts=False)
def _descend(inputs, level, start, stop, k, rank):
    """One level of a k-th-smallest search: the narrowed range, the remaining k, the rank bits."""
    zeros_at_start = _zeros_before(inputs.directory, level, start)
    zeros_at_stop = _zeros_before(inputs.directory, level, stop)
    zeros = zeros_at_stop - zeros_at_start
    if k < zeros:
        return zeros_at_start, zeros_at_stop, k, 2 * rank
    level_zeros = inputs.level_zeros[level]
    return (start + level_zeros - zeros_at_start, stop + level_zeros - zeros_at_stop,
            k - zeros, 2 * rank + 1)


@njit(refcounts=False)
def _two_order_values(inputs, start, stop, first_k, second_k):
    """Values of the ``first_k``-th and ``second_k``-th smallest in [start, stop)."""
    first_start, first_stop, first_rank = start, stop, 0
    second_start, second_stop, second_rank = start, stop, 0
    for level in range(inputs.level_zeros.shape[0]):
        first_start, first_stop, first_k, first_rank = _descend(
            inputs, level, first_start, first_stop, first_k, first_rank)
        second_start, second_stop, second_k, second_rank = _descend(
            inputs, level, second_start, second_stop, second_k, second_rank)
    return inputs.sorted_values[first_rank], inputs.sorted_values[second_rank]


@njit(refcounts=False)
def _left_taken(inputs, start, stop, center, kth):
    """How many of the ``kth + 1`` smallest deviations from ``center`` lie left of the median."""
    count = stop - start
    lower_k = (count - 1) // 2
    low = max(0, kth + 1 - (count - lower_k - 1))
    high = min(kth + 1, lower_k + 1)
    while low < high:
        middle = (low + high) // 2
        left, right = _two_order_values(inputs, start, stop, lower_k - middle,
                                        lower_k + 1 + kth - middle)
        if center - left >= right - center:
            high = middle
        else:
            low = middle + 1
    return low


@njit(refcounts=False)
def _deviation_median(inputs, start, stop, center, first, size):
    """Median of the deviations ``|y - center|`` of sorted order ``first .. first + size - 1``.

    ``size >= 1`` deviations of the window ``[start, stop)``, counted from the smallest: the MAD is
    ``first = 0, size = count``. The ``kth``-th smallest deviation is the larger of the last left
    and the last right deviation taken; for an even ``size`` it is averaged with the next one, the
    smaller of the next left and the next right deviation.
    """
    count = stop - start
    lower_k = (count - 1) // 2
    kth = first + (size - 1) // 2
    taken = _left_taken(inputs, start, stop, center, kth)
    # Left deviation t is at order lower_k - t, right deviation t at lower_k + 1 + t.
    right_used = kth - taken  # index of the last right deviation taken
    last_left, last_right = _two_order_values(
        inputs, start, stop,
        lower_k - max(taken - 1, 0), min(lower_k + 1 + right_used, count - 1),
    )
    deviation = 0.0
    if taken > 0:
        deviation = center - last_left
    if right_used >= 0:
        deviation = max(deviation, last_right - center)
    if size % 2 == 1:
        return deviation
    next_left, next_right = _two_order_values(
        inputs, start, stop,
        lower_k - min(taken, lower_k), min(lower_k + 2 + right_used, count - 1),
    )
    following = np.inf
    if taken <= lower_k:
        following = center - next_left
    if lower_k + 2 + right_used < count:
        following = min(following, next_right - center)
    return (deviation + following) / 2.0


@njit(refcounts=False)
def _window_median(inputs, start, stop):
    count = stop - start
    lower_k = (count - 1) // 2
    lower, upper = _two_order_values(inputs, start, stop, lower_k, count // 2)
    return lower if count % 2 == 1 else (lower + upper) / 2.0


@njit(refcounts=False)
def _count_below(inputs, start, stop, symbol):
    """How many ranks in positions ``[start, stop)`` are below ``symbol`` (one descent)."""
    levels = inputs.level_zeros.shape[0]
    if symbol >= inputs.sorted_values.shape[0]:
        return stop - start
    below = 0
    for level in range(levels):
        zeros_at_start = _zeros_before(inputs.directory, level, start)
        zeros_at_stop = _zeros_before(inputs.directory, level, stop)
        if (symbol >> (levels - 1 - level)) & 1 == 0:
            start, stop = zeros_at_start, zeros_at_stop
        else:
            below += zeros_at_stop - zeros_at_start
            level_zeros = inputs.level_zeros[level]
            start = start + level_zeros - zeros_at_start
            stop = stop + level_zeros - zeros_at_stop
    return below


@njit(refcounts=False)
def first_rank_at_least(sorted_values, value, strictly):
    """First rank whose value is ``>= value`` (``> value`` when ``strictly``): a binary search."""
    low = 0
    high = sorted_values.shape[0]
    while low < high:
        middle = (low + high) // 2
        if sorted_values[middle] < value or (strictly and sorted_values[middle] == value):
            low = middle + 1
        else:
            high = middle
    return low


@njit(refcounts=False)
def _count_between(inputs, start, stop, low, high, closed):
    """Window values in ``[low, high]`` (``closed``) or in ``(low, high)``: two rank counts."""
    first = first_rank_at_least(inputs.sorted_values, low, not closed)
    last = first_rank_at_least(inputs.sorted_values, high, closed)
    if last <= first:
        return 0
    return _count_below(inputs, start, stop, last) - _count_below(inputs, start, stop, first)


@njit(refcounts=False)
def _nonzero_mad(inputs, start, stop, center):
    """Median of the deviations ``|y - center|`` of the window's values that are neither 0 nor
    ``center`` (0 if there are none).

    In the sorted deviations, the values at the center come first (deviation 0), then those
    strictly between 0 and ``2·center`` (deviation below ``|center|``), then the zeros (deviation
    ``|center|``): the ``q``-th remaining deviation is the ``q``-th overall shifted past the
    center's values, and past the zeros once ``q`` reaches the nearer values' count.
    """
    count = stop - start
    at_center = _count_between(inputs, start, stop, center, center, True)
    zeros = 0
    nearer = 0
    if center != 0.0:
        zeros = _count_between(inputs, start, stop, 0.0, 0.0, True)
        nearer = (_count_between(inputs, start, stop, min(0.0, 2.0 * center),
                                 max(0.0, 2.0 * center), False) - at_center)
    remaining = count - at_center - zeros
    if remaining == 0:
        return 0.0
    lower_q = (remaining - 1) // 2
    upper_q = remaining // 2
    lower_position = at_center + lower_q + (zeros if lower_q >= nearer else 0)
    upper_position = at_center + upper_q + (zeros if upper_q >= nearer else 0)
    if upper_q == lower_q or upper_position == lower_position + 1:  # one search: 1 or 2 values
        return _deviation_median(inputs, start, stop, center, lower_position,
                                 upper_position - lower_position + 1)
    return (_deviation_median(inputs, start, stop, center, lower_position, 1)
            + _deviation_median(inputs, start, stop, center, upper_position, 1)) / 2.0


@njit(refcounts=False)
def _symbol_at(inputs, position):
    """The rank stored at ``position`` of the sequence: one top-down pass."""
    rank = 0
    for level in range(inputs.level_zeros.shape[0]):
        word = inputs.directory[level, position >> 6, 0]
        zeros = _zeros_before(inputs.directory, level, position)
        if (word >> np.uint64(position & 63)) & _ONE == 0:
            position = zeros
            rank = 2 * rank
        else:
            position = inputs.level_zeros[level] + position - zeros
            rank = 2 * rank + 1
    return rank


@njit(refcounts=False)
def _side_mad(inputs, start, stop, center, above):
    """Median distance from ``center`` of the window's values above it (``above``) or below it
    (0 if there are none): two order statistics of that side, the double MAD's half."""
    if above:
        first = _count_below(inputs, start, stop,
                             first_rank_at_least(inputs.sorted_values, center, True))
        size = stop - start - first
    else:
        size = _count_below(inputs, start, stop,
                            first_rank_at_least(inputs.sorted_values, center, False))
        first = 0
    if size == 0:
        return 0.0
    lower, upper = _two_order_values(inputs, start, stop, first + (size - 1) // 2,
                                     first + size // 2)
    if above:
        lower, upper = lower - center, upper - center
    else:
        lower, upper = center - lower, center - upper
    return lower if size % 2 == 1 else (lower + upper) / 2.0


class WaveletQueryInputs(NamedTuple):
    directory: np.ndarray  #: the fields of the :class:`WaveletMatrix`
    level_zeros: np.ndarray
    sorted_values: np.ndarray  #: valid values in ascending order (rank -> value)
    valid_before: np.ndarray  #: int64[n + 1], number of valid values before each tick


#: The ``deviation`` choices of :func:`wavelet_median_mad`, in the order of ``QueryWindow.deviation``.
_DEVIATIONS = ("mad", "nonzero", "side")


class MedianMad(NamedTuple):
    median: np.ndarray
    mad: np.ndarray


class QueryWindow(NamedTuple):
    window: int  #: window length in ticks
    min_periods: int  #: fewest valid values for an output
    deviation: int  #: 0 the MAD, 1 the non-zero MAD (:func:`_nonzero_mad`), 2 the side MAD of the
    #: tick's own value (:func:`_side_mad`: above the median if it is not below)


@per_tick
def wavelet_query(tick, inputs: WaveletQueryInputs, outputs: MedianMad, params: QueryWindow):
    """Median and MAD (or non-zero or side MAD) of the trailing window of ``tick`` (NaN below
    ``min_periods`` values; the side MAD is NaN where the tick's own value is)."""
    start = inputs.valid_before[max(0, tick - params.window + 1)]
    stop = inputs.valid_before[tick + 1]
    if stop - start < params.min_periods:
        outputs.median[tick] = np.nan
        outputs.mad[tick] = np.nan
        return
    center = _window_median(inputs, start, stop)
    outputs.median[tick] = center
    if params.deviation == 2:
        if inputs.valid_before[tick] == stop:  # the tick itself has no value
            outputs.mad[tick] = np.nan
        else:
            value = inputs.sorted_values[_symbol_at(inputs, stop - 1)]
            outputs.mad[tick] = _side_mad(inputs, start, stop, center, value >= center)
    elif params.deviation == 1:
        outputs.mad[tick] = _nonzero_mad(inputs, start, stop, center)
    else:
        outputs.mad[tick] = _deviation_median(inputs, start, stop, center, 0, stop - start)


def wavelet_median_mad(matrix, sorted_values, valid_before, window, min_periods, xp=np,
                       target="cpu", deviation="mad"):
    """Median and MAD of every trailing window, one independent query per tick.

    Parameters
    ----------
    matrix : WaveletMatrix
        Built from the ranks of the valid values in series order.
    sorted_values : array of float64, shape (m,)
        Valid values in ascending order (rank -> value).
    valid_before : array of int64, shape (n + 1,)
        Number of valid values before each tick.
    window : int
        Window length in ticks, >= 1.
    min_periods : int
        Fewest valid values for an output, >= 1.
    xp : module, default numpy
        Owner of the arrays.
    target : {"cpu", "gpu"}
        ``"gpu"``: a CUDA kernel, one thread per tick; ``"cpu"``: the same body in a loop.
    deviation : {"mad", "nonzero", "side"}, default "mad"
        What ``mad`` holds: the MAD; the non-zero MAD, the median of ``|x - median|`` over the
        window's values that are neither 0 nor the median (0 where there are none); or the side
        MAD of the tick's own value ``v``, the median of ``x - median`` over the values above the
        median if ``v >= median``, else of ``median - x`` over those below (0 where there are
        none; NaN where ``v`` is NaN): one half of the double MAD.

    Returns
    -------
    median, mad : arrays of float64, shape (n,), owned by ``xp``
    """
    tick_count = valid_before.size - 1
    outputs = empty_record(MedianMad, tick_count, xp)
    inputs = WaveletQueryInputs(**matrix._asdict(), sorted_values=sorted_values,
                                valid_before=valid_before)
    wavelet_query(tick_count, inputs, outputs,
                  QueryWindow(int(window), int(min_periods), _DEVIATIONS.index(deviation)), target)
    return outputs
