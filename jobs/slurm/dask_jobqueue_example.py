"""Run a gpu_lpi job spec on a SLURM cluster whose Dask workers dask-jobqueue submits as batch jobs.

Run it on a login node (or in a small batch job) that the compute nodes can reach; the job's store
and run folder must be on a file system every node sees (workers write the run folder's files).
Needs ``pip install dask-jobqueue`` in the same environment as gpu_lpi (docs/cluster.md)::

    python jobs/slurm/dask_jobqueue_example.py jobs/specs/universe_study.toml --out runs/universe \\
        --jobs 4 --cores 32 --memory 120GB --walltime 02:00:00 --queue compute --account myproject

Each SLURM job is one node's worth of single-threaded worker processes (``processes = cores``: a
chunk is single-threaded numba code). Workers warm their kernels once when they start
(:class:`jobs.warm_kernels.WarmKernels`); ``NUMBA_CACHE_DIR`` on a shared folder lets all but the
first compile nothing. The dashboard address is printed; from a laptop,
``ssh -L 8787:<login node>:<port> <login node>`` then open ``http://localhost:8787``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dask_jobqueue import SLURMCluster
from distributed import Client

from gpu_lpi.run import run_job
from jobs.warm_kernels import WarmKernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", type=Path, help="job spec (TOML)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/<spec name>)")
    parser.add_argument("--jobs", type=int, default=2, help="SLURM jobs (nodes) of workers")
    parser.add_argument("--cores", type=int, default=16, help="cores per SLURM job = worker processes")
    parser.add_argument("--memory", default="64GB", help="memory per SLURM job (shared by its workers)")
    parser.add_argument("--walltime", default="01:00:00")
    parser.add_argument("--queue", default=None, help="SLURM partition (#SBATCH -p)")
    parser.add_argument("--account", default=None, help="SLURM account (#SBATCH -A)")
    parser.add_argument("--interface", default=None, help="network interface of the workers, e.g. ib0")
    parser.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu")
    args = parser.parse_args()

    cache = os.environ.get("NUMBA_CACHE_DIR", str(Path.cwd() / ".numba-cache"))
    cluster = SLURMCluster(
        queue=args.queue, account=args.account, cores=args.cores, processes=args.cores,
        memory=args.memory, walltime=args.walltime, interface=args.interface,
        local_directory="$TMPDIR", log_directory="dask-logs",
        # one worker per core: each runs numba's parallel loops on one thread (docs/cluster.md)
        job_script_prologue=[f"export NUMBA_CACHE_DIR={cache}", "export NUMBA_NUM_THREADS=1"])
    with cluster, Client(cluster) as client:
        client.register_plugin(WarmKernels(args.device))
        print(f"Dask dashboard: {client.dashboard_link}", flush=True)
        cluster.scale(jobs=args.jobs)
        client.wait_for_workers(1)            # the job starts with the first; the rest join as they come
        result = run_job(args.job, out=args.out, device=args.device, client=client)
    print(result.summary())


if __name__ == "__main__":
    main()
