"""Run one per-tick kernel body on the CPU or the GPU (DESIGN.md §2: one body, two targets).

A *body* is a plain Python function ``body(i, arrays, params)`` that computes element ``i`` of its
outputs: ``arrays`` is a tuple of arrays (inputs and outputs), ``params`` a tuple of scalars. Kernels
hand it over as a factory ``make(jit)`` that compiles the body (and any helper it calls) with the
given decorator: ``numba.njit`` for the CPU, run in a ``prange`` loop, and
``numba.cuda.jit(device=True)`` for the GPU, run by a one-thread-per-element ``@cuda.jit`` launcher.
``numba.cuda`` is imported on first GPU use only (:mod:`kernels.per_tick_cuda`).
"""

from __future__ import annotations

import functools

import numba

THREADS_PER_BLOCK = 128


@functools.cache
def _cpu_loop(make):
    element = make(numba.njit)

    @numba.njit(parallel=True)
    def loop(count, arrays, params):
        for i in numba.prange(count):
            element(i, arrays, params)

    return loop


def run_per_tick(make, count, arrays, params, target="cpu"):
    """Apply a body to every index ``0 .. count - 1``.

    Parameters
    ----------
    make : function
        ``make(jit)`` returns the body ``body(i, arrays, params)`` compiled with ``jit``; the body
        writes its results into output arrays.
    count : int
        Number of elements.
    arrays : tuple of arrays
        NumPy arrays for ``target="cpu"``; device arrays (CuPy, or NumPy under the CUDA simulator)
        for ``target="gpu"``.
    params : tuple of scalars
    target : {"cpu", "gpu"}
    """
    if count == 0:
        return
    if target == "gpu":
        blocks = (count + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        from kernels.per_tick_cuda import element_kernel

        element_kernel(make)[blocks, THREADS_PER_BLOCK](count, arrays, params)
    else:
        _cpu_loop(make)(count, arrays, params)
