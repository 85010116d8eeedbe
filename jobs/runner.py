"""A job spec -> its task graph (:mod:`jobs.graphs`) -> the run folder (DESIGN.md §4, §5).

:func:`run_job_spec` is what :func:`gpu_lpi.run.run_job` (and so ``gpu-lpi run``) runs:

1. the spec is validated (:mod:`gpu_lpi.job_spec`) and, unless a ``Client`` was passed in, the
   cluster that ``[cluster] scheduler`` names is opened (:func:`jobs.cluster.open_client`;
   ``"sync"`` opens none and needs no Dask);
2. per combination of ``[sweep]`` (one, without a sweep): the chunk and event tasks run
   (:func:`jobs.graphs.run_tasks`), with ``[sim]`` one simulation task per symbol-day, then here
   the reduction: ``events.parquet``, ``study.json``, ``RUN/sim/`` (:mod:`gpu_lpi.sim.outputs`),
   ``run.json`` (seconds and peak memory per stage, device, versions, the resolved spec).

A sweep writes one complete run folder per combination, ``RUN/sweep/<id>/`` (``id`` = 0000, 0001,
... in the order of the Cartesian grid, the last ``[sweep]`` name varying fastest), and
``RUN/sweep.parquet``: a row per combination with its id, swept values, events and the event
study's answer at the answer horizon; then ``RUN/validation.json`` validates the combinations as
trials (:mod:`gpu_lpi.validation.sweep`, ``[cv]``): by their event-study markouts, or, where the
sweep has a ``[sim]`` of one scenario, by their simulated episodes' net PnL
(:func:`gpu_lpi.validation.trials.sim_returns`; a grid of scenarios is not yet validated as trials).
All combinations are one task graph: combinations that
differ in signal parameters only (:data:`gpu_lpi.params.SIGNAL_FIELDS`: thresholds, K, τ, stops,
sizing...) form a *parameter block*, and one task per (symbol, chunk, block) reads the inputs and
computes the features once, the signals once per combination
(:func:`gpu_lpi.features.compute_feature_variants`); θ, η, W and the other feature parameters make
new blocks. Re-running resumes every combination.

Tasks that fail are reported together once the others are done: ``run.json`` gets ``status =
"failed"`` and the error of each, and the command ends with a one-line :class:`JobError`; re-running
the same command keeps the finished chunks and redoes the rest.
"""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd

from gpu_lpi.atomic_files import write_frame, write_json
from gpu_lpi.book_at_ticks import degradations
from gpu_lpi.chunk_inputs import trade_table_of
from gpu_lpi.device import array_module, resolve_device
from gpu_lpi.errors import ConfigError, GpuLpiError
from gpu_lpi.events import day_events
from gpu_lpi.sim.outputs import finish_sim, sim_day_task, skip_reason
from gpu_lpi.job_spec import JobSpec, load_job_spec
from gpu_lpi.store import NS_PER_DAY, date_to_ns, ns_to_date
from gpu_lpi.run import (RUN_STAGES, TMP_FOLDER, Chunk, ChunkVariant, RunInputs, RunResult, SweepResult,
                         chunk_task, claim_run_folder, crash_filter, leader_path, peak_rss_mib, plan_chunks,
                         run_inputs, state_paths, used_spans, write_event_study, write_failed_run_json,
                         write_run_json)
