"""The on-disk compilation cache (kernels/jit.py): reused across processes, never stale.

* every cached function of the project reaches only code and constants its cache stamp covers
  (a static walk over globals, closures, modules and imported names);
* a second process loads the feature kernels instead of compiling them;
* editing a constant or a helper in another file of the same directory recompiles (plain
  ``numba.njit(cache=True)`` keeps running the stale code);
* the cache still works when the package's ``__pycache__`` cannot be written.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numba
from numba.core.caching import FunctionCache, NullCache
from numba.core.dispatcher import Dispatcher
from numba.core.extending import _Intrinsic

import gpu_lpi
import kernels
from kernels import jit
from kernels.per_tick import PerTickKernel
from tests.conftest import REPO

PROJECT_PACKAGES = (gpu_lpi, kernels)


# -- static dependencies -------------------------------------------------------------------------------
def _project_file(path) -> Path | None:
    """``path`` resolved if it is a source file of this project (not of an installed package)."""
    if path is None:
        return None
    resolved = Path(path).resolve()
    if REPO in resolved.parents and REPO / ".venv" not in resolved.parents:
        return resolved
    return None


def _module_file(module_name: str) -> Path | None:
    module = sys.modules.get(module_name)
    return _project_file(getattr(module, "__file__", None))


def _code_names(code: types.CodeType) -> set[str]:
    """Global and attribute names used by ``code`` and the functions nested in it."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _code_names(constant)
    return names


@functools.cache
def _imports(module_name: str) -> dict[str, str]:
    """``{name: source module}`` for every ``from X import name`` in a project module's source."""
    module = sys.modules[module_name]
    source = _project_file(getattr(module, "__file__", None))
    if source is None:
        return {}
    imports = {}
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom):
            origin = node.module
            if node.level:
                package = module.__package__.split(".")
                base = ".".join(package[: len(package) - node.level + 1])
                origin = f"{base}.{node.module}" if node.module else base
            imports.update({alias.asname or alias.name: origin for alias in node.names})
    return imports


def _imported_from(module_name: str, name: str) -> str | None:
    """The module that ``from X import name`` in ``module_name``'s source imports ``name`` from."""
    return _imports(module_name).get(name)


def _defining_file(module_name: str, name: str) -> Path | None:
    """Project file where the global ``name`` of ``module_name`` gets its value (imports followed)."""
    source = _imported_from(module_name, name)
    while source is not None and _module_file(source) is not None:
        module_name, source = source, _imported_from(source, name)
    return _module_file(module_name) if source is None else None


def _reachable_files(function, seen=None) -> dict[Path, str]:
    """Every project file whose code or constants ``function`` can reach, with one example each."""
    seen = set() if seen is None else seen
    found: dict[Path, str] = {}
    own_file = _project_file(function.__code__.co_filename)
    if function in seen or own_file is None:  # third-party code is not followed
        return found
    seen.add(function)
    found[own_file] = function.__qualname__
    names = _code_names(function.__code__)
    values = [(name, function.__globals__[name], function.__module__)
              for name in names if name in function.__globals__]
    values += [(f"<closure of {function.__qualname__}>", cell.cell_contents, None)
               for cell in function.__closure__ or ()]
    while values:
        name, value, module_name = values.pop()
        where = f"{function.__qualname__} -> {name}"
        if isinstance(value, Dispatcher):
            value = value.py_func
        elif isinstance(value, _Intrinsic):
            value = value._defn
        if isinstance(value, types.FunctionType):
            for path, example in _reachable_files(value, seen).items():
                found.setdefault(path, f"{where} -> {example}")
        elif isinstance(value, types.ModuleType):
            path = _project_file(getattr(value, "__file__", None))
            if path is not None:
                found.setdefault(path, where)
                values += [(f"{name}.{attr}", getattr(value, attr), value.__name__)
                           for attr in names if attr in vars(value)]
        elif isinstance(value, type):
            path = _module_file(value.__module__)
            if path is not None:
                found.setdefault(path, where)
        elif module_name is not None:  # a constant: where its module got it from
            path = _defining_file(module_name, name.rpartition(".")[2])
            if path is not None:
                found.setdefault(path, where)
    return found


def _project_modules():
    for package in PROJECT_PACKAGES:
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            yield importlib.import_module(info.name)


