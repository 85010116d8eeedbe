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

    [study]                      # any field of gpu_lpi.study_params.StudyParams
    horizons_s = [0.5, 1, 2, 5, 30, 120]

Sections ``[sweep]``, ``[sim]`` and ``[cv]`` belong to later stages and are recorded as given. Unknown sections or keys raise :class:`~gpu_lpi.errors.ConfigError` naming them.

Dates: ``start`` and ``end`` must lie between :data:`EARLIEST_DATE` and :data:`LATEST_DATE` (the
nanosecond timestamps of the store end in 2262); whatever the range, only the chunks that the
store's covered spans meet are planned, so a long range costs no more than the data it holds.

Run folder: ``RUN/features/symbol=<S>/date=<D>/part-<HHMM>.parquet`` (one file per chunk that the
store's inputs cover, written into ``RUN/features/_tmp`` then renamed; chunks and days the inputs do
not cover produce no file; ``symbol`` and ``date`` are the partition keys, not columns of the files, so
``pandas.read_parquet("RUN/features")`` reads them as one dataset) and ``RUN/run.json`` (resolved config, versions, device, seconds per
stage, book source per symbol and what it degrades (``degraded``: e.g. ``trades`` -- quotes implied
by aggressor prices, no depth, LPI without LDR), covered spans per symbol, chunk counts).

