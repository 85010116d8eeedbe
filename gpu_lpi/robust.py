"""Exact rolling median, MAD and robust z-scores (spec §2.3, DESIGN §4 step 4).

Both functions take NumPy or CuPy arrays and return results on the same device.

* CPU (``device="cpu"``): a sliding rank-bitset algorithm, O(1) amortised per tick,
  parallel over chunks (:mod:`kernels.sliding_order_stats`).
* GPU (``device="gpu"``): a wavelet matrix over the valid values' ranks, built with
  CuPy, and one CUDA thread per tick querying it (:mod:`kernels.wavelet_matrix`); the
  cost per tick does not depend on the window. Where CuPy is absent and numba's CUDA
  simulator is on (``NUMBA_ENABLE_CUDASIM=1``), NumPy arrays stand in for device arrays,
  so the CUDA kernels run on CPU-only CI.

Both paths are exact and agree bit for bit with ``numpy.median`` on each window's valid
values.

:func:`robust_z`'s default scale, the *non-zero MAD* (the median of the deviations from the median
of the values that are neither 0 nor the median), is computed the same way on each device: by the
sliding algorithm on the CPU (the excluded values are two rank ranges it steps over), by a
wavelet-matrix query on the GPU; the two agree bit for bit. The side MAD of ``"double_mad"`` is a
wavelet-matrix query on both devices.

The window's mean and standard deviation (:func:`trailing_mean_std`, the floor of
:func:`robust_z`'s ``"mad_std_floor"`` scale) are merged from moments of blocks aligned on an absolute tick axis
(``block_origin``), by one kernel body run on either device (:mod:`kernels.tick_features`,
:mod:`kernels.per_tick`). A tick's value therefore depends only on its own window:
not on later data, nor on where the series starts, bit for bit. This is the implementation the
feature engine (:mod:`gpu_lpi.lpi`, :mod:`gpu_lpi.features`) uses too.
"""

import math
import operator

import numpy as np

from gpu_lpi.device import array_module, like, resolve_array_device, to_host
from kernels import tick_features as tick_kernels
from kernels.per_tick import empty_record
from kernels.rolling_order_stats import rolling_median_mad_cpu, rolling_median_mad_wavelet

MAD_TO_SIGMA = 1.4826
"""Consistency factor: 1.4826 * MAD estimates sigma for a normal distribution."""

DEFAULT_STD_FLOOR_RATIO = 0.05
"""Default ``std_floor_ratio`` of :func:`robust_z` (see there)."""

#: Scales of :func:`robust_z`: the default first.
SCALES = ("nonzero_mad", "double_mad", "mad_std_floor", "mad")
_DEVIATIONS = {"nonzero_mad": "nonzero", "double_mad": "side"}


def _resolve_periods(window, min_periods):
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if min_periods is None:
        return int(window)
    if int(min_periods) != min_periods or not 0 <= min_periods <= window:
        raise ValueError(
            f"min_periods must be an integer in [0, window={window}], got {min_periods!r}"
        )
    return max(1, int(min_periods))


def _as_series(values, xp):
    series = xp.asarray(values)
    if series.ndim != 1:
        raise ValueError(f"x must be one-dimensional, got shape {series.shape}")
    if series.dtype.kind not in "fiu":
        raise ValueError(f"x must hold real numbers, got dtype {series.dtype}")
    return series.astype(xp.float64, copy=False)


def _median_mad_on(values, window, min_periods, target, deviation="mad"):
    """Median, MAD (or the non-zero or side MAD: :func:`kernels.wavelet_matrix.wavelet_median_mad`)
    and the array module of the device they were computed on: the sliding path on the CPU (the
    side MAD excepted), the wavelet matrix on the GPU."""
    series, xp = _series_on(values, target)
    if target == "cpu" and deviation != "side":
        median, mad = rolling_median_mad_cpu(series, int(window), min_periods, deviation)
    else:
        median, mad = rolling_median_mad_wavelet(series, int(window), min_periods, xp, target,
                                                 deviation=deviation)
    return median, mad, xp


def _resolve_origin(block_origin):
    try:
        return operator.index(block_origin)
    except TypeError:
        raise ValueError(f"block_origin must be an integer, got {block_origin!r}") from None


#: Whole blocks a window spans, about: the block length is the window over this, rounded up to a
#: power of two.
BLOCKS_PER_WINDOW = 16


