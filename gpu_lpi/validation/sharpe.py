"""Probabilistic and Deflated Sharpe ratios, minimum track-record length (Bailey & López de Prado).

All Sharpe ratios are per period (per row of the returns: an event, a day), not annualized;
``kurtosis`` is the plain fourth standardized moment (3 for a normal), as in the papers:

* PSR(SR*) = Φ( (SR − SR*)·√(n − 1) / √(1 − γ₃·SR + (γ₄ − 1)/4·SR²) ) — the probability that the
  true Sharpe ratio exceeds SR* given n observations of skew γ₃ and kurtosis γ₄ (Bailey & López de
  Prado 2012, "The Sharpe ratio efficient frontier").
* DSR = PSR(SR₀) with SR₀ the expected maximum Sharpe ratio of N unskilled trials,
  SR₀ = √V[SR_n]·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))), γ the Euler–Mascheroni constant and
  V[SR_n] the variance of the trials' Sharpe ratios (Bailey & López de Prado 2014, "The Deflated
  Sharpe Ratio").
* MinTRL = 1 + (1 − γ₃·SR + (γ₄ − 1)/4·SR²)·(z₁₋α / (SR − SR*))²: the fewest observations for
  PSR(SR*) >= 1 − α.

Inputs may be scalars, NumPy or CuPy arrays (broadcast together); results are floats or NumPy
arrays, CuPy arrays where an input was one (computed on the host: these are a few numbers per trial).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from gpu_lpi.device import is_device_array, like, to_host

#: The Euler–Mascheroni constant γ.
EULER_GAMMA = 0.5772156649015329


def _sr_scale(sr, skew, kurtosis):
    """√(1 − γ₃·SR + (γ₄ − 1)/4·SR²): the Sharpe ratio's standard error times √(n − 1); NaN where
    the moments make it imaginary."""
    square = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.where(square > 0, square, np.nan))


def _host(*values):
    """The inputs as float64 NumPy arrays, and the first CuPy array among them (None if none)."""
    device = next((v for v in values if is_device_array(v)), None)
    return device, [np.asarray(to_host(v), dtype=np.float64) for v in values]


def _out(value, device=None):
    """A float or NumPy array; on the device of ``device`` when it is a CuPy array."""
    value = np.asarray(value, dtype=np.float64)
    if device is not None:
        return like(value, device)
    return float(value) if value.ndim == 0 else value


def probabilistic_sharpe(sr, sr_benchmark, n_obs, skew=0.0, kurtosis=3.0):
    """Probabilistic Sharpe ratio PSR(SR*) (module docstring).

    Parameters
    ----------
    sr : float or array
        Observed per-period Sharpe ratio.
    sr_benchmark : float or array
        The benchmark SR* (per period).
    n_obs : int or array
        Number of return observations (NaN below 2).
    skew, kurtosis : float or array, default 0, 3
        Skewness and plain kurtosis of the returns.

    Returns
    -------
    float or numpy.ndarray
        In [0, 1]; NaN where undefined.
    """
    device, (sr, benchmark, n, skew, kurtosis) = _host(sr, sr_benchmark, n_obs, skew, kurtosis)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (sr - benchmark) * np.sqrt(np.where(n >= 2, n - 1.0, np.nan)) / _sr_scale(sr, skew, kurtosis)
    return _out(stats.norm.cdf(z), device)


def expected_max_sharpe(n_trials, sr_variance):
    """Expected maximum Sharpe ratio of ``n_trials`` unskilled trials whose Sharpe ratios have
    variance ``sr_variance`` (SR₀ of the module docstring); 0 for a single trial."""
    device, (n, variance) = _host(n_trials, sr_variance)
    many = np.where(n > 1, n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantiles = ((1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / many)
                     + EULER_GAMMA * stats.norm.ppf(1.0 - 1.0 / (many * np.e)))
        value = np.sqrt(variance) * quantiles
    return _out(np.where(n == 1, 0.0, value), device)


def trial_sharpe_variance(trial_srs) -> float:
    """Sample variance (ddof 1) of the finite trial Sharpe ratios; NaN with fewer than two."""
    srs = np.asarray(to_host(trial_srs), dtype=np.float64).ravel()
    srs = srs[np.isfinite(srs)]
    return float(np.var(srs, ddof=1)) if srs.size >= 2 else float("nan")


def deflated_sharpe(sr, trial_srs, n_obs, skew=0.0, kurtosis=3.0):
    """Deflated Sharpe ratio: PSR against the expected maximum Sharpe ratio of the trials.

    Parameters
    ----------
    sr : float
        Per-period Sharpe ratio of the chosen trial.
    trial_srs : sequence of float
        The per-period Sharpe ratios of every trial tried, the chosen one included. N is their count
        (a trial without a Sharpe ratio, NaN, still counts as tried); the variance is that of the
        finite ones (:func:`trial_sharpe_variance`). One trial: no selection, DSR = PSR(0).
    n_obs : int
        Observations behind ``sr``.
    skew, kurtosis : float, default 0, 3
        Of the chosen trial's returns (plain kurtosis).

    Returns
    -------
    float
        In [0, 1]; NaN where undefined (fewer than two finite trial Sharpe ratios among several).
    """
    device, (sr, srs, n_obs, skew, kurtosis) = _host(sr, trial_srs, n_obs, skew, kurtosis)
    srs = srs.ravel()
    if not srs.size:
        raise ValueError("trial_srs: expected the Sharpe ratios of at least one trial")
    variance = 0.0 if srs.size == 1 else trial_sharpe_variance(srs)
    return _out(probabilistic_sharpe(sr, expected_max_sharpe(srs.size, variance), n_obs, skew, kurtosis), device)


def min_track_record_length(sr, sr_benchmark, skew=0.0, kurtosis=3.0, alpha=0.05):
    """Minimum track-record length: the fewest observations for PSR(SR*) >= 1 − ``alpha``.

    Returns
    -------
    float or numpy.ndarray
        In periods (not rounded); ``inf`` where ``sr <= sr_benchmark``.
    """
    device, (sr, benchmark, skew, kurtosis, alpha) = _host(sr, sr_benchmark, skew, kurtosis, alpha)
    z = stats.norm.ppf(1.0 - alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = 1.0 + _sr_scale(sr, skew, kurtosis) ** 2 * (z / (sr - benchmark)) ** 2
    return _out(np.where(sr > benchmark, value, np.inf), device)


def sharpe_moments(returns) -> dict:
    """Per-period Sharpe ratio (mean over the sample standard deviation, ddof 1), skewness and plain
    kurtosis (moment estimates) of a return series, NaN-skipping.

    Returns
    -------
    dict
        ``n``, ``mean``, ``sr``, ``skew``, ``kurtosis`` (NaN where undefined: fewer than two
        returns, or a constant series).
    """
    values = np.asarray(returns, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    out = {"n": int(values.size), "mean": float(values.mean()) if values.size else float("nan"),
           "sr": float("nan"), "skew": float("nan"), "kurtosis": float("nan")}
    if values.size >= 2:
        std = values.std(ddof=1)
        if std > 0:
            out.update(sr=float(values.mean() / std), skew=float(stats.skew(values)),
                       kurtosis=float(stats.kurtosis(values, fisher=False)))
    return out
