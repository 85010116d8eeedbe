"""gpu_lpi: GPU-accelerated liquidation-pressure analytics for crypto-futures tick data.

The public API is imported lazily, so that ``gpu-lpi`` starts fast and importing the package does
not load numba or CuPy until they are needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "rolling_median_mad": "gpu_lpi.robust",
    "robust_z": "gpu_lpi.robust",
    "compute_features": "gpu_lpi.features",
    "run_job": "gpu_lpi.run",
    "TickStore": "gpu_lpi.store",
    "ingest": "gpu_lpi.ingest",
    "write_report": "gpu_lpi.report",
    "probabilistic_sharpe": "gpu_lpi.validation.sharpe",
    "deflated_sharpe": "gpu_lpi.validation.sharpe",
    "min_track_record_length": "gpu_lpi.validation.sharpe",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'gpu_lpi' has no attribute {name!r}")
