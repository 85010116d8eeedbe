"""Opening raw input files: plain, gzip (one or more members) or single-member zip, read as a stream.

Nothing here holds a whole file: :func:`iter_line_blocks` decompresses a bounded piece at a time and
yields blocks of whole lines. A truncated or corrupt file is fatal, and the error says how many
complete lines could be read before the damage (the true count: every byte the decompressor could
still decode is counted). So is a gzip file with bytes after its last member that do not begin
another member (zero padding excepted), as Python's ``gzip`` module holds too: whatever wrote them,
the file is not what its writer closed.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from isal import isal_zlib

from gpu_lpi.errors import InputError
from gpu_lpi.progress import progress_bar

#: Size of the line-aligned text blocks :func:`iter_line_blocks` yields (memory per block is a few
#: times this, whatever the file's size).
LINE_BLOCK_BYTES = 96 << 20
#: Compressed bytes read from a file at a time.
READ_BYTES = 1 << 20
#: Most decompressed bytes one decompressor call may return (bounds memory on highly compressible input).
PIECE_BYTES = 8 << 20
#: Compressed bytes fed at a time when an unreadable gzip file is re-read to count its readable lines.
_RECOUNT_BYTES = 1 << 14

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
#: ``wbits`` of a gzip stream (header and trailer checked) for zlib and ISA-L.
_GZIP_WBITS = 31


class _Unreadable(Exception):
    """The decompressed stream ends in damage (``reason``, in the decompressor's words); ``exact``
    when every readable byte was yielded before."""

    def __init__(self, reason: str, exact: bool):
        super().__init__(reason)
        self.reason, self.exact = reason, exact


def _kind(path: Path) -> str:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] == _GZIP_MAGIC:
        return "gzip"
    if magic == _ZIP_MAGIC:
        return "zip"
    return "plain"


def _gzip_pieces(path: Path) -> Iterator[bytes]:
    """The decompressed content of a gzip file (members one after another), piece by piece (ISA-L).

    Raises :class:`_Unreadable` after the last readable piece if the stream is cut short or corrupt,
    or followed by bytes that are neither zero padding nor another member.
    """
    inflater = isal_zlib.decompressobj(_GZIP_WBITS)
    with open(path, "rb") as handle:
        data = b""
        while more := handle.read(READ_BYTES):
            data += more
            while data:
                if inflater.eof:                       # a member ended: the next one, or zero padding
                    data = data.lstrip(b"\x00")
                    if len(data) < len(_GZIP_MAGIC):
                        break                          # too short to tell: read on
                    if not data.startswith(_GZIP_MAGIC):
                        raise _Unreadable("trailing data after the gzip stream", exact=True)
                    inflater = isal_zlib.decompressobj(_GZIP_WBITS)
                try:
                    piece = inflater.decompress(data, PIECE_BYTES)
                except (isal_zlib.error, zlib.error) as err:
                    raise _Unreadable(str(err), exact=False) from None
                if piece:
                    yield piece
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
    if data and inflater.eof:
        raise _Unreadable("trailing data after the gzip stream", exact=True)
    if not inflater.eof:
        raise _Unreadable("the file ends inside compressed data", exact=True)


class _GzipLineCounter:
    """Counts the lines of a gzip stream fed piece by piece with zlib, up to the first undecodable byte."""

    def __init__(self):
        self.lines = 0
        self._inflater = zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes) -> bool:
        """Count the lines ``data`` decompresses to; ``False`` once a byte cannot be decoded.

        A piece that fails is fed again one byte at a time from a copy of the decompressor taken
        before it, so that the count includes everything up to the failing byte.
        """
        while data:
            if self._inflater.eof:
                if not data.strip(b"\x00"):
                    return True
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
            before = self._inflater.copy()
            try:
                self.lines += self._inflater.decompress(data).count(b"\n")
            except zlib.error:
                if len(data) == 1:
                    return False
                self._inflater = before
                return all(self.feed(data[at:at + 1]) for at in range(len(data)))
            data = self._inflater.unused_data
        return True


def readable_gzip_lines(path: Path) -> int:
    """How many complete lines of a damaged gzip file can be decompressed before the damage.

    Independent of the fast reader (zlib instead of ISA-L, small pieces, byte-wise retry), so it
    also counts the lines of the piece in which the fast reader met the damage.
    """
    counter = _GzipLineCounter()
    with open(path, "rb") as handle:
        while data := handle.read(_RECOUNT_BYTES):
            if not counter.feed(data):
                break
    return counter.lines


def _zip_pieces(path: Path) -> Iterator[bytes]:
    """The decompressed content of the one file inside a zip, piece by piece."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise _Unreadable(str(err), exact=False) from None
    with archive:
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise InputError(path, None, f"expected one file inside the zip, found {len(members)}")
        with archive.open(members[0]) as member:
            while True:
                try:
                    piece = member.read(READ_BYTES)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
                    raise _Unreadable(str(err), exact=False) from None
                if not piece:
                    return
                yield piece


def _plain_pieces(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while piece := handle.read(READ_BYTES):
            yield piece


_PIECES = {"gzip": _gzip_pieces, "zip": _zip_pieces, "plain": _plain_pieces}
_DESCRIPTIONS = {"gzip": "gzip stream", "zip": "zip file", "plain": "file"}


def iter_line_blocks(path: Path, block_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(number of the block's first line, block)`` for blocks of whole lines, in file order.

    Each block holds at most ``block_bytes`` (default :data:`LINE_BLOCK_BYTES`) bytes, or one line
    where a line is longer, and ends after a newline except for a last line without one.

    Raises
    ------
    InputError
        If the file is truncated or corrupt (after the blocks before the damage were yielded), naming
        the first line that could not be read completely and how many complete lines could.
    """
    block_bytes = LINE_BLOCK_BYTES if block_bytes is None else block_bytes
    kind = _kind(path)
    first_line, pending, pending_size = 1, [], 0
    try:
        for piece in _PIECES[kind](path):
            pending.append(piece)
            pending_size += len(piece)
            if pending_size < block_bytes:
                continue
            data, rest = b"".join(pending), 0
            for start, stop in _blocks(data, block_bytes, final=False):
                yield first_line, data[start:stop]
                first_line += data.count(b"\n", start, stop)
                rest = stop
            pending = [data[rest:]]
            pending_size = len(pending[0])
    except _Unreadable as err:
        readable = first_line - 1 + sum(p.count(b"\n") for p in pending)
        if kind == "gzip" and not err.exact:
            readable = readable_gzip_lines(path)
        raise InputError(path, readable + 1, f"truncated or corrupt {_DESCRIPTIONS[kind]} ({err.reason}); "
                         f"{readable:,} complete lines were readable") from None
    data = b"".join(pending)
    for start, stop in _blocks(data, block_bytes, final=True):
        yield first_line, data[start:stop]
        first_line += data.count(b"\n", start, stop)


def first_line_of(path: Path) -> bytes | None:
    """The first non-empty line of a file (decompressed, without its line end), reading only as much
    as it takes; ``None`` if the file has none or cannot be read that far."""
    pending = b""
    try:
        for piece in _PIECES[_kind(path)](path):
            pending = (pending + piece).lstrip(b"\r\n")
            end = pending.find(b"\n")
            if end >= 0:
                return pending[:end].rstrip(b"\r")
    except (_Unreadable, InputError, OSError):
        return None
    return pending.rstrip(b"\r") or None


def _blocks(data: bytes, block_bytes: int, final: bool) -> Iterator[tuple[int, int]]:
    """Bounds of consecutive blocks of whole lines of ``data``, each at most ``block_bytes`` long
    or one longer line. Unless ``final``, a rest shorter than ``block_bytes`` or without a newline
    is left for more data; if ``final``, the rest is the last block."""
    at = 0
    while len(data) - at >= block_bytes or (final and at < len(data)):
        stop = data.rfind(b"\n", at, at + block_bytes) + 1 or data.find(b"\n", at + block_bytes) + 1
        if not stop:
            if not final:
                return
            stop = len(data)
        yield at, stop
        at = stop


def parse_files(files: list[Path], progress: bool, parse_file):
    """Yield the non-empty ``(table, symbol, rows)`` chunks of ``parse_file(path)`` for each file,
    under a progress bar over the files' bytes."""
    with files_progress_bar(files, progress) as bar:
        for path in files:
            for table, symbol, rows in parse_file(path):
                if rows.num_rows:
                    yield table, symbol, rows
            bar.update(path.stat().st_size)


def files_progress_bar(files: list[Path], enabled: bool):
    """A progress bar over the compressed bytes of ``files`` (shown only on a terminal)."""
    total = sum(f.stat().st_size for f in files)
    return progress_bar(total, f"ingest {len(files)} file(s)", unit="B", enabled=enabled,
                        unit_scale=True)