from gpu_lpi.validation.sweep import write_validation
from gpu_lpi.validation.trials import SIM_RETURNS, sim_returns
from jobs.graphs import NOT_RUN, Outcome, Task, run_tasks


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
        try:
            spec = replace(spec, cluster=spec.cluster.with_scheduler(scheduler))
        except ConfigError as err:     # name the option the value came from
            raise ConfigError(str(err).replace("cluster.scheduler:", "--scheduler:", 1)) from None
    target = resolve_device(device)
    # absolute: workers elsewhere (another folder, another machine) write into the same folder
    out = (Path(out) if out is not None else Path.cwd() / "runs" / spec.name).absolute()
    jobs = spec.combinations()
    outs = [out / "sweep" / f"{index:04d}" for index in range(len(jobs))] if spec.sweep else [out]
    inputs = run_inputs(spec)
    _refuse_empty_job(spec, inputs)
    begin = time.perf_counter()
    with ExitStack() as stack:     # the folders are claimed before a cluster starts, held till the end
        if spec.sweep:
            stack.enter_context(claim_run_folder(out, spec.results_config(), spec.store))
        for job, job_out in zip(jobs, outs):
            stack.enter_context(claim_run_folder(job_out, job.results_config(), spec.store))
        if client is None and spec.cluster.scheduler != "sync":
            from jobs.cluster import open_client

            client = stack.enter_context(open_client(spec.cluster, target, echo=echo))
        try:
            runs = run_combinations(jobs, outs, inputs, target, client)
        except JobError:
            if spec.sweep:
                write_failed_run_json(out, spec.results_config(), [], spec.resolved(), target,
                                      _where(spec, client))
            raise
        if not spec.sweep:
            return runs[0]
        return _finish_sweep(spec, jobs, out, runs, time.perf_counter() - begin, _where(spec, client))


def _refuse_empty_job(spec: JobSpec, inputs: RunInputs) -> None:
    """A job whose dates the store's inputs do not meet for any symbol is an error, not a no-op."""
    first, stop = date_to_ns(spec.start), date_to_ns(spec.end) + NS_PER_DAY
    if any(len(inputs.covered[symbol].clip(first, stop)) for symbol in spec.symbols):
        return
    held = []
    for symbol in spec.symbols:
        spans = inputs.covered[symbol].to_list()
        if spans:
            held.append(f"{symbol} {ns_to_date(spans[0][0])}..{ns_to_date(spans[-1][1] - 1)}")
    raise ConfigError(f"data: {inputs.store.root} holds no data of {', '.join(spec.symbols)} from "
                      f"{spec.start} to {spec.end}; it covers {'; '.join(held) or 'nothing for them'}")


def run_combinations(jobs: list[JobSpec], outs: list[Path], inputs: RunInputs, target: str,
                     client=None) -> list[RunResult]:
    """Jobs that differ in ``[params]`` only (a sweep's combinations), each into its claimed run
    folder, as one task graph (module docstring)."""
    begin = time.perf_counter()
    paths = state_paths(jobs[0], inputs)
    tasks = job_tasks(jobs, outs, inputs, target)
    tmp_roots = [out / "features" / TMP_FOLDER for out in outs]
    try:
        outcome = run_tasks(tasks, client, retries=jobs[0].cluster.retries if client is not None else 0)
    finally:   # an interrupted or lost chunk leaves no partial file behind; finished ones are kept
        for tmp_root in tmp_roots:
            shutil.rmtree(tmp_root, ignore_errors=True)
    if outcome.errors:
        _fail(jobs, outs, tasks, outcome, target, client)
    tallies = _tally(tasks, outcome, outs)
    results = []
    for index, (job, out) in enumerate(zip(jobs, outs)):
        study_begin = time.perf_counter()
        frames = [outcome.results[t.key]["events"] for t in tasks if t.stage == "events" and t.args[0] == out]
        study = write_event_study(out, job, inputs, frames, paths)
        counts, seconds, peaks = tallies[index]
        seconds["study"] = time.perf_counter() - study_begin
        sim = {}
        if job.sim is not None:
            sim = finish_sim(out, job.sim.resolved(job.params), job.study.horizons_s,
                             [outcome.results[t.key] for t in tasks if t.stage == "sim" and t.args[0] == out],
                             _sim_skipped(job, inputs))
        seconds["total"] = time.perf_counter() - begin
        peaks["study"] = peak_rss_mib()
        result = RunResult(
            out=out, device=target, book_source=inputs.sources, seconds=seconds, chunks=counts,
            covered=used_spans(job, inputs),
            degraded={s: degradations(inputs.sources[s], trade_table_of(inputs.store, s)) for s in job.symbols},
            state_path=paths, crash_filter=crash_filter(job), answer=study["answer"],
            n_events=study["n_events"], peak_rss_mib=peaks, cluster=_where(job, client), sim=sim)
        write_run_json(out, job.results_config(), result, job.resolved())
        results.append(result)
    return results


