"""CUDA launcher of per-tick bodies (:mod:`kernels.per_tick`): one thread per element.

Imported on first GPU use only, so that ``numba.cuda`` is never loaded on the CPU path. ``cuda`` is
a module global of the kernel template so that numba's CUDA simulator can swap it in the kernels'
globals.
"""

from __future__ import annotations

import functools

from numba import cuda

from kernels.jit import bind_globals, cuda_kernel

THREADS_PER_BLOCK = 128

#: Placeholder of the template's global ``body``: each kernel is bound to its own body.
body = None


def _element_kernel(count, inputs, outputs, params):
    """Template of the CUDA launchers: element ``cuda.grid(1)`` of the body, if below ``count``."""
    i = cuda.grid(1)
    if i < count:
        body(i, inputs, outputs, params)


def element_function(kernel):
    """The Python function of ``kernel``'s CUDA launcher (the template bound to its body)."""
    return bind_globals(_element_kernel, f"element_kernel__{kernel.name}", body=kernel.body)


@functools.cache
def element_kernel(kernel):
    """The cached ``@cuda.jit`` launcher of a :class:`kernels.per_tick.PerTickKernel`."""
    return cuda_kernel(element_function(kernel))


def launch(kernel, count: int, inputs, outputs, params) -> None:
    """Run ``kernel``'s body on the GPU for ``i = 0 .. count - 1`` (``count`` > 0)."""
    blocks = (count + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
    element_kernel(kernel)[blocks, THREADS_PER_BLOCK](count, inputs, outputs, params)
