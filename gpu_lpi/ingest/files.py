"""Opening raw input files: plain, gzip or single-member zip, with clear errors."""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from isal import igzip
from tqdm import tqdm

from gpu_lpi.errors import InputError

#: Size of the line-aligned text blocks :func:`iter_line_blocks` yields (memory per block is a few
#: times this, whatever the file's size).
LINE_BLOCK_BYTES = 96 << 20


def read_bytes(path: Path) -> bytes:
    """The decompressed content of ``path`` (gzip and zip detected by magic bytes).

    Raises
    ------
    InputError
        If the file is a truncated or corrupt gzip/zip, naming the file and the line reached.
    """
    return b"".join(block for _, block in iter_line_blocks(path))


def _open_stream(path: Path):
    """A binary stream of the decompressed content (gzip via ISA-L, else plain)."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] == b"\x1f\x8b":
        return igzip.open(path, "rb")
    if magic == b"PK\x03\x04":
        return io.BytesIO(_unzip(path))
    return open(path, "rb")


def iter_line_blocks(path: Path, block_bytes: int = LINE_BLOCK_BYTES) -> Iterator[tuple[int, bytes]]:
    """Yield ``(number of the block's first line, block)`` for blocks of whole lines.

    Raises
    ------
    InputError
        If the gzip stream is truncated or corrupt, naming the line reached.
    """
    first_line, carry = 1, b""
    with _open_stream(path) as stream:
        while True:
            try:
                chunk = stream.read(block_bytes)
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
                line = first_line + carry.count(b"\n")
                raise InputError(path, line, f"truncated or corrupt gzip stream ({err}); "
                                 f"{line - 1:,} complete lines were readable") from None
            if not chunk:
                break
            block = carry + chunk
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                carry = block
                continue
            carry = block[cut:]
            yield first_line, block[:cut]
            first_line += block.count(b"\n", 0, cut)
    if carry:
        yield first_line, carry


def _unzip(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise InputError(path, None, f"expected one file inside the zip, found {len(members)}")
            return archive.read(members[0])
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise InputError(path, None, f"corrupt zip file ({err})") from None


def parse_files(files: list[Path], progress: bool, parse_file):
    """Yield the non-empty ``(table, symbol, rows)`` chunks of ``parse_file(path)`` for each file,
    under a progress bar over the files' bytes."""
    with progress_bar(files, progress) as bar:
        for path in files:
            for table, symbol, rows in parse_file(path):
                if rows.num_rows:
                    yield table, symbol, rows
            bar.update(path.stat().st_size)


def progress_bar(files: list[Path], enabled: bool, unit_name: str = "file") -> tqdm:
    """A progress bar over the compressed bytes of ``files`` (shown only on a terminal)."""
    total = sum(f.stat().st_size for f in files)
    return tqdm(total=total, unit="B", unit_scale=True, disable=None if enabled else True,
                desc=f"ingest {len(files)} {unit_name}(s)", leave=False)
