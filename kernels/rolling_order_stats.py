"""Exact trailing-window median and MAD of a series with NaN gaps.

Entry points, all on plain arrays (``xp`` is ``numpy`` or ``cupy``):

* :func:`rolling_median_mad_cpu` -- NumPy in, NumPy out; the sliding rank-bitset
  algorithm of :mod:`kernels.sliding_order_stats`, O(1) amortised per tick; the MAD or the
  *non-zero MAD* (the median of the deviations of the values that are neither 0 nor the median).
* :func:`rolling_median_mad_wavelet` -- the wavelet-matrix algorithm of
  :mod:`kernels.wavelet_matrix`, one independent query per tick, run by a CUDA kernel
  (``target="gpu"``) or by the same query body compiled with ``numba.njit``
  (``target="cpu"``); the MAD, the non-zero MAD or the *side MAD* of each tick's value (one half
  of the double MAD), on either target (``deviation=``). Both algorithms give the same bits.

The window's mean and standard deviation come from block moments
(:func:`gpu_lpi.robust.trailing_mean_std`, kernels in :mod:`kernels.tick_features`).

A window of length ``window`` ending at tick ``i`` covers ticks ``i - window + 1 .. i``;
NaN ticks are not counted. Outputs are NaN where the window holds fewer than
``min_periods`` valid values. Median and MAD match ``numpy.median`` bit for bit.
"""

import numba
import numpy as np

from kernels.sliding_order_stats import sliding_median_mad
from kernels.wavelet_matrix import build_wavelet_matrix, wavelet_median_mad

_SMALLEST_CHUNK_IN_WINDOWS = 2  # a chunk re-reads one window of warm-up before it


def rank_valid_values(values, xp=np):
    """Rank the valid values of a series.

    Parameters
    ----------
    values : array of float, shape (n,)
    xp : module, default numpy
        ``numpy`` or ``cupy``, the module that owns ``values``.

    Returns
    -------
    valid_ranks : array of int64, shape (m,)
        Rank of each valid value (in series order) among all valid values; ties are
        ranked by position.
    sorted_values : array of float64, shape (m,)
        The valid values in ascending order.
    valid_before : array of int64, shape (n + 1,)
        ``valid_before[i]`` is the number of valid values before tick ``i``.
    """
    values = xp.asarray(values, dtype=xp.float64)
    valid = ~xp.isnan(values)
    valid_values = values[valid]
    order = xp.argsort(valid_values, kind="stable")
    valid_ranks = xp.empty(order.size, dtype=xp.int64)
    valid_ranks[order] = xp.arange(order.size, dtype=xp.int64)
    valid_before = xp.zeros(values.size + 1, dtype=xp.int64)
    xp.cumsum(valid, dtype=xp.int64, out=valid_before[1:])
    return valid_ranks, valid_values[order], valid_before


def _ranks_by_tick(values):
    """Global rank of each tick's value among the valid values, -1 for NaN."""
    valid = ~np.isnan(values)
    valid_values = values[valid]
    order = np.argsort(valid_values)  # ties may take either rank: values are what count
    valid_ranks = np.empty(order.size, dtype=np.int64)
    valid_ranks[order] = np.arange(order.size, dtype=np.int64)
    ranks = np.full(values.size, -1, dtype=np.int64)
    ranks[valid] = valid_ranks
    return ranks, valid_values[order]


def rolling_median_mad_cpu(values, window, min_periods, deviation="mad"):
    """Exact rolling median and MAD (or non-zero MAD) of a NumPy series on the CPU.

    Parameters
    ----------
    values : numpy.ndarray of float, shape (n,)
    window : int
        Window length in ticks, >= 1.
    min_periods : int
        Fewest valid values for an output, >= 1.
    deviation : {"mad", "nonzero"}, default "mad"
        The MAD, or the non-zero MAD: the median of ``|x - median|`` over the window's values
        that are neither 0 nor the median (0 where there are none), as
        :func:`kernels.wavelet_matrix.wavelet_median_mad` gives them.

    Returns
    -------
    median, mad : numpy.ndarray of float64, shape (n,)
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    ranks, sorted_values = _ranks_by_tick(values)
    chunk_count = min(
        numba.get_num_threads(),
        max(1, values.size // (_SMALLEST_CHUNK_IN_WINDOWS * window)),
    )
    return sliding_median_mad(ranks, sorted_values, window, min_periods, chunk_count,
                              deviation == "nonzero")


def rolling_median_mad_wavelet(values, window, min_periods, xp=np, target="cpu", deviation="mad"):
    """Exact rolling median and MAD (or non-zero MAD) by independent wavelet-matrix queries.

    Parameters
    ----------
    values : array of float, shape (n,)
        Owned by ``xp``.
    window : int
        Window length in ticks, >= 1.
    min_periods : int
        Fewest valid values for an output, >= 1.
    xp : module, default numpy
        ``numpy`` or ``cupy``; ``numpy`` with ``target="gpu"`` only under the CUDA
        simulator.
    target : {"cpu", "gpu"}
        ``"gpu"`` launches one CUDA thread per tick; ``"cpu"`` runs the same query
        body in a loop (NumPy arrays only).
    deviation : {"mad", "nonzero", "side"}, default "mad"
        ``mad`` is the MAD, the non-zero MAD or the side MAD of the tick's value
        (:func:`kernels.wavelet_matrix.wavelet_median_mad`).

    Returns
    -------
    median, mad : arrays of float64, shape (n,), owned by ``xp``
    """
    valid_ranks, sorted_values, valid_before = rank_valid_values(values, xp)
    matrix = build_wavelet_matrix(valid_ranks, xp)
    return wavelet_median_mad(
        matrix, sorted_values, valid_before, window, min_periods, xp, target, deviation
    )
