"""Ctrl-C that is never lost.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens to be. When
that is inside a callback from C -- numba's compiler calls back into Python through llvmlite's
ctypes callbacks while it compiles -- the exception is printed and dropped ("Exception ignored
in ...") and the program carries on as if nothing happened: a Ctrl-C during a compile used to end
``gpu-lpi run`` normally, with exit status 0.

Worse, an exception raised inside LLVM's callbacks can leave the compiler in a state that crashes
the process (a segfault was seen on a Ctrl-C during a cold compile).

The command line therefore installs :func:`install`: Ctrl-C is remembered, and raises at once
unless numba is compiling (it holds its global compiler lock): then it only waits for the next
:func:`checkpoint`, which the long loops of the library call between pieces of work. Library users
who never call :func:`install` keep Python's default behaviour (``checkpoint`` then does nothing).
"""

from __future__ import annotations

import signal
import sys
import threading

_received = threading.Event()


def _numba_compiling() -> bool:
    """Whether this thread holds numba's compiler lock (never imports numba)."""
    lock_module = sys.modules.get("numba.core.compiler_lock")
    return lock_module is not None and lock_module.global_compiler_lock.is_locked()


def _on_sigint(signum, frame):
    _received.set()
    if not _numba_compiling():
        raise KeyboardInterrupt


def _quiet_unraisable(unraisable) -> None:
    """Python reports an exception dropped in a C callback on stderr; for our Ctrl-C the
    :func:`checkpoint` that follows says what happened, so only other exceptions are reported."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        _received.set()
        return
    _default_unraisable(unraisable)


_default_unraisable = sys.unraisablehook


def install() -> None:
    """Remember every Ctrl-C (main thread only; elsewhere this does nothing)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
        sys.unraisablehook = _quiet_unraisable


def interrupted() -> bool:
    """Whether a Ctrl-C arrived since :func:`install`."""
    return _received.is_set()


def checkpoint() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived and was swallowed on its way."""
    if _received.is_set():
        raise KeyboardInterrupt
