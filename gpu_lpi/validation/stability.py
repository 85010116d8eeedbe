"""Parameter stability of a sweep's chosen point (spec §9.3: "performance should not vanish if θ
changes by ± 2 bps").

The sweep is a Cartesian grid (``[sweep]``: values per name). A grid point's *neighbours* differ
from it by one step, up or down, in exactly one swept name (numbers in ascending order, other
values in the spec's order). The **stability score** is the mean performance of the chosen point's
neighbours over its own: 1 = flat, near 0 = a spike that vanishes one step away, NaN where the
chosen point's performance is not positive or it has no neighbour with one. **Heatmaps** show the
performance over each pair of swept names with the others at the chosen values. The **θ rule**:
per symbol, the mean return after costs at θ* − 2 and θ* + 2 bps (the other names at the chosen
values) must each keep at least ``floor`` of the chosen point's, which must be positive; a side not
in the grid is not judged, and with neither the rule cannot be applied (``pass`` None).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from gpu_lpi.validation import json_float

#: The spec's stability rule: θ ± this many bps.
THETA_DELTA_BPS = 2.0
#: Heatmaps drawn, at most (pairs of swept names, in the spec's order).
MAX_HEATMAPS = 3


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def axis(values) -> list:
    """A swept name's values in grid order: ascending numbers, else as listed."""
    values = list(values)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return sorted(values) if numeric else values


def _rows_where(params: pd.DataFrame, wanted: dict) -> list[int]:
    return [i for i, row in enumerate(params.to_dict("records")) if all(_same(row[k], v) for k, v in wanted.items())]


def neighbours(params: pd.DataFrame, grid: dict[str, tuple], chosen: int) -> list[int]:
    """Rows of ``params`` (one per trial, a column per swept name) one grid step from ``chosen``."""
    point = params.iloc[chosen].to_dict()
    found = []
    for name, values in grid.items():
        order = axis(values)
        at = next(i for i, v in enumerate(order) if _same(v, point[name]))
        for step in (at - 1, at + 1):
            if 0 <= step < len(order):
                found += _rows_where(params, {**point, name: order[step]})
    return found


def stability_score(performance: np.ndarray, chosen: int, rows: list[int]) -> float | None:
    """Mean of ``performance[rows]`` (finite ones) over ``performance[chosen]`` (module docstring)."""
    own = performance[chosen]
    around = performance[rows] if rows else np.array([])
    around = around[np.isfinite(around)]
    if not np.isfinite(own) or own <= 0 or not around.size:
        return None
    return float(around.mean() / own)


def heatmaps(params: pd.DataFrame, grid: dict[str, tuple], performance: np.ndarray, chosen: int) -> list[dict]:
    """Per pair of swept names (at most :data:`MAX_HEATMAPS`): the performance on their grid with
    the other names at the chosen values (``values[i][j]``: the ``i``-th y value, ``j``-th x)."""
    point = params.iloc[chosen].to_dict()
    maps = []
    for x, y in itertools.islice(itertools.combinations(grid, 2), MAX_HEATMAPS):
        xs, ys = axis(grid[x]), axis(grid[y])
        values = []
        for y_value in ys:
            line = []
            for x_value in xs:
                rows = _rows_where(params, {**point, x: x_value, y: y_value})
                line.append(json_float(performance[rows[0]]) if rows else None)
            values.append(line)
        maps.append({"x": x, "y": y, "x_values": xs, "y_values": ys, "values": values,
                     "chosen": [point[x], point[y]]})
    return maps


def theta_rule(per_symbol: pd.DataFrame, params: pd.DataFrame, chosen: int, floor: float,
               name: str = "theta_bps", delta: float = THETA_DELTA_BPS) -> dict:
    """The θ ± 2 bps rule per symbol (module docstring).

    Parameters
    ----------
    per_symbol : pandas.DataFrame
        Mean return after costs, one row per trial (as ``params``), one column per symbol (NaN where
        a trial has no returns there).
    params : pandas.DataFrame
        One row per trial, a column per swept name.
    chosen : int
    floor : float
        Share of the chosen point's performance each side must keep.
    """
    out = {"name": name, "delta_bps": delta, "floor": floor, "per_symbol": []}
    if name not in params.columns:
        out["reason"] = f"{name} is not swept"
        return out
    point = params.iloc[chosen].to_dict()
    sides = {label: _rows_where(params, {**point, name: point[name] + sign * delta})
             for label, sign in (("minus", -1), ("plus", 1))}
    for symbol in per_symbol.columns:
        own = per_symbol[symbol].iloc[chosen]
        entry = {"symbol": symbol, "chosen_bps": json_float(own), "theta": point[name]}
        judged = []
        for label, rows in sides.items():
            value = per_symbol[symbol].iloc[rows[0]] if rows else np.nan
            entry[f"{label}_bps"] = json_float(value) if rows else None
            if rows:
                judged.append(np.isfinite(value) and value >= floor * own)
        if not judged:
            entry.update({"pass": None, "reason": f"{name} ± {delta:g} not in the sweep"})
        elif not (np.isfinite(own) and own > 0):
            entry.update({"pass": False, "reason": "not positive after costs at the chosen point"})
        else:
            entry.update({"pass": bool(all(judged)), "reason": None if all(judged) else "performance vanishes"})
        out["per_symbol"].append(entry)
    return out
