"""Quotes implied by trades alone (DESIGN.md §4 step 2, the last book source): a per-tick body.

A seller-aggressor trade prints at the bid and a buyer-aggressor trade at the ask, so the implied
bid at time ``t`` is the price of the latest seller-aggressor trade with ``ts <= t`` and the
implied ask that of the latest buyer-aggressor trade; both are unknown (NaN) when either side has
no trade within the age limit (a book is valid or not, as with every other source). A crossed or
locked pair (bid >= ask: the price moved through the older side since it traded) keeps only the
later trade's information: both quotes become the price of the later of the two trades (zero
spread, mid = that price). Only trades at or after ``not_before`` (the start of the time's covered
span) count: a new capture never continues the quotes of an earlier one, whatever the age limit.

The caller finds, per time, the latest trade of each side (two searches over the side's trade
times); the body reads element ``i`` only, so CPU and GPU give the same numbers and a time's
quotes depend on no trade after it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from kernels.per_tick import per_tick


class ImpliedQuoteInputs(NamedTuple):
    times: np.ndarray  #: int64 sample times
    last_sell: np.ndarray  #: int64: index of the latest seller-aggressor trade with ts <= t (-1: none)
    last_buy: np.ndarray  #: int64: the same for buyer-aggressor trades
    ts: np.ndarray  #: int64 trade times, in storage order
    price: np.ndarray  #: trade prices
    not_before: np.ndarray  #: int64 per time: trades before it do not count


class ImpliedQuotes(NamedTuple):
    bid: np.ndarray
    ask: np.ndarray


class QuoteAge(NamedTuple):
    max_age_ns: int  #: a side whose latest trade is older than this is unknown


@per_tick
def implied_quotes(i, inputs: ImpliedQuoteInputs, outputs: ImpliedQuotes, params: QuoteAge):
    """Implied bid and ask at time ``i`` (see the module docstring); both NaN where a side is stale.

    The later trade of a crossed pair is the one later in storage order (``ts``, then trade id).
    """
    t = inputs.times[i]
    sell = inputs.last_sell[i]
    buy = inputs.last_buy[i]
    bid = math.nan
    ask = math.nan
    oldest = max(t - params.max_age_ns, inputs.not_before[i])
    if sell >= 0 and inputs.ts[sell] >= oldest:
        bid = inputs.price[sell]
    if buy >= 0 and inputs.ts[buy] >= oldest:
        ask = inputs.price[buy]
    if math.isnan(bid) or math.isnan(ask):
        bid = math.nan      # a quote needs both sides
        ask = math.nan
    elif bid >= ask:
        later = bid if sell > buy else ask
        bid = later
        ask = later
    outputs.bid[i] = bid
    outputs.ask[i] = ask