After the features: ``RUN/events.parquet`` (one row per episode with its markouts,
:mod:`gpu_lpi.events`) and ``RUN/study.json`` (:mod:`gpu_lpi.study`), recomputed by every run from
the finished features. The leader of the crash filter (``params.crash_leader``, when it is one of the
job's symbols) is computed first; every other chunk joins the leader's ``forced_down`` by tick and
records the leader chunk's inputs, so it is recomputed when they change.

Resuming: each chunk file records, in its Parquet metadata, the fingerprint of its inputs
(:mod:`gpu_lpi.chunk_inputs`: the partitions and covered spans it read, the symbol's reference
data, the parameters). Re-running the same command keeps a finished chunk whose fingerprint still
matches the store and recomputes the others, saying how many (``chunks: ... recomputed``).
"""

from __future__ import annotations

import os
import platform
import shutil
import time
import tomllib
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from gpu_lpi.book_at_ticks import degradations, has_depth
from gpu_lpi.chunk_inputs import book_source_of, covered_spans, fingerprint_of, tables_read, trade_table_of
from gpu_lpi.device import array_module, resolve_device
from gpu_lpi.events import build_events, write_events
from gpu_lpi.errors import ConfigError, StoreError, reject_unknown_keys
from gpu_lpi.features import STAGES, PieceInputs, compute_feature_chunk
from gpu_lpi.interrupts import checkpoint
from gpu_lpi.params import FeatureParams
from gpu_lpi.progress import progress_bar
from gpu_lpi.signals import apply_crash_filter, load_mode_b, state_path
from gpu_lpi.store import NS_PER_DAY, Spans, TickStore, date_to_ns, ns_to_date
from gpu_lpi.store.transaction import probe_writable
from gpu_lpi.study import read_events, run_study
from gpu_lpi.study_params import StudyParams

_SECTIONS = {"data", "grid", "params", "cluster", "sweep", "study", "sim", "cv"}
_LATER_STAGES = ("sweep", "sim", "cv")
_DATA_KEYS = {"store", "symbols", "start", "end"}
_GRID_KEYS = {"tick_ms"}
_CLUSTER_KEYS = {"scheduler", "chunk_hours"}
_NS_PER_HOUR = 3_600 * 10**9
#: Dates a job may cover: tick data is no older, and int64 nanoseconds end in April 2262.
EARLIEST_DATE = date(2009, 1, 3)
LATEST_DATE = date(2261, 12, 31)


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
    study: StudyParams = field(default_factory=StudyParams)
    later_stages: dict[str, Any] = field(default_factory=dict)
    name: str = "job"

    def resolved(self) -> dict[str, Any]:
        """The resolved config, as written to run.json."""
        return {"data": {"store": str(self.store), "symbols": list(self.symbols),
                         "start": self.start.isoformat(), "end": self.end.isoformat()},
                "grid": {"tick_ms": self.params.tick_ms},
                "params": self.params.to_dict(),
                "cluster": {"scheduler": self.scheduler, "chunk_hours": self.chunk_hours},
                "study": self.study.to_dict(), **self.later_stages}


@dataclass
class RunResult:
    """What :func:`run_job` did; ``out`` is the run folder."""

    out: Path
    device: str
    book_source: dict[str, str]
    seconds: dict[str, float]
    chunks: dict[str, int]
    covered: dict[str, dict[str, list]] = field(default_factory=dict)
    #: Per symbol, what its book source degrades (:func:`gpu_lpi.book_at_ticks.degradations`).
    degraded: dict[str, list[str]] = field(default_factory=dict)
    #: Per symbol, how its FORCED state is confirmed (:func:`gpu_lpi.signals.state_path`).
    state_path: dict[str, str] = field(default_factory=dict)
    #: The crash filter's leader, whether it is active, and why not.
    crash_filter: dict[str, Any] = field(default_factory=dict)
    #: The event study's verdict (``study.json`` ``answer``).
    answer: dict[str, Any] = field(default_factory=dict)
    n_events: int = 0

    @property
    def features_dir(self) -> Path:
        return self.out / "features"

    def events(self):
        """``RUN/events.parquet`` as a pandas DataFrame (one row per event, with its markouts)."""
        return read_events(self.out)

    def study(self) -> dict:
        """``RUN/study.json``; :func:`gpu_lpi.study.study_frame` turns its groups into a DataFrame."""
        return orjson.loads((self.out / "study.json").read_bytes())

    def features(self) -> pa.Table:
        """All features of the run (hive columns ``symbol`` and ``date`` included)."""
        return ds.dataset(self.features_dir, format="parquet", partitioning="hive",
                          exclude_invalid_files=True).to_table()

    def summary(self) -> str:
        sources = ", ".join(f"{symbol}: {source}" for symbol, source in self.book_source.items())
        return (f"run folder: {self.out}\ndevice: {self.device}\n"
                f"chunks: {self.chunks['computed']} computed ({self.chunks['recomputed']} of them "
                f"recomputed because their inputs changed), {self.chunks['existing']} already done\n"
                f"book depth source: {sources}\n"
                f"forced state confirmed by: " + ", ".join(f"{s}: {p}" for s, p in self.state_path.items())
                + f"\ncrash filter: {self.crash_filter.get('reason', '')}\n"
                f"events: {self.n_events}\n"
                f"answer: {self.answer.get('text', '')}\n"
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
    repeated = sorted({s for s in symbols if symbols.count(s) > 1})
    if repeated:
        raise ConfigError(f"data.symbols: {', '.join(repeated)} listed more than once")
    start, end = _date("data.start", data["start"]), _date("data.end", data["end"])
    if end < start:
        raise ConfigError(f"data.end: expected a date on or after data.start={start}, got {end}")
    chunk_hours = cluster.get("chunk_hours", 24)
    if isinstance(chunk_hours, bool) or not isinstance(chunk_hours, int) or chunk_hours < 1 \
            or 24 % chunk_hours:
        raise ConfigError(f"cluster.chunk_hours: expected a whole number of hours dividing 24 "
                          f"(1, 2, 3, 4, 6, 8, 12, 24), got {chunk_hours!r}")
    store = Path(str(data["store"]))
    params = FeatureParams.from_mapping(params_table)
    load_mode_b(params.mode_b)
    return JobSpec(store=store if store.is_absolute() else base / store, symbols=tuple(symbols),
                   start=start, end=end, params=params,
                   chunk_hours=chunk_hours, scheduler=str(cluster.get("scheduler", "local")),
                   study=StudyParams.from_mapping(_section(raw, "study", None)),
                   later_stages={k: v for k, v in raw.items() if k in _LATER_STAGES},
                   name=name)


_EXPECTED = {"store": "the tick store folder", "symbols": "a non-empty list of symbol names",
             "start": "a date YYYY-MM-DD", "end": "a date YYYY-MM-DD"}


def _section(raw: dict, name: str, keys: set[str] | None) -> dict:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}]: expected a table")
    if keys is not None:
        reject_unknown_keys(name, table, keys)
    return table


def _date(field_name: str, value) -> date:
    if isinstance(value, datetime):
        raise ConfigError(f"{field_name}: expected a date YYYY-MM-DD, got a date-time {value}")
    if not isinstance(value, date):
        try:
            value = date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"{field_name}: expected a date YYYY-MM-DD, got {value!r}") from None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ConfigError(f"{field_name}: expected a date between {EARLIEST_DATE} and {LATEST_DATE}, "
                          f"got {value}")
    return value


# -- chunks ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """One symbol over ``[start_ns, end_ns)``, written to ``path``."""

    symbol: str
    start_ns: int
    end_ns: int
    path: Path


def plan_chunks(spec: JobSpec, out: Path, covered: dict[str, Spans]) -> list[Chunk]:
    """The (symbol, time chunk) pieces of the job that the covered spans meet, in order.

    Planning walks the covered spans, not the calendar, so it costs what the data holds, whatever
    the job's date range.
    """
    chunks = []
    step = spec.chunk_hours * _NS_PER_HOUR
    first, stop = date_to_ns(spec.start), date_to_ns(spec.end) + NS_PER_DAY
    for symbol in spec.symbols:
        starts: set[int] = set()
        for low, high in covered[symbol].clip(first, stop).to_list():
            starts.update(range(low - (low - first) % step, high, step))
        for start_ns in sorted(starts):
            day = ns_to_date(start_ns)
            hhmm = f"{(start_ns % NS_PER_DAY) // _NS_PER_HOUR:02d}00"
            path = out / "features" / f"symbol={symbol}" / f"date={day.isoformat()}" / f"part-{hhmm}.parquet"
            chunks.append(Chunk(symbol, start_ns, start_ns + step, path))
    return chunks


#: Key of the Parquet metadata entry in which a chunk file records its inputs.
INPUTS_KEY = b"gpu_lpi.inputs"


def _chunk_metadata(path: Path) -> dict:
    """A chunk file's Parquet key-value metadata ({} where the file is missing or unreadable)."""
    try:
        return pq.read_metadata(path).metadata or {}
    except (pa.ArrowInvalid, OSError):
        return {}


def _is_current(store: TickStore, chunk: Chunk, params: FeatureParams, source: str,
                leader: Path | None) -> bool:
    """Whether a finished chunk's recorded inputs (and its leader chunk's) are still current."""
    metadata = _chunk_metadata(chunk.path)
    if INPUTS_KEY not in metadata or metadata.get(LEADER_KEY) != _leader_inputs(leader):
        return False
    try:
        recorded = orjson.loads(metadata[INPUTS_KEY])
    except orjson.JSONDecodeError:
        return False
    pieces = [PieceInputs.from_dict(piece) for piece in recorded]
    return all(piece.fingerprint == fingerprint_of(store, chunk.symbol, list(piece.reads), params, source)
               for piece in pieces)


#: Key of the Parquet metadata entry with the inputs of the crash filter's leader chunk.
LEADER_KEY = b"gpu_lpi.leader_inputs"


def _leader_inputs(leader: Path | None) -> bytes:
    """What the leader chunk file records as its inputs (``null`` without a leader chunk)."""
    if leader is None:
        return b"null"
    return _chunk_metadata(leader).get(INPUTS_KEY, b"null")


def _with_crash_filter(table: pa.Table, symbol: str, leader: Path | None,
                       params: FeatureParams) -> pa.Table:
    """``target_w`` after the crash filter, and the ``leader_forced_down`` column (the leader's
    ``forced_down`` at the same tick; the leader's own for the leader, false without a leader)."""
    if leader is None:
        own = symbol == params.crash_leader
        flags = table.column("forced_down") if own else pa.array(np.zeros(table.num_rows, bool))
        return table.append_column("leader_forced_down", flags)
    ts = table.column("ts").to_numpy()
    down = np.zeros(ts.size, bool)
    if leader.exists():
        led = pq.read_table(leader, columns=["ts", "forced_down"])
        led_ts = led.column("ts").to_numpy()
        if led_ts.size:
            index = np.minimum(np.searchsorted(led_ts, ts), led_ts.size - 1)
            led_down = led.column("forced_down").to_numpy(zero_copy_only=False)
            down = (led_ts[index] == ts) & led_down[index]
    target = apply_crash_filter(table.column("target_w").to_numpy(), down, params.crash_scale)
    table = table.set_column(table.schema.get_field_index("target_w"), "target_w", pa.array(target))
    return table.append_column("leader_forced_down", pa.array(down))


def _compute_and_write(store_root: str, chunk: Chunk, params: FeatureParams, device: str,
                       source: str, tmp_root: Path, leader: Path | None) -> dict[str, float]:
    """Compute one chunk and publish its file atomically; return the seconds per stage.

    ``leader``: the crash filter's leader chunk file of the same time range (None for the leader
    itself, or without the leader among the job's symbols).
    """
    result = compute_feature_chunk(TickStore(store_root), chunk.symbol, chunk.start_ns, chunk.end_ns,
                                   params, device, book_source=source)
    begin = time.perf_counter()
    inputs = [piece.to_dict() for piece in result.inputs]
    # the symbol is the partition key (the folder name), so that pandas, polars, duckdb and cudf read
    # RUN/features as one hive dataset
    table = _with_crash_filter(result.table, chunk.symbol, leader, params).drop_columns(["symbol"])
    table = table.replace_schema_metadata({INPUTS_KEY: orjson.dumps(inputs),
                                           LEADER_KEY: _leader_inputs(leader)})
    tmp = tmp_root / uuid.uuid4().hex / chunk.path.name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, tmp, compression="zstd")
    chunk.path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, chunk.path)
    shutil.rmtree(tmp.parent, ignore_errors=True)
    seconds = dict(result.seconds)
    seconds["io"] += time.perf_counter() - begin
    return seconds


