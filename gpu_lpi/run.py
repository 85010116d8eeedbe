"""One run folder (DESIGN.md §5): chunks, their files, resuming, the event study, run.json.

:func:`run_job` is the Python API's entry (what ``gpu-lpi run`` calls). The job -- the chunks of
every symbol, their order, where they run, sweeps -- is driven by :mod:`jobs.runner` (task graphs
in ``jobs/``, DESIGN.md §1); this module holds what one task computes and what a run folder holds.
``run_job`` reaches ``jobs`` with an import inside the function: DESIGN.md §5 puts ``run_job`` in
``gpu_lpi`` and §1 the job graphs in ``jobs``, and this call is the one place where the library
hands over to the layer above it (no module of ``gpu_lpi`` imports ``jobs`` when it is loaded).
The job spec is :mod:`gpu_lpi.job_spec`.

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
import resource
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from gpu_lpi.book_at_ticks import has_depth
from gpu_lpi.chunk_inputs import (book_source_of, covered_spans, fingerprint_with, store_material, tables_read,
                                  trade_table_of)
from gpu_lpi.errors import ConfigError, StoreError
from gpu_lpi.atomic_files import write_frame, write_json
from gpu_lpi.events import finish_events
from gpu_lpi.features import STAGES, PieceInputs, compute_feature_variants
from gpu_lpi.job_spec import JobSpec
from gpu_lpi.params import FeatureParams
from gpu_lpi.signals import apply_crash_filter, state_path
from gpu_lpi.store import NS_PER_DAY, Spans, TickStore, date_to_ns, ns_to_date
from gpu_lpi.store.locking import FileLock
from gpu_lpi.store.transaction import probe_writable
from gpu_lpi.study import read_events, run_study

_NS_PER_HOUR = 3_600 * 10**9
#: Stages a run records seconds for: the features' own, then the event study.
RUN_STAGES = (*STAGES, "events", "study", "sim")


def run_job(spec_or_path, out=None, device: str = "auto", client=None) -> "RunResult | SweepResult":
    """Run a job spec: features, signals, events and the event study into the run folder.

    Parameters
    ----------
    spec_or_path : path or dict
        A TOML job spec file (:mod:`gpu_lpi.job_spec`) or its parsed content.
    out : path, optional
        Run folder; default ``runs/<spec file stem>`` under the current folder. Re-running into the
        same folder resumes: finished chunks whose inputs are unchanged are kept, the others
        recomputed. A folder holding a run with a different config is refused.
    device : {"auto", "cpu", "gpu"}
    client : distributed.Client, optional
        When given, the job's tasks run on its cluster (workers write the run folder's files, so
        it must be on a file system they share). Otherwise ``[cluster] scheduler`` decides: in this
        process (``"sync"``, the default), or on the cluster it names. No cluster is created that
        the spec or the caller did not ask for.

    Returns
    -------
    RunResult, or SweepResult where the spec has a ``[sweep]``.
    """
    from jobs.runner import run_job_spec

    return run_job_spec(spec_or_path, out=out, device=device, client=client)


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
    #: Largest resident memory of the processes that ran each stage (MiB, ``ru_maxrss``).
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    #: Where it ran: ``scheduler``, ``workers``, ``dashboard``.
    cluster: dict[str, Any] = field(default_factory=dict)
    #: The simulation's summary (``RUN/sim/sim.json``), empty without ``[sim]``.
    sim: dict[str, Any] = field(default_factory=dict)

    @property
    def features_dir(self) -> Path:
        return self.out / "features"

    def events(self):
        """``RUN/events.parquet`` as a pandas DataFrame (one row per event, with its markouts)."""
        return read_events(self.out)

    def study(self) -> dict:
        """``RUN/study.json``; :func:`gpu_lpi.study.study_frame` turns its groups into a DataFrame."""
        return orjson.loads((self.out / "study.json").read_bytes())

    def sim_scenarios(self):
        """``RUN/sim/scenarios.parquet`` as a pandas DataFrame (one row per scenario)."""
        from gpu_lpi.sim.outputs import read_scenarios

        return read_scenarios(self.out)

    def sim_table(self, name: str):
        """The simulation's ``episodes``, ``fills`` or ``orders`` of every symbol-day, as a DataFrame."""
        from gpu_lpi.sim.outputs import read_part

        return read_part(self.out, name)

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
                + (f"simulation: {self.sim['n_scenarios']} scenarios, {self.sim['episodes_traded']} "
                   f"episodes traded, best net PnL {self.sim['best_net_pnl']} (scenario "
                   f"{self.sim['best_scenario']}), in {self.out / 'sim'}\n" if self.sim else "") +
                f"seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in self.seconds.items())
                + "\npeak memory MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in self.peak_rss_mib.items()))


