"""Where things live in a tick store, and the UTC day arithmetic of its partitions.

::

    STORE/<table>/symbol=<SYM>/date=<YYYY-MM-DD>/part-0.parquet   rows (hive partitions, one file each)
    STORE/symbols/symbols.parquet                                 reference data
    STORE/coverage/coverage.parquet                               covered time spans
    STORE/_reports/ingest-<stamp>.json                            ingest reports
    STORE/_version                                                commit counter (absent: 0)
    STORE/_journal.json                                           only while a commit is published
    STORE/_locks/writer.lock                                      held by the committing writer
    STORE/_staging/<id>/                                          a running (or killed) ingest's rows

Paths inside the store are handled as POSIX relative paths (``"trades/symbol=X/date=D/part-0.parquet"``)
wherever they are written down (the commit journal, fingerprints).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np

NS_PER_DAY = 86_400 * 10**9
PARTITION_FILE = "part-0.parquet"
SYMBOLS_FILE = "symbols/symbols.parquet"
COVERAGE_FILE = "coverage/coverage.parquet"
REPORTS_DIR = "_reports"
VERSION_FILE = "_version"
JOURNAL_FILE = "_journal.json"
LOCKS_DIR = "_locks"
STAGING_DIR = "_staging"


def day_of(ts_ns):
    """Days since the Unix epoch (UTC) of int64 nanosecond timestamps."""
    return np.floor_divide(ts_ns, NS_PER_DAY)


def day_to_date(day: int) -> date:
    """The calendar date of a day number from :func:`day_of`."""
    return datetime.fromtimestamp(int(day) * 86_400, tz=timezone.utc).date()


def date_to_ns(d: date) -> int:
    """Nanoseconds since the epoch at 00:00 UTC of ``d``."""
    return (d - date(1970, 1, 1)).days * NS_PER_DAY


def ns_to_date(ts_ns: int) -> date:
    """The UTC date of a nanosecond timestamp (exact integer arithmetic, no float rounding)."""
    return day_to_date(int(ts_ns) // NS_PER_DAY)


def partition_relpath(table: str, symbol: str, day: date) -> str:
    """Relative path of the file of one partition."""
    return f"{table}/symbol={symbol}/date={day.isoformat()}/{PARTITION_FILE}"
