"""Dask clients for ``[cluster] scheduler`` (:class:`gpu_lpi.job_spec.ClusterSpec`).

:func:`open_client` is the one place a cluster is created, and only when the spec asks for one:

=====================  ===========================================================================
``"sync"``             no Dask: yields ``None`` (the job runs in this process, chunk after chunk)
``"local"``            a ``distributed.LocalCluster`` of worker processes on this machine
``"local-cuda"``       a ``dask_cuda.LocalCUDACluster``: one worker process per GPU
an address             a client of the running scheduler there (workers started elsewhere:
                       ``dask worker``, ``dask cuda worker``, dask-jobqueue; docs/cluster.md)
=====================  ===========================================================================

Every worker warms its compiled kernels once when it starts (:class:`jobs.warm_kernels.WarmKernels`),
not in each task. The workers of a ``local`` cluster share the machine's cores: each runs numba's
parallel loops (the exact rolling median/MAD) on its share, ``NUMBA_NUM_THREADS = cores //
n_workers`` (at least 1; unless ``NUMBA_NUM_THREADS`` is set already), instead of every worker
starting a thread per core (n_workers x cores threads fighting for the cores).

What :func:`open_client` creates it closes on exit, also after an exception or Ctrl-C; a scheduler
given by address is left running (only the client is closed).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

from distributed import Client, LocalCluster, WorkerPlugin

from gpu_lpi.errors import ConfigError
from gpu_lpi.job_spec import ClusterSpec
from jobs.warm_kernels import WarmKernels

#: How long :func:`open_client` tries to reach a scheduler given by address.
SCHEDULER_TIMEOUT = "10s"


@contextmanager
def open_client(cluster: ClusterSpec, device: str = "cpu",
                echo: Callable[[str], None] | None = None) -> Iterator[Client | None]:
    """A Dask client for ``cluster``, closed (with the cluster it started) on exit.

    Parameters
    ----------
    cluster : ClusterSpec
        ``[cluster]`` of the job spec.
    device : {"cpu", "gpu", "auto"}
        The device whose kernels the workers warm when they start.
    echo : callable, optional
        Called with one line naming the dashboard, where there is one (e.g. ``click.echo`` to
        stderr).

    Yields
    ------
    distributed.Client or None
        None for ``scheduler = "sync"``.

    Raises
    ------
    ConfigError
        The scheduler address cannot be reached, or ``local-cuda`` without dask-cuda installed.
    """
    if cluster.scheduler == "sync":
        yield None
        return
    with ExitStack() as stack:
        client = _client(cluster, stack)
        if echo is not None and client.dashboard_link:
            echo(f"Dask dashboard: {client.dashboard_link}")
        _wait_for_a_worker(client, cluster, echo)
        try:
            if not cluster.is_address:
                client.register_plugin(IgnoreInterrupts())
            client.register_plugin(WarmKernels(device))
        except (OSError, TimeoutError) as err:       # CommClosedError is an OSError
            raise ConfigError(f"cluster.scheduler: the workers of {cluster.scheduler!r} could not start "
                              f"({type(err).__name__}: {err}); see their log (memory_limit too small?)") from None
        yield client


class IgnoreInterrupts(WorkerPlugin):
    """Workers of a local cluster share the terminal's process group, so Ctrl-C reached each of
    them too and each printed a traceback; they ignore it: the job's process stops the tasks and
    closes the cluster (which ends the workers)."""

    idempotent = True
    name = "gpu-lpi-ignore-interrupts"

    def setup(self, worker) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


#: How long a job waits for the first worker of a scheduler given by address.
WORKER_TIMEOUT_S = 600


def _wait_for_a_worker(client, cluster: ClusterSpec, echo) -> None:
    """A scheduler without workers would hold the job's tasks forever: say so, wait a while
    (workers of a batch system start later), then stop with one line."""
    if client.scheduler_info().get("workers"):
        return
    if echo is not None:
        echo(f"waiting up to {WORKER_TIMEOUT_S} s for a worker of {cluster.scheduler} ...")
    try:
        client.wait_for_workers(1, timeout=WORKER_TIMEOUT_S)
    except TimeoutError:
        raise ConfigError(f"cluster.scheduler: {cluster.scheduler} has no worker after {WORKER_TIMEOUT_S} s; "
                          "start workers (dask worker / dask cuda worker, docs/cluster.md)") from None


def numba_threads(n_workers: int) -> int:
    """Threads of numba's parallel loops for each of ``n_workers`` workers on this machine."""
    return max(1, (os.cpu_count() or 1) // n_workers)


def _client(cluster: ClusterSpec, stack: ExitStack):
    """The client of ``cluster``, closed by ``stack`` (with the cluster it starts)."""
    if cluster.is_address:
        try:
            return stack.enter_context(Client(cluster.scheduler, timeout=SCHEDULER_TIMEOUT))
        except (OSError, TimeoutError, ValueError) as err:
            raise ConfigError(f"cluster.scheduler: cannot reach a Dask scheduler at "
                              f"{cluster.scheduler!r} ({err})") from None
    # the workers' own log lines (a task's traceback, "Compute Failed") stay out of the terminal: the
    # job reports every failed task itself, in one line and in run.json; the dashboard shows the rest
    common = {"threads_per_worker": cluster.threads_per_worker, "memory_limit": cluster.memory_limit,
              "dashboard_address": ":0", "silence_logs": logging.CRITICAL}
    quiet = {"DASK_LOGGING__DISTRIBUTED__WORKER": "critical"}
    if cluster.scheduler == "local":
        n_workers = cluster.n_workers or os.cpu_count()
        env = quiet if "NUMBA_NUM_THREADS" in os.environ else {
            **quiet, "NUMBA_NUM_THREADS": str(numba_threads(n_workers))}
        local = stack.enter_context(LocalCluster(n_workers=n_workers, processes=True, env=env, **common))
    else:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise ConfigError("cluster.scheduler: \"local-cuda\" needs dask-cuda; install the GPU "
                              "extras: pip install 'gpu-lpi[gpu]'") from None
        local = stack.enter_context(LocalCUDACluster(n_workers=cluster.n_workers,
                                                     rmm_pool_size=cluster.rmm_pool_size, **common))
    return stack.enter_context(Client(local))