def job_tasks(jobs: list[JobSpec], outs: list[Path], inputs: RunInputs, target: str) -> list[Task]:
    """The tasks of jobs that differ in ``[params]`` only (:mod:`jobs.graphs`).

    Per (symbol, chunk) and parameter block (the jobs with the same features and crash leader):
    one chunk task over the block's variants, the leader's chunks first and every other chunk after
    its leader chunk of the same block and time range; then per job and symbol-day the events,
    after that day's and the next day's chunk tasks of the symbol, and with ``[sim]`` the
    simulation of the symbol-day after them (:func:`gpu_lpi.sim.outputs.sim_day_task`).
    """
    blocks: dict[tuple, list[int]] = {}
    for index, job in enumerate(jobs):
        blocks.setdefault((job.params.feature_key(), _leader(job)), []).append(index)
    plans = [plan_chunks(job, out, inputs.covered) for job, out in zip(jobs, outs)]
    single = len(blocks) == 1
    tasks, keys_of_day = [], {}
    for number, ((_, leader), members) in enumerate(blocks.items()):
        suffix = "" if single else f"-b{number:03d}"
        keys = {(c.symbol, c.start_ns): _chunk_task_key(c) + suffix for c in plans[members[0]]}
        for slot, chunk in sorted(enumerate(plans[members[0]]), key=lambda item: item[1].symbol != leader):
            variants = tuple(ChunkVariant(plans[m][slot], jobs[m].params, leader_path(plans[m][slot], leader))
                             for m in members)
            after = keys.get((leader, chunk.start_ns)) if leader not in (None, chunk.symbol) else None
            key = keys[(chunk.symbol, chunk.start_ns)]
            tasks.append(Task(key, "features", chunk_task,
                              (str(inputs.store.root), variants, target, inputs.sources[chunk.symbol]),
                              (after,) if after else ()))
            for m in members:
                keys_of_day.setdefault((m, chunk.symbol, _day(chunk)), []).append(key)
    for (m, symbol, day), day_keys in keys_of_day.items():
        next_day = (pd.Timestamp(day) + timedelta(days=1)).strftime("%Y-%m-%d")
        after = tuple(dict.fromkeys(day_keys + keys_of_day.get((m, symbol, next_day), [])))
        suffix = "" if len(jobs) == 1 else f"-{outs[m].name}"
        tasks.append(Task(f"events-{symbol}-{day}{suffix}", "events", events_task,
                          (outs[m], symbol, day, jobs[m].params.tick_ns, jobs[m].study, target), after))
        job = jobs[m]
        if job.sim is not None and symbol not in _sim_skipped(job, inputs):
            tasks.append(Task(f"sim-{symbol}-{day}{suffix}", "sim", sim_day_task,
                              (outs[m], str(inputs.store.root), symbol, day, job.sim.resolved(job.params),
                               job.study.horizons_s, target), after))
    return tasks


def _sim_skipped(job: JobSpec, inputs: RunInputs) -> dict[str, str]:
    """The job's symbols the simulator cannot trade, with the reason."""
    reasons = {symbol: skip_reason(inputs.store, symbol) for symbol in job.symbols}
    return {symbol: reason for symbol, reason in reasons.items() if reason}


def _leader(job: JobSpec) -> str | None:
    return job.params.crash_leader if crash_filter(job)["active"] else None


def _day(chunk: Chunk) -> str:
    return chunk.path.parent.name.removeprefix("date=")


def _chunk_task_key(chunk: Chunk) -> str:
    return f"features-{chunk.symbol}-{_day(chunk)}-{chunk.path.stem.removeprefix('part-')}"


def events_task(out: Path, symbol: str, day: str, tick_ns: int, study, target: str, *after) -> dict:
    """One symbol-day's events (:func:`gpu_lpi.events.day_events`), with its seconds and memory."""
    begin = time.perf_counter()
    events = day_events(out, symbol, day, tick_ns, study, array_module(target))
    return {"events": events, "seconds": {"events": time.perf_counter() - begin},
            "peak_rss_mib": peak_rss_mib()}


