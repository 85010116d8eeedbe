"""Exact rolling median / MAD (CPU sliding path, wavelet bodies, CUDA kernel), block-aligned
trailing mean / std and robust z."""

import textwrap

import numpy as np
import pytest

from gpu_lpi.robust import (
    MAD_TO_SIGMA,
    block_length,
    robust_z,
    rolling_median_mad,
    trailing_mean_std,
)
from kernels.rolling_order_stats import (
    rank_valid_values,
    rolling_median_mad_cpu,
    rolling_median_mad_wavelet,
)
from kernels.sliding_order_stats import sliding_median_mad
from kernels.wavelet_matrix import build_wavelet_matrix
from tests import reference
from tests.conftest import cuda_device_present, run_under_cuda_simulator
SIZE = 240
WINDOWS = [1, 2, 3, 4, 7, 16, 51, SIZE + 7]


def make_series(kind, size=SIZE, seed=0):
    """A test series of one kind: gaps, ties, heavy tails and constant runs."""
    rng = np.random.default_rng(seed)
    if kind == "normal_gaps":
        values = rng.normal(size=size)
        values[rng.random(size) < 0.2] = np.nan
        values[size // 3 : size // 3 + 25] = np.nan  # a gap longer than small windows
    elif kind == "integer_ties":
        values = rng.integers(0, 4, size).astype(np.float64)
        values[rng.random(size) < 0.1] = np.nan
    elif kind == "student_t":
        values = rng.standard_t(1.5, size) * 1e3
        values[rng.random(size) < 0.05] = np.nan
    elif kind == "constant_runs":
        values = np.repeat(rng.normal(size=size // 20 + 1), 20)[:size]
        values[size // 2 :] = 0.0
        values[rng.random(size) < 0.02] = 7.5  # sparse spikes on a zero run
    elif kind == "all_nan":
        values = np.full(size, np.nan)
    else:
        raise ValueError(kind)
    return values


KINDS = ["normal_gaps", "integer_ties", "student_t", "constant_runs", "all_nan"]


def assert_same(actual, expected):
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("min_periods", [None, 1, 3])
def test_cpu_path_is_exact(kind, window, min_periods):
    values = make_series(kind)
    if min_periods is not None:
        min_periods = min(min_periods, window)
    periods = window if min_periods is None else min_periods
    expected = reference.rolling_median_mad(values, window, periods)
    assert_same(rolling_median_mad(values, window, min_periods, device="cpu"), expected)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("window", [1, 2, 16, 51, SIZE + 7])
def test_wavelet_query_body_on_cpu_is_exact(kind, window):
    """The query body the CUDA kernel runs, compiled with njit, against the reference."""
    values = make_series(kind, seed=1)
    expected = reference.rolling_median_mad(values, window, 1)
    assert_same(rolling_median_mad_wavelet(values, window, 1), expected)


def test_chunked_cpu_equals_one_chunk():
    values = make_series("student_t", size=5000, seed=2)
    values[1000:1600] = np.nan
    one = rolling_median_mad_cpu(values, 300, 10)
    valid = ~np.isnan(values)
    order = np.argsort(values[valid], kind="stable")
    ranks = np.full(values.size, -1, dtype=np.int64)
    ranks[np.flatnonzero(valid)[order]] = np.arange(order.size)
    for chunk_count in (1, 3, 7):
        assert_same(sliding_median_mad(ranks, values[valid][order], 300, 10, chunk_count), one)


def test_cpu_and_wavelet_paths_agree_on_longer_series():
    values = make_series("integer_ties", size=30_000, seed=3)
    values[::7] += make_series("student_t", size=30_000, seed=4)[::7]
    for window in (1000, 4096, 25_000):
        assert_same(
            rolling_median_mad_cpu(values, window, 1),
            rolling_median_mad_wavelet(values, window, 1),
        )


def test_median_matches_bottleneck_on_a_long_series():
    bottleneck = pytest.importorskip("bottleneck")
    rng = np.random.default_rng(5)
    values = rng.standard_t(1.5, 300_000)
    values[rng.random(values.size) < 0.05] = np.nan
    median, mad = rolling_median_mad(values, 20_000, 1)
    np.testing.assert_array_equal(median, bottleneck.move_median(values, 20_000, min_count=1))
    assert np.all(mad[1:] >= 0)


def test_wavelet_matrix_levels_partition_ranks():
    """Each level's zero count and word directory are consistent with the ranks."""
    values = make_series("normal_gaps", size=1000, seed=6)
    ranks, sorted_values, valid_before = rank_valid_values(values)
    matrix = build_wavelet_matrix(ranks)
    size = ranks.size
    levels = matrix.level_zeros.size
    assert levels == int(size - 1).bit_length()
    bits = np.unpackbits(
        matrix.directory[:, :-1, 0].copy().view(np.uint8), axis=1, bitorder="little"
    )[:, :size]
    np.testing.assert_array_equal(matrix.level_zeros, size - bits.sum(axis=1))
    padded = np.pad(bits, ((0, 0), (0, -size % 64)))
    zeros_before_words = np.cumsum(64 - padded.reshape(levels, -1, 64).sum(axis=2), axis=1)
    np.testing.assert_array_equal(matrix.directory[:, 1:, 1], zeros_before_words)
    np.testing.assert_array_equal(sorted_values[ranks], values[~np.isnan(values)])
    assert valid_before[-1] == size


def test_float32_and_integer_inputs_are_read_as_float64():
    values = make_series("integer_ties", seed=7)
    expected = reference.rolling_median_mad(values.astype(np.float32).astype(np.float64), 9, 1)
    assert_same(rolling_median_mad(values.astype(np.float32), 9, 1), expected)
    assert_same(rolling_median_mad(np.arange(10), 4, 1), reference.rolling_median_mad(
        np.arange(10.0), 4, 1))


def test_empty_series():
    median, mad = rolling_median_mad(np.array([]), 5)
    assert median.size == 0 and mad.size == 0


@pytest.mark.parametrize(
    "arguments",
    [dict(window=0), dict(window=2.5), dict(window=3, min_periods=4),
     dict(window=3, min_periods=-1), dict(window=3, device="tpu")],
)
def test_bad_arguments_raise(arguments):
    with pytest.raises(ValueError):
        rolling_median_mad(np.ones(5), **arguments)


def test_robust_z_mad_scale_is_the_spec_formula():
    values = make_series("student_t", seed=8)
    median, mad = reference.rolling_median_mad(values, 31, 5)
    expected = (values - median) / (MAD_TO_SIGMA * mad + 1e-12)
    np.testing.assert_array_equal(robust_z(values, 31, 5, scale="mad"), expected)


def test_robust_z_floor_keeps_sparse_features_finite():
    values = np.zeros(2000)
    values[[700, 1500, 1501]] = [3.0, 250.0, 1e6]
    values[100:130] = np.nan
    plain = robust_z(values, 500, 1, scale="mad")
    floored = robust_z(values, 500, 1, scale="mad_std_floor")
    assert np.nanmax(np.abs(plain)) > 1e11  # MAD = 0: the plain formula explodes
    assert np.all(np.isfinite(floored[~np.isnan(values)]))
    assert np.nanmax(np.abs(floored)) < 1e4
    _, spread = trailing_mean_std(values, 500, 1)
    np.testing.assert_allclose(floored[700], 3.0 / (0.05 * spread[700] + 1e-12))
    assert np.all(floored[:700][~np.isnan(values[:700])] == 0.0)


def test_robust_z_floor_is_idle_on_normal_data():
    values = np.random.default_rng(9).normal(size=3000)
    np.testing.assert_array_equal(robust_z(values, 400, scale="mad_std_floor"),
                                  robust_z(values, 400, scale="mad"))


@pytest.mark.parametrize("window", [20, 150])  # inside one block / across blocks
@pytest.mark.parametrize("block_origin", [0, 37])
def test_trailing_mean_std_matches_numpy(window, block_origin):
    values = make_series("normal_gaps", seed=10) + 1e6
    mean, spread = trailing_mean_std(values, window, 5, block_origin=block_origin)
    for end in range(values.size):
        window_values = values[max(0, end - window + 1) : end + 1]
        window_values = window_values[~np.isnan(window_values)]
        if window_values.size >= 5:
            np.testing.assert_allclose(spread[end], np.std(window_values), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(mean[end], np.mean(window_values), rtol=1e-14)
        else:
            assert np.isnan(spread[end]) and np.isnan(mean[end])


def _sparse_series(size, seed):
    """Mostly a constant level with sparse spikes and gaps: the MAD collapses, the floor binds."""
    rng = np.random.default_rng(seed)
    values = np.full(size, 3.7e5)
    spikes = rng.random(size) < 0.03
    values[spikes] += rng.standard_t(2.0, spikes.sum()) * 1e3
    values[rng.random(size) < 0.05] = np.nan
    values[size // 2 : size // 2 + 90] = np.nan
    return values


@pytest.mark.parametrize("window", [40, 300])  # inside one 64-tick block / across blocks
def test_robust_z_is_prefix_and_chunk_invariant_bit_for_bit(window):
    """z at a tick depends only on its window: not on later data, nor on where the series starts.

    The old floor (a rolling std shifted by the whole series' mean, with prefix sums from index 0)
    fails both checks in the last bits; the MAD is 0 at most ticks here, so z is the floor's.
    """
    values = _sparse_series(3000, seed=14)
    min_periods = window // 2
    full_z, full_scale = robust_z(values, window, min_periods, scale="mad_std_floor",
                                  return_scale=True)
    _, full_std = trailing_mean_std(values, window, min_periods)
    floored = full_scale == 0.05 * full_std
    assert floored.sum() > 1000 and np.isfinite(full_z).sum() > 2000
    assert block_length(window) == 64 < 300

    for stop in (1, 63, 64, 65, 1000, 1537, 2999):  # prefix invariance
        z, scale = robust_z(values[:stop], window, min_periods, scale="mad_std_floor",
                            return_scale=True)
        _, std = trailing_mean_std(values[:stop], window, min_periods)
        assert_same((z, scale, std), (full_z[:stop], full_scale[:stop], full_std[:stop]))

    for start in (1, 63, 64, 100, 1001, 1536):  # chunk invariance, given the chunk's origin
        z, scale = robust_z(values[start:], window, min_periods, scale="mad_std_floor",
                            block_origin=start, return_scale=True)
        mean, std = trailing_mean_std(values[start:], window, min_periods, block_origin=start)
        full_mean, _ = trailing_mean_std(values, window, min_periods)
        full = slice(start + window - 1, None)  # ticks whose window lies inside the chunk
        assert_same((z[window - 1 :], scale[window - 1 :], mean[window - 1 :], std[window - 1 :]),
                    (full_z[full], full_scale[full], full_mean[full], full_std[full]))
        # an origin moved by a multiple of the block length gives the same blocks
        shifted = robust_z(values[start:], window, min_periods, scale="mad_std_floor",
                           block_origin=start + 5 * 1024)
        np.testing.assert_array_equal(shifted, z)


def test_robust_z_return_scale_and_block_origin_arguments():
    values = make_series("student_t", seed=15)
    z, scale = robust_z(values, 31, 5, scale="mad_std_floor", return_scale=True)
    np.testing.assert_array_equal(z, robust_z(values, 31, 5, scale="mad_std_floor"))
    median, mad = rolling_median_mad(values, 31, 5)
    _, std = trailing_mean_std(values, 31, 5)
    expected = np.maximum(MAD_TO_SIGMA * mad, 0.05 * std)
    expected[np.isnan(values)] = np.nan
    np.testing.assert_array_equal(scale, expected)
    np.testing.assert_array_equal(z, (values - median) / (scale + 1e-12))
    _, plain = robust_z(values, 31, 5, scale="mad", return_scale=True)
    expected = MAD_TO_SIGMA * mad
    expected[np.isnan(values)] = np.nan
    np.testing.assert_array_equal(plain, expected)
    for bad in (1.5, "3", None):
        with pytest.raises(ValueError):
            robust_z(values, 31, 5, scale="mad_std_floor", block_origin=bad)
    assert robust_z(np.array([]), 3, 1).size == 0
    assert all(part.size == 0 for part in trailing_mean_std(np.array([]), 3, 1, block_origin=-5))


# -- the non-zero MAD: the default scale ----------------------------------------------------------------
def _half_zero_series(size=SIZE, seed=21):
    """About half zeros, half positive values, some ties and negatives: the median falls between
    0 and the smallest non-zero value, where leaving out only the median's ties fails."""
    rng = np.random.default_rng(seed)
    values = np.where(rng.random(size) < 0.5, 0.0, rng.exponential(size=size))
    values[rng.random(size) < 0.1] = -1.5
    values[::13] = 2.0
    values[rng.random(size) < 0.05] = np.nan
    return values


def _nonzero_case(kind, seed):
    if kind == "sparse":
        values = np.zeros(SIZE)
        values[::9] = np.random.default_rng(seed + 1).exponential(size=values[::9].size)
        values[5] = np.nan
        return values
    if kind == "half_zero":
        return _half_zero_series(seed=seed + 5)
    return make_series(kind, seed=seed)


@pytest.mark.parametrize("seed", [16, 19])
@pytest.mark.parametrize("kind", KINDS + ["sparse", "half_zero"])
@pytest.mark.parametrize("window", [1, 2, 3, 4, 7, 16, 51, SIZE + 7])
@pytest.mark.parametrize("min_periods", [1, 3])
def test_nonzero_mad_is_exact_on_both_paths(kind, window, min_periods, seed):
    """Median and non-zero MAD equal the reference, on the CPU's sliding path and on the wavelet
    query body the CUDA kernel runs; robust_z's default z is
    (x − median)/(1.4826·non-zero MAD + ε).
    (Seed 19 holds a lone value among NaN whose rank is the smallest positive one: leaving it out
    as the median must not depend on where the zeros' ranks start.)"""
    values = _nonzero_case(kind, seed)
    periods = min(min_periods, window)
    median, nonzero = reference.rolling_median_nonzero_mad(values, window, periods)
    assert_same(rolling_median_mad_cpu(values, window, periods, "nonzero"), (median, nonzero))
    assert_same(rolling_median_mad_wavelet(values, window, periods, deviation="nonzero"),
                (median, nonzero))
    z, scale = robust_z(values, window, periods, return_scale=True)
    np.testing.assert_array_equal(scale, np.where(np.isnan(values), np.nan, MAD_TO_SIGMA * nonzero))
    np.testing.assert_array_equal(z, (values - median) / (MAD_TO_SIGMA * nonzero + 1e-12))


def _zeros_and_ties(size, seed):
    """Zeros at 30–60 %, small integers (ties at the median, at 0 and at twice the median),
    lognormal runs, NaN gaps: every excluded range and block move of the sliding non-zero MAD."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 5, size) * 0.5
    values[rng.random(size) < 0.3] = 0.0
    third = size // 3
    values[third : 2 * third] = np.where(rng.random(third) < 0.6, 0.0, rng.lognormal(size=third))
    values[rng.random(size) < 0.05] = np.nan
    values[size // 5 : size // 5 + 700] = np.nan
    return values


@pytest.mark.parametrize("window", [300, 2500, 12_000])
def test_nonzero_mad_sliding_equals_wavelet_on_longer_series(window):
    values = _zeros_and_ties(20_000, seed=23)
    assert_same(rolling_median_mad_cpu(values, window, 1, "nonzero"),
                rolling_median_mad_wavelet(values, window, 1, deviation="nonzero"))


def test_nonzero_mad_chunked_equals_one_chunk():
    values = _zeros_and_ties(6000, seed=24)
    ranks, sorted_values, _ = rank_valid_values(values)
    by_tick = np.full(values.size, -1, dtype=np.int64)
    by_tick[~np.isnan(values)] = ranks
    one = sliding_median_mad(by_tick, sorted_values, 400, 10, 1, True)
    for chunk_count in (2, 3, 7):
        assert_same(sliding_median_mad(by_tick, sorted_values, 400, 10, chunk_count, True), one)


@pytest.mark.parametrize("kind", KINDS + ["half_zero"])
@pytest.mark.parametrize("window", [1, 2, 3, 16, 51, SIZE + 7])
def test_double_mad_is_exact_on_both_bodies(kind, window):
    """The side MAD of each tick's value equals the reference; scale="double_mad" divides by it."""
    values = _half_zero_series() if kind == "half_zero" else make_series(kind, seed=22)
    median, side = reference.rolling_median_side_mad(values, window, 1)
    assert_same(rolling_median_mad_wavelet(values, window, 1, deviation="side"), (median, side))
    z, scale = robust_z(values, window, 1, scale="double_mad", return_scale=True)
    np.testing.assert_array_equal(scale, MAD_TO_SIGMA * side)
    np.testing.assert_array_equal(z, (values - median) / (MAD_TO_SIGMA * side + 1e-12))


def test_double_mad_known_answers():
    # [0, 1, 2, 10, 30]: median 2; above: 8, 28 -> 18; below: 2, 1 -> 1.5
    values = np.array([0.0, 1.0, 2.0, 10.0, 30.0])
    for end, expected in ((4, 18.0), (3, 18.0)):   # 30 and 10 are above the median
        window = values[: end + 1] if end == 4 else np.array([0.0, 1.0, 2.0, 30.0, 10.0])
        _, scale = robust_z(window, 5, 5, scale="double_mad", return_scale=True)
        assert scale[4] == MAD_TO_SIGMA * expected
    _, scale = robust_z(np.array([2.0, 10.0, 30.0, 1.0, 0.0]), 5, 5, scale="double_mad",
                        return_scale=True)
    assert scale[4] == MAD_TO_SIGMA * 1.5              # 0 is below the median
    # zero-inflated: median 0, the values above it are the non-zero ones: the non-zero MAD's
    values = np.array([0.0, 0.0, 0.0, 2.0, 5.0])
    np.testing.assert_array_equal(robust_z(values, 5, 5, scale="double_mad")[4],
                                  robust_z(values, 5, 5)[4])


def test_nonzero_mad_known_answers():
    # [0, 0, 0, 2, 5]: median 0, the non-zero values' deviations (2, 5): scale 3.5 (the MAD is 0)
    z, scale = robust_z(np.array([0.0, 0.0, 0.0, 2.0, 5.0]), 5, 5, return_scale=True)
    assert scale[4] == MAD_TO_SIGMA * 3.5 and z[4] == 5.0 / (MAD_TO_SIGMA * 3.5 + 1e-12)
    # [0, 0, 1, 3]: median 0.5 between the zeros and 1; the zeros left out: deviations 0.5, 2.5
    # -> 1.5 (the MAD is 0.5, the zeros' own deviation: z(Π) of 2,000 on BTCUSD_PERP)
    _, scale = robust_z(np.array([0.0, 0.0, 1.0, 3.0]), 4, 4, return_scale=True)
    assert scale[3] == MAD_TO_SIGMA * 1.5
    # [1, 2, 4, 4]: median 3, no value 0 or 3: the MAD, 1
    _, scale = robust_z(np.array([1.0, 2.0, 4.0, 4.0]), 4, 4, return_scale=True)
    assert scale[3] == MAD_TO_SIGMA * 1.0
    # [-2, 0, 0.5, 1, 1, 1, 4]: median 1, kept -2, 0.5, 4: deviations 3, 0.5, 3 -> 3
    _, scale = robust_z(np.array([-2.0, 0.0, 0.5, 1.0, 1.0, 1.0, 4.0]), 7, 7, return_scale=True)
    assert scale[6] == MAD_TO_SIGMA * 3.0
    # a constant window: scale 0, z 0; a lone first spike is its own scale: z = 1/1.4826
    z, scale = robust_z(np.array([3.0, 3.0, 3.0, 7.0]), 4, 1, return_scale=True)
    np.testing.assert_array_equal(scale[:3], 0.0)
    np.testing.assert_array_equal(z[:3], 0.0)
    assert z[3] == 4.0 / (MAD_TO_SIGMA * 4.0 + 1e-12)


def test_nonzero_z_is_unit_normal_on_gaussian_data():
    values = np.random.default_rng(18).normal(5.0, 3.0, 40_000)
    z = robust_z(values, 4000, 1000)[4000:]
    assert abs(np.mean(z)) < 0.05 and abs(np.std(z) - 1.0) < 0.05
    assert abs(np.mean(z > 2.0) - 0.02275) < 0.005       # the tail of N(0, 1)


def _sparse_flow(size, seed):
    """A zero-inflated flow: 0 at 95 % of ticks, lognormal sizes elsewhere (impact notional)."""
    rng = np.random.default_rng(seed)
    values = np.where(rng.random(size) < 0.05, rng.lognormal(0.0, 1.0, size), 0.0)
    values[rng.random(size) < 0.01] = np.nan
    return values


def test_nonzero_z_of_a_spike_is_bounded_and_does_not_grow_with_the_window():
    """The same spike (10 typical sizes) gets about the same z in a window of W and of 12·W, of
    unit scale; the std floor's z is about 20 times the spike over the window's std."""
    window = 2000
    values = _sparse_flow(13 * window, seed=19)
    spike = values.size - 1
    values[spike] = 10.0 * np.nanmedian(values[values > 0])
    short = robust_z(values, window, window // 2)[spike]
    long = robust_z(values, 12 * window, window // 2)[spike]
    assert 4.0 < short < 12.0 and 4.0 < long < 12.0       # unit scale: about 10 / 1.48 / 0.8
    assert abs(short / long - 1.0) < 0.2
    floored = robust_z(values, window, window // 2, scale="mad_std_floor")[spike]
    assert floored > 20.0 * short                          # the std floor: z far from unit scale
    z = robust_z(values, window, window // 2)
    assert np.nanmax(z) < 50.0 and np.nanmean(z[window:] > 3.0) < 0.01


@pytest.mark.parametrize("window", [40, 300])
def test_nonzero_z_is_prefix_and_chunk_invariant_bit_for_bit(window):
    values = _sparse_flow(3000, seed=20)
    full_z, full_scale = robust_z(values, window, window // 2, return_scale=True)
    assert (full_scale > 0).sum() > 2000
    for stop in (1, 64, 1000, 2999):
        assert_same(robust_z(values[:stop], window, window // 2, return_scale=True),
                    (full_z[:stop], full_scale[:stop]))
    for start in (1, 100, 1536):
        z, scale = robust_z(values[start:], window, window // 2, return_scale=True)
        full = slice(start + window - 1, None)
        assert_same((z[window - 1 :], scale[window - 1 :]), (full_z[full], full_scale[full]))


_SIMULATOR_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from numba import config
    assert config.ENABLE_CUDASIM
    from gpu_lpi.robust import robust_z, rolling_median_mad, trailing_mean_std
    from kernels.rolling_order_stats import rolling_median_mad_wavelet
    from tests.test_rolling_order_stats import make_series
    cases = [("student_t", 40, 5), ("integer_ties", 8, 1), ("constant_runs", 300, 1),
             ("all_nan", 10, 1), ("normal_gaps", 3, None)]
    for kind, window, min_periods in cases:
        values = make_series(kind, size=200, seed=11)
        on_gpu = rolling_median_mad(values, window, min_periods, device="gpu")
        on_cpu = rolling_median_mad(values, window, min_periods, device="cpu")
        for got, want in zip(on_gpu, on_cpu):
            np.testing.assert_array_equal(got, want)
    values = make_series("student_t", size=200, seed=12)
    np.testing.assert_array_equal(robust_z(values, 33, 3, device="gpu"),
                                  robust_z(values, 33, 3, device="cpu"))
    for kind, window in (("constant_runs", 60), ("integer_ties", 17), ("normal_gaps", 200)):
        values = make_series(kind, size=240, seed=13)  # non-zero MAD: zeros and ties left out
        for deviation in ("mad", "nonzero", "side"):
            for got, want in zip(rolling_median_mad_wavelet(values, window, 2, np, "gpu", deviation),
                                 rolling_median_mad_wavelet(values, window, 2, np, "cpu", deviation)):
                np.testing.assert_array_equal(got, want)
        # the default scale: the GPU's wavelet query against the CPU's sliding path
        for got, want in zip(robust_z(values, window, 2, device="gpu", return_scale=True),
                             robust_z(values, window, 2, device="cpu", return_scale=True)):
            np.testing.assert_array_equal(got, want)
    values = make_series("constant_runs", size=300, seed=12) + 1e5
    for window, origin in ((20, 0), (150, 45)):  # inside one block / across blocks
        on_gpu = robust_z(values, window, 3, device="gpu", scale="mad_std_floor",
                          block_origin=origin, return_scale=True)
        on_cpu = robust_z(values, window, 3, device="cpu", scale="mad_std_floor",
                          block_origin=origin, return_scale=True)
        for got, want in zip(on_gpu, on_cpu):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(trailing_mean_std(values, window, 3, "gpu", origin),
                             trailing_mean_std(values, window, 3, "cpu", origin)):
            np.testing.assert_array_equal(got, want)
    from kernels import per_tick_cuda  # the GPU path built the CUDA launchers of its 4 kernels
    assert per_tick_cuda.element_kernel.cache_info().currsize == 4
    print("simulator parity ok")
    """
)


def test_cuda_kernel_under_simulator_matches_cpu():
    assert "simulator parity ok" in run_under_cuda_simulator(_SIMULATOR_SCRIPT, timeout=300)


# -- real GPU: the CuPy code the simulator cannot run (NumPy stands in for CuPy there) -----------------
def needs_gpu(test):
    """Mark a real-GPU test: run by ``make gpu-test``, skipped without CuPy and a CUDA device."""
    skip = pytest.mark.skipif(not cuda_device_present(), reason="needs CuPy and a CUDA GPU")
    return pytest.mark.gpu(skip(test))


#: Tolerance of float features on the GPU: the CUDA compiler fuses a multiply and an add into one
#: FMA (one rounding instead of two), which moves the last bits of the moment sums. The inputs of
#: those tests are well conditioned (no cancellation), so FMA rounding is the only difference.
GPU_FLOAT_RTOL = 1e-12


def _large_series(seed, heavy_tails, size=2_000_000):
    rng = np.random.default_rng(seed)
    values = rng.standard_t(1.5, size) if heavy_tails else rng.normal(1e5, 3.0, size)
    values[rng.random(values.size) < 0.03] = np.nan
    values[size // 4 : size // 4 + 40_000] = np.nan
    return values


@needs_gpu
@pytest.mark.parametrize("window", [28_800, 345_600])
def test_gpu_median_mad_equal_cpu_exactly(window):
    """Order statistics are exact on both devices: equal bit for bit, results stay on the GPU."""
    import cupy

    values = _large_series(13, heavy_tails=True)
    on_gpu = rolling_median_mad(cupy.asarray(values), window, 1)
    assert all(isinstance(result, cupy.ndarray) for result in on_gpu)
    assert_same([result.get() for result in on_gpu], rolling_median_mad(values, window, 1))


@needs_gpu
@pytest.mark.parametrize("size", [1, 63, 64, 65, 1000, 2_000_000])
def test_gpu_wavelet_build_equals_cpu_exactly(size):
    """The CuPy build of the wavelet matrix (ranking, packbits, concatenate) gives the NumPy
    build's directory and level zeros exactly."""
    import cupy

    values = _large_series(14, heavy_tails=True)[:size]
    host = build_wavelet_matrix(rank_valid_values(values)[0])
    device = build_wavelet_matrix(rank_valid_values(cupy.asarray(values), cupy)[0], cupy)
    np.testing.assert_array_equal(device.directory.get(), host.directory)
    np.testing.assert_array_equal(device.level_zeros.get(), host.level_zeros)


@needs_gpu
@pytest.mark.parametrize("window, origin", [(40, 0), (28_800, 123_457)])
def test_gpu_trailing_mean_std_matches_cpu(window, origin):
    """Mean and std agree to GPU_FLOAT_RTOL (FMA contraction on the GPU); NaN at the same ticks;
    results stay on the GPU."""
    import cupy

    values = _large_series(15, heavy_tails=False)
    on_gpu = trailing_mean_std(cupy.asarray(values), window, 10, block_origin=origin)
    on_cpu = trailing_mean_std(values, window, 10, block_origin=origin)
    for got, want in zip(on_gpu, on_cpu, strict=True):
        assert isinstance(got, cupy.ndarray)
        np.testing.assert_allclose(got.get(), want, rtol=GPU_FLOAT_RTOL, atol=0, equal_nan=True)


@needs_gpu
def test_gpu_robust_z_matches_cpu():
    """z and scale agree to GPU_FLOAT_RTOL (the std floor's moments may be fused differently);
    where the MAD term sets the scale it is exact (median and MAD are)."""
    import cupy

    values = _large_series(16, heavy_tails=False)
    values[600_000:900_000] = 0.0
    values[600_000:900_000:997] = 5.0  # sparse spikes on a constant run: MAD 0, the floor binds
    z_gpu, scale_gpu = robust_z(cupy.asarray(values), 28_800, 100, return_scale=True)
    z_cpu, scale_cpu = robust_z(values, 28_800, 100, return_scale=True)
    assert isinstance(z_gpu, cupy.ndarray) and isinstance(scale_gpu, cupy.ndarray)
    np.testing.assert_allclose(z_gpu.get(), z_cpu, rtol=GPU_FLOAT_RTOL, atol=0, equal_nan=True)
    np.testing.assert_allclose(scale_gpu.get(), scale_cpu, rtol=GPU_FLOAT_RTOL, atol=0,
                               equal_nan=True)
    _, mad = rolling_median_mad(values, 28_800, 100)
    by_mad = scale_cpu == MAD_TO_SIGMA * mad
    assert by_mad.sum() > 1_000_000 and (scale_cpu > MAD_TO_SIGMA * mad).sum() > 100_000
    np.testing.assert_array_equal(scale_gpu.get()[by_mad], scale_cpu[by_mad])


@needs_gpu
@pytest.mark.parametrize("window", [28_800, 345_600])
def test_gpu_nonzero_mad_and_z_equal_cpu_exactly(window):
    """The default scale on a zero-inflated series (zeros at 90 % of ticks, then at about 50 %):
    order statistics and rank counts are exact on both devices, so median and non-zero MAD agree
    bit for bit, z to GPU_FLOAT_RTOL (FMA); results stay on the GPU."""
    import cupy

    values = _large_series(17, heavy_tails=True)
    values[np.random.default_rng(18).random(values.size) < 0.9] = 0.0
    values[1_000_000:] = np.where(np.random.default_rng(19).random(1_000_000) < 0.5, 0.0,
                                  np.abs(values[1_000_000:]))
    on_gpu = rolling_median_mad_wavelet(cupy.asarray(values), window, 100, cupy, "gpu", "nonzero")
    assert_same([result.get() for result in on_gpu],
                rolling_median_mad_cpu(values, window, 100, "nonzero"))
    z_gpu = robust_z(cupy.asarray(values), window, 100)
    assert isinstance(z_gpu, cupy.ndarray)
    np.testing.assert_allclose(z_gpu.get(), robust_z(values, window, 100), rtol=GPU_FLOAT_RTOL,
                               atol=0, equal_nan=True)
