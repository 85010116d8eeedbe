"""Robust z-scores and the LPI of the feature engine (spec §2.3, DESIGN.md §4 steps 4–5).

Robust scale. The spec's denominator ``1.4826·MAD + ε`` collapses on sparse features (impact
notional is 0 at most ticks, so median and MAD are 0 and the first non-zero tick gets z ≈ 1e12). The
scale is floored at a fraction of the window's standard deviation::

    scale = max(1.4826·MAD, std_floor_ratio·std(window))

so every z is finite where its input is and comparable across symbols. There is one implementation,
:func:`gpu_lpi.robust.robust_z` (``scale="mad_std_floor"``): exact median and MAD, and a standard
deviation merged from moments of blocks aligned on absolute tick numbers (``block_origin``). That
makes every z independent of where the loaded history begins: chunked runs equal unchunked runs and
a tick's z never changes when later data is removed, bit for bit.
"""

from __future__ import annotations

from gpu_lpi.params import FeatureParams
from gpu_lpi.robust import robust_z
from kernels import tick_features as kernels
from kernels.per_tick import empty_record


def robust_z_and_scale(values, params: FeatureParams, target: str, block_origin: int = 0):
    """Robust z-score and robust scale of each tick over the trailing window W (see module doc).

    Parameters
    ----------
    values : array of float64
        On the device of ``target`` (CuPy, or NumPy on the CPU and under the CUDA simulator).
    params : FeatureParams
        ``window_ticks``, ``min_periods_for``, ``eps`` and ``std_floor_ratio`` are used.
    target : {"cpu", "gpu"}
    block_origin : int, default 0
        Absolute tick number of ``values[0]`` (see :func:`gpu_lpi.robust.robust_z`).

    Returns
    -------
    z, scale : arrays of float64 on the device of ``values``
        NaN where ``values`` is NaN or the window holds fewer than ``min_periods`` valid values.
    """
    window = params.window_ticks
    return robust_z(values, window, params.min_periods_for(window), eps=float(params.eps),
                    device=target, std_floor_ratio=float(params.std_floor_ratio),
                    block_origin=block_origin, return_scale=True)


def combine_lpi(z_fsi, z_ldr, z_pi, params: FeatureParams, xp, target: str, weights=None):
    """``LPI = w1·z(FSI) + w2·z(LDR) + w3·z(Π)`` (spec §2.3), one side at a time.

    ``weights`` ``(w1, w2, w3)`` replace those of ``params`` (the features pass them renormalised
    where the book has no depth: :func:`gpu_lpi.book_at_ticks.lpi_weights`).
    """
    w1, w2, w3 = weights if weights is not None else (params.w1, params.w2, params.w3)
    outputs = empty_record(kernels.Lpi, z_fsi.size, xp)
    kernels.lpi_combination(z_fsi.size, kernels.LpiInputs(z_fsi, z_ldr, z_pi), outputs,
                            kernels.LpiWeights(float(w1), float(w2), float(w3)), target)
    return outputs.lpi
