"""Where computations run and where arrays live: the one set of device rules of the library.

A ``device`` argument is ``"cpu"``, ``"gpu"`` or ``"auto"`` and resolves to a *target*, ``"cpu"`` or
``"gpu"``. What ``"auto"`` means depends on who asks (DESIGN.md §2, §5):

* **Array functions** (:func:`gpu_lpi.robust.rolling_median_mad`, :func:`~gpu_lpi.robust.robust_z`,
  :func:`~gpu_lpi.robust.trailing_mean_std`) resolve with :func:`resolve_array_device`: ``"auto"``
  is the device of the input, ``"gpu"`` for a CuPy array and ``"cpu"`` otherwise. Their results
  are returned on the device of the input, whichever device computed them (:func:`like`).
* **Jobs** (:func:`gpu_lpi.run.run_job`, :func:`gpu_lpi.features.compute_features`,
  ``gpu-lpi run --device``) resolve with :func:`resolve_device`: ``"auto"`` is ``"gpu"`` when CuPy
  imports and sees a CUDA device (:func:`gpu_available`), else ``"cpu"``.

``"gpu"`` needs CuPy and a CUDA device. Where numba's CUDA simulator is on
(``NUMBA_ENABLE_CUDASIM=1``), the GPU target is always available and NumPy arrays stand in for
device arrays (:func:`array_module`), so the GPU kernels run on CPU-only machines. An unknown device
or a GPU that cannot be had raises :class:`DeviceError`.

CuPy and cudf are imported lazily, on GPU use only; ``numba.cuda`` is never imported here.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gpu_lpi.errors import ConfigError

DEVICES = ("cpu", "gpu", "auto")


class DeviceError(ConfigError, ValueError):
    """An unknown device name, or ``"gpu"`` where no GPU can be used.

    A :class:`~gpu_lpi.errors.ConfigError` (the CLI prints it as one line) and a ``ValueError``
    (what the array functions raise for any bad argument).
    """


def _cupy():
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def simulator_on() -> bool:
    """Whether numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1`` before numba's import)."""
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
    """Target of a job: ``"auto"`` is ``"gpu"`` when :func:`gpu_available`, else ``"cpu"``.

    Raises
    ------
    DeviceError
        For an unknown name, or ``"gpu"`` without a usable GPU.
    """
    return _resolve(device, gpu_available)


def resolve_array_device(array, device: str) -> str:
    """Target of an array function: ``"auto"`` is the device where ``array`` lives.

    Raises
    ------
    DeviceError
        For an unknown name, or ``"gpu"`` without a usable GPU.
    """
    return _resolve(device, lambda: is_device_array(array))


def _resolve(device: str, auto_is_gpu) -> str:
    if device not in DEVICES:
        raise DeviceError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return "gpu" if auto_is_gpu() else "cpu"
    if device == "gpu" and not (simulator_on() or gpu_available()):
        raise DeviceError("device: 'gpu' needs CuPy and a CUDA GPU (pip install 'gpu-lpi[gpu]'); "
                          "use device 'cpu' or 'auto'")
    return device


def is_device_array(array) -> bool:
    """Whether ``array`` is a CuPy array."""
    return type(array).__module__.split(".")[0] == "cupy"


def array_module(target: str):
    """``numpy`` for the CPU; ``cupy`` for the GPU (``numpy`` under the CUDA simulator)."""
    if target == "cpu" or simulator_on():
        return np
    cupy = _cupy()
    if cupy is None:
        raise DeviceError("device: 'gpu' needs CuPy (pip install 'gpu-lpi[gpu]')")
    return cupy


def to_device(array, xp):
    """``array`` on the device owned by ``xp`` (no copy when it is there already)."""
    return np.asarray(array) if xp is np else xp.asarray(array)


def to_host(array) -> np.ndarray:
    """A NumPy array of a NumPy or CuPy array (no copy for NumPy)."""
    return array.get() if is_device_array(array) else np.asarray(array)


def like(array, reference):
    """``array`` moved to the device where ``reference`` lives."""
    if is_device_array(reference):
        return array if is_device_array(array) else _cupy().asarray(array)
    return to_host(array)


def read_arrays_on_device(store, table: str, symbol: str, start_ns: int | None,
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
