"""One set of device rules (gpu_lpi/device.py) for the array functions and for jobs."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_lpi import device
from gpu_lpi.device import DeviceError, resolve_array_device, resolve_device
from gpu_lpi.errors import ConfigError
from gpu_lpi.robust import robust_z, rolling_median_mad, trailing_mean_std
from tests.conftest import run_under_cuda_simulator


class _FakeCupyArray:
    """Looks like a CuPy array to :func:`gpu_lpi.device.is_device_array` (no CuPy needed)."""


_FakeCupyArray.__module__ = "cupy._core.core"


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(device, "gpu_available", lambda: False)
    monkeypatch.setattr(device, "simulator_on", lambda: False)


@pytest.fixture
def a_gpu(monkeypatch):
    monkeypatch.setattr(device, "gpu_available", lambda: True)


def test_auto_for_a_job_is_the_gpu_when_one_is_there(no_gpu, monkeypatch):
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(device, "gpu_available", lambda: True)
    assert resolve_device("auto") == "gpu" and resolve_device("gpu") == "gpu"


def test_auto_for_an_array_is_where_the_array_lives(a_gpu):
    assert resolve_array_device(np.ones(3), "auto") == "cpu"   # a GPU is there, the array is not
    assert resolve_array_device(_FakeCupyArray(), "auto") == "gpu"
    assert resolve_array_device(np.ones(3), "gpu") == "gpu"
    assert resolve_array_device(_FakeCupyArray(), "cpu") == "cpu"


@pytest.mark.parametrize("resolve", [resolve_device, lambda name: resolve_array_device(np.ones(3),
                                                                                         name)])
def test_one_error_type_for_both_rules(resolve, no_gpu):
    with pytest.raises(DeviceError, match="device: expected one of cpu, gpu, auto, got 'tpu'"):
        resolve("tpu")
    with pytest.raises(DeviceError, match="needs CuPy and a CUDA GPU"):
        resolve("gpu")
    assert issubclass(DeviceError, ConfigError) and issubclass(DeviceError, ValueError)


@pytest.mark.parametrize("function", [rolling_median_mad, trailing_mean_std, robust_z])
def test_array_functions_raise_the_device_error(function, no_gpu):
    """The array API raised ValueError or RuntimeError before; now the DeviceError (a ValueError
    and a ConfigError, so the CLI prints one line)."""
    for name in ("tpu", "gpu"):
        with pytest.raises(DeviceError):
            function(np.ones(10), 3, device=name)


def test_run_job_raises_the_same_error(no_gpu, tmp_path):
    from gpu_lpi.run import run_job

    with pytest.raises(DeviceError, match="needs CuPy"):
        run_job({"data": {"store": str(tmp_path), "symbols": ["X"], "start": "2024-08-05",
                          "end": "2024-08-05"}}, out=tmp_path / "run", device="gpu")


def test_moving_arrays_between_host_and_device():
    values = np.arange(4.0)
    assert device.to_host(values) is values
    assert device.to_device(values, np) is values
    assert device.like(values, np.ones(2)) is values
    assert device.array_module("cpu") is np


def test_under_the_simulator_numpy_stands_in_for_cupy():
    script = """
import numpy as np
from gpu_lpi import device
assert device.simulator_on() and device.resolve_device("gpu") == "gpu"
assert device.array_module("gpu") is np
assert device.resolve_array_device(np.ones(2), "auto") == "cpu"
print("ok")
"""
    assert "ok" in run_under_cuda_simulator(script, timeout=120)
