"""Compilation of the project's numba code, cached on disk across processes, for both targets.

* :func:`njit` -- ``numba.njit`` (optionally ``parallel=True``), cached.
* :func:`cuda_kernel` -- ``numba.cuda.jit`` for a kernel, cached. Call it only on the GPU path
  (it imports ``numba.cuda``), so that a CPU process never loads numba's CUDA target. Under numba's
  CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) there is nothing to cache and it is a plain
  ``cuda.jit``.

Device functions need no decorator of their own: a function compiled with :func:`njit` that a CUDA
kernel calls is compiled by numba-cuda as a device function of that kernel (numba-cuda's
``CUDATypingContext.resolve_value_type`` in ``numba_cuda/numba/cuda/target.py``), so one body serves
both targets and the kernel's cache holds its device code.

Why not ``numba.njit(cache=True)``. Numba keys a function's cache entry on its *own* source file
(modification time and size) and the bytecode of the function itself; a change to a helper or a
constant in another file is not seen, and the stale machine code keeps running (changing
``gpu_lpi.synth.calibration.MARK_PRICE_PERIOD_MS`` had no effect until the cache files were
deleted). Here the source stamp of a cached function is instead a hash of the contents of every
``*.py`` file in the function's directory (``kernels/``, ``gpu_lpi/synth/``, ...): a change to any
of them recompiles every cached function of that directory. That is safe as long as no cached
function reaches code or constants outside its own directory, which
``tests/test_jit_cache.py`` checks for every cached function of the project (it walks the globals
and closures of each function, of the functions and modules they name, recursively). Third-party
code (numpy, numba) is outside the check; numba's version is part of every cache entry.

Alternatives considered: hashing the transitive imports of each function (more precise, but it
needs the same static walk at every start-up, and a directory is the unit developers think in);
``functools.cache`` of closures built at run time (cannot be cached on disk at all: their hashes
hold per-process ids); keeping numba's per-file stamp and one file per cached entry point
(forbids helpers shared between files).

Where the cache lives is numba's usual choice, in order: ``NUMBA_CACHE_DIR`` when set, the source
directory's ``__pycache__`` when writable, else the user-wide cache folder (``~/.cache/numba``).
Reaching into numba's caching classes is confined to the section "numba internals" below (pinned
numba 0.64 / numba-cuda 0.30.4, tested by ``tests/test_jit_cache.py``).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numba
from numba.core import caching as _cpu_caching


def njit(function=None, *, parallel: bool = False, refcounts: bool = True, **options):
    """``numba.njit`` with the on-disk cache of this module (see the module docstring).

    Parameters
    ----------
    function : callable, optional
        The function to compile; without it, a decorator is returned (``@njit(parallel=True)``).
    parallel : bool, default False
        Compile ``numba.prange`` loops as parallel loops. Parallel loops cost about a second of
        compilation each (cold cache); use them where a loop does real work per element.
    refcounts : bool, default True
        ``False`` compiles the function without numba's reference counting (numba's ``_nrt``
        option): it must not create arrays, and then passing it arrays costs nothing. For
        functions called once per element with records of arrays (per-tick bodies): with
        reference counting, each call pays two atomic operations per array, several times the
        cost of the arithmetic (``tick_features``: 150 ms instead of 20 ms a day of ticks). The
        CUDA target has no reference counting either way.
    **options
        Other ``numba.njit`` options (``inline``, ``fastmath``...); ``cache`` is not accepted.

    Returns
    -------
    numba.core.registry.CPUDispatcher
    """
    if function is None:
        return functools.partial(njit, parallel=parallel, refcounts=refcounts, **options)
    # Only options that differ from the defaults: a CUDA kernel calling this function compiles it
    # with its target options.
    if parallel:
        options["parallel"] = True
    if not refcounts:
        options["_nrt"] = False
    dispatcher = numba.njit(**options)(function)
    _use_cache(dispatcher, _DirectoryFunctionCache)
    return dispatcher


def cuda_kernel(function):
    """``numba.cuda.jit`` of a kernel, with the on-disk cache of this module.

    Imports ``numba.cuda``: call it on the GPU path only. Under the CUDA simulator the kernel is not
    cached (the simulator runs the Python function).
    """
    from numba import cuda

    kernel = cuda.jit(function)
    if not numba.config.ENABLE_CUDASIM:
        _use_cache(kernel, _directory_cuda_cache_class())
    return kernel


def bind_globals(template, name: str, **bound):
    """A copy of the function ``template`` that reads the globals ``bound`` instead of its module's.

    Used to instantiate a generic launcher (a loop calling a global ``body``) once per body at
    module level, so that each instance is an ordinary function numba can cache. ``name`` becomes
    the copy's ``__qualname__``, which names its cache files: it must be unique within the
    template's module.
    """
    namespace = {**template.__globals__, **bound}
    copy = type(template)(template.__code__, namespace, name, template.__defaults__,
                          template.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = template.__doc__
    copy.__module__ = template.__module__
    return copy


@functools.cache
def directory_stamp(directory: str) -> str:
    """SHA-256 of the names and contents of every ``*.py`` file in ``directory`` (not recursive)."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# -- numba internals ----------------------------------------------------------------------------------
# numba picks a cache locator per function (a class with ``from_function``), and the locator's
# ``get_source_stamp`` is what a cache index is checked against. The locators below are numba's own
# (user-provided dir, __pycache__, user-wide dir, in that order) with the stamp replaced; the caches
# are numba's with those locators; a dispatcher's ``_cache`` attribute is where numba keeps its cache
# (``Dispatcher.enable_caching`` assigns it the same way).
class _DirectoryStamp:
    """Locator mixin: the stamp is :func:`directory_stamp` of the source file's directory."""

    def get_source_stamp(self):
        return directory_stamp(str(Path(self._py_file).resolve().parent))


def _stamped(locators):
    return [type(f"Directory{locator.__name__.lstrip('_')}", (_DirectoryStamp, locator),
                 {"__module__": __name__}) for locator in locators]


class _DirectoryFunctionCacheImpl(_cpu_caching.CompileResultCacheImpl):
    _locator_classes = _stamped([_cpu_caching.UserProvidedCacheLocator,
                                 _cpu_caching.InTreeCacheLocator,
                                 _cpu_caching.UserWideCacheLocator])


class _DirectoryFunctionCache(_cpu_caching.FunctionCache):
    _impl_class = _DirectoryFunctionCacheImpl


@functools.cache
def _directory_cuda_cache_class():
    from numba.cuda.core import caching
    from numba.cuda.dispatcher import CUDACache, CUDACacheImpl

    class _DirectoryCUDACacheImpl(CUDACacheImpl):
        _locator_classes = _stamped([caching._UserProvidedCacheLocator,
                                     caching._InTreeCacheLocator,
                                     caching._UserWideCacheLocator])

    class _DirectoryCUDACache(CUDACache):
        _impl_class = _DirectoryCUDACacheImpl

    return _DirectoryCUDACache


def _use_cache(dispatcher, cache_class) -> None:
    dispatcher._cache = cache_class(dispatcher.py_func)
