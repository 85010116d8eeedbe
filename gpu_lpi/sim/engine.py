"""Run :mod:`kernels.maker_sim` on a :class:`~gpu_lpi.sim.market.MarketWindows`: the thin glue.

:func:`run_scenarios` builds the kernel's records (host arrays; device arrays on the GPU, where
the market is copied once and shared by every scenario), sizes the outputs, runs every scenario in
one launch and returns them as NumPy arrays; a scenario that outgrew a capacity is rerun with
twice the room (:data:`kernels.maker_sim.Outputs` ``overflow``), so nothing is cut off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpu_lpi.device import array_module, to_host
from kernels import maker_sim as k

#: Starting capacities per scenario and activation; doubled on overflow.
ORDERS_PER_EPISODE = 32
FILLS_PER_EPISODE = 64
SLOTS = 16

_OUTPUT_TYPES = {
    "fl_ts": np.int64, "fl_price": np.float64, "fl_qty": np.float64, "fl_maker": np.int8,
    "fl_order": np.int64, "or_act": np.int64, "or_kind": np.int8, "or_side": np.int8,
    "or_price": np.float64, "or_qty": np.float64, "or_filled": np.float64, "or_submit": np.int64,
    "or_arrive": np.int64, "or_end": np.int64, "or_status": np.int8,
    "ep_status": np.int8, "ep_reason": np.int8, "ep_entry_qty": np.float64,
    "ep_entry_cost": np.float64, "ep_exit_qty": np.float64, "ep_exit_cost": np.float64,
    "ep_fees": np.float64, "ep_start": np.int64, "ep_end": np.int64, "ep_max_pos": np.float64,
    "sl_state": np.int8, "sl_order": np.int64, "sl_side": np.int8, "sl_price": np.int64,
    "sl_rem": np.float64, "sl_ahead": np.float64, "sl_level": np.float64, "sl_traded": np.float64,
    "sl_arrive": np.int64, "sl_cancel": np.int64, "sl_taker": np.int8, "sl_layer": np.int8,
    "n_fills": np.int64, "n_orders": np.int64, "overflow": np.int8, "ac_pos": np.float64,
    "rq": np.float64,
}


@dataclass
class KernelResult:
    """Outputs of one launch, on the host: ``arrays`` by :class:`kernels.maker_sim.Outputs` field,
    and the capacities they were laid out with."""

    arrays: dict
    n_scenarios: int
    n_act: int
    fill_cap: int
    order_cap: int

    def fills(self, s: int) -> slice:
        return slice(s * self.fill_cap, s * self.fill_cap + int(self.arrays["n_fills"][s]))

    def orders(self, s: int) -> slice:
        return slice(s * self.order_cap, s * self.order_cap + int(self.arrays["n_orders"][s]))


def _outputs(n_scenarios: int, n_act: int, fill_cap: int, order_cap: int, n_slots: int, xp) -> k.Outputs:
    sizes = {"fl": n_scenarios * fill_cap, "or": n_scenarios * order_cap, "ep": n_scenarios * n_act,
             "sl": n_scenarios * n_slots}
    arrays = {}
    for name in k.Outputs._fields:
        prefix = name[:2]
        size = sizes.get(prefix, n_scenarios * k.N_LAYERS if name == "rq" else n_scenarios)
        arrays[name] = xp.zeros(size, dtype=_OUTPUT_TYPES[name])
    arrays["ep_status"][:] = k.EP_BUSY
    return k.Outputs(**arrays)


def launch(kernel, record, n_scenarios: int, n_act: int, params: dict, target: str,
           n_slots: int = SLOTS, orders_per_episode: int = ORDERS_PER_EPISODE) -> KernelResult:
    """Run ``kernel`` (:func:`kernels.maker_sim.simulate` or ``scripted_orders``) for every
    scenario of ``record``, doubling the capacities until no scenario overflows."""
    xp = array_module(target)
    device_record = type(record)(*(xp.asarray(values) for values in record)) if target == "gpu" else record
    per = max(n_act, 1)
    order_cap = orders_per_episode * per
    fill_cap = max(FILLS_PER_EPISODE * per, 2 * order_cap)
    while True:
        outputs = _outputs(n_scenarios, per, fill_cap, order_cap, n_slots, xp)
        kernel(n_scenarios, device_record, outputs,
               k.Params(n_slots=n_slots, fill_cap=fill_cap, order_cap=order_cap, n_act=per, **params),
               target)
        if not int(to_host(outputs.overflow).max(initial=0)):
            break
        fill_cap, order_cap, n_slots = 2 * fill_cap, 2 * order_cap, 2 * n_slots
    arrays = {name: to_host(values) for name, values in outputs._asdict().items()
              if not name.startswith(("sl_", "ac_", "rq"))}
    return KernelResult(arrays, n_scenarios, per, fill_cap, order_cap)
