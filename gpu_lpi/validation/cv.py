"""Purged K-fold and combinatorial purged cross-validation over time blocks (López de Prado,
*Advances in Financial Machine Learning*, ch. 7 and 12).

Samples carry a label span ``[t0, t1]`` (an event's decision time and the end of its markout
horizon; a day's first and last nanosecond). The time axis is cut into ``n_groups`` contiguous
blocks (:func:`time_blocks`); a sample belongs to the block holding its ``t0``. A split tests ``k``
blocks and trains on the others, less

* **purged** samples: training samples whose span overlaps the *test window* of a test block —
  from the block's start to the later of its end and the last ``t1`` of its own samples (a test
  label that reaches past its block purges the training samples it reaches);
* **embargoed** samples: training samples starting within ``embargo_ns`` after a test window ends
  (serial correlation that outlives the labels).

``k = 1`` is purged K-fold (``n_groups`` splits, each block tested once). ``k >= 2`` is
combinatorial purged CV: the C(N, k) choices of test blocks; each block is tested in C(N−1, k−1)
of them, so the splits' test predictions assemble into φ = k/N·C(N, k) = C(N−1, k−1) complete
backtest paths (:func:`backtest_paths`), for any k.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """One train/test split: the test blocks and the row indices of each side (sorted)."""

    test_groups: tuple[int, ...]
    train: np.ndarray
    test: np.ndarray


def time_blocks(t0, n_groups: int) -> np.ndarray:
    """Edges of ``n_groups`` contiguous time blocks holding about equally many distinct ``t0``
    values: ``edges[g] <= t0 < edges[g + 1]`` for block ``g``.

    Raises
    ------
    ValueError
        Fewer distinct start times than blocks.
    """
    times = np.unique(np.asarray(t0, dtype=np.int64))
    if times.size < n_groups:
        raise ValueError(f"{times.size} distinct sample times cannot fill {n_groups} time blocks")
    cuts = times[(np.arange(1, n_groups) * times.size) // n_groups]
    return np.concatenate([[times[0]], cuts, [times[-1] + 1]]).astype(np.int64)


def block_of(t0, edges: np.ndarray) -> np.ndarray:
    """The block of each sample (by its ``t0``)."""
    return np.searchsorted(edges, np.asarray(t0, dtype=np.int64), side="right") - 1


def n_paths(n_groups: int, k: int) -> int:
    """Backtest paths of combinatorial purged CV: φ = k/N·C(N, k) = C(N−1, k−1)."""
    return math.comb(n_groups - 1, k - 1)


def split_combinations(n_groups: int, k: int) -> list[tuple[int, ...]]:
    """The C(N, k) choices of test blocks, in lexicographic order (the splits' order)."""
    return list(itertools.combinations(range(n_groups), k))


def backtest_paths(n_groups: int, k: int) -> np.ndarray:
    """Which split's test prediction each path uses for each block.

    Returns
    -------
    numpy.ndarray
        ``[n_paths(N, k), N]`` split indices (into :func:`split_combinations`): path ``p`` takes
        block ``g`` from the ``p``-th split (in order) that tests ``g``. Every split's every test
        block is used by exactly one path.
    """
    combos = split_combinations(n_groups, k)
    testing = [[s for s, combo in enumerate(combos) if g in combo] for g in range(n_groups)]
    return np.array(testing, dtype=np.int64).T.reshape(n_paths(n_groups, k), n_groups)


def purged_splits(t0, t1, n_groups: int, k: int = 1, embargo_ns: int = 0, purge: bool = True,
                  edges: np.ndarray | None = None) -> list[Split]:
    """The splits of purged (combinatorial) cross-validation (module docstring).

    Parameters
    ----------
    t0, t1 : array of int
        Each sample's label span in ns, ``t0 <= t1``.
    n_groups : int
        Time blocks N (>= 2).
    k : int, default 1
        Test blocks per split, 1 <= k < N.
    embargo_ns : int, default 0
        Embargo after each test window.
    purge : bool, default True
        False keeps overlapping training samples: plain blocked K-fold, for measuring what purging
        removes (a leak).
    edges : array, optional
        Block edges (:func:`time_blocks` of ``t0`` by default).

    Returns
    -------
    list of Split
        In the order of :func:`split_combinations`.
    """
    t0, t1 = np.asarray(t0, dtype=np.int64), np.asarray(t1, dtype=np.int64)
    if n_groups < 2 or not 1 <= k < n_groups:
        raise ValueError(f"expected 2 <= n_groups and 1 <= k < n_groups, got n_groups={n_groups}, k={k}")
    if np.any(t1 < t0):
        raise ValueError("every label span needs t0 <= t1")
    edges = time_blocks(t0, n_groups) if edges is None else edges
    groups = block_of(t0, edges)
    # the test window of each block: its start to the later of its end and its samples' last t1
    ends = edges[1:].copy()
    np.maximum.at(ends, groups, t1 + 1)
    splits = []
    for combo in split_combinations(n_groups, k):
        tested = np.isin(groups, combo)
        train = ~tested
        for g in combo:
            start, end = edges[g], ends[g]
            if purge:
                train &= ~((t0 < end) & (t1 >= start))
            train &= ~((t0 >= end) & (t0 < end + embargo_ns))
        splits.append(Split(test_groups=combo, train=np.flatnonzero(train), test=np.flatnonzero(tested)))
    return splits
