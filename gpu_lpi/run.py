"""``run_job``: a TOML job spec -> the run folder's features (DESIGN.md §5).

Job spec::

    [data]
    store = "store"              # tick store folder, relative to the spec file
    symbols = ["BTCUSDT"]
    start = 2024-08-05           # inclusive dates (TOML dates or "YYYY-MM-DD")
    end = 2024-08-05
    [grid]
    tick_ms = 250
    [params]                     # any field of gpu_lpi.params.FeatureParams
    theta_bps = 5.0
    [cluster]
    chunk_hours = 24             # must divide 24: chunks never straddle a date

Sections ``[sweep]``, ``[study]``, ``[sim]`` and ``[cv]`` belong to later stages and are recorded
as given. Unknown sections or keys raise :class:`~gpu_lpi.errors.ConfigError` naming them.

Run folder: ``RUN/features/symbol=<S>/date=<D>/part-<HHMM>.parquet`` (one file per chunk, written
into ``RUN/features/_tmp`` then renamed; a re-run skips chunks whose file exists) and
``RUN/run.json`` (resolved config, versions, device, seconds per stage, book-depth source per
symbol). Chunks whose range holds no book data at all are skipped and counted as empty.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm import tqdm

from gpu_lpi.book_at_ticks import book_source
from gpu_lpi.errors import ConfigError
from gpu_lpi.features import STAGES, compute_feature_chunk
from gpu_lpi.device import resolve_device
from gpu_lpi.params import FeatureParams
from gpu_lpi.store import NS_PER_DAY, TickStore, date_to_ns

_SECTIONS = {"data", "grid", "params", "cluster", "sweep", "study", "sim", "cv"}
_DATA_KEYS = {"store", "symbols", "start", "end"}
_GRID_KEYS = {"tick_ms"}
_CLUSTER_KEYS = {"scheduler", "chunk_hours"}
_NS_PER_HOUR = 3_600 * 10**9


@dataclass(frozen=True)
class JobSpec:
    """A validated job spec."""

    store: Path
    symbols: tuple[str, ...]
    start: date
    end: date
    params: FeatureParams
    chunk_hours: int = 24
    scheduler: str = "local"
    later_stages: dict[str, Any] = field(default_factory=dict)
    name: str = "job"

    def resolved(self) -> dict[str, Any]:
        """The resolved config, as written to run.json."""
        return {"data": {"store": str(self.store), "symbols": list(self.symbols),
                         "start": self.start.isoformat(), "end": self.end.isoformat()},
                "grid": {"tick_ms": self.params.tick_ms},
                "params": self.params.to_dict(),
                "cluster": {"scheduler": self.scheduler, "chunk_hours": self.chunk_hours},
                **self.later_stages}


@dataclass
class RunResult:
    """What :func:`run_job` did; ``out`` is the run folder."""

    out: Path
    device: str
    book_source: dict[str, str]
    seconds: dict[str, float]
    chunks: dict[str, int]

    @property
    def features_dir(self) -> Path:
        return self.out / "features"

    def features(self) -> pa.Table:
        """All features of the run (hive columns ``symbol`` and ``date`` included)."""
        return ds.dataset(self.features_dir, format="parquet", partitioning="hive",
                          exclude_invalid_files=True).to_table()

    def summary(self) -> str:
        sources = ", ".join(f"{symbol}: {source}" for symbol, source in self.book_source.items())
        return (f"run folder: {self.out}\ndevice: {self.device}\n"
                f"chunks: {self.chunks['computed']} computed, {self.chunks['existing']} already done, "
                f"{self.chunks['empty']} without data\nbook depth source: {sources}\n"
                f"seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in self.seconds.items()))


# -- job spec ------------------------------------------------------------------------------------------
def load_job_spec(spec_or_path) -> JobSpec:
    """Parse and validate a job spec given as a path or as an already-parsed mapping."""
    if isinstance(spec_or_path, dict):
        raw, base, name = spec_or_path, Path.cwd(), "job"
    else:
        path = Path(spec_or_path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: job spec not found") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
        base, name = path.resolve().parent, path.stem
    for section in raw:
        if section not in _SECTIONS:
            raise ConfigError(f"[{section}]: unknown section; expected one of {sorted(_SECTIONS)}")
    data = _section(raw, "data", _DATA_KEYS)
    grid = _section(raw, "grid", _GRID_KEYS)
    cluster = _section(raw, "cluster", _CLUSTER_KEYS)
    params_table = dict(_section(raw, "params", None))
    if "tick_ms" in params_table:
        raise ConfigError("params.tick_ms: set the tick in [grid] tick_ms")
    if "tick_ms" in grid:
        params_table["tick_ms"] = grid["tick_ms"]
    for key in ("store", "symbols", "start", "end"):
        if key not in data:
            raise ConfigError(f"data.{key}: missing; expected {_EXPECTED[key]}")
    symbols = data["symbols"]
    if (not isinstance(symbols, list) or not symbols
            or not all(isinstance(s, str) and s for s in symbols)):
        raise ConfigError(f"data.symbols: expected {_EXPECTED['symbols']}, got {symbols!r}")
    start, end = _date("data.start", data["start"]), _date("data.end", data["end"])
    if end < start:
        raise ConfigError(f"data.end: expected a date on or after data.start={start}, got {end}")
    chunk_hours = cluster.get("chunk_hours", 24)
    if isinstance(chunk_hours, bool) or not isinstance(chunk_hours, int) or chunk_hours < 1 \
            or 24 % chunk_hours:
        raise ConfigError(f"cluster.chunk_hours: expected a whole number of hours dividing 24 "
                          f"(1, 2, 3, 4, 6, 8, 12, 24), got {chunk_hours!r}")
    store = Path(str(data["store"]))
    return JobSpec(store=store if store.is_absolute() else base / store, symbols=tuple(symbols),
                   start=start, end=end, params=FeatureParams.from_mapping(params_table),
                   chunk_hours=chunk_hours, scheduler=str(cluster.get("scheduler", "local")),
                   later_stages={k: v for k, v in raw.items() if k not in {"data", "grid", "params",
                                                                           "cluster"}},
                   name=name)


_EXPECTED = {"store": "the tick store folder", "symbols": "a non-empty list of symbol names",
             "start": "a date YYYY-MM-DD", "end": "a date YYYY-MM-DD"}


def _section(raw: dict, name: str, keys: set[str] | None) -> dict:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}]: expected a table")
    for key in table if keys is not None else ():
        if key not in keys:
            raise ConfigError(f"{name}.{key}: unknown key; expected one of {sorted(keys)}")
    return table


def _date(field_name: str, value) -> date:
    if isinstance(value, datetime):
        raise ConfigError(f"{field_name}: expected a date YYYY-MM-DD, got a date-time {value}")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{field_name}: expected a date YYYY-MM-DD, got {value!r}") from None


# -- chunks ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """One symbol over ``[start_ns, end_ns)``, written to ``path``."""

    symbol: str
    start_ns: int
    end_ns: int
    path: Path


def plan_chunks(spec: JobSpec, out: Path) -> list[Chunk]:
    """Every (symbol, time chunk) of the job, in order."""
    chunks = []
    step = spec.chunk_hours * _NS_PER_HOUR
    for symbol in spec.symbols:
        day = spec.start
        while day <= spec.end:
            for start_ns in range(date_to_ns(day), date_to_ns(day) + NS_PER_DAY, step):
                hhmm = datetime.fromtimestamp(start_ns / 1e9, tz=timezone.utc).strftime("%H%M")
                path = (out / "features" / f"symbol={symbol}" / f"date={day.isoformat()}"
                        / f"part-{hhmm}.parquet")
                chunks.append(Chunk(symbol, start_ns, start_ns + step, path))
            day += timedelta(days=1)
    return chunks


def _has_book_data(store: TickStore, chunk: Chunk, source: str, params: FeatureParams) -> bool:
    history_ns = params.history_ticks * params.tick_ns + int(params.book_max_age_s * 1e9)
    first = datetime.fromtimestamp((chunk.start_ns - history_ns) / 1e9, tz=timezone.utc).date()
    last = datetime.fromtimestamp((chunk.end_ns - 1) / 1e9, tz=timezone.utc).date()
    return any(first <= d <= last for d in store.dates(source, chunk.symbol))


def _compute_and_write(store_root: str, chunk: Chunk, params: FeatureParams, device: str,
                       tmp_root: Path) -> dict[str, float]:
    """Compute one chunk and publish its file atomically; return the seconds per stage."""
    result = compute_feature_chunk(TickStore(store_root), chunk.symbol, chunk.start_ns, chunk.end_ns,
                                   params, device)
    begin = time.perf_counter()
    tmp = tmp_root / uuid.uuid4().hex / chunk.path.name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(result.table, tmp, compression="zstd")
    chunk.path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, chunk.path)
    shutil.rmtree(tmp.parent, ignore_errors=True)
    seconds = dict(result.seconds)
    seconds["io"] += time.perf_counter() - begin
    return seconds


# -- the job -------------------------------------------------------------------------------------------
def run_job(spec_or_path, out=None, device: str = "auto", client=None) -> RunResult:
    """Run a job spec: features and LPI for every symbol and chunk into the run folder.

    Parameters
    ----------
    spec_or_path : path or dict
        A TOML job spec file (see the module docstring) or its parsed content.
    out : path, optional
        Run folder; default ``runs/<spec file stem>`` under the current folder. Re-running into the
        same folder resumes: finished chunks are kept. A folder holding a run with a different
        config is refused.
    device : {"auto", "cpu", "gpu"}
    client : distributed.Client, optional
        When given, chunks run as Dask tasks on its cluster (each worker writes its own files);
        otherwise in this process. No cluster is ever created here.

    Returns
    -------
    RunResult
    """
    begin = time.perf_counter()
    spec = load_job_spec(spec_or_path)
    target = resolve_device(device)
    out = Path(out) if out is not None else Path.cwd() / "runs" / spec.name
    store = TickStore(spec.store)
    if not store.root.is_dir():
        raise ConfigError(f"data.store: {store.root} is not a folder")
    known = set(store.symbols().column("symbol").to_pylist())
    for symbol in spec.symbols:
        if symbol not in known:
            raise ConfigError(f"data.symbols: {symbol} has no reference data in {store.root}")
    sources = {symbol: book_source(store, symbol) for symbol in spec.symbols}
    config = spec.resolved()
    _claim_run_folder(out, config)

    chunks = plan_chunks(spec, out)
    todo = [c for c in chunks if not c.path.exists()]
    with_data = [c for c in todo if _has_book_data(store, c, sources[c.symbol], spec.params)]
    counts = {"computed": len(with_data), "existing": len(chunks) - len(todo),
              "empty": len(todo) - len(with_data)}
    seconds = dict.fromkeys(STAGES, 0.0)
    tmp_root = out / "features" / "_tmp"
    arguments = [(str(store.root), c, spec.params, target, tmp_root) for c in with_data]
    with tqdm(total=len(with_data), desc="features", unit="chunk", disable=None) as bar:
        for stage_seconds in _execute(arguments, client):
            for stage, value in stage_seconds.items():
                seconds[stage] += value
            bar.update()
    shutil.rmtree(tmp_root, ignore_errors=True)
    seconds["total"] = time.perf_counter() - begin
    result = RunResult(out=out, device=target, book_source=sources, seconds=seconds, chunks=counts)
    _write_run_json(out, config, result)
    return result


def _execute(arguments: list[tuple], client):
    if client is None:
        for args in arguments:
            yield _compute_and_write(*args)
        return
    from distributed import as_completed

    futures = [client.submit(_compute_and_write, *args, pure=False) for args in arguments]
    for future in as_completed(futures):
        yield future.result()


def _claim_run_folder(out: Path, config: dict) -> None:
    """Refuse a run folder that holds a run with a different config; record ours otherwise."""
    run_json = out / "run.json"
    if run_json.exists():
        previous = orjson.loads(run_json.read_bytes()).get("config")
        if previous != orjson.loads(orjson.dumps(config)):
            raise ConfigError(f"--out {out}: holds a run with a different config; choose a new folder")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: folder exists and holds no run.json; choose a new folder")
    _write_json(run_json, {"config": config, "status": "running"})


def _write_run_json(out: Path, config: dict, result: RunResult) -> None:
    _write_json(out / "run.json", {
        "config": config, "status": "complete", "device": result.device,
        "versions": _versions(), "book_source": result.book_source,
        "seconds": result.seconds, "chunks": result.chunks,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    os.replace(tmp, path)


def _versions() -> dict[str, str | None]:
    import numba
    import numpy
    import pyarrow

    versions = {"python": platform.python_version(), "numpy": numpy.__version__,
                "numba": numba.__version__, "pyarrow": pyarrow.__version__, "cupy": None}
    try:
        import cupy

        versions["cupy"] = cupy.__version__
    except ImportError:
        pass
    return versions
