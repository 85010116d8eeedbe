"""Packaging: the GPU extras resolve together, and environment.yml mirrors pyproject.toml."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.network
@pytest.mark.skipif(os.environ.get("GPU_LPI_OFFLINE") == "1", reason="GPU_LPI_OFFLINE=1: no package index")
def test_gpu_extras_resolve(tmp_path):
    """`pip install --dry-run '.[gpu]'` resolves: cudf 26.x pins numba < 0.65 and pandas < 3.1."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--report", str(report), f"{REPO}[gpu]"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    pins = {name: version for name, version in
            (re.match(r"([a-z0-9-]+)==([\d.]+)", dep).groups() for dep in _pyproject()["project"]["dependencies"]
             if "==" in dep)}
    for name in ("numba", "numpy", "numba-cuda"):
        assert chosen[name] == pins[name]
    for name in ("cupy-cuda12x", "dask-cuda", "cudf-cu12"):
        assert name in chosen


#: PyPI names whose conda-forge package is named differently.
CONDA_NAMES = {"isal": "python-isal"}


def test_environment_yml_mirrors_pyproject():
    env = (REPO / "environment.yml").read_text()
    for dep in _pyproject()["project"]["dependencies"]:
        name = re.match(r"[A-Za-z0-9_-]+", dep).group(0).lower()
        conda_name = CONDA_NAMES.get(name, name)
        assert re.search(rf"^\s*-\s*{re.escape(conda_name)}\b", env, re.M), f"{name} missing from environment.yml"
        if "==" in dep:
            version = dep.split("==")[1]
            assert re.search(rf"^\s*-\s*{re.escape(name)}={re.escape(version)}\s*$", env, re.M), \
                f"{name} pin {version} differs in environment.yml"
