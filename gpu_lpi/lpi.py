"""Trailing-window statistics, robust z-scores and the LPI (spec §2.3, DESIGN.md §4 steps 4–5).

Robust scale. The spec's denominator ``1.4826·MAD + ε`` collapses on sparse features (impact
notional is 0 at most ticks, so median and MAD are 0 and the first non-zero tick gets z ≈ 1e12). As
in :func:`gpu_lpi.robust.robust_z` (``scale="mad_std_floor"``), the scale is floored at a fraction
of the window's standard deviation::

    scale = max(1.4826·MAD, std_floor_ratio·std(window))

so every z is finite where its input is and comparable across symbols. The median and MAD come from
:func:`gpu_lpi.robust.rolling_median_mad` (exact); the standard deviation from
:func:`trailing_mean_std`, whose sums are formed on blocks aligned on absolute tick numbers. That
makes every z independent of where the loaded history begins: chunked runs equal unchunked runs and
a tick's z never changes when later data is removed, bit for bit (``robust_z``'s own standard
deviation shifts by the whole series' mean, which depends on later data in the last bits).
"""

from __future__ import annotations

import numpy as np

from gpu_lpi.params import FeatureParams
from gpu_lpi.robust import rolling_median_mad
from kernels import tick_features as kernels
from kernels.per_tick import run_per_tick


def trailing_mean_std(values, window: int, min_periods: int, block: int, xp, target: str):
    """Mean and population standard deviation of the valid values of each trailing window.

    Parameters
    ----------
    values : array of float64, shape (n,)
        Owned by ``xp``; NaN is skipped. Element 0 must sit on an absolute tick number that is a
        multiple of ``block`` (see :func:`gpu_lpi.grid.make_grid`).
    window, min_periods, block : int
        Window length in ticks (current tick included), fewest valid values, block length.
    xp : module
        ``numpy`` or ``cupy``.
    target : {"cpu", "gpu"}

    Returns
    -------
    mean, std : arrays of float64, shape (n,)
        NaN where the window holds fewer than ``min_periods`` valid values.
    """
    count = values.size
    block_count = -(-count // block)
    padded = xp.full(block_count * block, np.nan)
    padded[:count] = values
    prefixes = tuple(xp.empty(padded.size) for _ in range(3))
    totals = tuple(xp.empty(block_count) for _ in range(3))
    run_per_tick(kernels.block_prefix, block_count, (padded, *prefixes, *totals), (int(block),),
                 target)
    mean, std = xp.empty(count), xp.empty(count)
    run_per_tick(kernels.window_stats, count, (*prefixes, *totals, mean, std),
                 (int(window), int(block), int(min_periods)), target)
    return mean, std


def robust_z_and_scale(values, params: FeatureParams, block: int, xp, target: str):
    """Robust z-score and robust scale of each tick over the trailing window W (see module doc).

    Returns
    -------
    z, scale : arrays of float64 owned by ``xp``
        NaN where ``values`` is NaN or the window holds fewer than ``min_periods`` valid values.
    """
    window = params.window_ticks
    min_periods = params.min_periods_for(window)
    median, mad = rolling_median_mad(values, window, min_periods, device=target)
    _, std = trailing_mean_std(values, window, min_periods, block, xp, target)
    z, scale = xp.empty(values.size), xp.empty(values.size)
    run_per_tick(kernels.robust_z, values.size, (values, median, mad, std, z, scale),
                 (float(params.eps), float(params.std_floor_ratio)), target)
    return z, scale


def combine_lpi(z_fsi, z_ldr, z_pi, params: FeatureParams, xp, target: str):
    """``LPI = w1·z(FSI) + w2·z(LDR) + w3·z(Π)`` (spec §2.3), one side at a time."""
    lpi = xp.empty(z_fsi.size)
    run_per_tick(kernels.lpi_combination, z_fsi.size, (z_fsi, z_ldr, z_pi, lpi),
                 (float(params.w1), float(params.w2), float(params.w3)), target)
    return lpi
