"""Errors for expected problems with user input.

They carry the file, line or field at fault; the CLI prints them as one line and exits non-zero,
never with a traceback.
"""

from __future__ import annotations


class GpuLpiError(Exception):
    """Base class of the errors the CLI reports as a one-line message."""


class InputError(GpuLpiError):
    """A problem in an input file: ``str(err)`` is ``"FILE:LINE: reason"``."""

    def __init__(self, path, line: int | None, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {reason}")


class ConfigError(GpuLpiError):
    """A problem in a job spec or command-line option: names the field and what was expected."""


def reject_unknown_keys(where: str, keys, known, noun: str = "key") -> None:
    """Raise a :class:`ConfigError` naming the first of ``keys`` (a job spec table's) not in ``known``."""
    for key in keys:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown {noun}; expected one of {sorted(known)}")


class StoreError(GpuLpiError):
    """A tick store that cannot be used as asked: not writable, a corrupt partition, an unfinished
    commit that cannot be completed; the message says what to do."""
