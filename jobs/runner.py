"""A job spec -> its task graph (:mod:`jobs.graphs`) -> the run folder (DESIGN.md §4, §5).

:func:`run_job_spec` is what :func:`gpu_lpi.run.run_job` (and so ``gpu-lpi run``) runs:

1. the spec is validated (:mod:`gpu_lpi.job_spec`) and, unless a ``Client`` was passed in, the
   cluster that ``[cluster] scheduler`` names is opened (:func:`jobs.cluster.open_client`;
   ``"sync"`` opens none and needs no Dask);
2. per combination of ``[sweep]`` (one, without a sweep): the chunk and event tasks run
   (:func:`jobs.graphs.run_tasks`), then here the reduction: ``events.parquet``, ``study.json``,
   ``run.json`` (seconds and peak memory per stage, device, versions, the resolved spec).

A sweep writes one complete run folder per combination, ``RUN/sweep/<id>/`` (``id`` = 0000, 0001,
... in the order of the Cartesian grid, the last ``[sweep]`` name varying fastest), and
``RUN/sweep.parquet``: a row per combination with its id, swept values, events and the event
study's answer at the answer horizon. The combinations run one after another, each spread over the
cluster; re-running resumes every one of them.

Tasks that fail are reported together once the others are done: ``run.json`` gets ``status =
"failed"`` and the error of each, and the command ends with a one-line :class:`JobError`; re-running
the same command keeps the finished chunks and redoes the rest.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd

from gpu_lpi.atomic_files import write_frame, write_json
from gpu_lpi.book_at_ticks import degradations
from gpu_lpi.chunk_inputs import trade_table_of
from gpu_lpi.device import array_module, resolve_device
from gpu_lpi.errors import GpuLpiError
from gpu_lpi.events import day_events
from gpu_lpi.job_spec import JobSpec, load_job_spec
from gpu_lpi.run import (RUN_STAGES, Chunk, RunInputs, RunResult, SweepResult, chunk_task, claim_run_folder,
                         crash_filter, leader_path, peak_rss_mib, plan_chunks, run_inputs, state_paths,
                         used_spans, write_event_study, write_failed_run_json, write_run_json)
from jobs.graphs import Outcome, Task, run_tasks


class JobError(GpuLpiError):
    """Some of a job's tasks failed (the others finished; re-running redoes the failed ones)."""


def run_job_spec(spec_or_path, out=None, device: str = "auto", client=None, scheduler: str | None = None,
                 echo=None):
    """Run a job spec (module docstring); see :func:`gpu_lpi.run.run_job` for the parameters.

    ``scheduler``: instead of the spec's ``[cluster] scheduler`` (``gpu-lpi run --scheduler``).
    ``echo``: where to say the dashboard's address when a cluster is opened here (a callable
    taking one line).
    """
    spec = load_job_spec(spec_or_path)
    if scheduler is not None:
        spec = replace(spec, cluster=spec.cluster.with_scheduler(scheduler))
    target = resolve_device(device)
    out = Path(out) if out is not None else Path.cwd() / "runs" / spec.name
    if client is None and spec.cluster.scheduler != "sync":
        from jobs.cluster import open_client

        with open_client(spec.cluster, target, echo=echo) as opened:
            return _run(spec, out, target, opened)
    return _run(spec, out, target, client)


def _run(spec: JobSpec, out: Path, target: str, client):
    if spec.sweep:
        return run_sweep(spec, out, target, client)
    return run_one(spec, out, target, client)


def run_one(spec: JobSpec, out: Path, target: str, client=None) -> RunResult:
    """One parameter set into the run folder ``out`` (a spec without a sweep)."""
    begin = time.perf_counter()
    inputs = run_inputs(spec)
    config = spec.results_config()
    claim_run_folder(out, config)
    chunks = plan_chunks(spec, out, inputs.covered)
    crash = crash_filter(spec)
    leader = spec.params.crash_leader if crash["active"] else None
    paths = state_paths(spec, inputs)
    tmp_root = out / "features" / "_tmp"
    tasks = job_tasks(spec, inputs, chunks, leader, target, tmp_root, out)
    try:
        outcome = run_tasks(tasks, client, retries=spec.cluster.retries if client is not None else 0)
    finally:   # an interrupted or lost chunk leaves no partial file behind; finished ones are kept
        shutil.rmtree(tmp_root, ignore_errors=True)
    if outcome.errors:
        _fail(out, config, outcome, len(tasks))
    study_begin = time.perf_counter()
    frames = [outcome.results[t.key]["events"] for t in tasks if t.stage == "events"]
    study = write_event_study(out, spec, inputs, frames, paths)
    counts, seconds, peaks = _tally(tasks, outcome)
    seconds["study"] = time.perf_counter() - study_begin
    seconds["total"] = time.perf_counter() - begin
    peaks["study"] = peak_rss_mib()
    result = RunResult(
        out=out, device=target, book_source=inputs.sources, seconds=seconds, chunks=counts,
        covered=used_spans(spec, inputs),
        degraded={s: degradations(inputs.sources[s], trade_table_of(inputs.store, s)) for s in spec.symbols},
        state_path=paths, crash_filter=crash, answer=study["answer"], n_events=study["n_events"],
        peak_rss_mib=peaks, cluster=_where(spec, client))
    write_run_json(out, config, result, spec.resolved())
    return result


