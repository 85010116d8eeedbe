"""Ctrl-C that is never lost.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens to be. When
that is inside a callback from C -- numba's compiler calls back into Python through llvmlite's
ctypes callbacks while it compiles -- the exception is printed and dropped ("Exception ignored
in ...") and the program carries on as if nothing happened: a Ctrl-C during a compile used to end
``gpu-lpi run`` normally, with exit status 0.

Worse, an exception raised inside LLVM's callbacks can leave the compiler in a state that crashes
the process (a segfault was seen on a Ctrl-C during a cold compile).

Worse still, raised while numba's dispatcher (C code) is in one of its Python helpers, it surfaces
as ``SystemError: ... returned a result with an exception set``.

And a ``KeyboardInterrupt`` that leaves code run by ``exec`` or ``eval`` of a string (dataclasses,
namedtuples and numba generate code that way) sets a flag in CPython (3.11) that is never cleared:
however the program then exits, ``python -m gpu_lpi.cli`` dies by SIGINT instead of exiting 130.

The command line therefore installs :func:`install`: Ctrl-C is remembered, and raises at once
unless the interrupted code is numba's or llvmlite's or code made from a string (some frame of the
stack is): then it waits for
the next :func:`checkpoint`, which the long loops of the library call between pieces of work, a
block or a chunk apart. Library users who never call :func:`install` keep Python's default
behaviour (``checkpoint`` then does nothing).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

_received = threading.Event()


#: Packages whose code must not see an exception raised by the signal handler.
_FRAGILE_PACKAGES = ("numba", "numba_cuda", "llvmlite")


#: ``co_filename`` of code compiled from a string by ``exec`` or ``eval``.
_STRING_CODE = "<string>"


def _in_fragile_code(frame) -> bool:
    """Whether any frame of the stack runs code of :data:`_FRAGILE_PACKAGES` (never imports them)
    or code compiled from a string."""
    folders = tuple(os.path.dirname(module.__file__) + os.sep for name in _FRAGILE_PACKAGES
                    if (module := sys.modules.get(name)) is not None and getattr(module, "__file__", None))
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename == _STRING_CODE or (folders and filename.startswith(folders)):
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum, frame):
    _received.set()
    if not _in_fragile_code(frame):
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
