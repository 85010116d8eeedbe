"""Purged K-fold and combinatorial purged CV (issue 10 item 1): purging and the embargo on a case
worked by hand, the invariants on random spans, the backtest paths for k = 1, 2, 3, and a planted
leak that scores well without purging and collapses with it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gpu_lpi.validation.cv import backtest_paths, block_of, n_paths, purged_splits, split_combinations, time_blocks
from gpu_lpi.validation.selection import cross_validate


def test_purging_and_embargo_on_a_case_worked_by_hand():
    """100 samples at t = 0..99 with spans [t, t + 5]; 5 blocks of 20; testing block 1 (t 20..39):
    its window runs to 45 (the last test label ends at 44), so training samples starting at 15..19
    (their labels reach 20..24) and at 40..44 are purged, and an embargo of 3 drops 45..47."""
    t0 = np.arange(100)
    split = purged_splits(t0, t0 + 5, 5, 1, embargo_ns=3)[1]
    assert split.test_groups == (1,)
    assert split.test.tolist() == list(range(20, 40))
    assert split.train.tolist() == list(range(0, 15)) + list(range(48, 100))
    no_purge = purged_splits(t0, t0 + 5, 5, 1, embargo_ns=0, purge=False)[1]
    assert no_purge.train.tolist() == list(range(0, 20)) + list(range(40, 100))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_no_training_label_overlaps_a_test_window_and_the_embargo_holds(k):
    rng = np.random.default_rng(k)
    t0 = np.sort(rng.integers(0, 10_000, 600))
    t1 = t0 + rng.integers(0, 400, t0.size)
    embargo = 150
    edges = time_blocks(t0, 6)
    groups = block_of(t0, edges)
    splits = purged_splits(t0, t1, 6, k, embargo_ns=embargo)
    assert len(splits) == math.comb(6, k)
    for split in splits:
        assert set(groups[split.test]) == set(split.test_groups)
        assert not set(split.train) & set(split.test)
        for g in split.test_groups:
            members = groups == g
            start, end = edges[g], max(edges[g + 1], t1[members].max() + 1)
            train_t0, train_t1 = t0[split.train], t1[split.train]
            assert not np.any((train_t0 < end) & (train_t1 >= start))              # purged
            assert not np.any((train_t0 >= end) & (train_t0 < end + embargo))     # embargoed
        # nothing more than that is dropped
        kept = np.ones(t0.size, bool)
        kept[split.test] = False
        for g in split.test_groups:
            start, end = edges[g], max(edges[g + 1], t1[groups == g].max() + 1)
            kept &= ~((t0 < end) & (t1 >= start)) & ~((t0 >= end) & (t0 < end + embargo))
        assert np.array_equal(np.flatnonzero(kept), split.train)


@pytest.mark.parametrize("n_groups, k, expected", [(6, 1, 1), (6, 2, 5), (6, 3, 10), (5, 3, 6), (10, 2, 9)])
def test_combinatorial_cv_forms_k_over_n_times_c_n_k_paths(n_groups, k, expected):
    assert n_paths(n_groups, k) == expected == k * math.comb(n_groups, k) // n_groups
    paths = backtest_paths(n_groups, k)
    combos = split_combinations(n_groups, k)
    assert paths.shape == (expected, n_groups)
    for path in paths:          # every block once per path, taken from a split that tests it
        assert all(g in combos[s] for g, s in enumerate(path))
    used = sorted((int(s), g) for path in paths for g, s in enumerate(path))
    assert used == sorted((s, g) for s, combo in enumerate(combos) for g in combo)   # each test block once


def _nearest_neighbour_score(seed: int, purge: bool) -> float:
    """Labels are sums of 100 increments ([t, t + 99]), a sample per t; the feature is the sample's
    time, which peeks at the test labels through the neighbours' overlapping ones; a 1-nearest-
    neighbour regression on it, judged by the correlation of prediction and label out of sample."""
    rng = np.random.default_rng(seed)
    span, count = 100, 20_000
    walk = np.concatenate([[0.0], np.cumsum(rng.normal(size=count + span))])
    t0 = np.arange(count)
    label = walk[t0 + span] - walk[t0]
    feature = t0.astype(np.float64)
    prediction = np.empty(count)
    for split in purged_splits(t0, t0 + span - 1, 100, 1, purge=purge):
        train = split.train
        at = np.searchsorted(feature[train], feature[split.test])
        left, right = train[np.clip(at - 1, 0, train.size - 1)], train[np.clip(at, 0, train.size - 1)]
        closer = np.abs(feature[left] - feature[split.test]) <= np.abs(feature[right] - feature[split.test])
        prediction[split.test] = label[np.where(closer, left, right)]
    return float(np.corrcoef(prediction, label)[0, 1])


def test_a_planted_leak_scores_well_without_purging_and_collapses_with_it():
    leaky = [_nearest_neighbour_score(seed, purge=False) for seed in range(4)]
    purged = [_nearest_neighbour_score(seed, purge=True) for seed in range(4)]
    assert min(leaky) > 0.35, leaky
    assert abs(np.mean(purged)) < 0.1 and max(map(abs, purged)) < 0.25, purged


def test_choosing_a_trial_on_training_blocks_and_judging_it_on_test_blocks():
    """Trial "b" earns +1 bps in the first half and -1 in the second; "a" the reverse, "c" 0 with
    noise. Each split chooses on its training blocks and is judged on its test blocks: with two
    blocks, each half's chosen trial is the other half's winner, so out of sample it loses."""
    times = np.arange(0, 200) * 10**9
    rows = []
    rng = np.random.default_rng(0)
    for trial, sign in (("a", -1.0), ("b", 1.0), ("c", 0.0)):
        first = np.where(times < 100 * 10**9, sign, -sign) + rng.normal(0, 0.1, times.size)
        rows.append(pd.DataFrame({"trial": trial, "symbol": "X", "t0": times, "t1": times, "period": "d",
                                  "ret": first}))
    table = pd.concat(rows, ignore_index=True)
    record, oos = cross_validate(table, ["a", "b", "c"], 2, 1, 0, "mean_bps", 5)
    assert [f["chosen"] for f in record["folds"]] == ["a", "b"]     # trained on the other half
    assert record["oos"]["mean_bps"] == pytest.approx(-1.0, abs=0.05)
    assert record["pbo"] == 1.0 and record["n_paths"] == 1
    assert len(oos) == 200 and record["paths"][0]["n"] == 200