def _cached_functions():
    """``(name, python function, files its cache stamp covers)`` for every cached function."""
    from kernels import per_tick_cuda

    seen = set()
    for module in _project_modules():
        for name, value in vars(module).items():
            if id(value) in seen:
                continue
            if isinstance(value, PerTickKernel):
                roots = [(f"{value.name} (CPU)", value.cpu_loop),
                         (f"{value.name} (GPU)", per_tick_cuda.element_function(value))]
            elif isinstance(value, Dispatcher) and not isinstance(value._cache, NullCache):
                roots = [(f"{value.py_func.__module__}.{value.py_func.__qualname__}", value)]
            else:
                continue
            seen.add(id(value))
            for label, root in roots:
                function = root.py_func if isinstance(root, Dispatcher) else root
                source = Path(function.__code__.co_filename).resolve()
                if isinstance(root, Dispatcher) and not isinstance(root._cache,
                                                                   jit._DirectoryFunctionCache):
                    assert type(root._cache) is FunctionCache, label
                    covered = {source}  # numba's own stamp: the defining file only
                else:
                    covered = set(source.parent.glob("*.py"))
                yield label, function, covered


def test_cached_functions_reach_only_files_their_cache_stamp_covers():
    cached = list(_cached_functions())
    labels = [label for label, _, _ in cached]
    # the walk sees the kinds of cached functions the project has
    assert {"tick_features__robust_z (CPU)", "tick_features__robust_z (GPU)",
            "wavelet_matrix__wavelet_query (GPU)"} <= set(labels)
    assert {"kernels.sliding_order_stats", "kernels.book_replay", "gpu_lpi.synth.market",
            "gpu_lpi.synth.textbuf"} <= {label.rpartition(".")[0] for label in labels}
    problems = []
    for label, function, covered in cached:
        for path, example in _reachable_files(function).items():
            if path not in covered:
                problems.append(f"{label}: {example} is in {path.relative_to(REPO)}")
    assert not problems, "\n".join(problems)


