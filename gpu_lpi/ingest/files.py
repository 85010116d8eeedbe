"""Opening raw input files: plain, gzip or single-member zip, with clear errors."""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from gpu_lpi.errors import InputError

#: Size of the blocks decompressed at a time.
CHUNK_BYTES = 16 << 20


def read_bytes(path: Path) -> bytes:
    """The decompressed content of ``path`` (gzip and zip detected by magic bytes).

    Raises
    ------
    InputError
        If the file is a truncated or corrupt gzip/zip, naming the file and the line count reached.
    """
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] == b"\x1f\x8b":
        return _gunzip(path)
    if magic == b"PK\x03\x04":
        return _unzip(path)
    return path.read_bytes()


def _gunzip(path: Path) -> bytes:
    parts: list[bytes] = []
    with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as stream:
        try:
            while block := stream.read(CHUNK_BYTES):
                parts.append(block)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            lines = sum(part.count(b"\n") for part in parts)
            raise InputError(path, lines + 1, f"truncated or corrupt gzip stream ({err}); "
                             f"{lines:,} complete lines were readable") from None
    return b"".join(parts)


def _unzip(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise InputError(path, None, f"expected one file inside the zip, found {len(members)}")
            return archive.read(members[0])
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise InputError(path, None, f"corrupt zip file ({err})") from None


def text_stream(path: Path) -> io.BytesIO:
    """The decompressed content of ``path`` as a binary stream."""
    return io.BytesIO(read_bytes(path))


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
