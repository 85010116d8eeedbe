"""Planted, labelled episodes: forced liquidation cascades / squeezes and informed repricings.

An episode shapes the latent fair price, the order flow, the book's liquidity and open interest.
Spec §0: high sell volume is not forced selling. So half of the informed repricings are as violent
as a cascade -- the same flow, sweeps through the book and speed of the move -- and what tells
the two apart is the mechanism (open interest, liquidation orders, how liquidity behaves, whether
the move lasts), never the size:

* **forced** (a long-liquidation cascade for side ``down``, a short squeeze for ``up``): for
  ``push_s`` seconds (20-120 s) liquidation orders and aggressive flow push the price by ``move``
  (0.6-1.5 %). A cascade is self-exciting: each liquidation moves the price to the next positions'
  liquidation levels, so the pressure *accelerates* (``(u/a)²`` over the push fraction ``u`` up to
  ``a`` = :data:`CASCADE_PEAK`) and collapses when the queue of liquidations runs dry (``((1 −
  u)/(1 − a))²`` after the peak): selling exhausts abruptly, with most of the move done. The price
  moves with the flow (its offset is the pressure's running integral). Liquidation orders (1.5-4
  per second at peak pressure) sweep 5-25 bps of the book at one timestamp and print ``forceOrder``
  messages. Liquidity withdraws (thinner depth, wider spread) with the intensity of the flow, is
  fully withdrawn at the peak, and reforms as the flow collapses, while the last liquidations still
  push the price to new extremes. Open interest falls by 1-3 % (positions are closed), along
  the same running integral. Then ``revert`` (30-70 %) of the move comes back with time constant
  ``revert_tau_s`` (10-40 s). The label spans the push and three reversion time constants.
* **informed, violent** (``violent``): the push, move, flow and sweeps of a cascade (same ranges,
  same sweep law), but the sweeps are block orders of traders opening positions: open interest
  rises by 1-3 %, no liquidation order prints. Flow is persistent (pressure rises over the first
  sixth of the push, stays full, falls over the last sixth) rather than peaking mid-push. Makers
  learn instead of withdrawing: a sweep leaves a short liquidity shock (half a cascade's at most,
  decaying within seconds: ``INFORMED_SHOCK``, ``INFORMED_RECOVERY_MS`` in :mod:`.market`) and
  within a second they re-post the swept levels near the touch (out to ``REPOST_REACH``, 7.5 bps)
  at the new price; a cascade's book refills only through the ordinary limit-order flow, thinned
  while the stress lasts. The move is permanent and continues by 5-15 % of the push over
  ``revert_tau_s`` (``revert`` < 0); the label spans the push and three such time constants.
* **informed, calm**: for 60-300 s a persistent one-sided flow moves the price by 0.4-1.0 % and the
  move stays; open interest rises by 0.2-1 %, no sweeps, no liquidation prints, depth stays normal.
  The label spans the push.

Every day has at least one forced sell cascade, one violent and one calm informed repricing; the
others are forced (60 %) or informed (40 %, half of them violent), so about half of all informed
repricings are violent.

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
    ("sweeps_per_s", np.float64),  # rate of book sweeps at peak pressure (0 for calm informed)
    ("violent", np.int64),         # 1: cascade-sized flow and sweeps (every forced, violent informed)
])

#: Episodes per symbol-day (inclusive bounds).
EPISODES_PER_DAY = (3, 8)
#: Share of the drawn (not guaranteed) episodes that are forced, and of informed ones that are violent.
FORCED_SHARE = 0.6
VIOLENT_INFORMED_SHARE = 0.5
#: No episode starts closer than this to a UTC-day boundary, so each lies inside one day.
DAY_MARGIN_MS = 15 * 60_000
#: Revert phases last this many reversion time constants inside the label.
REVERT_SPAN_TAUS = 3.0
#: Push fraction at which a cascade's pressure peaks (then collapses: the liquidations run dry).
CASCADE_PEAK = 0.85


def _push(rng: np.random.Generator) -> tuple[int, float, float]:
    """Push length (ms), move and time constant (ms) of the after-push phase of a violent episode."""
    return int(rng.uniform(20, 120) * 1000), rng.uniform(0.006, 0.015), rng.uniform(10, 40) * 1000


def _forced(rng: np.random.Generator, start_ms: int, direction: float) -> tuple:
    push_ms, move, tau_ms = _push(rng)
    end_ms = start_ms + push_ms + int(REVERT_SPAN_TAUS * tau_ms)
    return (start_ms, start_ms + push_ms, end_ms, KIND_FORCED, direction, move, rng.uniform(0.3, 0.7), tau_ms,
            -rng.uniform(0.01, 0.03), rng.uniform(1.5, 4.0), 1)


def _violent_informed(rng: np.random.Generator, start_ms: int, direction: float) -> tuple:
    push_ms, move, tau_ms = _push(rng)
    end_ms = start_ms + push_ms + int(REVERT_SPAN_TAUS * tau_ms)
    return (start_ms, start_ms + push_ms, end_ms, KIND_INFORMED, direction, move, -rng.uniform(0.05, 0.15),
            tau_ms, rng.uniform(0.01, 0.03), rng.uniform(1.5, 4.0), 1)


def _calm_informed(rng: np.random.Generator, start_ms: int, direction: float) -> tuple:
    push_ms = int(rng.uniform(60, 300) * 1000)
    return (start_ms, start_ms + push_ms, start_ms + push_ms, KIND_INFORMED, direction,
            rng.uniform(0.004, 0.010), 0.0, 1.0, rng.uniform(0.002, 0.01), 0.0, 0)


def plan_day(rng: np.random.Generator, day_start_ms: int) -> np.ndarray:
    """Draw the episodes of one symbol-day.

    Every day has at least one forced sell cascade, one violent and one calm informed repricing;
    the others are drawn (see the module docstring) with a random side. Episodes are spread over the
    day, one per equal slot, so that they never overlap.

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
    draws = [(_forced, -1.0), (_violent_informed, float(rng.choice([-1.0, 1.0]))),
             (_calm_informed, float(rng.choice([-1.0, 1.0])))]
    for _ in range(count - len(draws)):
        if rng.random() < FORCED_SHARE:
            draw = _forced
        else:
            draw = _violent_informed if rng.random() < VIOLENT_INFORMED_SHARE else _calm_informed
        draws.append((draw, float(rng.choice([-1.0, 1.0]))))
    order = rng.permutation(count)
    slot_ms = (86_400_000 - 2 * DAY_MARGIN_MS) // count
    episodes = np.zeros(count, dtype=EPISODE_DTYPE)
    for slot, pick in enumerate(order):
        draw, direction = draws[pick]
        start_ms = day_start_ms + DAY_MARGIN_MS + slot * slot_ms + int(rng.uniform(0.0, 0.5) * slot_ms)
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
def _cascade_progress(u):
    """Share of a cascade's move done at push fraction ``u``: the running integral of its
    pressure (:func:`pressure`), normalised to 1 at the end of the push."""
    u = min(max(u, 0.0), 1.0)
    if u <= CASCADE_PEAK:
        return CASCADE_PEAK * (u / CASCADE_PEAK) ** 3
    rest = (1.0 - u) / (1.0 - CASCADE_PEAK)
    return CASCADE_PEAK + (1.0 - CASCADE_PEAK) * (1.0 - rest * rest * rest)


