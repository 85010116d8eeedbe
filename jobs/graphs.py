"""Task graphs of a job (DESIGN.md §1, §4): what runs, what waits for what, and running it.

A job is a list of :class:`Task` in an order where every task comes after those it waits for:

* ``features-<symbol>-<date>-<HHMM>``: one (symbol, time chunk) -- :func:`gpu_lpi.run.chunk_task`
  keeps its file when its inputs are unchanged, else computes features and signals and publishes
  the file atomically. A chunk of another symbol waits for the crash filter's leader chunk of the
  same time range (it reads the leader's ``forced_down``), and for nothing else: symbols and days
  run in parallel.
* ``events-<symbol>-<date>``: the events of one symbol-day with their markouts
  (:func:`gpu_lpi.events.day_events`), after that day's chunks (the markouts of the day's last
  events read the next day's first ticks: it waits for those too).

The reduction (funding regimes, ``events.parquet``, ``study.json``, ``run.json``) runs where the job
was started, from the tasks' results (:mod:`jobs.runner`).

:func:`run_tasks` runs such a list in this process, one task after another (no Dask), or on a
``distributed.Client``: one future per task, the futures of the tasks it waits for passed as
arguments (Dask runs a task once they are done), ``retries`` for tasks that raise (a task lost with
its worker is rerun by the scheduler itself). A task that fails is reported with its error; the
tasks that do not need it still run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from gpu_lpi.interrupts import checkpoint
from gpu_lpi.progress import progress_bar


@dataclass(frozen=True)
class Task:
    """One piece of work: ``func(*args, *results of after)``."""

    key: str
    stage: str
    func: Callable
    args: tuple
    after: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What :func:`run_tasks` did: per key, a result or an error message."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def run_tasks(tasks: list[Task], client=None, retries: int = 0) -> Outcome:
    """Run ``tasks`` (each after the ones it waits for), with a progress bar per stage.

    Parameters
    ----------
    tasks : list of Task
        In an order where a task comes after those in its ``after``.
    client : distributed.Client, optional
        Run on its cluster; without one, here, in order.
    retries : int
        Dask retries of a task that raised (the scheduler reruns those lost with their worker).
    """
    stages = list(dict.fromkeys(task.stage for task in tasks))
    bars = {stage: progress_bar(sum(t.stage == stage for t in tasks), stage, unit="task", position=i)
            for i, stage in enumerate(stages)}
    try:
        if client is None:
            return _run_here(tasks, bars)
        return _run_on(client, tasks, retries, bars)
    finally:
        for bar in bars.values():
            bar.close()


def _error_text(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _run_here(tasks: list[Task], bars: dict) -> Outcome:
    outcome = Outcome()
    for task in tasks:
        missing = [key for key in task.after if key in outcome.errors]
        if missing:
            outcome.errors[task.key] = f"{NOT_RUN}{missing[0]} failed"
        else:
            try:
                outcome.results[task.key] = task.func(*task.args, *(outcome.results[k] for k in task.after))
            except Exception as err:      # reported with the others; KeyboardInterrupt stops the job
                outcome.errors[task.key] = _error_text(err)
        bars[task.stage].update()
        checkpoint()
    return outcome


def _run_on(client, tasks: list[Task], retries: int, bars: dict) -> Outcome:
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]     # keys unique to this run: a re-run never reuses old results
    futures = {}
    for task in tasks:
        futures[task.key] = client.submit(task.func, *task.args, *(futures[k] for k in task.after),
                                          key=f"{task.key}-{token}", retries=retries, pure=False)
    task_of = {futures[task.key].key: task for task in tasks}
    failed = {}
    outcome = Outcome()
    try:
        for future in as_completed(list(futures.values())):
            task = task_of[future.key]
            if future.status == "finished":
                outcome.results[task.key] = future.result()
            else:      # read now: once the futures are cancelled their errors are gone
                failed[task.key] = _error_text(_exception(future))
            bars[task.stage].update()
    finally:
        client.cancel(list(futures.values()))    # an interrupted job leaves nothing queued
    for task in tasks:       # in order: a task whose input failed says which, not the input's error
        if task.key in failed:
            before = next((k for k in task.after if k in failed), None)
            outcome.errors[task.key] = f"{NOT_RUN}{before} failed" if before else failed[task.key]
    return outcome


#: How the error of a task that did not run because one it waits for failed begins.
NOT_RUN = "not run: "


def _exception(future) -> BaseException:
    try:
        err = future.exception()
    except Exception as raised:     # cancelled: its worker and every retry lost, or the scheduler
        return raised
    return err if err is not None else RuntimeError(f"the task ended as {future.status!r} without an error")
