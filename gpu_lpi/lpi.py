"""Robust z-scores and the LPI of the feature engine (spec §2.3, DESIGN.md §4 steps 4–5).

Normalization (issue 7, item 1; figures in bench/RESULTS.md, "Robust z calibration"). The spec's
``z = (x − median)/(1.4826·MAD + ε)`` assumes z of unit scale: its thresholds ``lpi_hi = 3``,
``z(FSI) > 2``, ``z(ΔOI) > 1.5``, ``lpi_exit = 1.2`` and ``h(LPI) = tanh((LPI − 3)/2)`` mean
"unusually high" only then. Three choices make it so by default; each is a parameter, and
``z_scale="mad", flow_window_s=tick_ms/1000, z_ldr_transform="none"`` is the spec's plain form:

1. ``z_scale="nonzero_mad"`` (:func:`gpu_lpi.robust.robust_z`): the denominator is
   ``1.4826 × median{|x − median| : x ≠ 0, x ≠ median}`` over the window W. It is the MAD on
   continuous data (z ≈ N(0, 1) on normal data) and, on the zero-inflated flow features (FSI,
   Π, liquidations: zero at most ticks, so MAD = 0), the spread of their non-zero values, so a
   typical impact tick has z ≈ 1 whatever the share of zeros, the symbol or W. Still median-
   centred, exact (bit-identical to ``numpy.median`` per window; the CPU's sliding rank-bitset
   algorithm steps over the left-out values' two rank ranges, the GPU queries a wavelet matrix,
   and the two agree bit for bit), free of look-ahead and chunk-invariant bit for bit, and on the
   CPU about as cheap as the plain MAD. The former ``"mad_std_floor"`` (MAD
   floored at 5 % of the window's std) gave a sparse spike ``z ≈ 20·x/σ``, capped near
   ``20·√n``: z grew with W and a single Π tick moved LPI past 3 (issue 7: 3.9 % of calm real
   ticks); it stays selectable. ``"double_mad"`` (each side of the median scaled by its own
   MAD) was measured too: fewer calm exceedances on generated data, more on real ETHUSDT
   (1.5 % against 0.34 %); selectable (a wavelet-matrix query per tick on the CPU too).
2. ``flow_window_s = 2``: FSI's impact notional (over ``ADV$·T``), Π's return and dollar volume,
   and the liquidation notionals are summed over the trailing 2 s at every tick (directly, in a
   fixed order: :func:`kernels.tick_features.flow_sums`), instead of per 250 ms tick, where they
   are zero at most ticks and spike on one trade. 0.25, 1 and 5 s were measured too: 1–2 s gives
   the lowest calm shares on the real captures, 5 s raises them on generated data (0.7 %), 0.25 s
   spreads the planted peaks widest (16–97).
3. ``z_ldr_transform = "log"``: z(LDR) is the robust z of ``ln LDR``. LDR is a product of ratios
   that a cascade multiplies by 10²–10⁵ (spread × thin depth) while its calm values cluster
   tightly, so even a non-zero-MAD z of LDR itself reached 10⁵ in planted cascades and p99.9 = 66
   on calm real BTCUSDT; on the log scale those are 13–36 and 6.6.

Measured (bench/bench_calibration.py, 2026-12-02, dev VM, 2 cores): share of calm ticks with LPI
> 3 on either side 0.34–0.57 % on the real captures (8-minute captures, so windows of 1–7 min with
min_periods_s = 60 s; the former default 6.7–10.5 %) and 0.02–0.19 % on calm stretches of
generated data (former: 27–30 %), 0.189 % at W = 2 h and 0.178 % at W = 24 h on the same day;
planted forced cascades peak at LPI 13–36 at W = 2 h (16–153 at 24 h; former: 340–4,200), planted
informed repricings at 2.2–2.4. The flow window does not smooth the decay after a peak (1.7–2.1
sign changes of ΔLPI per second at 0.25–5 s): that decay is z(LDR)'s, a book state.

Known limits. Where a flow feature is 0 at every calm tick of the window its scale comes from the
cascade's own values: a lone non-zero value has z = 1/1.4826, and the first cascade of a window
reaches z(FSI) ≈ 2 only. Real markets print impact trades and lone liquidations in calm stretches
(26 impact ticks an hour on the BTCUSDT captures), which give the scale; the generated markets do
too since 2026-12-02 (background block orders and liquidations, :mod:`gpu_lpi.synth.market`).
Before, they printed none, and the first planted cascade of a day stayed below ``z_fsi_hi``.
The figures above were measured on the generator before that change.

Cost. A first version computed the non-zero MAD on the CPU by a wavelet-matrix query per tick
(20–40 µs at W = 2 h: robust_z 17 s per generated symbol-day on the dev VM); the sliding
algorithm gives the same bits in about 1 s, as fast as ``"mad_std_floor"`` (bench/RESULTS.md).

There is one implementation of every z, :func:`gpu_lpi.robust.robust_z`; the std floor's moments
are merged from blocks aligned on absolute tick numbers (``block_origin``), so whatever the scale
a tick's z never depends on where the loaded history begins nor on later data, bit for bit.
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
        ``window_ticks``, ``min_periods_for``, ``eps``, ``z_scale`` and ``std_floor_ratio`` are
        used.
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
                    device=target, scale=params.z_scale,
                    std_floor_ratio=float(params.std_floor_ratio),
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
