"""Overfitting control (spec §9.3; DESIGN.md §4 step 9): purged and combinatorial purged
cross-validation (:mod:`.cv`, :mod:`.selection`), probabilistic and deflated Sharpe ratios
(:mod:`.sharpe`), multiple testing (:mod:`.multiple_testing`), parameter stability
(:mod:`.stability`), cross-symbol robustness (:mod:`.robustness`), over a table of trial returns
(:mod:`.trials`); :func:`gpu_lpi.validation.sweep.write_validation` writes ``RUN/validation.json``.
"""

from __future__ import annotations

import math


def json_float(value) -> float | None:
    """A number for ``validation.json``: a float, None for NaN or infinity."""
    value = float(value)
    return value if math.isfinite(value) else None
