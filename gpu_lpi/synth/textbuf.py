"""Numba primitives that format numbers and byte strings straight into a ``uint8`` buffer.

Both writers build their lines with these, so millions of lines are formatted without Python
objects. Every function takes the buffer and a write position and returns the new position.
Fixed-point values are integers in units of ``10**-decimals`` (a price of ``61800.20`` with two
decimals is ``6180020``).

A *template* is a set of constant byte pieces (``bytes_concat``, ``offsets``): piece ``i`` is
``bytes_concat[offsets[i]:offsets[i + 1]]``. :func:`make_template` builds one from Python bytes.

Speed (a symbol-day is ~7 GB of text): numbers are written right to left straight into their final
place (the digit count comes first, from a few compares), two digits per 2-byte store from a
digit-pair table; constant pieces and cached number texts (:func:`put_cached_fixed`) are copied in
8-byte words, so they may write up to :data:`SLACK` bytes past the returned position (overwritten by
what follows): a buffer needs that much room at its end. Only the small leaf helpers are
``inline="always"`` (inlining the number formatters too saves ~10 % of formatting time but costs
minutes of first-run compilation). Numba's on-disk cache of a formatter does not notice a change in
the helpers it calls: after editing this module, delete ``__pycache__/writers_*.nbi`` / ``.nbc``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from kernels.jit import njit

_DIGIT_PAIRS = np.frombuffer(b"".join(b"%02d" % i for i in range(100)), dtype=np.uint8).copy()
#: ``_PAIR_WORDS[i]`` stored as 2 bytes writes the two digits of ``i`` (native byte order both ways).
_PAIR_WORDS = _DIGIT_PAIRS.view(np.uint16).copy()

#: Bytes past the end of what is written that :func:`put_piece` may overwrite; template arrays carry
#: as much padding.
SLACK = 8


def make_template(pieces: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Pack byte pieces into ``(bytes_concat, offsets)`` for :func:`put_piece`.

    Parameters
    ----------
    pieces : list of bytes
        The constant pieces, in the order of the index constants that refer to them.

    Returns
    -------
    tuple of numpy.ndarray
        The concatenated pieces (uint8, followed by :data:`SLACK` zero bytes of padding) and the
        ``len(pieces) + 1`` start offsets (int64).
    """
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(piece) for piece in pieces])
    return np.frombuffer(b"".join(pieces) + bytes(SLACK), dtype=np.uint8).copy(), offsets


