"""The real CUDA compiler accepts every per-tick launcher, without a GPU.

The CUDA simulator runs kernels as Python, so it cannot tell whether numba-cuda compiles them:
named-tuple records of arrays as kernel arguments, ``njit`` bodies and helpers turned into device
functions. Here each launcher is compiled to PTX (libNVVM, for sm_90) with the argument types of a
real run of the feature engine and of the wavelet query. Needs the CUDA toolkit's libNVVM and NVRTC
(``CUDA_HOME``, or the ``nvidia-cuda-nvrtc`` wheel), not a driver or a GPU; skipped where they are
missing. The real-GPU tests (``make gpu-test``) check the numbers.
"""

from __future__ import annotations

from tests.conftest import run_ptx_script

_SCRIPT = """
import dataclasses
from gpu_lpi.features import compute_features
from kernels import per_tick_cuda
from kernels.per_tick import PerTickKernel
from kernels.rolling_order_stats import rolling_median_mad_wavelet
from tests.feature_stores import MS, SYMBOL, T0, random_store
from tests.test_features import SMALL

calls = {}
run = PerTickKernel.__call__
def record(kernel, count, inputs, outputs, params, target="cpu"):
    calls.setdefault(kernel, (count, inputs, outputs, params))
    return run(kernel, count, inputs, outputs, params, target)
PerTickKernel.__call__ = record
store = random_store(tempfile.mkdtemp(), seed=2, minutes=1.0)
compute_features(store, SYMBOL, T0, T0 + 60_000 * MS,
                 dataclasses.replace(SMALL, oi_ewma_halflife_s=30.0), "cpu")
rolling_median_mad_wavelet(np.random.default_rng(0).normal(size=500), 40, 1)
for kernel, arguments in calls.items():
    ptx, _ = cuda.compile_ptx(per_tick_cuda.element_function(kernel),
                              tuple(typeof(value) for value in arguments), cc=(9, 0))
    assert ".entry" in ptx, kernel.name
print("compiled:", " ".join(sorted(kernel.name for kernel in calls)))
"""


def test_every_per_tick_launcher_compiles_to_ptx():
    compiled = run_ptx_script(_SCRIPT).split("compiled:")[1].split()
    assert compiled == sorted(LAUNCHERS), compiled


#: Every per-tick launcher a run with a book (and the OI EWMA) and the wavelet query use.
LAUNCHERS = ("signals__episode_starts", "signals__mode_a_positions", "signals__side_conditions",
             "tick_features__block_moments", "tick_features__flow_sums", "tick_features__lpi_combination",
             "tick_features__oi_ewma", "tick_features__realized_variance", "tick_features__robust_z",
             "tick_features__side_sums", "tick_features__tick_features", "tick_features__trade_sums",
             "tick_features__window_stats", "wavelet_matrix__wavelet_query")


_SIM_SCRIPT = """
from kernels import maker_sim, per_tick_cuda
from kernels.per_tick import PerTickKernel
from tests.test_sim import BOOK, END, S, random_scripted_case, strategy
from gpu_lpi.sim.scripted import simulate_orders

calls = {}
run = PerTickKernel.__call__
def record(kernel, count, inputs, outputs, params, target="cpu"):
    calls.setdefault(kernel, (count, inputs, outputs, params))
    return run(kernel, count, inputs, outputs, params, target)
PerTickKernel.__call__ = record
strategy([("trade", S, "sell", 97, 100.0)], {"fill_model": "queue_prob"})
market, script = random_scripted_case(1)
simulate_orders(market, script)
for kernel, arguments in calls.items():
    ptx, _ = cuda.compile_ptx(per_tick_cuda.element_function(kernel),
                              tuple(typeof(value) for value in arguments), cc=(9, 0))
    assert ".entry" in ptx, kernel.name
print("compiled:", " ".join(sorted(kernel.name for kernel in calls)))
"""


def test_the_simulator_kernels_compile_to_ptx():
    compiled = run_ptx_script(_SIM_SCRIPT).split("compiled:")[1].split()
    assert compiled == ["maker_sim__scripted_orders", "maker_sim__simulate"], compiled