@dataclass
class SweepResult:
    """What :func:`run_job` did for a spec with a ``[sweep]``: one run per combination, each in
    ``RUN/sweep/<id>/``, and ``RUN/sweep.parquet`` with a row per combination."""

    out: Path
    #: Per combination: ``id`` and the swept values.
    combinations: list[dict[str, Any]]
    runs: list[RunResult]

    def table(self):
        """``RUN/sweep.parquet`` as a pandas DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.out / "sweep.parquet")

    def summary(self) -> str:
        lines = [f"run folder: {self.out} (a sweep of {len(self.runs)} combinations)"]
        for combination, run in zip(self.combinations, self.runs):
            values = ", ".join(f"{k}={v}" for k, v in combination.items() if k != "id")
            lines.append(f"  {combination['id']}: {values}: {run.n_events} events; "
                         f"{run.answer.get('text', '')}")
        lines.append(f"table: {self.out / 'sweep.parquet'}")
        return "\n".join(lines)


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


def is_current(store: TickStore, chunk: Chunk, params: FeatureParams, source: str,
                leader: Path | None, materials: dict | None = None) -> bool:
    """Whether a finished chunk's recorded inputs (and its leader chunk's) are still current.

    ``materials``: :func:`~gpu_lpi.chunk_inputs.store_material` per recorded reads, shared by the
    checks of one task's variants (they read the same rows; only their parameters differ)."""
    metadata = _chunk_metadata(chunk.path)
    if INPUTS_KEY not in metadata or metadata.get(LEADER_KEY) != _leader_inputs(leader):
        return False
    try:
        recorded = orjson.loads(metadata[INPUTS_KEY])
    except orjson.JSONDecodeError:
        return False
    materials = {} if materials is None else materials
    for piece in map(PieceInputs.from_dict, recorded):
        if piece.reads not in materials:
            materials[piece.reads] = store_material(store, chunk.symbol, list(piece.reads), source)
        if piece.fingerprint != fingerprint_with(materials[piece.reads], params):
            return False
    return True


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


@dataclass(frozen=True)
class ChunkVariant:
    """One parameter set's file of a chunk: ``chunk.path`` under ``params``, whose crash filter
    reads the ``leader`` chunk file of the same time range (None for the leader itself, or
    without the leader among the job's symbols)."""

    chunk: Chunk
    params: FeatureParams
    leader: Path | None


def chunk_task(store_root: str, variants: tuple[ChunkVariant, ...], device: str, source: str,
               *after) -> list[dict[str, Any]]:
    """One task of a job: per variant of one (symbol, time chunk), keep its file if its inputs are
    unchanged, else compute it. Variants differ in signal parameters only: the stale ones share
    one read of the inputs and one computation of the features
    (:func:`gpu_lpi.features.compute_feature_variants`). ``after``: results of the tasks this one
    waits for (the leader's chunk), unused.

    Returns
    -------
    list of dict
        Per variant: ``status`` ("existing", "computed" or "recomputed"), ``seconds`` per stage,
        ``peak_rss_mib`` of the process that ran it.
    """
    store = TickStore(store_root)
    existed = [v.chunk.path.exists() for v in variants]
    materials = {}
    stale = [v for v, e in zip(variants, existed)
             if not (e and is_current(store, v.chunk, v.params, source, v.leader, materials))]
    seconds = {}
    if stale:
        first = stale[0].chunk
        results = compute_feature_variants(store, first.symbol, first.start_ns, first.end_ns,
                                           [v.params for v in stale], device, book_source=source)
        for variant, result in zip(stale, results):
            seconds[variant] = _write_chunk(result, variant)
    peak = peak_rss_mib()
    return [{"status": "existing" if v not in seconds else "recomputed" if e else "computed",
             "seconds": seconds.get(v, {}), "peak_rss_mib": peak} for v, e in zip(variants, existed)]


