"""Per-tick kernels: one body, run on the CPU or the GPU (DESIGN.md §2: one body, two targets).

A *body* ``body(i, inputs, outputs, params)`` computes element ``i``: ``inputs`` and ``outputs``
are named tuples of arrays, ``params`` a named tuple of scalars (each body's records are defined
next to it, e.g. in :mod:`kernels.tick_features`), so a body reads ``inputs.bid[i]`` and
``params.theta``, never a position in a long argument list. Records are flat (numba's parallel
loops, should one be needed, take tuples of arrays but not tuples of tuples). :func:`per_tick`
turns a body into a :class:`PerTickKernel`, whose call runs the body for every
``i = 0 .. count - 1``:

* on the CPU, in a loop on one core: compiled without reference counting, a body costs
  nanoseconds per element and a day of ticks milliseconds, less than a parallel loop costs to
  start (and a parallel loop costs a second more to compile); chunks and symbols run in parallel
  instead;
* on the GPU, in a ``@cuda.jit`` kernel with one thread per element
  (:mod:`kernels.per_tick_cuda`, imported on first GPU use only), which calls the same compiled
  body: numba-cuda compiles a ``njit`` function called from a kernel as a device function.

Both launchers are copies of one template (:func:`_cpu_loop` here, one in
:mod:`kernels.per_tick_cuda`) with the body bound as a global (:func:`kernels.jit.bind_globals`),
so each is an ordinary function that numba caches on disk (:mod:`kernels.jit`): a second process
loads the machine code instead of compiling it.
"""

from __future__ import annotations

import numba
import numpy as np

from kernels.jit import bind_globals, njit

#: Placeholder of the template's global ``body``: each launcher is bound to its own body.
body = None


def _cpu_loop(count, inputs, outputs, params):
    """Template of the CPU launchers: the body for ``i = 0 .. count - 1``."""
    for i in range(count):
        body(i, inputs, outputs, params)


def _cpu_parallel_loop(count, inputs, outputs, params):
    """Template of the parallel CPU launchers: the body for ``i = 0 .. count - 1`` over the cores."""
    for i in numba.prange(count):
        body(i, inputs, outputs, params)


class PerTickKernel:
    """A per-tick body with its CPU and GPU launchers (made by :func:`per_tick`).

    Attributes
    ----------
    body : numba.core.registry.CPUDispatcher
        The body compiled with :func:`kernels.jit.njit` without reference counting (called once
        per element with records of arrays); a GPU kernel calls it as a device function.
    name : str
        ``<module>__<body name>``: names the launchers and their cache files.
    cpu_loop : numba.core.registry.CPUDispatcher
        ``cpu_loop(count, inputs, outputs, params)``, cached on disk.
    """

    def __init__(self, body, parallel: bool = False):
        self.body = njit(body, refcounts=False)
        self.name = f"{body.__module__.rpartition('.')[2]}__{body.__name__.lstrip('_')}"
        template = _cpu_parallel_loop if parallel else _cpu_loop
        self.cpu_loop = njit(bind_globals(template, f"cpu_loop__{self.name}", body=self.body),
                             parallel=parallel)

    def __call__(self, count: int, inputs, outputs, params, target: str = "cpu") -> None:
        """Run the body for ``i = 0 .. count - 1``.

        Parameters
        ----------
        count : int
            Number of elements.
        inputs, outputs : named tuples of arrays
            NumPy arrays for ``target="cpu"``; device arrays (CuPy, or NumPy under the CUDA
            simulator) for ``target="gpu"``.
        params : named tuple of scalars
        target : {"cpu", "gpu"}
        """
        if count == 0:
            return
        if target == "gpu":
            from kernels.per_tick_cuda import launch

            launch(self, count, inputs, outputs, params)
        else:
            self.cpu_loop(count, inputs, outputs, params)

    def __repr__(self):
        return f"PerTickKernel({self.name})"


def per_tick(body=None, *, parallel: bool = False) -> PerTickKernel:
    """Decorator: the :class:`PerTickKernel` of ``body(i, inputs, outputs, params)``, a plain
    function written once for both targets.

    ``parallel=True`` (``@per_tick(parallel=True)``) runs the CPU loop over the cores
    (``numba.prange``): for bodies that do real work per element, such as a whole simulation
    scenario (:mod:`kernels.maker_sim`); it costs a second more to compile.
    """
    if body is None:
        return lambda function: PerTickKernel(function, parallel)
    return PerTickKernel(body, parallel)


def empty_record(record_type, count: int, xp=np):
    """A ``record_type`` named tuple of new float64 arrays of length ``count``, owned by ``xp``."""
    return record_type(*(xp.empty(count) for _ in record_type._fields))