def _covered_spans(store: TickStore, symbol: str, source: str) -> dict[str, Spans]:
    """Per table a chunk reads, the spans the store's inputs cover for ``symbol``."""
    return {table: store.coverage(symbol, table)
            for table in tables_read(source, trade_table_of(store, symbol))}


# -- the job -------------------------------------------------------------------------------------------
def run_job(spec_or_path, out=None, device: str = "auto", client=None) -> RunResult:
    """Run a job spec: features and LPI for every symbol and covered chunk into the run folder.

    Parameters
    ----------
    spec_or_path : path or dict
        A TOML job spec file (see the module docstring) or its parsed content.
    out : path, optional
        Run folder; default ``runs/<spec file stem>`` under the current folder. Re-running into the
        same folder resumes: finished chunks whose inputs are unchanged are kept, the others
        recomputed. A folder holding a run with a different config is refused.
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
    if client is None and spec.scheduler != "local":
        with _connected(spec.scheduler) as connected:
            return run_job(spec_or_path, out=out, device=device, client=connected)
    out = Path(out) if out is not None else Path.cwd() / "runs" / spec.name
    store = TickStore(spec.store)
    if not store.root.is_dir():
        raise ConfigError(f"data.store: {store.root} is not a folder")
    known = set(store.symbols().column("symbol").to_pylist())
    for symbol in spec.symbols:
        if symbol not in known:
            raise ConfigError(f"data.symbols: {symbol} has no reference data in {store.root}")
    sources = {symbol: book_source_of(store, symbol) for symbol in spec.symbols}
    spans = {symbol: _covered_spans(store, symbol, sources[symbol]) for symbol in spec.symbols}
    covered = {symbol: covered_spans(store, symbol, sources[symbol]) for symbol in spec.symbols}
    for symbol in spec.symbols:
        if not len(covered[symbol]):
            raise ConfigError(f"data.store: {store.root} records no covered time spans for {symbol}, "
                              f"although it holds {sources[symbol]} rows (a store written before spans "
                              "were recorded?); re-ingest its input files into a new store")
    config = spec.resolved()
    _claim_run_folder(out, config)

    chunks = plan_chunks(spec, out, covered)
    crash = _crash_filter(spec)
    leader = spec.params.crash_leader if crash["active"] else None
    counts = dict.fromkeys(("computed", "existing", "recomputed"), 0)
    seconds = dict.fromkeys((*STAGES, "study"), 0.0)
    tmp_root = out / "features" / "_tmp"
    try:
        with progress_bar(len(chunks), "features", unit="chunk") as bar:
            # the leader first: the other symbols' chunks read its files (the crash filter)
            for phase in ([c for c in chunks if c.symbol == leader], [c for c in chunks if c.symbol != leader]):
                leaders = {c: _leader_path(c, leader) for c in phase}
                finished = [c for c in phase if c.path.exists()]
                kept = {c for c in finished
                        if _is_current(store, c, spec.params, sources[c.symbol], leaders[c])}
                todo = [c for c in phase if c not in kept]
                counts["computed"] += len(todo)
                counts["existing"] += len(kept)
                counts["recomputed"] += len(finished) - len(kept)
                bar.update(len(kept))
                arguments = [(str(store.root), c, spec.params, target, sources[c.symbol], tmp_root,
                              leaders[c]) for c in todo]
                for stage_seconds in _execute(arguments, client):
                    for stage, value in stage_seconds.items():
                        seconds[stage] += value
                    bar.update()
    finally:   # an interrupted chunk leaves no partial file behind; finished ones are kept
        shutil.rmtree(tmp_root, ignore_errors=True)
    paths = {symbol: state_path(*_feeds(store, symbol, sources[symbol])) for symbol in spec.symbols}
    study_begin = time.perf_counter()
    study = _event_study(out, store, spec, paths, target)
    seconds["study"] = time.perf_counter() - study_begin
    seconds["total"] = time.perf_counter() - begin
    job_range = (date_to_ns(spec.start), date_to_ns(spec.end) + NS_PER_DAY)
    used = {symbol: {table: [[int(a), int(b)] for a, b in spans.clip(*job_range).to_list()]
                     for table, spans in by_table.items() if len(spans)}
            for symbol, by_table in spans.items()}
    degraded = {s: degradations(sources[s], trade_table_of(store, s)) for s in spec.symbols}
    result = RunResult(out=out, device=target, book_source=sources, seconds=seconds, chunks=counts,
                       covered=used, degraded=degraded,
                       state_path=paths, crash_filter=crash, answer=study["answer"],
                       n_events=study["n_events"])
    _write_run_json(out, config, result)
    return result


def _leader_path(chunk: Chunk, leader: str | None) -> Path | None:
    """The leader's chunk file of the same time range (None for the leader itself, or no leader)."""
    if leader is None or chunk.symbol == leader:
        return None
    return chunk.path.parents[2] / f"symbol={leader}" / chunk.path.parent.name / chunk.path.name