def peak_rss_mib() -> float:
    """The largest resident memory this process has had, in MiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_chunk(result, variant: ChunkVariant) -> dict[str, float]:
    """Publish one computed chunk file atomically (crash filter, metadata); the seconds per stage."""
    begin = time.perf_counter()
    chunk, leader = variant.chunk, variant.leader
    inputs = [piece.to_dict() for piece in result.inputs]
    # the symbol is the partition key (the folder name), so that pandas, polars, duckdb and cudf read
    # RUN/features as one hive dataset
    table = _with_crash_filter(result.table, chunk.symbol, leader, variant.params).drop_columns(["symbol"])
    table = table.replace_schema_metadata({INPUTS_KEY: orjson.dumps(inputs),
                                           LEADER_KEY: _leader_inputs(leader)})
    tmp = chunk.path.parents[2] / TMP_FOLDER / uuid.uuid4().hex / chunk.path.name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        pq.write_table(table, tmp, compression="zstd")
        chunk.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, chunk.path)
    finally:    # a failed or interrupted write leaves no temporary file
        shutil.rmtree(tmp.parent, ignore_errors=True)
    seconds = dict(result.seconds)
    seconds["io"] += time.perf_counter() - begin
    return seconds


#: Folder of ``RUN/features`` where chunk files are written before they are renamed into place.
TMP_FOLDER = "_tmp"


@dataclass(frozen=True)
class RunInputs:
    """What a job reads from the store, per symbol: book source, spans per table, covered spans."""

    store: TickStore
    sources: dict[str, str]
    spans: dict[str, dict[str, Spans]]
    covered: dict[str, Spans]


def run_inputs(spec: JobSpec) -> RunInputs:
    """Check the job's store and symbols and read what the job plans from (one-line errors)."""
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
    return RunInputs(store, sources, spans, covered)


def _covered_spans(store: TickStore, symbol: str, source: str) -> dict[str, Spans]:
    """Per table a chunk reads, the spans the store's inputs cover for ``symbol``."""
    return {table: store.coverage(symbol, table)
            for table in tables_read(source, trade_table_of(store, symbol))}


def used_spans(spec: JobSpec, inputs: RunInputs) -> dict[str, dict[str, list]]:
    """run.json ``covered_spans_ns``: per symbol and table, the covered spans inside the job."""
    job_range = (date_to_ns(spec.start), date_to_ns(spec.end) + NS_PER_DAY)
    return {symbol: {table: [[int(a), int(b)] for a, b in spans.clip(*job_range).to_list()]
                     for table, spans in by_table.items() if len(spans)}
            for symbol, by_table in inputs.spans.items()}


def leader_path(chunk: Chunk, leader: str | None) -> Path | None:
    """The leader's chunk file of the same time range (None for the leader itself, or no leader)."""
    if leader is None or chunk.symbol == leader:
        return None
    return chunk.path.parents[2] / f"symbol={leader}" / chunk.path.parent.name / chunk.path.name


def crash_filter(spec: JobSpec) -> dict[str, Any]:
    """Whether the crash filter runs, with its leader and the reason (run.json ``crash_filter``)."""
    leader = spec.params.crash_leader
    if not leader:
        return {"leader": None, "active": False, "reason": "off (params.crash_leader is empty)"}
    if leader not in spec.symbols:
        return {"leader": leader, "active": False,
                "reason": f"off: the leader {leader} is not one of the job's symbols"}
    return {"leader": leader, "active": True,
            "reason": f"long targets x{spec.params.crash_scale:g} while {leader} is FORCED on its down side"}


def state_paths(spec: JobSpec, inputs: RunInputs) -> dict[str, str]:
    """Per symbol, how its FORCED state is confirmed (run.json ``state_path``)."""
    return {symbol: state_path(*_feeds(inputs.store, symbol, inputs.sources[symbol]))
            for symbol in spec.symbols}


def _feeds(store: TickStore, symbol: str, source: str) -> tuple[bool, bool, bool]:
    """Whether the symbol has an OI feed, a liquidation feed and book depth in the store."""
    def has(table):
        return bool(store.dates(table, symbol)) or bool(len(store.coverage(symbol, table)))

    return has("open_interest"), has("liquidations"), has_depth(source)


