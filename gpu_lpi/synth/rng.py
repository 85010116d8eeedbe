"""A small counter-based random generator for numba code whose state lives in an array.

The simulator runs in chunks; keeping the generator state in a caller-owned ``uint64`` array (rather
than numba's hidden global generator) makes every chunk resume exactly where the last one stopped, so
output is identical whatever the chunking and whatever else runs in the process. The generator is
SplitMix64 (Steele, Lea and Flood 2014), which passes BigCrush.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.jit import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def new_state(seed_words: list[int]) -> np.ndarray:
    """Return a generator state seeded from integers (``numpy.random.SeedSequence`` mixing).

    Parameters
    ----------
    seed_words : list of int
        Non-negative integers, e.g. the user seed and a hash of the symbol.

    Returns
    -------
    numpy.ndarray
        A one-element ``uint64`` state array.
    """
    return np.random.SeedSequence(seed_words).generate_state(1, dtype=np.uint64)


@njit
def next_u64(state):
    """Advance the state and return 64 random bits."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit
def uniform(state):
    """Uniform float in [0, 1)."""
    return float(next_u64(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit
def exponential(state, mean):
    """Exponential variate with the given mean."""
    return -mean * math.log(1.0 - uniform(state))


@njit
def normal(state):
    """Standard normal variate (Box-Muller)."""
    radius = math.sqrt(-2.0 * math.log(1.0 - uniform(state)))
    return radius * math.cos(2.0 * math.pi * uniform(state))


@njit
def poisson(state, mean):
    """Poisson variate: Knuth's product method up to mean 30, a rounded normal above."""
    if mean > 30.0:
        return max(0, np.int64(round(mean + math.sqrt(mean) * normal(state))))
    limit = math.exp(-mean)
    count = 0
    product = uniform(state)
    while product > limit:
        count += 1
        product *= uniform(state)
    return count


#: Share of draws from the Pareto tail in :func:`heavy_tailed` (the tail starts at the body's 95th percentile).
TAIL_SHARE = 0.05
_BODY_Q95_Z = 1.6448536269514722


@njit
def heavy_tailed(state, median, sigma, tail_alpha):
    """Lognormal body with a Pareto tail: the trade-size law fitted in :mod:`.calibration`.

    With probability :data:`TAIL_SHARE` the value is drawn from a Pareto law with index
    ``tail_alpha`` starting at the body's 95th percentile; otherwise from the lognormal body.
    """
    if uniform(state) < TAIL_SHARE:
        tail_start = median * math.exp(sigma * _BODY_Q95_Z)
        return tail_start * (1.0 - uniform(state)) ** (-1.0 / tail_alpha)
    return median * math.exp(sigma * normal(state))