def _crash_filter(spec: JobSpec) -> dict[str, Any]:
    """Whether the crash filter runs, with its leader and the reason (run.json ``crash_filter``)."""
    leader = spec.params.crash_leader
    if not leader:
        return {"leader": None, "active": False, "reason": "off (params.crash_leader is empty)"}
    if leader not in spec.symbols:
        return {"leader": leader, "active": False,
                "reason": f"off: the leader {leader} is not one of the job's symbols"}
    return {"leader": leader, "active": True,
            "reason": f"long targets x{spec.params.crash_scale:g} while {leader} is FORCED on its down side"}


def _feeds(store: TickStore, symbol: str, source: str) -> tuple[bool, bool, bool]:
    """Whether the symbol has an OI feed, a liquidation feed and book depth in the store."""
    def has(table):
        return bool(store.dates(table, symbol)) or bool(len(store.coverage(symbol, table)))

    return has("open_interest"), has("liquidations"), has_depth(source)


def _event_study(out: Path, store: TickStore, spec: JobSpec, paths: dict[str, str], target: str) -> dict:
    """Write ``RUN/events.parquet`` and ``RUN/study.json`` from the finished features; the study."""
    events = build_events(out, store, spec.symbols, spec.params.tick_ns, spec.study, paths,
                          array_module(target))
    write_events(events, out / "events.parquet")
    study = run_study(events, out, spec.symbols, spec.params.tick_ns, spec.study)
    _write_json(out / "study.json", study)
    return study