def test_the_walk_sees_constants_imported_from_other_directories(tmp_path, monkeypatch):
    """The check has teeth: a constant imported from another directory, read as a module
    attribute or through a chain of imports, and a helper in another directory are reported."""
    (tmp_path / "walked").mkdir()
    (tmp_path / "walked" / "__init__.py").write_text("")
    (tmp_path / "walked" / "sub").mkdir()
    (tmp_path / "walked" / "sub" / "__init__.py").write_text("")
    (tmp_path / "walked" / "far.py").write_text("LIMIT = 3\n\ndef helper(x):\n    return x + LIMIT\n")
    (tmp_path / "walked" / "sub" / "near.py").write_text("from walked.far import LIMIT\n")
    (tmp_path / "walked" / "sub" / "user.py").write_text(textwrap.dedent("""
        from walked import far
        from walked.far import helper
        from walked.sub.near import LIMIT

        def by_chain(x):
            return x * LIMIT

        def by_attribute(x):
            return x * far.LIMIT

        def by_helper(x):
            return helper(x)
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path.resolve())
    try:
        user = importlib.import_module("walked.sub.user")
        far = (tmp_path / "walked" / "far.py").resolve()
        for function in (user.by_chain, user.by_attribute, user.by_helper):
            assert far in _reachable_files(function), function.__name__
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] == "walked"]:
            del sys.modules[name]
        _imports.cache_clear()


# -- reuse across processes ---------------------------------------------------------------------------
_FEATURE_SCRIPT = """
import dataclasses, json, sys
from gpu_lpi.features import compute_features
from kernels import sliding_order_stats, tick_features
from kernels.per_tick import PerTickKernel
from tests.feature_stores import MS, SYMBOL, T0
from tests.test_features import SMALL
params = dataclasses.replace(SMALL, oi_ewma_halflife_s=30.0)  # every kernel runs
compute_features(sys.argv[1], SYMBOL, T0, T0 + 60_000 * MS, params, "cpu")
dispatchers = {k.name: k.cpu_loop for k in vars(tick_features).values()
               if isinstance(k, PerTickKernel)}
# the default z scale (non-zero MAD) on the CPU: the sliding rank-bitset kernel
dispatchers["sliding_median_mad"] = sliding_order_stats.sliding_median_mad
print(json.dumps({name: [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())]
                  for name, d in dispatchers.items()}))
"""


def _python(script: str, *args: str, env: dict | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_second_process_loads_the_feature_kernels_from_the_cache(tmp_path):
    from tests.feature_stores import random_store

    store = random_store(tmp_path / "store", seed=3, minutes=1.0)
    first = json.loads(_python(_FEATURE_SCRIPT, str(store.root)))
    second = json.loads(_python(_FEATURE_SCRIPT, str(store.root)))
    assert len(first) == 11 and all(hits + misses == 1 for hits, misses in first.values()), first
    assert all(stats == [1, 0] for stats in second.values()), second


# -- invalidation by files of the same directory --------------------------------------------------------
def _write_package(root: Path, decorator: str) -> Path:
    """A package ``pkg`` whose cached ``compute`` calls a helper and reads a constant, each defined in
    another file of its directory. ``decorator`` is the cached-compilation decorator used."""
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "constants.py").write_text("OFFSET = 1\n")
    (package / "helpers.py").write_text(
        f"{decorator}\nfrom pkg.constants import OFFSET\n\n@cached\ndef shift(x):\n"
        f"    return x + OFFSET\n")
    (package / "entry.py").write_text(
        f"{decorator}\nfrom pkg.helpers import shift\n\n@cached\ndef compute(x):\n"
        f"    return shift(x) * 10\n")
    return package


_ENTRY_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from pkg.entry import compute
print(compute(1), sum(compute.stats.cache_hits.values()))
"""

OUR_DECORATOR = "from kernels.jit import njit as cached"
PLAIN_NUMBA = "import numba\ncached = numba.njit(cache=True)"


def _clean_env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", **extra}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_editing_a_constant_or_helper_in_another_file_recompiles(tmp_path):
    package = _write_package(tmp_path, OUR_DECORATOR)
    run = lambda: _python(_ENTRY_SCRIPT, str(tmp_path), env=_clean_env()).split()  # noqa: E731
    assert run() == ["20", "0"]      # compiled
    assert run() == ["20", "1"]      # loaded from the cache
    _edit(package / "constants.py", "OFFSET = 1", "OFFSET = 20")
    assert run() == ["210", "0"]     # the constant's file changed: recompiled
    _edit(package / "helpers.py", "x + OFFSET", "x + OFFSET + 100")
    assert run() == ["1210", "0"]    # the helper's file changed: recompiled
    assert run() == ["1210", "1"]


def test_plain_numba_cache_keeps_stale_code_after_such_an_edit(tmp_path):
    """Why kernels/jit.py exists: numba's stamp is the defining file only."""
    package = _write_package(tmp_path, PLAIN_NUMBA)
    run = lambda: _python(_ENTRY_SCRIPT, str(tmp_path), env=_clean_env()).split()  # noqa: E731
    assert run() == ["20", "0"]
    _edit(package / "constants.py", "OFFSET = 1", "OFFSET = 20")
    assert run() == ["20", "1"]      # stale: the new constant is ignored


def test_cache_falls_back_to_the_user_wide_folder_when_pycache_cannot_be_written(tmp_path):
    package = _write_package(tmp_path, OUR_DECORATOR)
    (package / "__pycache__").write_text("not a folder")  # no cache folder can be made there
    user_cache = tmp_path / "user-cache"
    env = _clean_env(XDG_CACHE_HOME=str(user_cache))
    run = lambda: _python(_ENTRY_SCRIPT, str(tmp_path), env=env).split()  # noqa: E731
    assert run() == ["20", "0"]
    assert run() == ["20", "1"]
    assert list(user_cache.glob("numba/*/entry.compute-*.nbi"))
    _edit(package / "constants.py", "OFFSET = 1", "OFFSET = 20")
    assert run() == ["210", "0"]


# -- the numba internals kernels/jit.py relies on --------------------------------------------------------
def test_cached_dispatchers_use_the_directory_stamp():
    from kernels.sliding_order_stats import sliding_median_mad

    cache = sliding_median_mad._cache
    assert isinstance(cache, jit._DirectoryFunctionCache)
    locator = cache._impl.locator
    assert isinstance(locator, jit._DirectoryStamp)
    kernels_dir = str(Path(inspect.getfile(sliding_median_mad.py_func)).resolve().parent)
    assert locator.get_source_stamp() == jit.directory_stamp(kernels_dir)
    assert cache._cache_file._source_stamp == jit.directory_stamp(kernels_dir)
    assert numba.config.CACHE_LOCATOR_CLASSES in (None, ""), "would bypass the directory stamp"


def test_gpu_kernels_get_the_directory_stamped_cache():
    """Built without a GPU: what a real GPU run gets (the simulator has no cache)."""
    from kernels import per_tick_cuda
    from kernels.tick_features import robust_z

    cache = jit._directory_cuda_cache_class()(per_tick_cuda.element_function(robust_z))
    locator = cache._impl.locator
    assert isinstance(locator, jit._DirectoryStamp)
    kernels_dir = Path(per_tick_cuda.__file__).resolve().parent
    assert locator.get_source_stamp() == jit.directory_stamp(str(kernels_dir))
    assert cache._impl.filename_base.startswith("per_tick_cuda.element_kernel__tick_features__robust_z-")


def test_cpu_path_never_imports_numba_cuda():
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from gpu_lpi.robust import robust_z
        from kernels.wavelet_matrix import wavelet_query
        robust_z(np.arange(300.0), 20)
        assert not [m for m in sys.modules if m.startswith(("numba.cuda", "numba_cuda", "cupy"))]
        """)
    _python(script)