def write_event_study(out: Path, spec: JobSpec, inputs: RunInputs, day_frames: list,
                      paths: dict[str, str]) -> dict:
    """``RUN/events.parquet`` and ``RUN/study.json`` from the symbol-days' events; the study."""
    events = finish_events(day_frames, inputs.store, spec.study, paths)
    write_frame(events, out / "events.parquet")
    study = run_study(events, out, spec.symbols, spec.params.tick_ns, spec.study)
    write_json(out / "study.json", study)
    return study


#: File in a run folder that the run writing it holds locked (``flock``: released when it ends or dies).
RUN_LOCK = ".run.lock"


def claim_run_folder(out: Path, config: dict, store_root: Path | None = None) -> FileLock:
    """Refuse a run folder that another run is writing, that holds a run with a different config,
    that lies inside the tick store, or that cannot be written; record ours otherwise.

    Returns
    -------
    FileLock
        Held on the folder's :data:`RUN_LOCK`; the caller releases it when the run ends.
    """
    run_json = out / "run.json"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    if store_root is not None and out.resolve().is_relative_to(Path(store_root).resolve()):
        raise ConfigError(f"--out {out}: is inside the tick store {store_root}; choose a folder outside it")
    if out.is_dir() and not run_json.exists():      # refused before a lock file is left in it
        _check_previous_run(out, run_json, config)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(out / RUN_LOCK)
        taken = lock.try_acquire()
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write the run folder ({err.strerror or err})") from None
    if not taken:
        raise ConfigError(f"--out {out}: in use by {lock.holder()}; wait for it or choose another folder")
    try:
        _check_previous_run(out, run_json, config)
        probe_writable(out, "the run folder")
        write_json(run_json, {"config": config, "status": "running"})
    except (StoreError, OSError) as err:
        lock.release()
        reason = err if isinstance(err, StoreError) else (err.strerror or err)
        raise ConfigError(f"--out {out}: cannot write the run folder ({reason})") from None
    except BaseException:
        lock.release()
        raise
    return lock


def _check_previous_run(out: Path, run_json: Path, config: dict) -> None:
    if run_json.exists():
        try:
            previous = orjson.loads(run_json.read_bytes())
        except (OSError, orjson.JSONDecodeError) as err:
            raise ConfigError(f"--out {out}: its run.json is not readable ({err}); choose a new folder") from None
        config = orjson.loads(orjson.dumps(config))
        if not isinstance(previous, dict) or previous.get("config") != config:
            raise ConfigError(f"--out {out}: holds a run with a different config"
                              f"{_first_difference(previous.get('config') if isinstance(previous, dict) else None, config)};"
                              " choose a new folder")
    elif any(p.name != RUN_LOCK for p in out.iterdir()):
        raise ConfigError(f"--out {out}: folder exists and holds no run.json; choose a new folder")


def _first_difference(old, new, where: str = "") -> str:
    """`` (params.theta_bps: 5.0 there, 6.0 here)``: the first setting that differs ('' if none found)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return ""
    return "" if old == new else f" ({where}: {old!r} there, {new!r} here)"


def write_run_json(out: Path, config: dict, result: RunResult, resolved: dict) -> None:
    """``RUN/run.json`` of a finished run. ``config`` is what its results depend on (compared when
    the folder is resumed), ``resolved`` the whole resolved spec, ``[cluster]`` included."""
    write_json(out / "run.json", {
        "config": config, "resolved_spec": resolved, "status": "complete", "device": result.device,
        "versions": _versions(), "cluster": result.cluster, "book_source": result.book_source,
        "degraded": result.degraded, "state_path": result.state_path,
        "crash_filter": result.crash_filter, "covered_spans_ns": result.covered,
        "seconds": result.seconds, "peak_rss_mib": result.peak_rss_mib, "chunks": result.chunks,
        **({"sim": result.sim} if result.sim else {}),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def write_failed_run_json(out: Path, config: dict, errors: list[dict[str, str]], resolved: dict,
                          device: str, cluster: dict) -> None:
    """``RUN/run.json`` of a run whose tasks failed: which, and why (re-running redoes them)."""
    write_json(out / "run.json", {
        "config": config, "resolved_spec": resolved, "status": "failed", "device": device,
        "versions": _versions(), "cluster": cluster, "errors": errors,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds")})


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