#: How long :func:`run_job` tries to reach the scheduler named in ``[cluster] scheduler``.
SCHEDULER_TIMEOUT = "10s"


@contextmanager
def _connected(address: str):
    """A Dask client of the running scheduler at ``address`` (``[cluster] scheduler``), closed after."""
    from distributed import Client

    try:
        client = Client(address, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        raise ConfigError(f"cluster.scheduler: cannot reach a Dask scheduler at {address!r} ({err})") from None
    try:
        yield client
    finally:
        client.close()


def _execute(arguments: list[tuple], client):
    if client is None:
        for args in arguments:
            result = _compute_and_write(*args)
            checkpoint()
            yield result
        return
    from distributed import as_completed

    futures = [client.submit(_compute_and_write, *args, pure=False) for args in arguments]
    for future in as_completed(futures):
        yield future.result()


def _claim_run_folder(out: Path, config: dict) -> None:
    """Refuse a run folder that holds a run with a different config, or that cannot be written;
    record ours otherwise."""
    run_json = out / "run.json"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    if run_json.exists():
        try:
            previous = orjson.loads(run_json.read_bytes())
        except (OSError, orjson.JSONDecodeError) as err:
            raise ConfigError(f"--out {out}: its run.json is not readable ({err}); choose a new folder") from None
        if not isinstance(previous, dict) or previous.get("config") != orjson.loads(orjson.dumps(config)):
            raise ConfigError(f"--out {out}: holds a run with a different config; choose a new folder")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: folder exists and holds no run.json; choose a new folder")
    try:
        probe_writable(out, "the run folder")
        _write_json(run_json, {"config": config, "status": "running"})
    except (StoreError, OSError) as err:
        reason = err if isinstance(err, StoreError) else (err.strerror or err)
        raise ConfigError(f"--out {out}: cannot write the run folder ({reason})") from None


def _write_run_json(out: Path, config: dict, result: RunResult) -> None:
    _write_json(out / "run.json", {
        "config": config, "status": "complete", "device": result.device,
        "versions": _versions(), "book_source": result.book_source, "degraded": result.degraded,
        "state_path": result.state_path, "crash_filter": result.crash_filter,
        "covered_spans_ns": result.covered, "seconds": result.seconds, "chunks": result.chunks,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        os.replace(tmp, path)
    finally:       # an interrupted write leaves no temporary file (after os.replace there is none)
        tmp.unlink(missing_ok=True)


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
