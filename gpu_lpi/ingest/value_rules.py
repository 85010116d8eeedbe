"""The value rules every format's canonical rows must meet before they reach the store.

One set of rules for all formats (DESIGN.md §3), applied by each parser to the tick-store rows it
yields (:func:`checked`):

* prices (``price``, ``bid``, ``ask``, ``mark_price``, ``avg_price``) finite and > 0;
* quantities (``qty``, ``bid_qty``, ``ask_qty``) finite and > 0, except ``depth_diff.qty`` of a diff,
  where 0 deletes a level (a snapshot lists the levels there are: > 0): zero-quantity trades (the
  archive has such rows) are rejected;
* notionals, open interest and book-depth bands finite and >= 0 (an empty band is 0);
  funding rates and band percentages finite;
* ``ts``, and ``local_ts`` where present, inside the accepted time range (:class:`TimeBounds`:
  by default from 2017-01-01 to one day after now), so that a bad stamp can never create a
  ``date=2200-01-01`` or ``date=1969-12-31`` partition.

Ids given by a source (trade, aggregate-trade and update ids) must be integers >= 0; the readers
check them on the source's values (:mod:`gpu_lpi.ingest.binance_ws.payloads`,
:mod:`gpu_lpi.ingest.csv_tables`, :mod:`gpu_lpi.ingest.tardis`), since in canonical rows -1 is the
store's "no id" (:data:`gpu_lpi.schema.NO_ID`) and a source's -1 would pass for it.

A null in a nullable column (an absent value: an empty book side, no mark price yet) passes; the
marker rows of empty depth messages (side -1) carry no price and are exempt. A row that fails is
rejected together with every other row from the same source line (a book message, a snapshot
line), once, under the reason of its first failing rule, with the file, line and value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpu_lpi.errors import ConfigError
from gpu_lpi.schema import SIDE_EMPTY_MESSAGE
from gpu_lpi.store import NS_PER_DAY, date_to_ns

#: Default first accepted day (before any venue this engine reads).
DEFAULT_EARLIEST = date(2017, 1, 1)
#: Dates whose midnight int64 nanoseconds can hold.
_NS_DATES = (date(1678, 1, 1), date(2261, 12, 31))


def format_ns(ns: int) -> str:
    """A nanosecond UTC time as ISO text (``2024-08-05T00:00:00.123``), seconds trimmed when round."""
    seconds, rest = divmod(int(ns), 10**9)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{rest:09d}".rstrip("0") if rest else "")


@dataclass(frozen=True)
class TimeBounds:
    """The accepted range ``[start_ns, end_ns)`` of ``ts`` and ``local_ts``."""

    start_ns: int
    end_ns: int

    @classmethod
    def of(cls, earliest: date | str | None = None, latest: date | str | None = None) -> "TimeBounds":
        """Bounds from an earliest and a latest UTC date, both inclusive.

        Parameters
        ----------
        earliest : date or ``YYYY-MM-DD`` str, optional
            First accepted day (default :data:`DEFAULT_EARLIEST`).
        latest : date or ``YYYY-MM-DD`` str, optional
            Last accepted day; by default times up to one day after now are accepted.

        Raises
        ------
        ConfigError
            For an unreadable date, a date nanoseconds cannot hold, or latest before earliest.
        """
        first = _as_date(earliest, "earliest") if earliest is not None else DEFAULT_EARLIEST
        start = date_to_ns(first)
        end = time.time_ns() + NS_PER_DAY if latest is None else date_to_ns(_as_date(latest, "latest")) + NS_PER_DAY
        bounds = cls(start, end)
        if end <= start:
            raise ConfigError(f"--earliest {first.isoformat()} is after --latest: no time {bounds} is accepted")
        return bounds

    def __str__(self) -> str:
        return f"[{format_ns(self.start_ns)}, {format_ns(self.end_ns)})"


def _as_date(value: date | str, name: str) -> date:
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"--{name} {value!r}: expected a date YYYY-MM-DD") from None
    if not _NS_DATES[0] <= value <= _NS_DATES[1]:
        raise ConfigError(f"--{name} {value.isoformat()}: expected a date from {_NS_DATES[0].isoformat()} "
                          f"to {_NS_DATES[1].isoformat()} (what int64 nanoseconds hold)")
    return value


@dataclass(frozen=True)
class _Rule:
    """A check on one column's present values."""

    what: str                               # "a finite number > 0", ...
    ok: Callable[[np.ndarray], np.ndarray]  # values -> mask of good values


_POSITIVE = _Rule("a finite number > 0", lambda v: np.isfinite(v) & (v > 0))
_NON_NEGATIVE = _Rule("a finite number >= 0", lambda v: np.isfinite(v) & (v >= 0))
_FINITE = _Rule("a finite number", np.isfinite)

