"""jobs.cluster: jobs on a real multi-process Dask cluster, losing a worker mid-run, client errors.

The cluster is a ``dask scheduler`` and two ``dask worker`` processes started here with subprocess
(the way they are started on a SLURM node), found through the scheduler file. Results on it must
equal an in-process run file for file; a worker SIGKILLed while tasks run must cost nothing but
time (the run finishes through Dask's rescheduling, or fails with a one-line error, and re-running
the same job into the same folder finishes and equals a clean run).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpu_lpi.errors import ConfigError
from gpu_lpi.job_spec import ClusterSpec
from gpu_lpi.run import run_job
from jobs import cluster as cluster_module
from jobs.cluster import open_client
from jobs.warm_kernels import WarmKernels
from tests.conftest import REPO
from tests.feature_stores import SYMBOL, random_store

distributed = pytest.importorskip("distributed")

PARAMS = {"window_hours": 0.01, "adv_window_hours": 0.01, "depth_window_hours": 0.01,
          "min_periods_s": 5.0}
DASK = str(Path(sys.executable).parent / "dask")
HOURS = 8                                        # one chunk per hour: several tasks per worker


def _spec(store) -> dict:
    return {"data": {"store": str(store.root), "symbols": [SYMBOL], "start": "2024-08-05",
                     "end": "2024-08-05"},
            "grid": {"tick_ms": 250}, "params": dict(PARAMS), "cluster": {"chunk_hours": 1}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return random_store(tmp_path_factory.mktemp("cluster") / "store", seed=4, minutes=HOURS * 60,
                        trades_per_minute=300)


@pytest.fixture(scope="module")
def clean_run(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "run"
    run_job(_spec(store), out=out, device="cpu")            # in this process, no Dask
    return out


class _Cluster:
    """A scheduler and worker processes on this machine; every process is killed on close."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.processes: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []

    def _start(self, *args: str) -> subprocess.Popen:
        log = open(self.folder / f"process-{len(self.processes)}.log", "wb")
        process = subprocess.Popen([DASK, *args], cwd=self.folder, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def start(self, n_workers: int) -> str:
        self._start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(self.scheduler_file))
        deadline = time.monotonic() + 30
        address = None
        while address is None:
            assert time.monotonic() < deadline, "the scheduler wrote no scheduler file"
            try:
                address = json.loads(self.scheduler_file.read_text())["address"]
            except (FileNotFoundError, json.JSONDecodeError):   # not written yet, or half-written
                time.sleep(0.05)
        for _ in range(n_workers):
            self.add_worker()
        return address

    def add_worker(self) -> subprocess.Popen:
        worker = self._start("worker", "--scheduler-file", str(self.scheduler_file), "--nthreads", "1",
                             "--no-nanny", "--no-dashboard", "--memory-limit", "0",
                             "--host", "127.0.0.1", "--death-timeout", "30")
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a scheduler with two worker processes."""
    processes = _Cluster(tmp_path_factory.mktemp("dask"))
    try:
        address = processes.start(n_workers=2)
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, processes
    finally:
        processes.close()


def _files(out: Path) -> dict[str, Path]:
    return {str(p.relative_to(out)): p for p in sorted(out.rglob("*.parquet"))}


def _table_bytes(path: Path) -> bytes:
    """A Parquet file's table (schema with its metadata, values bit for bit) as Arrow IPC bytes.

    Not ``Table.equals``: Arrow compares NaN unequal to itself, and the features hold NaN."""
    table = pq.read_table(path)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return sink.getvalue().to_pybytes()


def _assert_same_results(out: Path, clean: Path) -> None:
    """Every Parquet file of the run (features per chunk, events) equals the clean run's: the same
    table, and the same bytes."""
    files, expected = _files(out), _files(clean)
    assert sorted(files) == sorted(expected)
    assert len([f for f in files if f.startswith("features/")]) == HOURS
    for name, path in expected.items():
        assert _table_bytes(files[name]) == _table_bytes(path), name
        assert files[name].read_bytes() == path.read_bytes(), name
    assert json.loads((out / "study.json").read_bytes()) == json.loads((clean / "study.json").read_bytes())


def _kernel_overloads() -> int:
    """Compiled or cache-loaded signatures of every numba dispatcher of the project in this process."""
    from numba.core.dispatcher import Dispatcher

    from kernels.per_tick import PerTickKernel

    seen, total = set(), 0
    for name, module in list(sys.modules.items()):
        if not name.startswith(("kernels", "gpu_lpi")):
            continue
        for value in list(vars(module).values()):
            for dispatcher in ((value.cpu_loop, value.body) if isinstance(value, PerTickKernel)
                               else (value,)):
                if isinstance(dispatcher, Dispatcher) and id(dispatcher) not in seen:
                    seen.add(id(dispatcher))
                    total += len(dispatcher.overloads)
    return total


def _warm_up_seconds(dask_worker) -> float | None:
    return dask_worker.plugins[WarmKernels("cpu").name].seconds


def test_job_on_a_multi_process_cluster_equals_the_in_process_run(scheduler, store, clean_run, tmp_path):
    address, _ = scheduler
    with open_client(ClusterSpec(scheduler=address), device="cpu") as client:
        warm = client.run(_warm_up_seconds)
        before = client.run(_kernel_overloads)
        with distributed.get_task_stream(client) as stream:
            result = run_job(_spec(store), out=tmp_path / "run", device="cpu", client=client)
        after = client.run(_kernel_overloads)
        # every worker warmed its kernels once, at registration; its tasks compiled nothing more
        assert len(warm) == 2 and all(seconds is not None for seconds in warm.values()), warm
        assert all(count > 10 for count in before.values()), before
        assert after == before
    # the chunks ran as tasks, on both workers
    chunk_tasks = [task for task in stream.data if str(task["key"]).startswith("features-")]
    assert len(chunk_tasks) == HOURS
    assert {task["worker"] for task in chunk_tasks} == set(warm)
    assert result.chunks == {"computed": HOURS, "existing": 0, "recomputed": 0}
    _assert_same_results(tmp_path / "run", clean_run)


def test_a_worker_killed_mid_run_costs_only_time(store, clean_run, tmp_path):
    processes = _Cluster(tmp_path)
    out = tmp_path / "run"
    try:
        address = processes.start(n_workers=2)
        victim = processes.workers[0]
        with open_client(ClusterSpec(scheduler=address), device="cpu") as client:
            client.wait_for_workers(2, timeout=60)
            outcome: dict = {}

            def job():
                try:
                    outcome["result"] = run_job(_spec(store), out=out, device="cpu", client=client)
                except Exception as err:  # noqa: BLE001 -- examined below
                    outcome["error"] = err

            runner = threading.Thread(target=job)
            runner.start()
            deadline = time.monotonic() + 60
            while not any(out.glob("features/symbol=*/date=*/part-*.parquet")):
                assert time.monotonic() < deadline and runner.is_alive(), outcome
                time.sleep(0.01)
            victim.send_signal(signal.SIGKILL)           # mid-run: the first chunk is written
            killed_while_running = runner.is_alive()
            runner.join(timeout=120)
            assert not runner.is_alive()
        assert killed_while_running, "the job ended before the worker was killed: use more chunks"
        assert victim.wait(timeout=10) == -signal.SIGKILL
        if "error" in outcome:                           # lost beyond its retries: one line
            assert "\n" not in str(outcome["error"]), outcome["error"]
        else:        # a retried task finds the file its killed worker published: "existing"
            chunks = outcome["result"].chunks
            assert chunks["computed"] + chunks["existing"] == HOURS and not chunks["recomputed"], chunks
        # the same command again, into the same folder, on what is left of the cluster
        with open_client(ClusterSpec(scheduler=address), device="cpu") as client:
            assert len(client.scheduler_info()["workers"]) == 1      # the scheduler saw it go
            rerun = run_job(_spec(store), out=out, device="cpu", client=client)
        assert rerun.chunks["existing"] + rerun.chunks["computed"] == HOURS
        assert rerun.chunks["recomputed"] == 0
        _assert_same_results(out, clean_run)
        assert not (out / "features" / "_tmp").exists()
    finally:
        processes.close()


# -- open_client ------------------------------------------------------------------------------------------
def test_sync_creates_no_cluster():
    with open_client(ClusterSpec(scheduler="sync")) as client:
        assert client is None


def _numba_threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def test_local_cluster_is_started_and_closed_also_on_ctrl_c(monkeypatch):
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        with open_client(ClusterSpec(scheduler="local", n_workers=2), echo=lines.append) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            assert all(seconds is not None for seconds in client.run(_warm_up_seconds).values())
            # the workers share the cores for numba's parallel loops
            expected = max(1, os.cpu_count() // 2)
            assert set(client.run(_numba_threads).values()) == {expected}
            cluster = client.cluster
            processes = [worker.process.process for worker in cluster.workers.values()]
            raise KeyboardInterrupt
    assert cluster.status.name == "closed" and client.status == "closed"
    assert processes and not any(process.is_alive() for process in processes)
    assert len(lines) == 1 and lines[0].startswith("Dask dashboard: http://"), lines


def test_unreachable_scheduler_is_a_one_line_config_error_quickly(monkeypatch):
    monkeypatch.setattr(cluster_module, "SCHEDULER_TIMEOUT", "1s")
    begin = time.monotonic()
    with pytest.raises(ConfigError, match=r"^cluster\.scheduler: cannot reach a Dask scheduler at "
                                          r"'tcp://127\.0\.0\.1:9' ") as error:
        with open_client(ClusterSpec(scheduler="tcp://127.0.0.1:9")):
            pass
    assert time.monotonic() - begin < 10
    assert "\n" not in str(error.value)


@pytest.mark.skipif(importlib.util.find_spec("dask_cuda") is not None, reason="dask-cuda is installed")
def test_local_cuda_without_dask_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^cluster\.scheduler: \"local-cuda\" needs dask-cuda; "
                                          r"install the GPU extras"):
        with open_client(ClusterSpec(scheduler="local-cuda")):
            pass


def _sigint_handler():
    import signal

    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_local_workers_leave_ctrl_c_to_the_job():
    """Ctrl-C reaches the whole process group; the workers of a local cluster used to print a
    traceback each. They ignore it and the job's process stops the work."""
    from gpu_lpi.job_spec import ClusterSpec
    from jobs.cluster import open_client

    with open_client(ClusterSpec(scheduler="local", n_workers=1)) as client:
        assert list(client.run(_sigint_handler).values()) == [True]
