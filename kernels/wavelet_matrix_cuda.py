"""CUDA launcher of the wavelet-matrix median/MAD query: one thread per tick.

Imported on first GPU use only, so that ``numba.cuda`` is never loaded on the CPU path.
"""

from numba import cuda

from kernels.wavelet_matrix import compile_tick_body

_fill_tick = compile_tick_body(cuda.jit(device=True))


@cuda.jit
def fill_all_ticks(
    directory, level_zeros, sorted_values, valid_before, window, min_periods, median_out, mad_out
):
    """Fill ``median_out[tick]`` and ``mad_out[tick]`` for the thread's tick."""
    tick = cuda.grid(1)
    if tick < median_out.size:
        _fill_tick(
            tick, directory, level_zeros, sorted_values, valid_before, window, min_periods,
            median_out, mad_out,
        )