@intrinsic
def _copy_words(typingctx, dst, dst_pos, src, src_pos, length):
    """Copy ``length`` bytes ``src[src_pos:]`` -> ``dst[dst_pos:]`` in 8-byte words (unaligned).

    Rounds up to whole words: up to 7 bytes past the end of both ranges are read / written.
    """
    sig = types.none(dst, dst_pos, src, src_pos, length)

    def codegen(context, builder, signature, args):
        dst_value, dst_at, src_value, src_at, count = args
        word = ir.IntType(64)
        word_ptr = word.as_pointer()
        dst_data = context.make_array(signature.args[0])(context, builder, dst_value).data
        src_data = context.make_array(signature.args[2])(context, builder, src_value).data
        dst_bytes = builder.gep(dst_data, [dst_at])
        src_bytes = builder.gep(src_data, [src_at])
        words = builder.ashr(builder.add(count, ir.Constant(count.type, 7)), ir.Constant(count.type, 3))
        with cgutils.for_range(builder, words) as loop:
            index = loop.index
            offset = builder.shl(index, ir.Constant(index.type, 3))
            source = builder.bitcast(builder.gep(src_bytes, [offset]), word_ptr)
            target = builder.bitcast(builder.gep(dst_bytes, [offset]), word_ptr)
            value = builder.load(source, align=1)
            builder.store(value, target, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _store(typingctx, dst, dst_pos, value):
    """Store the integer ``value`` at byte offset ``dst_pos`` of the uint8 array ``dst`` (unaligned,
    native byte order, no index wrap-around)."""
    sig = types.none(dst, dst_pos, value)

    def codegen(context, builder, signature, args):
        dst_value, dst_at, item = args
        data = context.make_array(signature.args[0])(context, builder, dst_value).data
        target = builder.bitcast(builder.gep(data, [dst_at]), item.type.as_pointer())
        builder.store(item, target, align=1)
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always")
def put_piece(buf, pos, concat, offsets, index):
    """Copy template piece ``index`` to ``buf[pos:]`` (may write :data:`SLACK` bytes beyond)."""
    start = offsets[index]
    length = offsets[index + 1] - start
    _copy_words(buf, pos, concat, start, length)
    return pos + length


@njit(inline="always")
def _count_digits_below_1e8(value):
    if value < 10_000:
        if value < 100:
            return 1 if value < 10 else 2
        return 3 if value < 1_000 else 4
    if value < 1_000_000:
        return 5 if value < 100_000 else 6
    return 7 if value < 10_000_000 else 8


@njit(inline="always")
def count_digits(value):
    """Decimal digits of a non-negative int64 (1 for 0): a few compares, no loop."""
    if value < 100_000_000:
        return _count_digits_below_1e8(value)
    if value < 10_000_000_000_000_000:
        return 8 + _count_digits_below_1e8(value // 100_000_000)
    return 16 + _count_digits_below_1e8(value // 10_000_000_000_000_000)


@njit(inline="always")
def _put_all_digits_backwards(buf, end, rest):
    """Write every decimal digit of ``rest`` (uint64; one digit for 0) so that the last one is ``buf[end - 1]``."""
    cursor = end
    while rest >= np.uint64(100):
        quotient = rest // np.uint64(100)
        _store(buf, cursor - 2, _PAIR_WORDS[rest - quotient * np.uint64(100)])
        rest = quotient
        cursor -= 2
    if rest >= np.uint64(10):
        _store(buf, cursor - 2, _PAIR_WORDS[rest])
    else:
        buf[cursor - 1] = np.uint8(48 + np.int64(rest))


@njit
def put_uint(buf, pos, value, min_digits=1):
    """Write a non-negative integer in decimal, zero-padded to at least ``min_digits``."""
    digits = count_digits(value)
    for _ in range(min_digits - digits):
        buf[pos] = 48
        pos += 1
    _put_all_digits_backwards(buf, pos + digits, np.uint64(value))
    return pos + digits


@njit
def put_fixed(buf, pos, value, decimals):
    """Write a fixed-point value with exactly ``decimals`` digits after the point (``"0.000"``)."""
    if value < 0:
        buf[pos] = 45
        pos += 1
        value = -value
    rest = np.uint64(value)
    end = pos + max(count_digits(value), decimals + 1) + (decimals > 0)
    cursor = end
    if decimals > 0:
        left = decimals
        while left >= 2:
            quotient = rest // np.uint64(100)
            _store(buf, cursor - 2, _PAIR_WORDS[rest - quotient * np.uint64(100)])
            rest = quotient
            cursor -= 2
            left -= 2
        if left == 1:
            buf[cursor - 1] = np.uint8(48 + np.int64(rest % np.uint64(10)))
            rest //= np.uint64(10)
            cursor -= 1
        cursor -= 1
        buf[cursor] = 46
    _put_all_digits_backwards(buf, cursor, rest)
    return end


@njit
def put_trimmed(buf, pos, value, decimals):
    """Write a fixed-point value without trailing zeros (``"61800.2"``, ``"0"``), as JavaScript prints it."""
    while decimals > 0 and value % 10 == 0:
        value //= 10
        decimals -= 1
    return put_fixed(buf, pos, value, decimals)


#: Slots of a :func:`new_text_cache` (direct-mapped on the low bits of the key) and bytes per slot.
CACHE_SLOTS = 4096
_SLOT_BYTES = 32
#: With at most this many decimals a non-negative int64 fixed-point text (<= 21 bytes) fits a slot.
_MAX_CACHED_DECIMALS = 10


def new_text_cache() -> tuple[np.ndarray, np.ndarray]:
    """Empty cache for :func:`put_cached_fixed`: ``(keys_and_lengths, text)``."""
    return np.full((CACHE_SLOTS, 2), -1, dtype=np.int64), np.zeros(CACHE_SLOTS * _SLOT_BYTES, dtype=np.uint8)


@njit
def put_cached_fixed(buf, pos, key, units, decimals, trimmed, cache, text):
    """Write ``key * units`` like :func:`put_fixed` (``trimmed``: :func:`put_trimmed`), remembering the text.

    For small non-negative keys that repeat (price ticks: the same few thousand prices are written
    over and over): the text of ``key`` is kept in slot ``key % CACHE_SLOTS`` of ``(cache, text)``
    from :func:`new_text_cache`, and a hit is a copy of a few 8-byte words. A cache serves one ``(units,
    decimals, trimmed)`` only. The bytes are the same as without the cache.
    """
    if key < 0 or decimals > _MAX_CACHED_DECIMALS:
        return put_trimmed(buf, pos, key * units, decimals) if trimmed else put_fixed(buf, pos, key * units, decimals)
    slot = key & (CACHE_SLOTS - 1)
    start = slot * _SLOT_BYTES
    if cache[slot, 0] != key:
        if trimmed:
            end = put_trimmed(text, start, key * units, decimals)
        else:
            end = put_fixed(text, start, key * units, decimals)
        cache[slot, 0] = key
        cache[slot, 1] = end - start
    length = cache[slot, 1]
    _copy_words(buf, pos, text, start, length)
    return pos + length
