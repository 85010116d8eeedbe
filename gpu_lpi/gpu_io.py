"""Device selection and moving tick-store data onto the GPU.

``device`` is ``"cpu"``, ``"gpu"`` or ``"auto"`` (GPU when CuPy imports and sees a device). On the
GPU path arrays are CuPy arrays; where CuPy is missing but numba's CUDA simulator is on
(``NUMBA_ENABLE_CUDASIM=1``), NumPy arrays stand in for device arrays so that the GPU kernels run on
CPU-only machines. CuPy, cudf and ``numba.cuda`` are imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gpu_lpi.errors import ConfigError
from gpu_lpi.store import TickStore

DEVICES = ("cpu", "gpu", "auto")


def _cupy():
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def _simulator_on() -> bool:
    import numba

    return bool(numba.config.ENABLE_CUDASIM)


def gpu_available() -> bool:
    """Whether CuPy imports and sees at least one CUDA device."""
    cupy = _cupy()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"gpu"`` for a requested ``device``; :class:`ConfigError` if it cannot be had."""
    if device not in DEVICES:
        raise ConfigError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    if device == "gpu" and not (gpu_available() or (_cupy() is None and _simulator_on())):
        raise ConfigError("device: 'gpu' needs CuPy and a CUDA GPU (pip install 'gpu-lpi[gpu]'); "
                          "use --device cpu or auto")
    return device


def array_module(target: str):
    """``numpy`` for the CPU; ``cupy`` for the GPU (``numpy`` under the CUDA simulator)."""
    if target == "cpu":
        return np
    cupy = _cupy()
    return np if cupy is None else cupy


def to_device(array: np.ndarray, xp):
    """``array`` on the device owned by ``xp``."""
    return array if xp is np else xp.asarray(array)


def to_host(array) -> np.ndarray:
    """A NumPy copy (or view) of a NumPy or CuPy array."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else array


def read_arrays_on_device(store: TickStore, table: str, symbol: str, start_ns: int | None,
                          end_ns: int | None, columns: Iterable[str], xp) -> dict:
    """Columns of a store table as arrays owned by ``xp`` (same rows as ``TickStore.read_arrays``).

    On a GPU with cudf installed the Parquet files are decoded on the device
    (``cudf.read_parquet``) and handed over as CuPy arrays; otherwise pyarrow reads them on the host
    and the arrays are transferred. Nulls in float columns become NaN either way.
    """
    columns = list(columns)
    cudf = _cudf() if xp is not np else None
    if cudf is None:
        host = store.read_arrays(table, symbol, start_ns, end_ns, columns)
        return {name: to_device(values, xp) for name, values in host.items()}
    return _read_with_cudf(cudf, store, table, symbol, start_ns, end_ns, columns)


def _cudf():
    try:
        import cudf
    except ImportError:
        return None
    return cudf


def _read_with_cudf(cudf, store, table, symbol, start_ns, end_ns, columns) -> dict:
    paths = store.partition_paths(table, symbol, start_ns, end_ns)
    if not paths:
        host = store.read_arrays(table, symbol, start_ns, end_ns, columns)
        return {name: _cupy().asarray(values) for name, values in host.items()}
    names = list(dict.fromkeys(["ts", *columns]))
    frame = cudf.read_parquet(paths, columns=names)
    keep = None
    if start_ns is not None:
        keep = frame["ts"] >= start_ns
    if end_ns is not None:
        upper = frame["ts"] < end_ns
        keep = upper if keep is None else keep & upper
    if keep is not None:
        frame = frame[keep]
    arrays = {}
    for name in columns:
        series = frame[name]
        if series.dtype.kind == "f" or (series.has_nulls and series.dtype.kind in "iu"):
            arrays[name] = series.astype("float64").to_cupy(na_value=np.nan)
        else:
            arrays[name] = series.to_cupy()
    return arrays
