"""Integer Unix times of any unit to nanoseconds: the one time-unit rule every reader uses.

The unit of a time column of a file is chosen by the digit count of its first value: 10 digits are
seconds, 13 milliseconds, 16 microseconds, 19 nanoseconds (what Binance, Tardis and capture tools
write from 2001 to 2286). Any other count (0, negatives, a truncated or padded stamp) is rejected,
never guessed. Every later value of that column in the file must have the same unit
(:class:`FileUnit`): a value of another digit count is rejected too, since a file that mixes units
is damaged (a clock in seconds among milliseconds is not a time the file's writer meant).
"""

from __future__ import annotations

import numpy as np

#: Nanoseconds per unit, by digit count.
NS_PER_UNIT_BY_DIGITS = {10: 1_000_000_000, 13: 1_000_000, 16: 1_000, 19: 1}
#: Unit names, by nanoseconds per unit.
UNIT_NAMES = {1_000_000_000: "s", 1_000_000: "ms", 1_000: "µs", 1: "ns"}
#: Rejection reason suffix for a value of another digit count.
BAD_UNIT = "is not 10, 13, 16 or 19 digits (s, ms, µs, ns)"
#: Rejection reason suffix for a value in another unit than the first of its file and column.
OTHER_UNIT = "in another unit than the rest of the file"

_POWERS_OF_TEN = 10 ** np.arange(19, dtype=np.int64)


def ns_per_unit(values) -> np.ndarray:
    """The unit of each integer Unix time by its digit count, in ns per unit (0: no known unit)."""
    values = np.asarray(values, dtype=np.int64)
    digits = np.searchsorted(_POWERS_OF_TEN, values, side="right")  # 0 for values < 1
    scale = np.zeros(values.shape, dtype=np.int64)
    for count, ns in NS_PER_UNIT_BY_DIGITS.items():
        scale[digits == count] = ns
    return scale


def epoch_to_ns(values) -> tuple[np.ndarray, np.ndarray]:
    """Convert integer Unix times to nanoseconds, choosing each value's unit by its digit count.

    Parameters
    ----------
    values : array-like of int64
        Unix times in seconds (10 digits), ms (13), µs (16) or ns (19).

    Returns
    -------
    ns : numpy.ndarray of int64
        The times in nanoseconds (0 where ``bad``).
    bad : numpy.ndarray of bool
        Values whose digit count is none of those (including zero and negative values).
    """
    values = np.asarray(values, dtype=np.int64)
    scale = ns_per_unit(values)
    return values * scale, scale == 0


class FileUnit:
    """The unit of one time column of one file: that of its first value of a known digit count.

    Fed the column block by block, in file order (:meth:`to_ns`).
    """

    __slots__ = ("ns_per_unit",)

    def __init__(self):
        self.ns_per_unit: int | None = None

    @property
    def name(self) -> str:
        """The unit's name (``ms``, ...); ``?`` while no value has been met."""
        return UNIT_NAMES.get(self.ns_per_unit, "?")

    def settle(self, values, order=None) -> None:
        """Take the file's unit from ``values`` unless it is known: that of the first value of a
        known digit count, first in ``order`` (an array of sort keys, e.g. line numbers) if given."""
        if self.ns_per_unit is not None:
            return
        scale = ns_per_unit(values)
        known = np.flatnonzero(scale)
        if known.size:
            first = known[np.argmin(np.asarray(order)[known])] if order is not None else known[0]
            self.ns_per_unit = int(scale[first])

    def to_ns(self, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Convert the next values of the column (settling the unit first if needed).

        Returns
        -------
        ns : numpy.ndarray of int64
            The times in nanoseconds (0 where rejected).
        bad_digits : numpy.ndarray of bool
            Values of no known digit count (see :data:`BAD_UNIT`).
        other_unit : numpy.ndarray of bool
            Values of a known digit count but another unit than the file's (see :data:`OTHER_UNIT`).
        """
        values = np.asarray(values, dtype=np.int64)
        self.settle(values)
        scale = ns_per_unit(values)
        bad_digits = scale == 0
        other_unit = ~bad_digits & (scale != self.ns_per_unit)
        return np.where(bad_digits | other_unit, 0, values * scale), bad_digits, other_unit