def _tally(tasks: list[Task], outcome: Outcome, outs: list[Path]) -> list[tuple[dict, dict, dict]]:
    """Per job (run folder): chunk counts, seconds per stage (summed over its tasks) and peak
    memory per stage (the largest of the processes that ran them)."""
    tallies = [(dict.fromkeys(("computed", "existing", "recomputed"), 0), dict.fromkeys(RUN_STAGES, 0.0), {})
               for _ in outs]
    index_of = {out: index for index, out in enumerate(outs)}
    for task in tasks:
        result = outcome.results[task.key]     # a chunk task's: one per variant
        for folder, item in zip(_folders_of(task), result if task.stage == "features" else [result]):
            counts, seconds, peaks = tallies[index_of[folder]]
            if task.stage == "features":
                counts[item["status"]] += 1
                counts["computed"] += item["status"] == "recomputed"
            for stage, value in item["seconds"].items():
                seconds[stage] += value
            peaks[task.stage] = max(peaks.get(task.stage, 0.0), item["peak_rss_mib"])
    return tallies


def _folders_of(task: Task) -> list[Path]:
    """The run folders a task writes for: its variants' (a chunk task) or its own (events)."""
    if task.stage == "features":
        return [variant.chunk.path.parents[3] for variant in task.args[1]]
    return [task.args[0]]


def _fail(jobs: list[JobSpec], outs: list[Path], tasks: list[Task], outcome: Outcome, target: str,
          client) -> None:
    """Each run folder's run.json says which of its tasks failed and why; one line for the user."""
    for job, out in zip(jobs, outs):
        errors = [{"task": t.key, "error": outcome.errors[t.key]} for t in tasks
                  if t.key in outcome.errors and out in _folders_of(t)]
        write_failed_run_json(out, job.results_config(), errors, job.resolved(), target, _where(job, client))
    failed = [key for key, text in outcome.errors.items() if not text.startswith(NOT_RUN)]
    skipped = len(outcome.errors) - len(failed)
    first = failed[0]
    where = outs[0] / "run.json" if len(outs) == 1 else "each combination's run.json"
    raise JobError(f"{len(failed)} of {len(tasks)} tasks failed (first: {first}: {outcome.errors[first]})"
                   + (f", {skipped} did not run for want of their results" if skipped else "")
                   + f", {len(outcome.results)} finished; re-run the same command to redo the rest "
                   f"(every error is in {where})")


def _where(spec: JobSpec, client) -> dict:
    """run.json ``cluster``: the scheduler (as the spec names it, and its address), its workers
    and dashboard."""
    if client is None:
        return {"scheduler": "sync", "address": None, "workers": 0, "dashboard": None}
    info = client.scheduler_info()
    return {"scheduler": spec.cluster.scheduler, "address": info.get("address"),
            "workers": len(info.get("workers", {})), "dashboard": getattr(client, "dashboard_link", None)}


def _finish_sweep(spec: JobSpec, jobs: list[JobSpec], out: Path, runs: list[RunResult], seconds: float,
                  cluster: dict) -> SweepResult:
    """``RUN/sweep.parquet``, ``RUN/validation.json`` (:mod:`gpu_lpi.validation.sweep`) and the
    sweep's run.json, once every combination (``jobs``, run as ``runs``) is complete."""
    combinations = [{"id": run.out.name, **{name: getattr(job.params, name) for name in spec.sweep}}
                    for run, job in zip(runs, jobs)]
    rows = [{**combination, "n_events": run.n_events,
             **{k: v for k, v in run.answer.items() if k != "text"}}
            for combination, run in zip(combinations, runs)]
    write_frame(pd.DataFrame(rows), out / "sweep.parquet")
    if spec.sim is not None and len(spec.sim.scenarios) == 1:    # trials judged by their simulated PnL
        folders = {run.out.name: run.out for run in runs}
        write_validation(out, spec, combinations, sim_returns(folders), SIM_RETURNS)
    else:
        write_validation(out, spec, combinations)
    write_json(out / "run.json", {"config": spec.results_config(), "resolved_spec": spec.resolved(),
                                  "status": "complete", "sweep": combinations, "seconds": {"total": seconds},
                                  "cluster": cluster})
    return SweepResult(out=out, combinations=combinations, runs=runs)
