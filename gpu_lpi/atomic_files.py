"""Files of a run folder written atomically: into a temporary name beside the target, then renamed,
so that a reader (or a crash) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def _replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:   # an error or Ctrl-C while writing leaves no temporary file (after os.replace there is none)
        tmp.unlink(missing_ok=True)


def write_json(path: Path, content: dict) -> None:
    """``content`` as indented JSON (NumPy scalars and arrays allowed)."""
    _replace(path, lambda tmp: tmp.write_bytes(
        orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)))


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as a Parquet file (its index dropped)."""
    _replace(path, lambda tmp: pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp))
