"""Warm a Dask worker's compiled kernels once, when it starts, instead of in its first task.

numba compiles (cold cache) or loads from the on-disk cache (:mod:`kernels.jit`, ~0.6 s a process
with a warm cache, ~13 s cold) each kernel the first time a process calls it. A worker is a
long-lived process, so it pays that once anyway; :class:`WarmKernels` makes it pay it at start-up,
before any task: its ``setup`` computes the features of a four-minute market around midnight that
it writes into a temporary tick store (quotes, trades, open interest and liquidations: the per-tick
kernels, the exact rolling median/MAD and the signals all run), once for a chunk inside one day and
once for a chunk across midnight (rows read from one partition arrive as read-only Arrow buffers,
rows from two as a writable concatenation, and numba compiles a kernel for each). Tasks' timings
then measure work, a cold cache is compiled by every worker in parallel at start-up rather than
inside the first chunk, and a worker whose kernels cannot be built says so in its log (the error)
before taking work.

Kernels only some jobs use (the L2 book replay of ``depth_diff`` stores, ``oi_ewma_halflife_s > 0``)
are loaded by the first task that needs them, once per worker as well.
"""

from __future__ import annotations

import logging
import tempfile
import time

import numpy as np
import pyarrow as pa
from distributed import WorkerPlugin

from gpu_lpi.features import compute_feature_chunk
from gpu_lpi.params import FeatureParams
from gpu_lpi.schema import TABLES
from gpu_lpi.store import TickStore

logger = logging.getLogger(__name__)

#: Symbol of the warm-up market (it exists only in a temporary store).
WARM_SYMBOL = "WARMUPUSDT"
_T0 = 1_722_816_000 * 10**9          # 2024-08-05 00:00 UTC
_MS = 1_000_000
_MINUTE = 60_000 * _MS
#: Windows short enough that the warm-up's robust z-scores and signals have values to compute.
_PARAMS = FeatureParams(window_hours=0.01, adv_window_hours=0.01, depth_window_hours=0.01,
                        min_periods_s=5.0)


def _rows(table: str, columns: dict) -> pa.Table:
    """``columns`` as rows of the store's ``table`` (ids numbered, receive times null)."""
    schema = TABLES[table].schema
    n = len(next(iter(columns.values())))
    arrays = [pa.array(columns[f.name], f.type) if f.name in columns
              else pa.nulls(n, f.type) if f.name == "local_ts"
              else pa.array(np.arange(n), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def write_warm_up_store(root) -> TickStore:
    """A deterministic market of :data:`WARM_SYMBOL` from two minutes before midnight (2024-08-05
    00:00 UTC) to two minutes after, in a new tick store at ``root``."""
    rng = np.random.default_rng(0)
    begin, end = _T0 - 2 * _MINUTE, _T0 + 2 * _MINUTE
    quote_ts = np.arange(begin, end, 100 * _MS)
    mid = 100.0 + np.cumsum(rng.normal(0, 0.01, quote_ts.size))
    bid, ask = np.round(mid - 0.01, 2), np.round(mid + 0.01, 2)
    trade_ts = np.sort(rng.integers(begin, end, 2_000))
    at = np.searchsorted(quote_ts, trade_ts, side="right") - 1
    sell = rng.random(trade_ts.size) < 0.5
    price = np.where(sell, bid[at] - 0.1 * (rng.random(trade_ts.size) < 0.2), ask[at])
    qty = rng.exponential(1.0, trade_ts.size)
    oi_ts = np.arange(begin, end, 3_000 * _MS)
    liq_ts = np.sort(rng.integers(begin, end, 10))
    store = TickStore(root)
    with store.transaction() as tx:
        for table in ("book_ticker", "trades", "open_interest", "liquidations"):
            tx.cover(table, WARM_SYMBOL, begin, end, __name__)
        tx.write_symbols(pa.table({"symbol": [WARM_SYMBOL], "tick_size": [0.01], "lot_size": [0.001],
                                   "contract_size": [1.0], "is_inverse": [False]}))
        tx.write("book_ticker", WARM_SYMBOL, _rows("book_ticker", {
            "ts": quote_ts, "bid": bid, "ask": ask, "bid_qty": rng.uniform(1, 10, quote_ts.size),
            "ask_qty": rng.uniform(1, 10, quote_ts.size)}))
        tx.write("trades", WARM_SYMBOL, _rows("trades", {
            "ts": trade_ts, "price": price, "qty": qty, "is_buyer_maker": sell,
            "notional": price * qty, "kind": np.zeros(trade_ts.size, np.int8)}))
        oi = 1e5 - np.cumsum(rng.exponential(10.0, oi_ts.size))
        tx.write("open_interest", WARM_SYMBOL, _rows("open_interest", {
            "ts": oi_ts, "oi": oi, "oi_value": oi * 100.0}))
        notional = rng.uniform(100, 5000, liq_ts.size)
        tx.write("liquidations", WARM_SYMBOL, _rows("liquidations", {
            "ts": liq_ts, "side": rng.integers(0, 2, liq_ts.size).astype(np.int8),
            "price": np.full(liq_ts.size, 100.0), "qty": notional / 100.0, "notional": notional,
            "avg_price": np.full(liq_ts.size, 100.0)}))
    return store


def warm_kernels(device: str = "cpu") -> float:
    """Compile or load the feature kernels of ``device`` in this process; the seconds it took."""
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-lpi-warm-") as folder:
        store = write_warm_up_store(folder)
        for start, end in ((_T0 - 2 * _MINUTE, _T0), (_T0 - _MINUTE, _T0 + 2 * _MINUTE)):
            compute_feature_chunk(store, WARM_SYMBOL, start, end, _PARAMS, device)
    return time.perf_counter() - begin


class WarmKernels(WorkerPlugin):
    """Worker plugin: :func:`warm_kernels` once when a worker starts (or joins later).

    Its name is per device (``gpu-lpi-warm-kernels-<device>``), and it is ``idempotent``: a later
    job on the same scheduler registering it again does not re-run it on workers that have it, and
    one for another device warms that device's kernels too. A failed warm-up is logged on the
    worker and does not stop it; the first task that needs the kernels then fails with the error.
    """

    idempotent = True

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.name = f"gpu-lpi-warm-kernels-{device}"
        self.seconds: float | None = None

    def setup(self, worker) -> None:
        try:
            self.seconds = warm_kernels(self.device)
        except Exception:          # noqa: BLE001 -- reported with the task that needs the kernels
            logger.exception("gpu_lpi: warming the %s kernels failed on %s", self.device,
                             getattr(worker, "address", "a worker"))
        else:
            logger.info("gpu_lpi: %s kernels warm in %.2f s", self.device, self.seconds)
