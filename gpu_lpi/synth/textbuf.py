"""Numba primitives that format numbers and byte strings straight into a ``uint8`` buffer.

Both writers build their lines with these, so millions of lines are formatted without Python
objects. Every function takes the buffer and a write position and returns the new position.
Fixed-point values are integers in units of ``10**-decimals`` (a price of ``61800.20`` with two
decimals is ``6180020``).

A *template* is a set of constant byte pieces (``bytes_concat``, ``offsets``): piece ``i`` is
``bytes_concat[offsets[i]:offsets[i + 1]]``. :func:`make_template` builds one from Python bytes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_DIGIT_PAIRS = np.frombuffer(b"".join(b"%02d" % i for i in range(100)), dtype=np.uint8).copy()


def make_template(pieces: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Pack byte pieces into ``(bytes_concat, offsets)`` for :func:`put_piece`.

    Parameters
    ----------
    pieces : list of bytes
        The constant pieces, in the order of the index constants that refer to them.

    Returns
    -------
    tuple of numpy.ndarray
        The concatenated pieces (uint8) and the ``len(pieces) + 1`` start offsets (int64).
    """
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(piece) for piece in pieces])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8).copy(), offsets


@njit(cache=True, inline="always")
def put_piece(buf, pos, concat, offsets, index):
    """Copy template piece ``index`` to ``buf[pos:]``."""
    start = offsets[index]
    length = offsets[index + 1] - start
    for j in range(length):
        buf[pos + j] = concat[start + j]
    return pos + length


@njit(cache=True, inline="always")
def put_byte(buf, pos, value):
    """Write one byte."""
    buf[pos] = value
    return pos + 1


_POWERS_OF_TEN = np.array([10 ** k for k in range(1, 20)], dtype=np.uint64)


@njit(cache=True, inline="always")
def _count_digits(value):
    digits = 1
    while digits < 19 and value >= _POWERS_OF_TEN[digits - 1]:
        digits += 1
    return digits


@njit(cache=True)
def put_uint(buf, pos, value, min_digits=1):
    """Write a non-negative integer in decimal, zero-padded to at least ``min_digits``."""
    rest = np.uint64(value)
    digits = max(_count_digits(rest), min_digits)
    cursor = pos + digits
    while rest >= np.uint64(10):
        pair = np.int64(rest % np.uint64(100)) * 2
        rest //= np.uint64(100)
        buf[cursor - 1] = _DIGIT_PAIRS[pair + 1]
        buf[cursor - 2] = _DIGIT_PAIRS[pair]
        cursor -= 2
    if rest > np.uint64(0) or cursor > pos:
        buf[cursor - 1] = np.uint8(48 + rest)
        cursor -= 1
    while cursor > pos:
        buf[cursor - 1] = 48
        cursor -= 1
    return pos + digits


@njit(cache=True)
def put_fixed(buf, pos, value, decimals):
    """Write a fixed-point value with exactly ``decimals`` digits after the point (``"0.000"``)."""
    if value < 0:
        buf[pos] = 45
        pos += 1
        value = -value
    if decimals == 0:
        return put_uint(buf, pos, value)
    scale = 10 ** decimals
    pos = put_uint(buf, pos, value // scale)
    buf[pos] = 46
    return put_uint(buf, pos + 1, value % scale, decimals)


@njit(cache=True)
def put_trimmed(buf, pos, value, decimals):
    """Write a fixed-point value without trailing zeros (``"61800.2"``, ``"0"``), as JavaScript prints it."""
    while decimals > 0 and value % 10 == 0:
        value //= 10
        decimals -= 1
    return put_fixed(buf, pos, value, decimals)
