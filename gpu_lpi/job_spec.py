"""The job spec (DESIGN.md §5): a TOML file -> a validated :class:`JobSpec`.

::

    [data]
    store = "store"              # tick store folder, relative to the spec file
    symbols = ["BTCUSDT"]
    start = 2024-08-05           # inclusive dates (TOML dates or "YYYY-MM-DD")
    end = 2024-08-05
    [grid]
    tick_ms = 250
    [params]                     # any field of gpu_lpi.params.FeatureParams
    theta_bps = 5.0
    [study]                      # any field of gpu_lpi.study_params.StudyParams
    horizons_s = [0.5, 1, 2, 5, 30, 120]
    [sweep]                      # optional: values per [params] name -> one run per combination
    theta_bps = [3.0, 5.0, 8.0]
    lpi_hi = [2.5, 3.0]
    [cv]                         # optional, with [sweep] only: gpu_lpi.validation.params
    n_folds = 5
    [cluster]
    scheduler = "sync"           # "sync" | "local" | "local-cuda" | "tcp://host:8786"
    chunk_hours = 24             # must divide 24: chunks never straddle a date

``[cluster]`` (:class:`ClusterSpec`) chooses where the work runs; it never changes a result, so a run
folder may be resumed under another scheduler. ``[cv]`` (:class:`ValidationParams`) sets how a sweep
is validated (``RUN/validation.json``, rewritten by every run, so it is not part of the config a run
folder is resumed under). ``[sim]`` (:class:`~gpu_lpi.sim.params.SimSpec`) runs the execution
simulator on the run's Mode A entries (``RUN/sim/``); lists in it are a grid of scenarios.
Unknown sections, keys, wrong types and impossible values raise
:class:`~gpu_lpi.errors.ConfigError` naming the field and what was expected.

Dates: ``start`` and ``end`` must lie between :data:`EARLIEST_DATE` and :data:`LATEST_DATE` (the
nanosecond timestamps of the store end in 2262).
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gpu_lpi.errors import ConfigError, reject_unknown_keys
from gpu_lpi.params import FeatureParams
from gpu_lpi.signals import load_mode_b
from gpu_lpi.sim.params import SimSpec
from gpu_lpi.study_params import StudyParams
from gpu_lpi.validation.params import ValidationParams

_SECTIONS = {"data", "grid", "params", "cluster", "sweep", "study", "sim", "cv"}
_DATA_KEYS = {"store", "symbols", "start", "end"}
_GRID_KEYS = {"tick_ms"}
#: Dates a job may cover: tick data is no older, and int64 nanoseconds end in April 2262.
EARLIEST_DATE = date(2009, 1, 3)
LATEST_DATE = date(2261, 12, 31)
#: Schedulers that start no cluster of their own.
SCHEDULERS = ("sync", "local", "local-cuda")
_ADDRESS = re.compile(r"^([a-z]+://\S+|[\w.\-]+:\d+)$")
_MEMORY = re.compile(r"^(auto|\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]|[bB])?|0?\.\d+)$")
#: Most parameter combinations a sweep may hold (a typo such as a 1,000-value range is refused).
MAX_SWEEP_COMBINATIONS = 10_000


@dataclass(frozen=True)
class ClusterSpec:
    """``[cluster]``: where a job runs (results do not depend on it).

    Attributes
    ----------
    scheduler : str, default "sync"
        ``"sync"``: in this process, one chunk after another (debugging; no Dask). ``"local"``: a
        ``distributed.LocalCluster`` of worker processes on this machine. ``"local-cuda"``: a
        ``dask_cuda.LocalCUDACluster``, one worker per GPU. Anything else is the address of a
        running scheduler (``tcp://host:8786``), whose workers were started elsewhere
        (``dask worker`` / ``dask cuda worker``, dask-jobqueue; see docs/cluster.md).
    n_workers : int, optional
        Workers of a ``local`` cluster (default: one per core), or of ``local-cuda`` (default: one
        per visible GPU). Not allowed with an address.
    threads_per_worker : int, default 1
        Tasks a worker runs at once. A chunk's rolling median is parallel numba code: a ``local``
        cluster gives each worker ``cores // n_workers`` numba threads (``NUMBA_NUM_THREADS``,
        unless set), so workers do not oversubscribe the machine (:mod:`jobs.cluster`).
    memory_limit : str, default "auto"
        Per-worker memory limit of a local cluster (Dask's syntax: ``"4GB"``, ``"auto"``, or a
        fraction ``0.5`` of the machine's memory).
    rmm_pool_size : str, optional
        ``local-cuda`` only: the RMM pool each GPU worker allocates up front (``"20GB"``).
    retries : int, default 2
        How many times a task lost with its worker is retried on another one.
    chunk_hours : int, default 24
        Length of the time chunks a job is split into; must divide 24.
    """

    scheduler: str = "sync"
    n_workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    rmm_pool_size: str | None = None
    retries: int = 2
    chunk_hours: int = 24

    @property
    def is_address(self) -> bool:
        return self.scheduler not in SCHEDULERS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_scheduler(self, scheduler: str) -> "ClusterSpec":
        """These settings on another scheduler (``gpu-lpi run --scheduler``), without those of a
        local cluster where they no longer apply."""
        table = {key: value for key, value in self.to_dict().items()
                 if value is not None and key in _applicable(scheduler) | {"chunk_hours"}}
        return ClusterSpec.from_mapping({**table, "scheduler": scheduler})

    @classmethod
    def from_mapping(cls, table: dict) -> "ClusterSpec":
        reject_unknown_keys("cluster", table, {f for f in cls.__dataclass_fields__})
        scheduler = table.get("scheduler", "sync")
        if not isinstance(scheduler, str) or not (scheduler in SCHEDULERS or _ADDRESS.match(scheduler)):
            raise ConfigError(f"cluster.scheduler: expected one of {', '.join(SCHEDULERS)} or a scheduler "
                              f"address such as tcp://host:8786, got {scheduler!r}")
        chunk_hours = table.get("chunk_hours", 24)
        if not _is_int(chunk_hours) or chunk_hours < 1 or 24 % chunk_hours:
            raise ConfigError(f"cluster.chunk_hours: expected a whole number of hours dividing 24 "
                              f"(1, 2, 3, 4, 6, 8, 12, 24), got {chunk_hours!r}")
        for key, low in (("n_workers", 1), ("threads_per_worker", 1), ("retries", 0)):
            value = table.get(key)
            if value is not None and (not _is_int(value) or value < low):
                raise ConfigError(f"cluster.{key}: expected a whole number >= {low}, got {value!r}")
        memory_limit = str(table.get("memory_limit", "auto"))
        if not _MEMORY.match(memory_limit):
            raise ConfigError(f"cluster.memory_limit: expected \"auto\", a size such as \"4GB\" or a "
                              f"fraction such as 0.5, got {table['memory_limit']!r}")
        rmm = table.get("rmm_pool_size")
        if rmm is not None and (not isinstance(rmm, str) or not _MEMORY.match(rmm) or rmm == "auto"):
            raise ConfigError(f"cluster.rmm_pool_size: expected a size such as \"20GB\", got {rmm!r}")
        spec = cls(scheduler=scheduler, n_workers=table.get("n_workers"),
                   threads_per_worker=table.get("threads_per_worker", 1), memory_limit=memory_limit,
                   rmm_pool_size=rmm, retries=table.get("retries", 2), chunk_hours=chunk_hours)
        for key in sorted(set(table) - _applicable(scheduler) - {"scheduler", "chunk_hours"}):
            if key == "rmm_pool_size" and scheduler in SCHEDULERS:
                raise ConfigError("cluster.rmm_pool_size: only with scheduler = \"local-cuda\"")
            if scheduler == "sync":
                raise ConfigError(f"cluster.{key}: not used with scheduler = \"sync\" (the job runs in "
                                  "this process); remove it, or choose \"local\"")
            raise ConfigError(f"cluster.{key}: set where the workers are started; a job with "
                              f"scheduler = {scheduler!r} uses the workers that scheduler has")
        return spec


def _applicable(scheduler: str) -> set[str]:
    """The ``[cluster]`` settings (besides ``scheduler`` and ``chunk_hours``) a scheduler uses."""
    if scheduler == "sync":
        return set()
    if scheduler == "local":
        return {"n_workers", "threads_per_worker", "memory_limit", "retries"}
    if scheduler == "local-cuda":
        return {"n_workers", "threads_per_worker", "memory_limit", "rmm_pool_size", "retries"}
    return {"retries"}


@dataclass(frozen=True)
class JobSpec:
    """A validated job spec."""

    store: Path
    symbols: tuple[str, ...]
    start: date
    end: date
    params: FeatureParams
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    study: StudyParams = field(default_factory=StudyParams)
    #: ``[sweep]``: per swept ``[params]`` name, its values, in the spec's order.
    sweep: dict[str, tuple] = field(default_factory=dict)
    name: str = "job"
    #: ``[cv]``: how the sweep is validated (None: the defaults).
    cv: ValidationParams | None = None
    #: ``[sim]``: the execution simulator's scenarios (None: no simulation).
    sim: SimSpec | None = None

    @property
    def chunk_hours(self) -> int:
        return self.cluster.chunk_hours

    def resolved(self) -> dict[str, Any]:
        """The resolved config, as written to run.json."""
        config = {"data": {"store": str(self.store), "symbols": list(self.symbols),
                           "start": self.start.isoformat(), "end": self.end.isoformat()},
                  "grid": {"tick_ms": self.params.tick_ms},
                  "params": self.params.to_dict(),
                  "cluster": self.cluster.to_dict(),
                  "study": self.study.to_dict()}
        if self.sweep:
            config["sweep"] = {name: list(values) for name, values in self.sweep.items()}
        if self.cv is not None:
            config["cv"] = self.cv.to_dict()
        if self.sim is not None:
            config["sim"] = self.sim.to_dict()
        return config

    def results_config(self) -> dict[str, Any]:
        """What the results depend on: the resolved config without where it runs (``[cluster]``
        except ``chunk_hours``, which names the files). A run folder is resumed only under it."""
        config = self.resolved()
        config["cluster"] = {"chunk_hours": self.chunk_hours}
        config.pop("cv", None)
        return config

    def combinations(self) -> list["JobSpec"]:
        """One job per combination of ``[sweep]`` (the Cartesian grid, the last name varying
        fastest), each without a sweep; ``[self]`` without one."""
        if not self.sweep:
            return [self]
        names = list(self.sweep)
        base = self.params.to_dict()
        jobs = []
        for values in itertools.product(*self.sweep.values()):
            combination = dict(zip(names, values))
            try:
                params = FeatureParams.from_mapping({**base, **combination}, where="sweep")
            except ConfigError as err:      # name the combination and the section the value is from
                text = ", ".join(f"{k}={v!r}" for k, v in combination.items())
                raise ConfigError(f"[sweep] combination {text}: {err}") from None
            jobs.append(replace(self, params=params, sweep={}, cv=None))
        return jobs


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
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder; expected a job spec file (TOML)") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
        base, name = path.resolve().parent, path.stem
    for section in raw:
        if section not in _SECTIONS:
            raise ConfigError(f"[{section}]: unknown section; expected one of {sorted(_SECTIONS)}")
    data = _section(raw, "data", _DATA_KEYS)
    grid = _section(raw, "grid", _GRID_KEYS)
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
    store = Path(str(data["store"]))
    params = FeatureParams.from_mapping(params_table)
    load_mode_b(params.mode_b)
    study = StudyParams.from_mapping(_section(raw, "study", None))
    sweep = _sweep(_section(raw, "sweep", None))
    if "cv" in raw and not sweep:
        raise ConfigError("[cv]: validates the trials of a sweep; add a [sweep] table or remove [cv]")
    cv = ValidationParams.from_mapping(_section(raw, "cv", None), study) if "cv" in raw else None
    spec = JobSpec(store=store if store.is_absolute() else base / store, symbols=tuple(symbols),
                   start=start, end=end, params=params,
                   cluster=ClusterSpec.from_mapping(_section(raw, "cluster", None)),
                   study=study, sweep=sweep, name=name, cv=cv,
                   sim=SimSpec.from_mapping(_section(raw, "sim", None)) if "sim" in raw else None)
    for job in spec.combinations():
        load_mode_b(job.params.mode_b)
    return spec


def _sweep(table: dict) -> dict[str, tuple]:
    """``[sweep]``: a non-empty list of distinct values per ``[params]`` name."""
    known = {f for f in FeatureParams.__dataclass_fields__}
    sweep = {}
    count = 1
    for name, values in table.items():
        if name == "tick_ms":
            raise ConfigError("sweep.tick_ms: the tick cannot be swept; run one job per tick")
        if name not in known:
            raise ConfigError(f"sweep.{name}: unknown parameter; expected names of [params]")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.{name}: expected a non-empty list of values, got {values!r}")
        if any(a == b and type(a) is not bool and type(b) is not bool or a is b
               for i, a in enumerate(values) for b in values[i + 1:]):
            raise ConfigError(f"sweep.{name}: a value is listed more than once in {values!r}")
        sweep[name] = tuple(values)
        count *= len(values)
    if count > MAX_SWEEP_COMBINATIONS:
        raise ConfigError(f"[sweep]: {count:,} combinations; at most {MAX_SWEEP_COMBINATIONS:,} per job")
    return sweep


_EXPECTED = {"store": "the tick store folder", "symbols": "a non-empty list of symbol names",
             "start": "a date YYYY-MM-DD", "end": "a date YYYY-MM-DD"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
