"""One gzip file per UTC day, fed with formatted lines in receive-time order.

Both writers hand their lines here as one byte buffer plus, per line, its receive time and end
offset; the sink cuts the buffer at UTC-day boundaries of the receive time (a file holds the lines
whose receive time falls in its day, like the real collector and Tardis) and drops lines past the
last day. Files are written to a temporary name and renamed when complete. The gzip stream has no
file name and mtime 0, so equal content gives byte-identical files. Compression uses ISA-L
(``isal``, ~3x faster) when it is installed, else zlib; both at level 1.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    from isal import isal_zlib as _deflate
except ImportError:  # isal is an optional speed-up; zlib gives the same content
    _deflate = zlib

DAY_NS = 86_400_000_000_000
COMPRESS_LEVEL = 1
_GZIP_WBITS = 31


class DailyGzipSink:
    """Route lines to ``path_for_day(day_index)`` by their receive time.

    Parameters
    ----------
    path_for_day : callable
        Maps a day index (0 = first day) to the file path of that day.
    first_day_ns : int
        00:00 UTC of the first day, ns since the epoch.
    days : int
        Number of days; lines at or after the end of the last day are dropped.
    header : bytes, optional
        Written at the top of every file (the CSV header line for Tardis).
    """

    def __init__(self, path_for_day: Callable[[int], Path], first_day_ns: int, days: int,
                 header: bytes = b"") -> None:
        self._paths = [path_for_day(day) for day in range(days)]
        self._first_day_ns = first_day_ns
        self._header = header
        self._day = -1
        self._handle = None
        self._compressor = None

    def _open(self, day: int) -> None:
        self._close_current()
        self._day = day
        self._handle = open(self._temporary(day), "wb")
        self._compressor = _deflate.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        self._append(self._header)

    def _temporary(self, day: int) -> Path:
        return self._paths[day].with_name(self._paths[day].name + ".partial")

    def _append(self, data) -> None:
        self._handle.write(self._compressor.compress(data))

    def _close_current(self) -> None:
        if self._handle is not None:
            self._handle.write(self._compressor.flush())
            self._handle.close()
            self._temporary(self._day).replace(self._paths[self._day])
            self._handle = None

    def write(self, buffer: np.ndarray, line_local_ns: np.ndarray, line_end: np.ndarray) -> None:
        """Append lines; ``buffer[line_end[i-1]:line_end[i]]`` is line ``i``, received at ``line_local_ns[i]``."""
        if line_end.size == 0:
            return
        day_of_line = (line_local_ns - self._first_day_ns) // DAY_NS
        boundaries = np.flatnonzero(np.diff(day_of_line)) + 1
        starts = np.concatenate(([0], boundaries))
        stops = np.concatenate((boundaries, [line_end.size]))
        for first, stop in zip(starts, stops):
            day = int(day_of_line[first])
            if day >= len(self._paths):
                break
            if day != self._day:
                self._open(day)
            begin = int(line_end[first - 1]) if first > 0 else 0
            self._append(memoryview(buffer[begin:int(line_end[stop - 1])]))

    def close(self) -> list[Path]:
        """Finish every file (days without lines get a file with the header only); return the paths."""
        for day in range(max(self._day, 0), len(self._paths)):
            if day != self._day:
                self._open(day)
        self._close_current()
        return list(self._paths)