@njit
def _push_progress(episode, t_ms):
    """Share of the episode's push done at ``t_ms``: a cascade's running pressure integral, a
    smoothstep for informed flow."""
    u = (t_ms - episode.start_ms) / max(episode.push_end_ms - episode.start_ms, 1)
    return _cascade_progress(u) if episode.kind == KIND_FORCED else _smoothstep(u)


@njit
def price_offset(episode, t_ms):
    """Log-price offset that the episode adds to the fair price at ``t_ms`` (0 before it starts)."""
    if t_ms <= episode.start_ms:
        return 0.0
    push = episode.direction * episode.move
    if t_ms <= episode.push_end_ms:
        return push * _push_progress(episode, t_ms)
    elapsed = min(t_ms, episode.end_ms) - episode.push_end_ms
    return push * (1.0 - episode.revert * (1.0 - math.exp(-elapsed / episode.revert_tau_ms)))


@njit
def pressure(episode, t_ms):
    """One-sided flow pressure in [0, 1], 0 outside the push.

    Forced flow accelerates to its peak at :data:`CASCADE_PEAK` of the push and collapses (see the
    module docstring); calm informed flow is steady over the push; violent informed flow is
    persistent: ``min(1, 2 sin(pi u))`` over the push fraction ``u``.
    """
    if t_ms <= episode.start_ms or t_ms >= episode.push_end_ms:
        return 0.0
    u = (t_ms - episode.start_ms) / (episode.push_end_ms - episode.start_ms)
    if episode.kind == KIND_FORCED:
        if u <= CASCADE_PEAK:
            return (u / CASCADE_PEAK) ** 2
        return ((1.0 - u) / (1.0 - CASCADE_PEAK)) ** 2
    return min(1.0, 2.0 * math.sin(math.pi * u)) if episode.violent == 1 else 1.0


@njit
def liquidity_stress(episode, t_ms):
    """Liquidity withdrawal in [0, 1] of a forced episode: makers withdraw with the intensity of the
    liquidation flow, ``sqrt(pressure)`` (they pull quotes early, before the flow peaks), and return
    as it collapses (liquidity reforms while the last liquidations still push the price).
    """
    if episode.kind != KIND_FORCED:
        return 0.0
    return math.sqrt(pressure(episode, t_ms))


@njit
def oi_offset(episode, t_ms):
    """Open-interest change (fraction of OI) the episode has caused by ``t_ms`` (along its push)."""
    if t_ms <= episode.start_ms:
        return 0.0
    return episode.oi_change * _push_progress(episode, min(t_ms, episode.push_end_ms))
