"""Top of book and depth within η as of chosen times, for every book source (DESIGN.md §4.2).

Sources, best first (the first table the store holds for the symbol is used, for every chunk):

``depth_diff``
    L2 replay (:mod:`gpu_lpi.book`) from the latest snapshot at or before the first time;
    depth = band sums on the replayed ladder.
``book_levels``
    Top-N snapshots: top = level 0; depth = levels of the snapshot within η of level 0.
``depth_bands``
    Binance ``bookDepth`` percentage bands: depth = the narrowest band on each side *of each
    snapshot* (wider than η; LDR only uses D/mean D, in which the band's width cancels); top of book
    from ``book_ticker``.
``book_ticker``
    Depth = top-of-book quantity.
``trades``
    No book table at all: quotes implied by trades (:func:`implied_book`, the body in
    :mod:`kernels.implied_quotes`): the implied bid at ``t`` is the price of the latest
    seller-aggressor market trade with ``ts <= t`` (it printed at the bid), the implied ask that of
    the latest buyer-aggressor one; no quote (both NaN) where either side has not traded within
    ``implied_quote_max_age_s``; a crossed or locked pair (bid >= ask, the price moved through the
    older side since it traded) collapses to the later trade's price (spread 0). No depth and no
    quantities: ``depth_bid``, ``depth_ask``, ``bid_qty`` and ``ask_qty`` are NaN, so the
    microprice, LDR and z(LDR) are NaN, and the LPI drops its LDR term with the other weights
    rescaled to keep their sum (:func:`lpi_weights`). The implied spread is not used in LDR's place:
    it mostly measures the price move since the older side traded, which Π already counts.

What each source gives up against the L2 replay is :data:`DEGRADATIONS` (recorded per symbol in a
run's ``run.json``).

Every function here is a pure function of rows already read (or of an iterator of row batches in
storage order, consumed once, for the tables that are too large to hold: a full day of book tickers
or top-N snapshots): :mod:`gpu_lpi.chunk_inputs` does the reading. A sample is invalid (all NaN)
where the book is invalid (replay gap, before the first snapshot) or its latest update is older
than ``max_age_ns`` (a capture gap): values are never carried over a gap. Coverage is applied by
the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gpu_lpi.device import to_device, to_host
from kernels import implied_quotes as kernels
from kernels.per_tick import empty_record

BOOK_SOURCES = ("depth_diff", "book_levels", "depth_bands", "book_ticker", "trades")
TOP_COLUMNS = ("bid", "ask", "bid_qty", "ask_qty")
#: Book sources without any depth (LDR is NaN, the LPI renormalised: :func:`lpi_weights`).
DEPTHLESS_SOURCES = ("trades",)
#: What each book source degrades against the L2 replay (``depth_diff``), in words.
DEGRADATIONS: dict[str, tuple[str, ...]] = {
    "depth_diff": (),
    "book_levels": (
        "depth: levels of top-N snapshots within eta (a band reaching past the N-th level is cut short)",
        "quotes and depth: as of the latest snapshot (the snapshots' cadence, not every book change)",
    ),
    "depth_bands": (
        "depth: the narrowest bookDepth percentage band of each snapshot, wider than eta (its width "
        "cancels in LDR's D/mean D), one snapshot a minute",
        "quotes: from book_ticker",
    ),
    "book_ticker": ("depth: top-of-book quantity, not the eta band",),
    "trades": (
        "quotes: implied by the latest seller-/buyer-aggressor market trade prices, each valid for "
        "implied_quote_max_age_s; a crossed or locked pair collapses to the later trade's price",
        "spread, mid, r: from the implied quotes (the spread also holds the price move since the older "
        "side traded)",
        "impact thresholds: against the implied quotes at t - tick",
        "microprice: NaN (no quantities)",
        "depth: unavailable: depth_bid, depth_ask, ldr, ldr_up, z_ldr, z_ldr_up are NaN",
        "lpi: without the LDR term, w1 and w3 rescaled to keep the sum w1 + w2 + w3: "
        "LPI = (w1 z(FSI) + w3 z(Pi)) (w1 + w2 + w3)/(w1 + w3)",
    ),
}


@dataclass
class BookAtTicks:
    """Book samples at chosen times (float64 arrays, NaN where invalid)."""

    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    depth_bid: np.ndarray
    depth_ask: np.ndarray

    @classmethod
    def missing(cls, count: int) -> "BookAtTicks":
        return cls(*(np.full(count, np.nan) for _ in range(6)))

    def mid(self) -> np.ndarray:
        return 0.5 * (self.bid + self.ask)

    def where(self, valid: np.ndarray) -> "BookAtTicks":
        """These samples, NaN where ``valid`` is false."""
        return BookAtTicks(*(np.where(valid, values, np.nan) for values in
                             (self.bid, self.ask, self.bid_qty, self.ask_qty, self.depth_bid,
                              self.depth_ask)))

    def at(self, index) -> "BookAtTicks":
        return BookAtTicks(*(values[index] for values in
                             (self.bid, self.ask, self.bid_qty, self.ask_qty, self.depth_bid,
                              self.depth_ask)))


def choose_source(tables_with_rows: Iterable[str]) -> str | None:
    """The best book source among the tables a symbol has rows in (None: no book at all)."""
    present = set(tables_with_rows)
    return next((table for table in BOOK_SOURCES if table in present), None)


#: What reading Binance aggregate trades instead of trades changes.
AGG_TRADES_DEGRADATION = ("trades: from agg_trades (one row per taker order and price; the same "
                          "notionals and prices, all counted as market trades)")


def degradations(source: str, trade_table: str = "trades") -> list[str]:
    """What the book source ``source`` (and the trade table, when it is ``agg_trades``) degrades
    against the L2 replay and trades (empty for ``depth_diff`` with ``trades``)."""
    return list(DEGRADATIONS[source]) + ([AGG_TRADES_DEGRADATION] if trade_table == "agg_trades" else [])


def has_depth(source: str) -> bool:
    """Whether the book source gives any depth (LDR is NaN without)."""
    return source not in DEPTHLESS_SOURCES


def lpi_weights(source: str, w1: float, w2: float, w3: float) -> tuple[float, float, float]:
    """The LPI weights of z(FSI), z(LDR) and z(Π) for a book from ``source``.

    With depth, the weights as given. Without (``trades``), LDR is unknown everywhere: its weight is
    0 and the other two are rescaled by ``(w1 + w2 + w3)/(w1 + w3)``, so that the LPI keeps the scale
    of the full one (the thresholds ``lpi_hi``, ``lpi_exit`` assume the weights' sum) and a tick's
    LPI is the same weighted mean of the z-scores that are known. Where ``w1 + w3 = 0`` there is
    nothing to rescale: ``(w1, 0, w3)``.
    """
    if has_depth(source):
        return w1, w2, w3
    kept = w1 + w3
    factor = (w1 + w2 + w3) / kept if kept != 0.0 else 1.0
    return w1 * factor, 0.0, w3 * factor


# -- quotes implied by trades ------------------------------------------------------------------------
def implied_book(trades: dict, times: np.ndarray, max_age_ns: int, xp=np, target: str = "cpu",
                 not_before: np.ndarray | None = None) -> BookAtTicks:
    """Quotes implied by market trades as of each sorted time (the ``trades`` source; see the
    module docstring), computed on ``target`` by :func:`kernels.implied_quotes.implied_quotes`.

    Parameters
    ----------
    trades : dict of arrays
        Market trades in storage order: ``ts`` (int64), ``price``, ``is_buyer_maker`` (the
        aggressor sold), owned by ``xp``; they must include every trade in
        ``[times[0] − max_age_ns, times[-1]]``.
    times : numpy.ndarray of int64
    max_age_ns : int
        No quote (both NaN) where either side's latest trade is older than this.
    xp : module
        ``numpy`` or ``cupy``, owner of the trade arrays.
    target : {"cpu", "gpu"}
    not_before : numpy.ndarray of int64, optional
        Per time, the earliest trade time that counts (the start of the time's covered span: quotes
        never carry over from an earlier capture); default: no bound but the age limit.

    Returns
    -------
    BookAtTicks
        Host arrays; quantities and depths NaN.
    """
    ts = xp.ascontiguousarray(trades["ts"]).astype(xp.int64, copy=False)
    at = to_device(np.ascontiguousarray(times, dtype=np.int64), xp)
    lower = np.full(at.size, np.iinfo(np.int64).min) if not_before is None else not_before
    lower = to_device(np.ascontiguousarray(lower, dtype=np.int64), xp)
    is_sell = trades["is_buyer_maker"].astype(bool)

    def latest(on_side):
        rows = xp.flatnonzero(on_side).astype(xp.int64)
        if not rows.size:
            return xp.full(at.size, -1, dtype=xp.int64)
        found = xp.searchsorted(ts[rows], at, side="right") - 1
        return xp.ascontiguousarray(xp.where(found >= 0, rows[xp.maximum(found, 0)], -1).astype(xp.int64))

    quotes = empty_record(kernels.ImpliedQuotes, int(at.size), xp)
    kernels.implied_quotes(int(at.size), kernels.ImpliedQuoteInputs(
        times=at, last_sell=latest(is_sell), last_buy=latest(~is_sell), ts=ts,
        price=xp.ascontiguousarray(trades["price"]).astype(xp.float64, copy=False), not_before=lower),
        quotes, kernels.QuoteAge(max_age_ns=int(max_age_ns)), target)
    missing = np.full(int(at.size), np.nan)
    return BookAtTicks(to_host(quotes.bid), to_host(quotes.ask), missing, missing.copy(), missing.copy(),
                       missing.copy())


# -- as-of sampling of row batches -------------------------------------------------------------------
def as_of_batches(batches: Iterable[dict[str, np.ndarray]], times: np.ndarray, columns: tuple[str, ...],
                  max_age_ns: int) -> dict[str, np.ndarray]:
    """Values of ``columns`` of the last row with ``ts <= t`` for each sorted time (NaN where none
    is at most ``max_age_ns`` old), from row batches in time order, one batch in memory at a time."""
    out = {name: np.full(times.size, np.nan) for name in columns}
    done = 0
    carry: dict[str, np.ndarray] | None = None

    def answer(rows: dict[str, np.ndarray], upto: int) -> None:
        nonlocal done
        picked = times[done:upto]
        at = np.searchsorted(rows["ts"], picked, side="right") - 1
        fresh = (at >= 0) & (picked - rows["ts"][np.maximum(at, 0)] <= max_age_ns) if rows["ts"].size \
            else np.zeros(picked.size, dtype=bool)
        for name in columns:
            if rows["ts"].size:
                out[name][done:upto] = np.where(fresh, rows[name][np.maximum(at, 0)], np.nan)
        done = upto

    for rows in batches:
        if not rows["ts"].size:
            continue
        if carry is not None:   # the previous batch's last row answers times before this batch
            rows = {name: np.concatenate([carry[name], rows[name]]) for name in ("ts", *columns)}
        answer(rows, int(np.searchsorted(times, rows["ts"][-1], side="left")))
        carry = {name: rows[name][-1:] for name in ("ts", *columns)}
    if carry is not None:
        answer(carry, times.size)
    return out


def ticker_book(batches: Iterable[dict[str, np.ndarray]], times: np.ndarray, max_age_ns: int) -> BookAtTicks:
    """The book ticker's top as of each time; depth = the top quantities."""
    top = as_of_batches(batches, times, TOP_COLUMNS, max_age_ns)
    return BookAtTicks(top["bid"], top["ask"], top["bid_qty"], top["ask_qty"], top["bid_qty"],
                       top["ask_qty"])


def snapshot_summaries(batches: Iterable[dict[str, np.ndarray]], eta_bps: float) -> Iterator[dict]:
    """Per top-N snapshot (rows sharing a ``ts``): its top and its depth within η of the top.

    Snapshots cut by a batch boundary are put back together.
    """
    band = eta_bps * 1e-4
    carry = None
    names = ("ts", "level", *TOP_COLUMNS)
    for rows in batches:
        if carry is not None:
            rows = {name: np.concatenate([carry[name], rows[name]]) for name in names}
        if not rows["ts"].size:
            continue
        last = np.searchsorted(rows["ts"], rows["ts"][-1], side="left")
        carry = {name: rows[name][last:] for name in names}
        if last:
            yield _summarize({name: rows[name][:last] for name in names}, band)
    if carry is not None and carry["ts"].size:
        yield _summarize(carry, band)


def _summarize(rows: dict[str, np.ndarray], band: float) -> dict[str, np.ndarray]:
    ts = rows["ts"]
    first = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
    snapshot_of_row = np.cumsum(np.r_[True, ts[1:] != ts[:-1]]) - 1
    best_bid = rows["bid"][first][snapshot_of_row]
    best_ask = rows["ask"][first][snapshot_of_row]
    in_bid_band = rows["bid"] >= best_bid * (1.0 - band)
    in_ask_band = rows["ask"] <= best_ask * (1.0 + band)
    return {"ts": ts[first], "bid": rows["bid"][first], "ask": rows["ask"][first],
            "bid_qty": rows["bid_qty"][first], "ask_qty": rows["ask_qty"][first],
            "depth_bid": np.add.reduceat(np.where(in_bid_band, rows["bid_qty"], 0.0), first),
            "depth_ask": np.add.reduceat(np.where(in_ask_band, rows["ask_qty"], 0.0), first)}


def levels_book(batches: Iterable[dict[str, np.ndarray]], times: np.ndarray, eta_bps: float,
                max_age_ns: int) -> BookAtTicks:
    """Top-N snapshots as of each time: top = level 0, depth = levels within η of it."""
    names = (*TOP_COLUMNS, "depth_bid", "depth_ask")
    values = as_of_batches(snapshot_summaries(batches, eta_bps), times, names, max_age_ns)
    return BookAtTicks(*(values[name] for name in names))


def band_depths(rows: dict[str, np.ndarray], times: np.ndarray, max_age_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth of the narrowest ``bookDepth`` band on each side of each snapshot, as of each time.

    The band is chosen per snapshot (the rows of one ``ts``), so a narrower band appearing in later
    files never changes earlier values.
    """
    sides = []
    for on_side in (rows["pct"] < 0, rows["pct"] > 0):
        ts, pct, depth = rows["ts"][on_side], np.abs(rows["pct"][on_side]), rows["depth"][on_side]
        order = np.lexsort((pct, ts))               # per snapshot, narrowest band first
        ts, depth = ts[order], depth[order]
        first = np.r_[True, ts[1:] != ts[:-1]] if ts.size else np.zeros(0, dtype=bool)
        narrowest = as_of_batches([{"ts": ts[first], "depth": depth[first]}], times, ("depth",),
                                  max_age_ns)
        sides.append(narrowest["depth"])
    return sides[0], sides[1]


def table_batches(batches: Iterable[pa.Table], columns: tuple[str, ...]) -> Iterator[dict[str, np.ndarray]]:
    """Row batches (pyarrow tables) as dicts of float64/int64 NumPy arrays of ``columns``."""
    for batch in batches:
        yield {name: (batch.column(name).to_numpy(zero_copy_only=False) if name in ("ts", "level")
                      else batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64))
               for name in columns}
