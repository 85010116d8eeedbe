"""CUDA launchers of per-tick bodies: one thread per element.

Imported on first GPU use only, so that ``numba.cuda`` is never loaded on the CPU path. ``cuda`` is
a module global so that numba's CUDA simulator can swap it in the kernels' globals.
"""

import functools

from numba import cuda


@functools.cache
def element_kernel(make):
    """A ``@cuda.jit`` kernel applying the body built by ``make(cuda.jit(device=True))``."""
    element = make(cuda.jit(device=True))

    @cuda.jit
    def kernel(count, arrays, params):
        i = cuda.grid(1)
        if i < count:
            element(i, arrays, params)

    return kernel
