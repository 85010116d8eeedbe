"""Planted, labelled episodes: forced liquidation cascades / squeezes and informed repricings.

An episode shapes the latent fair price, the order flow, the book's liquidity and open interest:

* **forced** (a long-liquidation cascade for side ``down``, a short squeeze for ``up``): for
  ``push_s`` seconds (20-120 s) liquidation orders and aggressive flow push the price by ``move``
  (0.6-1.5 %) along a smoothstep path, whose speed peaks mid-way and dies out (selling exhausts);
  liquidity withdraws (thinner depth, wider spread) in proportion to the pressure; open interest
  falls by 1-3 %. Then ``revert`` (30-70 %) of the move comes back with time constant ``revert_tau_s``
  (10-40 s). The label spans the push and three reversion time constants.
* **informed**: for 60-300 s a persistent one-sided flow moves the price by 0.4-1.0 % and the move
  stays; open interest rises (new positions), no liquidation prints, depth stays normal.

Labels are in exchange time: ``ts_start`` is the start of the push, ``ts_end`` the end of the label
span above.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.jit import njit

KIND_FORCED, KIND_INFORMED = 0, 1
KIND_NAMES = ("forced", "informed")

EPISODE_DTYPE = np.dtype([
    ("start_ms", np.int64),        # push starts (label ts_start)
    ("push_end_ms", np.int64),     # price push ends, reversion starts
    ("end_ms", np.int64),          # label ts_end
    ("kind", np.int64),            # KIND_FORCED or KIND_INFORMED
    ("direction", np.float64),     # -1.0 down, +1.0 up
    ("move", np.float64),          # size of the push, fraction of price
    ("revert", np.float64),        # share of the push that comes back (0 for informed)
    ("revert_tau_ms", np.float64),  # reversion time constant
    ("oi_change", np.float64),     # open-interest change over the push, fraction of OI
    ("liquidations_per_s", np.float64),  # liquidation-order rate at peak pressure (0 for informed)
])

#: Episodes per symbol-day (inclusive bounds).
EPISODES_PER_DAY = (3, 8)
#: No episode starts closer than this to a UTC-day boundary, so each lies inside one day.
DAY_MARGIN_MS = 15 * 60_000
#: Revert phases last this many reversion time constants inside the label.
REVERT_SPAN_TAUS = 3.0


def _forced(rng: np.random.Generator, start_ms: int, direction: float) -> tuple:
    push_ms = int(rng.uniform(20, 120) * 1000)
    tau_ms = rng.uniform(10, 40) * 1000
    end_ms = start_ms + push_ms + int(REVERT_SPAN_TAUS * tau_ms)
    return (start_ms, start_ms + push_ms, end_ms, KIND_FORCED, direction, rng.uniform(0.006, 0.015),
            rng.uniform(0.3, 0.7), tau_ms, -rng.uniform(0.01, 0.03), rng.uniform(1.5, 4.0))


def _informed(rng: np.random.Generator, start_ms: int, direction: float) -> tuple:
    push_ms = int(rng.uniform(60, 300) * 1000)
    return (start_ms, start_ms + push_ms, start_ms + push_ms, KIND_INFORMED, direction,
            rng.uniform(0.004, 0.010), 0.0, 1.0, rng.uniform(0.002, 0.01), 0.0)


def plan_day(rng: np.random.Generator, day_start_ms: int) -> np.ndarray:
    """Draw the episodes of one symbol-day.

    Every day has at least one forced sell cascade and one informed repricing; the others are drawn
    among forced down, forced up (squeeze) and informed. Episodes are spread over the day, one per
    equal slot, so that they never overlap.

    Parameters
    ----------
    rng : numpy.random.Generator
        Seeded generator (the caller derives it from the user seed and the symbol).
    day_start_ms : int
        00:00 UTC of the day, ms since the epoch.

    Returns
    -------
    numpy.ndarray
        Episodes of :data:`EPISODE_DTYPE`, in time order.
    """
    count = int(rng.integers(EPISODES_PER_DAY[0], EPISODES_PER_DAY[1] + 1))
    kinds = [(KIND_FORCED, -1.0), (KIND_INFORMED, float(rng.choice([-1.0, 1.0])))]
    kinds += [((KIND_FORCED if rng.random() < 0.6 else KIND_INFORMED), float(rng.choice([-1.0, 1.0])))
              for _ in range(count - 2)]
    order = rng.permutation(count)
    slot_ms = (86_400_000 - 2 * DAY_MARGIN_MS) // count
    episodes = np.zeros(count, dtype=EPISODE_DTYPE)
    for slot, pick in enumerate(order):
        kind, direction = kinds[pick]
        start_ms = day_start_ms + DAY_MARGIN_MS + slot * slot_ms + int(rng.uniform(0.0, 0.5) * slot_ms)
        draw = _forced if kind == KIND_FORCED else _informed
        episodes[slot] = draw(rng, start_ms, direction)
    return episodes


def plan_episodes(rng: np.random.Generator, first_day_ms: int, days: int) -> np.ndarray:
    """Concatenate :func:`plan_day` over ``days`` consecutive days."""
    return np.concatenate([plan_day(rng, first_day_ms + day * 86_400_000) for day in range(days)])


@njit
def _smoothstep(u):
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


@njit
def price_offset(episode, t_ms):
    """Log-price offset that the episode adds to the fair price at ``t_ms`` (0 before it starts)."""
    if t_ms <= episode.start_ms:
        return 0.0
    push = episode.direction * episode.move
    span = max(episode.push_end_ms - episode.start_ms, 1)
    if t_ms <= episode.push_end_ms:
        return push * _smoothstep((t_ms - episode.start_ms) / span)
    elapsed = min(t_ms, episode.end_ms) - episode.push_end_ms
    return push * (1.0 - episode.revert * (1.0 - math.exp(-elapsed / episode.revert_tau_ms)))


@njit
def pressure(episode, t_ms):
    """One-sided flow pressure in [0, 1], 0 outside the push.

    Forced flow peaks mid-push and dies out (exhaustion); informed flow is steady over the push.
    """
    if t_ms <= episode.start_ms or t_ms >= episode.push_end_ms:
        return 0.0
    if episode.kind == KIND_INFORMED:
        return 1.0
    return math.sin(math.pi * (t_ms - episode.start_ms) / (episode.push_end_ms - episode.start_ms))


@njit
def liquidity_stress(episode, t_ms):
    """Liquidity withdrawal in [0, 1] of a forced episode.

    It rises with the pressure over the first half of the push, stays full to the end of the push
    (the overshoot happens in a thin book) and decays with the reversion time constant afterwards.
    """
    if episode.kind != KIND_FORCED or t_ms <= episode.start_ms:
        return 0.0
    if t_ms < episode.push_end_ms:
        progress = (t_ms - episode.start_ms) / (episode.push_end_ms - episode.start_ms)
        return 1.0 if progress >= 0.5 else math.sin(math.pi * progress) ** 0.5
    return math.exp(-(t_ms - episode.push_end_ms) / episode.revert_tau_ms)


@njit
def oi_offset(episode, t_ms):
    """Open-interest change (fraction of OI) the episode has caused by ``t_ms``."""
    span = max(episode.push_end_ms - episode.start_ms, 1)
    return episode.oi_change * _smoothstep((t_ms - episode.start_ms) / span)