def feature_key(chunk: Chunk) -> str:
    return f"features-{chunk.symbol}-{chunk.path.parent.name.removeprefix('date=')}-{chunk.path.stem[5:]}"


def job_tasks(spec: JobSpec, inputs: RunInputs, chunks: list[Chunk], leader: str | None, target: str,
              tmp_root: Path, out: Path) -> list[Task]:
    """The job's tasks (:mod:`jobs.graphs`): the leader's chunks first, then every other chunk
    (after its leader chunk), then the events per symbol-day (after that day's and the next day's
    chunks of the symbol)."""
    keys = {feature_key(c) for c in chunks}
    tasks = []
    for chunk in sorted(chunks, key=lambda c: c.symbol != leader):      # stable: plan order kept
        led = leader_path(chunk, leader)
        leader_key = feature_key(Chunk(leader, chunk.start_ns, chunk.end_ns, led)) if led else None
        tasks.append(Task(feature_key(chunk), "features", chunk_task,
                          (str(inputs.store.root), chunk, spec.params, target, inputs.sources[chunk.symbol],
                           tmp_root, led),
                          (leader_key,) if leader_key in keys else ()))
    by_day: dict[tuple[str, str], list[str]] = {}
    for chunk in chunks:
        day = chunk.path.parent.name.removeprefix("date=")
        by_day.setdefault((chunk.symbol, day), []).append(feature_key(chunk))
    for (symbol, day), day_keys in by_day.items():
        next_day = (pd.Timestamp(day) + timedelta(days=1)).strftime("%Y-%m-%d")
        after = tuple(day_keys + by_day.get((symbol, next_day), []))
        tasks.append(Task(f"events-{symbol}-{day}", "events", events_task,
                          (out, symbol, day, spec.params.tick_ns, spec.study, target), after))
    return tasks


def events_task(out: Path, symbol: str, day: str, tick_ns: int, study, target: str, *after) -> dict:
    """One symbol-day's events (:func:`gpu_lpi.events.day_events`), with its seconds and memory."""
    begin = time.perf_counter()
    events = day_events(out, symbol, day, tick_ns, study, array_module(target))
    return {"events": events, "seconds": {"events": time.perf_counter() - begin},
            "peak_rss_mib": peak_rss_mib()}


def _tally(tasks: list[Task], outcome: Outcome) -> tuple[dict, dict, dict]:
    """Chunk counts, seconds per stage (summed over tasks) and peak memory per stage (largest)."""
    counts = dict.fromkeys(("computed", "existing", "recomputed"), 0)
    seconds = dict.fromkeys(RUN_STAGES, 0.0)
    peaks: dict[str, float] = {}
    for task in tasks:
        result = outcome.results[task.key]
        if task.stage == "features":
            counts[result["status"]] += 1
            counts["computed"] += result["status"] == "recomputed"
        for stage, value in result["seconds"].items():
            seconds[stage] += value
        peaks[task.stage] = max(peaks.get(task.stage, 0.0), result["peak_rss_mib"])
    return counts, seconds, peaks


def _fail(out: Path, config: dict, outcome: Outcome, n_tasks: int) -> None:
    errors = [{"task": key, "error": text} for key, text in outcome.errors.items()]
    write_failed_run_json(out, config, errors)
    first = errors[0]
    raise JobError(f"{len(errors)} of {n_tasks} tasks failed (first: {first['task']}: {first['error']}); "
                   f"the others finished; re-run the same command to redo the failed ones "
                   f"(every error is in {out / 'run.json'})")


def _where(spec: JobSpec, client) -> dict:
    """run.json ``cluster``: the scheduler, its workers and dashboard (None in this process)."""
    if client is None:
        return {"scheduler": "sync", "workers": 0, "dashboard": None}
    info = client.scheduler_info()
    return {"scheduler": info.get("address", spec.cluster.scheduler), "workers": len(info.get("workers", {})),
            "dashboard": getattr(client, "dashboard_link", None)}


def run_sweep(spec: JobSpec, out: Path, target: str, client=None) -> SweepResult:
    """Every combination of ``[sweep]`` into ``RUN/sweep/<id>/``; ``RUN/sweep.parquet``; run.json."""
    begin = time.perf_counter()
    config = spec.results_config()
    claim_run_folder(out, config)
    combinations, runs = [], []
    for index, job in enumerate(spec.combinations()):
        combination = {"id": f"{index:04d}", **{name: getattr(job.params, name) for name in spec.sweep}}
        runs.append(run_one(job, out / "sweep" / combination["id"], target, client))
        combinations.append(combination)
    rows = [{**combination, "n_events": run.n_events,
             **{k: v for k, v in run.answer.items() if k != "text"}}
            for combination, run in zip(combinations, runs)]
    write_frame(pd.DataFrame(rows), out / "sweep.parquet")
    write_json(out / "run.json", {"config": config, "resolved_spec": spec.resolved(), "status": "complete",
                                  "sweep": combinations, "seconds": {"total": time.perf_counter() - begin},
                                  "cluster": _where(spec, client)})
    return SweepResult(out=out, combinations=combinations, runs=runs)
