"""The alpha-tick grid (DESIGN.md §4 step 1) and how rows map onto it.

Ticks are absolute: tick number ``a`` is the time ``a·Δ`` ns since the epoch, so every run and every
chunk puts ticks at the same instants. Book state is taken *as of* a tick (the last row with
``ts <= t``); trades are aggregated over ``(t − Δ, t]``, so a trade at ``t − Δ`` exactly belongs to
the previous tick. Nothing at ``t`` depends on rows with ``ts > t``.

A chunk computing the ticks ``[start, end)`` loads a longer grid that begins ``history`` ticks
earlier, rounded down to a multiple of :func:`block_ticks` so that trailing-window sums are formed
from the same partial sums in every chunk (see :mod:`kernels.tick_features`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpu_lpi.params import FeatureParams
from gpu_lpi.robust import block_length


@dataclass(frozen=True)
class TickGrid:
    """A run of consecutive ticks.

    Attributes
    ----------
    first_tick : int
        Absolute number of the first loaded tick (its time is ``first_tick·tick_ns``).
    count : int
        Number of loaded ticks.
    tick_ns : int
        Δ in nanoseconds.
    output_start : int
        Index of the first tick the caller asked for; earlier ticks are history.
    """

    first_tick: int
    count: int
    tick_ns: int
    output_start: int

    @property
    def times(self) -> np.ndarray:
        """Tick times (int64 ns) of all loaded ticks."""
        return (self.first_tick + np.arange(self.count, dtype=np.int64)) * self.tick_ns

    @property
    def start_ns(self) -> int:
        """Time of the first loaded tick."""
        return self.first_tick * self.tick_ns

    @property
    def end_ns(self) -> int:
        """Time of the last loaded tick (inclusive)."""
        return (self.first_tick + self.count - 1) * self.tick_ns

    def subsample_times(self, per_tick: int) -> np.ndarray:
        """``per_tick·count + 1`` times: ``t_i − Δ + jΔ/n`` for every tick ``i`` and ``j = 0..n``."""
        steps = np.arange(self.count * per_tick + 1, dtype=np.int64)
        return self.start_ns - self.tick_ns + (steps * self.tick_ns) // per_tick

    def rows_per_tick(self, ts: np.ndarray, xp=np):
        """``start[i]..start[i+1]`` are the rows of sorted ``ts`` falling in tick ``i``'s ``(t − Δ, t]``.

        Rows before the first tick's interval or after the last tick are excluded.
        """
        # row r belongs to the first tick with t >= ts[r]
        bounds = xp.asarray(self.start_ns - self.tick_ns + self.tick_ns * np.arange(self.count + 1,
                                                                                     dtype=np.int64))
        return xp.searchsorted(ts, bounds, side="right").astype(xp.int64)


def block_ticks(params: FeatureParams) -> int:
    """Block length of the longest trailing window's sums (:func:`gpu_lpi.robust.block_length`)."""
    longest = max(params.window_ticks, params.hours_to_ticks(params.adv_window_hours),
                  params.hours_to_ticks(params.depth_window_hours))
    return block_length(longest)


def make_grid(start_ns: int, end_ns: int, params: FeatureParams) -> TickGrid:
    """The grid of ticks with ``start_ns <= t < end_ns``, plus the history its windows need."""
    tick_ns = params.tick_ns
    first_output = -(-int(start_ns) // tick_ns)
    last_output = -(-int(end_ns) // tick_ns) - 1
    if last_output < first_output:
        raise ValueError(f"no tick in [{start_ns}, {end_ns}) with Δ = {params.tick_ms} ms")
    block = block_ticks(params)
    first_tick = ((first_output - params.history_ticks) // block) * block
    return TickGrid(first_tick=first_tick, count=last_output - first_tick + 1, tick_ns=tick_ns,
                    output_start=first_output - first_tick)


def as_of(ts: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the last row of sorted ``ts`` with ``ts <= t`` for each time (-1: none)."""
    return np.searchsorted(ts, times, side="right").astype(np.int64) - 1
