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

import numpy as np
import pandas as pd

from gpu_lpi.validation import json_float

#: The spec's stability rule: θ ± this many bps.
THETA_DELTA_BPS = 2.0
#: Heatmaps drawn, at most (pairs of swept names, in the spec's order).
MAX_HEATMAPS = 3


def _key(value):
    """A grid value as a lookup key: numbers to 9 decimals (θ* − 2 finds 3.0 from 5.0)."""
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return round(float(value), 9) if numeric else value


def _lookup(params: pd.DataFrame):
    """A function from a grid point (a value per swept name) to its row of ``params``, or None."""
    names = list(params.columns)
    rows = {tuple(_key(row[n]) for n in names): i for i, row in enumerate(params.to_dict("records"))}
    return lambda point: rows.get(tuple(_key(point[n]) for n in names))


def axis(values) -> list:
    """A swept name's values in grid order: ascending numbers, else as listed."""
    values = list(values)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return sorted(values) if numeric else values


def neighbours(params: pd.DataFrame, grid: dict[str, tuple], chosen: int) -> list[int]:
    """Rows of ``params`` (one per trial, a column per swept name) one grid step from ``chosen``."""
    point, row_of = params.iloc[chosen].to_dict(), _lookup(params)
    found = []
    for name, values in grid.items():
        order = axis(values)
        at = [_key(v) for v in order].index(_key(point[name]))
        for step in (at - 1, at + 1):
            row = row_of({**point, name: order[step]}) if 0 <= step < len(order) else None
            if row is not None:
                found.append(row)
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
    point, row_of = params.iloc[chosen].to_dict(), _lookup(params)
    maps = []
    for x, y in itertools.islice(itertools.combinations(grid, 2), MAX_HEATMAPS):
        xs, ys = axis(grid[x]), axis(grid[y])
        values = []
        for y_value in ys:
            line = []
            for x_value in xs:
                row = row_of({**point, x: x_value, y: y_value})
                line.append(None if row is None else json_float(performance[row]))
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
    point, row_of = params.iloc[chosen].to_dict(), _lookup(params)
    sides = {label: row_of({**point, name: point[name] + sign * delta}) for label, sign in (("minus", -1), ("plus", 1))}
    for symbol in per_symbol.columns:
        own = per_symbol[symbol].iloc[chosen]
        entry = {"symbol": symbol, "chosen_bps": json_float(own), "theta": point[name]}
        judged = []
        for label, row in sides.items():
            value = np.nan if row is None else per_symbol[symbol].iloc[row]
            entry[f"{label}_bps"] = json_float(value)
            if row is not None:
                judged.append(np.isfinite(value) and value >= floor * own)
        if not judged:
            entry.update({"pass": None, "reason": f"{name} ± {delta:g} not in the sweep"})
        elif not (np.isfinite(own) and own > 0):
            entry.update({"pass": False, "reason": "not positive after costs at the chosen point"})
        else:
            entry.update({"pass": bool(all(judged)), "reason": None if all(judged) else "performance vanishes"})
        out["per_symbol"].append(entry)
    return out