def block_length(window):
    """Block length of the trailing-window moments: a power of two near ``window / 16``, >= 64.

    A tick adds up the moments of at most about :data:`BLOCKS_PER_WINDOW` whole blocks and of at
    most two partial ones read from in-block prefix and suffix moments (a window inside one block,
    at most ``block`` ticks, is summed directly), so the cost per tick does not grow with the
    window.
    """
    return max(64, 1 << math.ceil(math.log2(max(window / BLOCKS_PER_WINDOW, 1))))


def _trailing_mean_std_on(series, window, min_periods, block_origin, xp, target):
    """:func:`trailing_mean_std` on a contiguous float64 ``series`` owned by ``xp``."""
    block = block_length(window)
    lead = block_origin % block  # position of series[0] in its block
    count = series.size
    padded = xp.full(-(-(lead + count) // block) * block, np.nan)
    padded[lead : lead + count] = series
    block_count = padded.size // block
    moments = tick_kernels.BlockMoments(**{
        name: xp.empty(block_count if name.startswith("block_") else padded.size)
        for name in tick_kernels.BlockMoments._fields})
    tick_kernels.block_moments(block_count, tick_kernels.Series(padded), moments,
                               tick_kernels.Block(int(block)), target)
    outputs = empty_record(tick_kernels.MeanStd, count, xp)
    inputs = tick_kernels.WindowStatsInputs(padded, **moments._asdict())
    tick_kernels.window_stats(count, inputs, outputs,
                              tick_kernels.WindowParams(int(window), int(block), int(min_periods),
                                                        int(lead)), target)
    return outputs


def _series_on(values, target):
    """``values`` as a contiguous float64 series on ``target``, and its array module."""
    xp = array_module(target)
    series = _as_series(to_host(values) if xp is np else values, xp)
    return xp.ascontiguousarray(series), xp


def rolling_median_mad(x, window, min_periods=None, device="auto"):
    """Exact rolling median and median absolute deviation, NaN-skipping.

    The window ending at tick ``i`` covers ticks ``i - window + 1 .. i`` (inclusive).
    NaN ticks are skipped: they are not counted, but the window still spans ``window``
    ticks. The median of an even count is the mean of the two middle values, as in
    ``numpy.median``; the MAD is the median of ``|x_j - median|`` over the window's
    valid values, with the same rule. Results equal ``numpy.median`` on each window bit
    for bit.

    Parameters
    ----------
    x : numpy.ndarray or cupy.ndarray, shape (n,)
        Series of float64 or float32 (any real dtype is accepted and read as float64).
    window : int
        Window length in ticks, >= 1.
    min_periods : int or None, default None
        Fewest valid values a window needs for an output; fewer gives NaN. ``None``
        means ``window`` (as in pandas): only complete windows without gaps give a
        value. ``0`` behaves as ``1`` (an empty window has no median).
    device : {"auto", "cpu", "gpu"}, default "auto"
        ``"auto"`` is ``"gpu"`` for a CuPy array and ``"cpu"`` otherwise
        (:func:`gpu_lpi.device.resolve_array_device`). The result lives where ``x`` lives,
        whichever device computed it.

    Returns
    -------
    median, mad : arrays of float64, shape (n,)
        Raw MAD, without the 1.4826 normal-consistency factor.

    Raises
    ------
    ValueError
        For a bad ``window``, ``min_periods`` or a non-1-D / non-real ``x``; for a bad
        ``device``, or ``"gpu"`` without a usable GPU, the :class:`gpu_lpi.device.DeviceError`
        subclass.
    """
    resolved = resolve_array_device(x, device)
    periods = _resolve_periods(window, min_periods)
    median, mad, _ = _median_mad_on(x, window, periods, resolved)
    return like(median, x), like(mad, x)


def trailing_mean_std(x, window, min_periods=None, device="auto", block_origin=0):
    """Mean and population standard deviation of the valid values of each trailing window.

    The window ending at tick ``i`` covers ticks ``i - window + 1 .. i``, NaN skipped, as in
    :func:`rolling_median_mad`. The moments are added up, in a fixed order, from moments of
    blocks of :func:`block_length` ticks aligned on ``block_origin`` (Welford's update within a
    block, sums shifted by a mean of the window across blocks), so they stay accurate on series
    far from zero (no raw sum of squares) and each value depends only on its window's values:
    two calls on overlapping slices of one series agree bit for bit on their common ticks once
    the windows are full, given consistent origins, and a tick's value never changes when later
    data is added or removed. Both devices run the same kernel body.

    Parameters
    ----------
    x : numpy.ndarray or cupy.ndarray, shape (n,)
        Series of real numbers; NaN marks a gap.
    window : int
        Window length in ticks, >= 1.
    min_periods : int or None, default None
        As in :func:`rolling_median_mad`; ``None`` means ``window``.
    device : {"auto", "cpu", "gpu"}, default "auto"
        As in :func:`rolling_median_mad`.
    block_origin : int, default 0
        Absolute index of ``x[0]`` on a global tick axis (any integer). Blocks start at the
        multiples of the block length on that axis. If a series has origin ``o``, its slice
        ``x[a:]`` given origin ``o + a`` gets the series' values bit for bit wherever the window
        lies inside the slice.

    Returns
    -------
    mean, std : arrays of float64, shape (n,)
        On the device where ``x`` lives; NaN where the window holds fewer than ``min_periods``
        valid values.

    Raises
    ------
    ValueError
        For a bad parameter (see also :func:`rolling_median_mad`).
    """
    resolved = resolve_array_device(x, device)
    periods = _resolve_periods(window, min_periods)
    origin = _resolve_origin(block_origin)
    series, xp = _series_on(x, resolved)
    mean, std = _trailing_mean_std_on(series, int(window), periods, origin, xp, resolved)
    return like(mean, x), like(std, x)


def robust_z(
    x,
    window,
    min_periods=None,
    eps=1e-12,
    device="auto",
    scale="nonzero_mad",
    std_floor_ratio=DEFAULT_STD_FLOOR_RATIO,
    block_origin=0,
    return_scale=False,
):
    """Rolling robust z-score ``(x - median) / (scale + eps)`` over a trailing window.

    ``scale="mad"`` is the plain spec formula, ``1.4826 * MAD``. It breaks down on
    sparse features (a feature that is 0 at most ticks has median 0 and MAD 0, so the
    first non-zero value gets ``z = x / eps``, around 1e12). Two scales keep z finite:

    ``"nonzero_mad"`` (default): ``1.4826 * median{|x_j - median| : x_j != 0, x_j != median}``,
    the MAD of the window's values that are neither zero nor at the median. On continuous
    data it is the MAD (no value is exactly 0, at most one sits at the median), so z is of unit
    scale, about N(0, 1) on normal data. On a zero-inflated feature (impact notional, Π,
    liquidations: zero at most ticks) it is the spread of the non-zero values, whatever the
    share of zeros: a typical non-zero value gets a z of about 1 and a value k times the
    typical one about k, on every symbol and for every window length once the window holds a
    few hundred non-zero values (it converges to a property of the distribution, unlike a
    standard deviation, which the spike itself inflates). Leaving out the zeros, not only the
    values at the median, matters where about half the window is 0: the median then falls
    between 0 and the smallest non-zero value and the zeros' deviations would be the MAD
    (measured on BTCUSD_PERP: z(Π) up to 2,000). A window with no such value has scale 0 and z
    0; a lone non-zero value among zeros is its own scale (z = 1/1.4826). Exact on both devices,
    bit for bit: on the CPU the sliding rank-bitset algorithm, which steps over the left-out
    values' two rank ranges (:mod:`kernels.sliding_order_stats`, O(1) amortised per tick, about
    1.3 times the cost of ``"mad_std_floor"``); on the GPU a wavelet-matrix query per tick
    (:mod:`kernels.wavelet_matrix`; its cost does not grow with the window).

    ``"double_mad"``: ``1.4826 ×`` the side MAD of ``x``: the median of ``x_j - median``
    over the values above the median where ``x >= median``, else of ``median - x_j`` over those
    below (0 where there are none). On symmetric data it is the MAD; on skewed data each tail
    is scaled by its own spread, and on a non-negative zero-inflated feature (median 0) the
    upper side is its non-zero values, as with ``"nonzero_mad"``. Two order statistics per tick
    of the wavelet matrix, on either device (on the CPU a query per tick: slower than the sliding
    ``"nonzero_mad"``). Measured (bench/RESULTS.md): lower calm shares than ``"nonzero_mad"`` on
    generated data but higher on the real ETHUSDT capture (1.5 % of ticks with LPI > 3 against
    0.34 %), so not the default.

    ``"mad_std_floor"`` (the engine's former default) floors the MAD at a fraction of the
    window's standard deviation::

        scale = max(1.4826 * MAD, std_floor_ratio * std(window))

    On a sparse feature the floor binds and a spike's z is about ``x / (std_floor_ratio * std)``,
    bounded by about ``sqrt(count) / std_floor_ratio``: it grows with the window (measured:
    about 760 at a 6-minute window, 3,400 at 2 h), so thresholds of unit scale lose their
    meaning. The standard deviation comes from block moments (:func:`trailing_mean_std`).

    With ``eps > 0`` every z is finite where ``x`` is finite and the window has
    ``min_periods`` valid values; a constant window gives 0. NaN elsewhere.

    Every z depends only on its own window: the median and both MADs are exact, and the
    standard deviation's blocks are aligned on ``block_origin``. So z at a tick never
    changes when later data is added or removed, and a slice ``x[a:]`` given
    ``block_origin=a`` yields the same z as ``x`` at every tick whose window lies inside the
    slice, bit for bit (chunked = unchunked).

    Parameters
    ----------
    x : numpy.ndarray or cupy.ndarray, shape (n,)
        Series of real numbers; NaN marks a gap.
    window : int
        Window length in ticks, >= 1 (the window includes the current tick).
    min_periods : int or None, default None
        As in :func:`rolling_median_mad`; ``None`` means ``window``.
    eps : float, default 1e-12
        Added to the scale.
    device : {"auto", "cpu", "gpu"}, default "auto"
        As in :func:`rolling_median_mad`.
    scale : {"nonzero_mad", "double_mad", "mad_std_floor", "mad"}, default "nonzero_mad"
        How the denominator is formed (see above).
    std_floor_ratio : float, default 0.05
        Fraction of the window's standard deviation used as the scale's floor with
        ``scale="mad_std_floor"``; must be > 0.
    block_origin : int, default 0
        Absolute index of ``x[0]`` on a global tick axis, as in :func:`trailing_mean_std`:
        the standard deviation's blocks (of :func:`block_length` ticks) start at multiples of
        the block length on that axis, so calls on overlapping slices of one series agree bit
        for bit on their common ticks when given consistent origins. Used by
        ``scale="mad_std_floor"`` only.
    return_scale : bool, default False
        Also return the scale (the denominator without ``eps``).

    Returns
    -------
    z : array of float64, shape (n,)
        On the device where ``x`` lives.
    scale : array of float64, shape (n,)
        Only with ``return_scale=True``: ``1.4826 * non-zero MAD``, ``1.4826 * side MAD``,
        ``max(1.4826 * MAD, std_floor_ratio * std)`` or ``1.4826 * MAD``, on the device where
        ``x`` lives; NaN wherever ``z`` is NaN.

    Raises
    ------
    ValueError
        For a bad parameter (see also :func:`rolling_median_mad`).
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if scale == "mad_std_floor" and not std_floor_ratio > 0:
        raise ValueError(f"std_floor_ratio must be > 0, got {std_floor_ratio!r}")
    resolved = resolve_array_device(x, device)
    periods = _resolve_periods(window, min_periods)
    origin = _resolve_origin(block_origin)
    median, mad, xp = _median_mad_on(x, window, periods, resolved, _DEVIATIONS.get(scale, "mad"))
    series, _ = _series_on(x, resolved)
    if scale == "mad_std_floor":
        _, spread = _trailing_mean_std_on(series, int(window), periods, origin, xp, resolved)
        ratio = float(std_floor_ratio)
    else:  # a zero floor: max(1.4826 * MAD, 0) is the MAD scale (or the non-zero MAD)
        spread = xp.zeros(series.size)
        ratio = 0.0
    outputs = empty_record(tick_kernels.RobustZ, series.size, xp)
    tick_kernels.robust_z(series.size,
                          tick_kernels.RobustZInputs(series, xp.ascontiguousarray(median),
                                                     xp.ascontiguousarray(mad), spread),
                          outputs, tick_kernels.RobustZParams(float(eps), ratio), resolved)
    if return_scale:
        return like(outputs.z, x), like(outputs.scale, x)
    return like(outputs.z, x)