_TRADE_RULES = (("price", _POSITIVE), ("qty", _POSITIVE), ("notional", _NON_NEGATIVE))
#: Rules per tick-store table (times are checked in every table).
RULES: dict[str, tuple[tuple[str, _Rule], ...]] = {
    "trades": _TRADE_RULES,
    "agg_trades": _TRADE_RULES,
    "book_ticker": (("bid", _POSITIVE), ("bid_qty", _POSITIVE), ("ask", _POSITIVE), ("ask_qty", _POSITIVE)),
    "depth_diff": (("price", _POSITIVE), ("qty", _NON_NEGATIVE)),
    "book_levels": (("bid", _POSITIVE), ("bid_qty", _POSITIVE), ("ask", _POSITIVE), ("ask_qty", _POSITIVE)),
    "depth_bands": (("pct", _FINITE), ("depth", _NON_NEGATIVE), ("notional", _NON_NEGATIVE)),
    "open_interest": (("oi", _NON_NEGATIVE), ("oi_value", _NON_NEGATIVE)),
    "funding": (("rate", _FINITE), ("mark_price", _POSITIVE)),
    "liquidations": (("price", _POSITIVE), ("qty", _POSITIVE), ("notional", _NON_NEGATIVE),
                     ("avg_price", _POSITIVE)),
}
#: Rules for some rows of a table only: (column, rule, the rows it applies to, what those rows are).
ROW_RULES: dict[str, tuple[tuple[str, _Rule, Callable[[pa.Table], np.ndarray], str], ...]] = {
    "depth_diff": (("qty", _POSITIVE, lambda rows: rows.column("is_snapshot").to_numpy(zero_copy_only=False),
                    "snapshot"),),
}
TIME_COLUMNS = ("ts", "local_ts")

#: Per canonical row, the line it came from (an array, or a function computing it when needed).
Lines = np.ndarray | Callable[[], np.ndarray]


def checked(table: str, rows: pa.Table, path, lines: Lines, ctx) -> pa.Table:
    """``rows`` of tick-store table ``table`` without the source lines that break a value rule
    (see :func:`rejected_rows`)."""
    rejected = rejected_rows(table, rows, path, lines, ctx)
    return rows if rejected is None else rows.filter(pa.array(~rejected))


def rejected_rows(table: str, rows: pa.Table, path, lines: Lines, ctx) -> np.ndarray | None:
    """Mask of the ``rows`` of tick-store table ``table`` from a source line that breaks a value
    rule (``None`` when there is none); each such line is rejected once.

    Parameters
    ----------
    table : str
        The tick-store table ``rows`` belong to (their schema).
    rows : pyarrow.Table
    path : path-like
        The file the rows came from (for the rejections).
    lines : numpy.ndarray or callable
        The line of every row (rows of one line are kept or rejected together), or a function that
        returns them, called only when some row is rejected.
    ctx : IngestContext
        Receives the rejections; gives the accepted :class:`TimeBounds` (``ctx.bounds``).
    """
    if not rows.num_rows:
        return None
    exempt = _exempt_rows(table, rows)
    checks = [(column, rule, f"{table} {column} is not {rule.what}", None) for column, rule in RULES[table]]
    checks += [(column, rule, f"{table} {label} {column} is not {rule.what}", where)
               for column, rule, where, label in ROW_RULES.get(table, ())]
    failed = np.full(rows.num_rows, -1, dtype=np.int16)   # index of the first failing check per row
    for index, (column, rule, _, where) in enumerate(checks):
        values = rows.column(column)
        bad = ~rule.ok(values.to_numpy(zero_copy_only=False))
        if values.null_count:
            bad &= values.is_valid().to_numpy(zero_copy_only=False)
        if exempt is not None:
            bad &= ~exempt
        if where is not None:
            bad &= where(rows)
        _note_failures(failed, bad, index)
    bounds = ctx.bounds
    for column in TIME_COLUMNS:
        if column not in rows.column_names:
            continue
        values = rows.column(column)
        stamps = pc.fill_null(values, bounds.start_ns).to_numpy() if values.null_count else values.to_numpy()
        checks.append((column, None, f"{column} outside the accepted time range {bounds} (see --earliest, "
                                     "--latest)", None))
        _note_failures(failed, (stamps < bounds.start_ns) | (stamps >= bounds.end_ns), len(checks) - 1)
    bad = failed >= 0
    if not bad.any():
        return None
    row_lines = np.asarray(lines() if callable(lines) else lines)
    bad_rows = np.flatnonzero(bad)
    bad_lines, first = np.unique(row_lines[bad_rows], return_index=True)
    first_rows = bad_rows[first]
    reasons = failed[first_rows]
    for index in np.unique(reasons):
        column, rule, reason, _ = checks[index]
        picked = first_rows[reasons == index]
        values = rows.column(column)
        raw = (pc.fill_null(values, 0) if rule is None else values).to_numpy(zero_copy_only=False)[picked]
        show = format_ns if rule is None else (lambda v: repr(float(v)))
        ctx.reject_many(path, row_lines[picked], reason,
                        lambda i, column=column, raw=raw, show=show: f"{column}={show(raw[i])}")
    return np.isin(row_lines, bad_lines)


def _note_failures(failed: np.ndarray, fails: np.ndarray, index: int) -> None:
    failed[fails & (failed < 0)] = index


def _exempt_rows(table: str, rows: pa.Table) -> np.ndarray | None:
    """Rows the value rules do not apply to: the marker rows of empty depth messages."""
    if table != "depth_diff":
        return None
    return rows.column("side").to_numpy() == SIDE_EMPTY_MESSAGE
