"""Integer Unix times of any unit to nanoseconds: the one time-unit rule every reader uses.

The unit of each value is chosen by its digit count: 10 digits are seconds, 13 milliseconds, 16
microseconds, 19 nanoseconds (what Binance, Tardis and capture tools write from 2001 to 2286).
Any other count (0, negatives, a truncated or padded stamp) is rejected, never guessed.
"""

from __future__ import annotations

import numpy as np

#: Nanoseconds per unit, by digit count.
NS_PER_UNIT_BY_DIGITS = {10: 1_000_000_000, 13: 1_000_000, 16: 1_000, 19: 1}
#: Rejection reason suffix for a value of another digit count.
BAD_UNIT = "is not 10, 13, 16 or 19 digits (s, ms, µs, ns)"

_POWERS_OF_TEN = 10 ** np.arange(19, dtype=np.int64)


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
    digits = np.searchsorted(_POWERS_OF_TEN, values, side="right")  # 0 for values < 1
    scale = np.zeros(values.shape, dtype=np.int64)
    for count, ns_per_unit in NS_PER_UNIT_BY_DIGITS.items():
        scale[digits == count] = ns_per_unit
    return values * scale, scale == 0
