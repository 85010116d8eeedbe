"""Shared fixtures: the real captures in ../shared/data and a store ingested from them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GPU_LPI_SHARED_DATA", REPO.parent / "shared" / "data"))
USDM = SHARED_DATA / "binance-usdm-ws"
COINM = SHARED_DATA / "binance-coinm-ws"


def _require_real_data() -> None:
    if not USDM.is_dir() or not COINM.is_dir():
        pytest.skip(f"real captures not found at {SHARED_DATA} (set GPU_LPI_SHARED_DATA or check out "
                    f"../shared next to the repository)")


@pytest.fixture(scope="session")
def real_captures() -> list[Path]:
    """All real binance-ws capture files, sorted."""
    _require_real_data()
    return sorted(USDM.glob("*.gz")) + sorted(COINM.glob("*.gz"))


@pytest.fixture(scope="session")
def real_store(real_captures, tmp_path_factory):
    """A tick store ingested from every real capture (once per test session)."""
    from gpu_lpi.ingest import ingest
    from gpu_lpi.store import TickStore

    root = tmp_path_factory.mktemp("real_store")
    report = ingest(real_captures, "binance-ws", root)
    return TickStore(root), report


def store_files(root: Path) -> dict[str, bytes]:
    """Every data file under a store, by relative path: to compare stores (the store's bookkeeping
    under names starting with ``_`` -- reports, locks, version counter -- excluded)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.relative_to(root).parts[0].startswith("_")}


def cuda_device_present() -> bool:
    """Whether CuPy imports and sees a CUDA device (for the real-GPU parity tests)."""
    try:
        import cupy
    except ImportError:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


def run_under_cuda_simulator(script: str, timeout: int = 600) -> str:
    """Run ``script`` in a fresh interpreter with ``NUMBA_ENABLE_CUDASIM=1`` (it must be set before
    numba is imported); assert it succeeded and return its standard output."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


#: Start of a :func:`run_ptx_script` script: numba's CUDA compiler without a device, or an exit
#: that says why it is unavailable.
_PTX_PREAMBLE = """
import tempfile, types
import numpy as np
import numba.cuda.dispatcher as cuda_dispatcher
from numba import cuda
from numba.cuda.typing.typeof import typeof

# compile_ptx asks the current device for its compute capability only to pick a target: give one.
cuda_dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))
try:
    cuda.compile_ptx(lambda out: None, (typeof(np.ones(1)),), cc=(9, 0))
except Exception as err:
    print("unavailable:", type(err).__name__, str(err).splitlines()[0][:200])
    raise SystemExit(0)
"""


def run_ptx_script(body: str, timeout: int = 600) -> str:
    """Run ``body`` (which may use ``cuda``, ``typeof``, ``np``) after the preamble that makes
    numba's real CUDA compiler usable without a GPU, in a fresh interpreter; skip the test where
    no CUDA compiler is installed; return the script's standard output."""
    import pytest

    done = subprocess.run([sys.executable, "-c", _PTX_PREAMBLE + body], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, NUMBA_ENABLE_CUDASIM="0"))
    assert done.returncode == 0, done.stderr[-4000:]
    if done.stdout.startswith("unavailable:"):
        pytest.skip(f"no CUDA compiler here ({done.stdout.strip()})")
    return done.stdout
