"""PSR, DSR and MinTRL (issue 10 item 2) against the published formulas computed here on another
code path (the standard library's NormalDist and explicit moment sums, no SciPy), and against the
numerical example of Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", §5."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

import gpu_lpi
from gpu_lpi.validation.sharpe import EULER_GAMMA, expected_max_sharpe, sharpe_moments

_N = NormalDist()


def _psr(sr, benchmark, n, skew, kurt):
    return _N.cdf((sr - benchmark) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr ** 2))


def _sr0(srs):
    n = len(srs)
    mean = sum(srs) / n
    variance = sum((s - mean) ** 2 for s in srs) / (n - 1)
    return math.sqrt(variance) * ((1 - 0.5772156649015329) * _N.inv_cdf(1 - 1 / n)
                                  + 0.5772156649015329 * _N.inv_cdf(1 - 1 / (n * math.e)))


def _min_trl(sr, benchmark, skew, kurt, alpha):
    return 1 + (1 - skew * sr + (kurt - 1) / 4 * sr ** 2) * (_N.inv_cdf(1 - alpha) / (sr - benchmark)) ** 2


def test_the_published_example_of_the_deflated_sharpe_ratio():
    """Annualized SR 2.5 over 5 years of daily returns (1,250), skew -3, kurtosis 10, after N = 100
    trials whose annualized Sharpe ratios have variance 0.5: SR0 = 0.1132 per day, DSR = 0.9004."""
    daily_variance = 0.5 / 250
    assert expected_max_sharpe(100, daily_variance) == pytest.approx(0.1132, abs=5e-5)
    sr = 2.5 / math.sqrt(250)
    psr = gpu_lpi.probabilistic_sharpe(sr, expected_max_sharpe(100, daily_variance), 1250, -3.0, 10.0)
    assert psr == pytest.approx(0.9004, abs=5e-5)
    # trial Sharpe ratios with exactly that variance: DSR is the same number
    spread = np.sqrt(daily_variance * 99 / 100) * np.where(np.arange(100) % 2, 1.0, -1.0)
    assert np.var(spread, ddof=1) == pytest.approx(daily_variance)
    assert gpu_lpi.deflated_sharpe(sr, spread, 1250, -3.0, 10.0) == pytest.approx(0.9004, abs=5e-5)


@pytest.mark.parametrize("sr, benchmark, n, skew, kurt", [
    (0.1, 0.0, 250, 0.0, 3.0), (0.05, 0.02, 1000, -1.2, 7.5), (-0.03, 0.0, 60, 0.4, 4.0), (0.3, 0.1, 40, 1.0, 2.5),
])
def test_psr_and_min_trl_against_the_formulas(sr, benchmark, n, skew, kurt):
    assert gpu_lpi.probabilistic_sharpe(sr, benchmark, n, skew, kurt) == pytest.approx(
        _psr(sr, benchmark, n, skew, kurt), rel=1e-12)
    if sr > benchmark:
        trl = gpu_lpi.min_track_record_length(sr, benchmark, skew, kurt, alpha=0.1)
        assert trl == pytest.approx(_min_trl(sr, benchmark, skew, kurt, 0.1), rel=1e-12)
        assert _psr(sr, benchmark, trl, skew, kurt) == pytest.approx(0.9, abs=1e-12)   # its definition
    else:
        assert gpu_lpi.min_track_record_length(sr, benchmark, skew, kurt) == math.inf


def test_dsr_against_the_formulas_and_with_one_trial():
    rng = np.random.default_rng(5)
    srs = list(rng.normal(0.0, 0.08, 37))
    chosen = max(srs)
    assert gpu_lpi.deflated_sharpe(chosen, srs, 500, -0.5, 5.0) == pytest.approx(
        _psr(chosen, _sr0(srs), 500, -0.5, 5.0), rel=1e-12)
    # kurtosis is plain: a normal's 3 leaves PSR at its textbook value, excess kurtosis would not
    assert gpu_lpi.probabilistic_sharpe(0.1, 0.0, 100) == pytest.approx(
        _N.cdf(0.1 * math.sqrt(99) / math.sqrt(1 + 0.5 * 0.01)), rel=1e-12)
    # one trial: nothing was selected, DSR = PSR(0); a trial without a Sharpe ratio still counts
    assert gpu_lpi.deflated_sharpe(0.1, [0.1], 100) == pytest.approx(_psr(0.1, 0.0, 100, 0.0, 3.0))
    with_nan = gpu_lpi.deflated_sharpe(chosen, srs + [float("nan")], 500, -0.5, 5.0)
    n = len(srs) + 1
    mean = sum(srs) / len(srs)
    sd = math.sqrt(sum((s - mean) ** 2 for s in srs) / (len(srs) - 1))
    sr0 = sd * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n) + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n * math.e)))
    assert with_nan == pytest.approx(_psr(chosen, sr0, 500, -0.5, 5.0), rel=1e-12)


def test_expected_max_sharpe_is_the_mean_maximum_of_unskilled_trials():
    """Monte Carlo: the maximum of N normal Sharpe ratios (mean 0, variance V) averages close to SR0."""
    rng = np.random.default_rng(11)
    draws = rng.normal(0.0, 0.05, (4000, 200)).max(axis=1)
    assert draws.mean() == pytest.approx(expected_max_sharpe(200, 0.05 ** 2), rel=0.03)


def test_sharpe_moments_are_per_period_with_plain_kurtosis():
    rng = np.random.default_rng(2)
    x = rng.standard_t(5, 400) + 0.1
    n = x.size
    mean = sum(x) / n
    m2, m3, m4 = (sum((v - mean) ** p for v in x) / n for p in (2, 3, 4))
    moments = sharpe_moments(np.append(x, np.nan))      # NaN skipped
    assert moments["n"] == n
    assert moments["sr"] == pytest.approx(mean / math.sqrt(m2 * n / (n - 1)), rel=1e-12)
    assert moments["skew"] == pytest.approx(m3 / m2 ** 1.5, rel=1e-9)
    assert moments["kurtosis"] == pytest.approx(m4 / m2 ** 2, rel=1e-9)
    normal = sharpe_moments(rng.normal(size=200_000))
    assert normal["kurtosis"] == pytest.approx(3.0, abs=0.05)
    assert math.isnan(sharpe_moments([1.0, 1.0, 1.0])["sr"])


@pytest.mark.gpu
def test_cupy_inputs_give_cupy_results():
    cupy = pytest.importorskip("cupy")
    srs = cupy.asarray([0.05, 0.12, -0.02, 0.08])
    psr = gpu_lpi.probabilistic_sharpe(srs, 0.0, 250, -0.5, 4.0)
    assert isinstance(psr, cupy.ndarray)
    assert cupy.asnumpy(psr) == pytest.approx([_psr(float(s), 0.0, 250, -0.5, 4.0) for s in srs.get()], rel=1e-12)
    dsr = gpu_lpi.deflated_sharpe(cupy.asarray(0.12), srs, 250)
    assert isinstance(dsr, cupy.ndarray) and float(dsr) == pytest.approx(_psr(0.12, _sr0(list(srs.get())), 250, 0, 3))
    trl = gpu_lpi.min_track_record_length(srs, 0.0)
    assert isinstance(trl, cupy.ndarray) and np.isinf(trl.get()[2])
