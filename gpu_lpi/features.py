"""The per-tick feature engine: tick store -> features, robust z-scores and LPI (spec §2, §8.2).

:func:`compute_features` returns a ``pyarrow.Table`` (one row per tick ``start <= t < end``; Arrow
rather than pandas so that the run folder's Parquet is written without a copy and GPU results need
only one transfer). Columns (float64 unless noted; NaN = unknown, never a stale value):

==========================  ======================================================================
ts (int64 ns), symbol       tick time ``t`` (the tick covers ``(t − Δ, t]``) and symbol
book_valid (bool)           a fresh, valid book at ``t``; every book-based feature is NaN otherwise
mid, spread, microprice     from the book as of ``t`` (microprice weights by top quantities)
r                           ``ln(m_t/m_{t−Δ})``
dollar_volume               V$: notional of market trades (``kind == 0``) in ``(t − Δ, t]``
v_impact, v_impact_up       impact sell / buy notional: sells below ``b_{t−Δ}·(1 − θ)``, buys
                            above ``a_{t−Δ}·(1 + θ)`` (strictly)
adv                         ADV$: mean V$ per second over the ticks with a valid book in the
                            trailing ``adv_window_hours`` (current tick included)
depth_bid, depth_ask        D(η) per side (source in :mod:`gpu_lpi.book_at_ticks`)
fsi, fsi_up                 ``ΣV_impact/(ADV$·T)·g(ΔOI)``, ``g = 1 + κ·tanh(ΔOI/σ_ΔOI)``, the sum
                            over the flow window ``(t − T, t]``, ``T = flow_window_s``
ldr, ldr_up                 ``(s/m)/(D/mean D)``, D = bid depth (down) / ask depth (up)
pi                          ``|ln(m_t/m_{t−T})|/(ΣV$ + ε)`` over the flow window,
                            ``ε = pi_eps_adv_fraction·ADV$·T``
d_oi                        OI drop ``OI_{t−Δ_OI} − OI_t`` (contracts; NaN without an OI feed)
rv                          Σ squared log returns of ``rv_subsamples`` mids inside the tick
liq_sell_notional,          liquidation orders' notional in the tick (NaN without a
liq_buy_notional            liquidation feed)
z_fsi, z_fsi_up, z_ldr,     robust z over W (:mod:`gpu_lpi.lpi`); z(LDR) of ``ln LDR`` by default
z_ldr_up, z_pi, z_doi       (``z_ldr_transform``)
lpi_down, lpi_up            ``w1·z(FSI) + w2·z(LDR) + w3·z(Π)`` with the side's FSI and LDR
                            (without depth: ``(w1·z(FSI) + w3·z(Π))·(w1 + w2 + w3)/(w1 + w3)``)
z_liq_sell, z_liq_buy       robust z of the liquidation notional per side over the flow window
                            (NaN without a liquidation feed)
state, exhaustion, dir,     the signals (:data:`gpu_lpi.signals.SIGNAL_COLUMNS`, described in
target_w, ...               :mod:`gpu_lpi.signals`)
==========================  ======================================================================

Trades only (book source ``trades``, :mod:`gpu_lpi.book_at_ticks`): the quotes are implied by
the latest seller- and buyer-aggressor trade prices, so ``book_valid`` means "implied quotes
valid", mid, spread, r and the impact thresholds come from them, and the microprice, depths, LDR
and z(LDR) are NaN.

Where the store has no open interest (the real captures), ``d_oi`` and ``z_doi`` are NaN and the OI
amplifier is ``g = 1``: FSI is then the plain impact ratio. σ_ΔOI is the robust scale of ``d_oi``
over W. The same OI drop amplifies both sides: a squeeze liquidates shorts, which also lowers OI.

Coverage: a tick that none of the inputs cover (:mod:`gpu_lpi.chunk_inputs`) has no row; in a
tick that some cover, what comes from an input that does not cover it is missing: the book
(``book_valid`` false) outside the book source's spans, the trade sums (V$, impact notionals), the
liquidation sums and the OI drop outside theirs -- missing, never zero.

Structure: :func:`compute_feature_chunk` cuts its range into bounded pieces (:func:`piece_bounds`),
reads each piece's inputs once (:func:`gpu_lpi.chunk_inputs.load_chunk`), and
:func:`features_from_inputs`, a pure function of that record, computes everything else on the
chosen device.

Chunking: the values at a tick depend only on rows with ``ts <= t`` and on the loaded history,
which always covers every lookback, so any split of ``[start, end)`` gives the same values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from gpu_lpi.book_at_ticks import has_depth, lpi_weights
from gpu_lpi.chunk_inputs import (EWMA_SUPPORT_HALFLIVES, ChunkInputs, TableRead, book_source_of,
                                  covered_spans, load_chunk)
from gpu_lpi.device import array_module, resolve_device, to_device, to_host
from gpu_lpi.grid import TickGrid, as_of, make_grid
from gpu_lpi.lpi import combine_lpi, robust_z_and_scale
from gpu_lpi.params import FeatureParams
from gpu_lpi.robust import trailing_mean_std
from gpu_lpi.schema import LIQ_SELL
from gpu_lpi.signals import BOOL_COLUMNS, INT8_COLUMNS, SIGNAL_COLUMNS, add_signals, apply_mode_b, load_mode_b
from gpu_lpi.store import NS_PER_DAY, TickStore
from kernels import tick_features as kernels
from kernels.per_tick import empty_record

#: Output columns after ``ts`` and ``symbol``, in order.
FEATURE_COLUMNS = (
    "book_valid", "mid", "spread", "microprice", "r", "dollar_volume", "v_impact", "v_impact_up",
    "adv", "depth_bid", "depth_ask", "fsi", "fsi_up", "ldr", "ldr_up", "pi", "d_oi", "rv",
    "liq_sell_notional", "liq_buy_notional", "z_fsi", "z_fsi_up", "z_ldr", "z_ldr_up", "z_pi",
    "z_doi", "lpi_down", "lpi_up", "z_liq_sell", "z_liq_buy", *SIGNAL_COLUMNS,
)
#: Stages timed by :func:`compute_feature_chunk` ("load" includes the book replay).
STAGES = ("load", "grid", "features", "robust_z", "signals", "io")


@dataclass(frozen=True)
class PieceInputs:
    """What one piece of a chunk read: its fingerprint and the table ranges behind it."""

    fingerprint: str
    reads: tuple[TableRead, ...]

    def to_dict(self) -> dict:
        return {"fingerprint": self.fingerprint,
                "reads": [{"table": r.table, "start_ns": r.start_ns, "end_ns": r.end_ns} for r in self.reads]}

    @classmethod
    def from_dict(cls, value: dict) -> "PieceInputs":
        return cls(value["fingerprint"], tuple(TableRead(**read) for read in value["reads"]))


@dataclass
class FeatureChunk:
    """Features of one symbol over one time range, with how they were made."""

    table: pa.Table
    book_source: str
    inputs: list[PieceInputs] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def to_ns(value) -> int:
    """Nanoseconds since the epoch (UTC) of an int (already ns), a date, a datetime or a string."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


#: Most ticks computed at once: a range is cut into pieces of at most a UTC day and at most this
#: many ticks (plus their history, at most :data:`gpu_lpi.params.MAX_HISTORY_TICKS`), so memory is
#: bounded whatever the range and the tick; the results are the same for any cut (module docstring).
MAX_PIECE_TICKS = 1 << 20


def piece_bounds(start_ns: int, end_ns: int, params: FeatureParams) -> list[tuple[int, int]]:
    """The pieces of ``[start_ns, end_ns)``: cut at UTC midnights and every :data:`MAX_PIECE_TICKS`
    ticks of the day."""
    step = min(NS_PER_DAY, MAX_PIECE_TICKS * params.tick_ns)
    cuts = {start_ns, end_ns}
    day = start_ns // NS_PER_DAY * NS_PER_DAY
    while day < end_ns:
        cuts.update(cut for cut in range(day, day + NS_PER_DAY, step) if start_ns < cut < end_ns)
        day += NS_PER_DAY
    cuts = sorted(cuts)
    return [(low, high) for low, high in zip(cuts[:-1], cuts[1:])
            if -(-high // params.tick_ns) > -(-low // params.tick_ns)]


def compute_features(store: TickStore | str, symbol: str, start, end,
                     params: FeatureParams | None = None, device: str = "auto") -> pa.Table:
    """Features, robust z-scores and LPI of ``symbol`` at every covered tick ``start <= t < end``.

    Long ranges are computed a piece at a time (:func:`piece_bounds`: at most a day), so the working
    memory is that of one piece plus the output table (about 250 bytes per tick).

    Parameters
    ----------
    store : TickStore or path
    symbol : str
    start, end : int (ns), date, datetime or str
        Half-open time range (UTC); ticks are the multiples of Δ in it.
    params : FeatureParams, optional
        Defaults to ``FeatureParams()``.
    device : {"auto", "cpu", "gpu"}
        Where the per-tick kernels run; the book replay always runs on the CPU.

    Returns
    -------
    pyarrow.Table
        Columns ``ts``, ``symbol`` and :data:`FEATURE_COLUMNS` (see the module docstring); ticks
        that no input covers have no row.
    """
    return compute_feature_chunk(store, symbol, start, end, params, device).table


def compute_feature_chunk(store: TickStore | str, symbol: str, start, end,
                          params: FeatureParams | None = None, device: str = "auto",
                          book_source: str | None = None) -> FeatureChunk:
    """:func:`compute_features`, also returning the book source, what each piece read and the seconds
    per stage. ``book_source`` (default: the best the store holds for the symbol) fixes the book."""
    return compute_feature_variants(store, symbol, start, end, [params or FeatureParams()], device,
                                    book_source)[0]


def compute_feature_variants(store: TickStore | str, symbol: str, start, end,
                             variants: list[FeatureParams], device: str = "auto",
                             book_source: str | None = None) -> list[FeatureChunk]:
    """:func:`compute_feature_chunk` for parameter sets that differ in signal parameters only
    (:data:`~gpu_lpi.params.SIGNAL_FIELDS`): the inputs are read and the features computed once,
    with the longest history any set needs, and the signals once per set. Each result is what
    :func:`compute_feature_chunk` gives for its set alone (a longer history changes nothing:
    chunked results equal unchunked ones). The seconds of the shared stages are the first set's.
    """
    store = store if isinstance(store, TickStore) else TickStore(store)
    if len({params.feature_key() for params in variants}) != 1:
        raise ValueError("compute_feature_variants: the parameter sets differ in more than signal parameters")
    loader = max(variants, key=lambda params: params.history_ticks)
    target = resolve_device(device)
    clocks = [_StageClock() for _ in variants]
    source = book_source or book_source_of(store, symbol)
    covered = covered_spans(store, symbol, source)
    tables, inputs = [[] for _ in variants], [[] for _ in variants]
    for low, high in piece_bounds(to_ns(start), to_ns(end), loader):
        if not covered.clip(low, high):
            continue     # no input covers the piece: it has no rows, nothing to compute
        grid = make_grid(low, high, loader)
        with clocks[0]("load"):
            piece = load_chunk(store, symbol, grid, loader, source, array_module(target), target)
        columns = feature_columns(piece, target, clocks[0])
        for index, params in enumerate(variants):
            tables[index].append(signal_table(dict(columns), piece, params, target, clocks[index]))
            inputs[index].append(PieceInputs(piece.fingerprint_for(params), tuple(piece.reads)))
    if not tables[0]:
        make_grid(to_ns(start), to_ns(end), loader)   # a range without ticks is an error
    return [FeatureChunk(table=(pa.concat_tables(t) if len(t) > 1 else t[0]) if t else _empty_features(),
                         book_source=source, inputs=pieces, seconds=clock.seconds)
            for t, pieces, clock in zip(tables, inputs, clocks)]


def features_from_inputs(inputs: ChunkInputs, target: str = "cpu", clock=None) -> pa.Table:
    """The feature table of one chunk's inputs (a pure function of the record).

    Parameters
    ----------
    inputs : ChunkInputs
    target : {"cpu", "gpu"}
        Where the per-tick kernels run.
    clock : optional
        A :class:`_StageClock` that times the stages.
    """
    clock = clock or _StageClock()
    return signal_table(feature_columns(inputs, target, clock), inputs, inputs.params, target, clock)


def feature_columns(inputs: ChunkInputs, target: str, clock) -> dict:
    """Every column before the signals (features, z-scores, LPI) at every loaded tick."""
    grid, params = inputs.grid, inputs.params
    xp = array_module(target)
    with clock("grid"):
        book = inputs.book
        columns = {name: to_device(np.ascontiguousarray(values), xp) for name, values in (
            ("bid", book.bid), ("ask", book.ask), ("bid_qty", book.bid_qty),
            ("ask_qty", book.ask_qty), ("depth_bid", book.depth_bid), ("depth_ask", book.depth_ask),
            ("d_oi", _oi_drop(inputs)), ("sub_mid", inputs.sub_mids))}
        _aggregate_trades(inputs, columns, xp, target)
        _aggregate_liquidations(inputs, columns, xp, target)
    with clock("features"):
        _flow_sums(columns, grid, params, xp, target)
        _trailing_means(columns, grid, params, xp, target)
    with clock("robust_z"):
        columns["z_doi"], columns["sigma_doi"] = robust_z_and_scale(columns["d_oi"], params, target,
                                                                    grid.first_tick)
    with clock("features"):
        _tick_features(columns, grid, params, xp, target)
    with clock("robust_z"):
        for name in ("fsi", "fsi_up", "ldr", "ldr_up", "pi"):
            values = columns[name]
            if name.startswith("ldr") and params.z_ldr_transform == "log":
                values = xp.log(values)
            columns[f"z_{name}"], _ = robust_z_and_scale(values, params, target, grid.first_tick)
        # without depth (trades only) z(LDR) is NaN everywhere: weight 0, the others rescaled
        weights = lpi_weights(inputs.book_source, params.w1, params.w2, params.w3)
        for lpi, side in (("lpi_down", ""), ("lpi_up", "_up")):
            z_ldr = columns[f"z_ldr{side}"] if has_depth(inputs.book_source) else xp.zeros(grid.count)
            columns[lpi] = combine_lpi(columns[f"z_fsi{side}"], z_ldr, columns["z_pi"], params, xp,
                                       target, weights)
        for side in ("sell", "buy"):
            columns[f"z_liq_{side}"], _ = robust_z_and_scale(columns[f"flow_liq_{side}"], params,
                                                             target, grid.first_tick)
    return columns


def signal_table(columns: dict, inputs: ChunkInputs, params: FeatureParams, target: str, clock) -> pa.Table:
    """:func:`feature_columns` plus the signals under ``params`` -> the chunk's feature table."""
    grid, xp = inputs.grid, array_module(target)
    with clock("signals"):
        add_signals(columns, params, xp, target, block_origin=grid.first_tick,
                    has_oi=inputs.open_interest is not None,
                    has_liquidations=inputs.liquidations is not None,
                    has_depth=has_depth(inputs.book_source))
        rule = load_mode_b(params.mode_b)
        if rule is not None:
            apply_mode_b(columns, rule, grid.times, xp)
    with clock("io"):
        return _output_table(columns, grid, inputs.symbol, inputs.covered_ticks())


class _StageClock:
    """Accumulates wall seconds per stage (``with clock("io"): ...``)."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def __call__(self, stage: str):
        clock = self

        class _Timer:
            def __enter__(self):
                self.begin = time.perf_counter()

            def __exit__(self, *exc):
                clock.seconds[stage] += time.perf_counter() - self.begin

        return _Timer()


def _covered(values, covered: np.ndarray, xp):
    """``values`` where the tick's interval is covered, NaN elsewhere."""
    return xp.where(to_device(covered, xp), values, np.nan)


def _aggregate_trades(inputs: ChunkInputs, columns: dict, xp, target):
    """Dollar volume and impact notionals per tick (market trades), NaN where not covered."""
    grid, trades = inputs.grid, inputs.trades
    trade_start = grid.rows_per_tick(to_device(trades["ts"], xp), xp)
    bid_prev = xp.concatenate([xp.full(1, np.nan), columns["bid"][:-1]])
    ask_prev = xp.concatenate([xp.full(1, np.nan), columns["ask"][:-1]])
    outputs = empty_record(kernels.TradeSums, grid.count, xp)
    kernels.trade_sums(grid.count, kernels.TradeSumsInputs(
        trade_start=trade_start, price=to_device(trades["price"], xp),
        notional=to_device(trades["notional"], xp), is_sell=to_device(trades["is_buyer_maker"], xp),
        bid_prev=bid_prev, ask_prev=ask_prev), outputs,
        kernels.ImpactThreshold(theta=float(inputs.params.theta_bps * 1e-4)), target)
    for name, values in zip(("dollar_volume", "v_impact", "v_impact_up"), outputs):
        columns[name] = _covered(values, inputs.trades_covered, xp)


def _aggregate_liquidations(inputs: ChunkInputs, columns: dict, xp, target):
    """Liquidation notional per tick and side (NaN without a liquidation feed or coverage)."""
    grid, liquidations = inputs.grid, inputs.liquidations
    if liquidations is None:
        columns["liq_sell_notional"] = xp.full(grid.count, np.nan)
        columns["liq_buy_notional"] = xp.full(grid.count, np.nan)
        return
    row_start = grid.rows_per_tick(to_device(liquidations["ts"], xp), xp)
    outputs = empty_record(kernels.SideSums, grid.count, xp)
    kernels.side_sums(grid.count, kernels.SideRows(
        row_start=row_start, notional=to_device(liquidations["notional"], xp),
        is_sell=to_device(liquidations["side"] == LIQ_SELL, xp)), outputs, kernels.NoParams(), target)
    columns["liq_sell_notional"] = _covered(outputs.sell_notional, inputs.liquidations_covered, xp)
    columns["liq_buy_notional"] = _covered(outputs.buy_notional, inputs.liquidations_covered, xp)


def _flow_sums(columns: dict, grid: TickGrid, params: FeatureParams, xp, target):
    """The flows summed over the trailing flow window (``flow_*`` columns, NaN if a tick in it is)."""
    outputs = empty_record(kernels.FlowSums, grid.count, xp)
    kernels.flow_sums(grid.count, kernels.FlowInputs(**{
        name: columns[_KERNEL_NAMES.get(name, name)] for name in kernels.FlowInputs._fields}),
        outputs, kernels.FlowWindow(int(params.flow_ticks)), target)
    columns.update(outputs._asdict())


def _trailing_means(columns: dict, grid: TickGrid, params: FeatureParams, xp, target):
    """ADV$ ($/s over ticks with a valid book) and the mean depths of LDR's denominators."""
    valid = ~xp.isnan(columns["bid"]) & ~xp.isnan(columns["ask"])
    columns["book_valid"] = valid
    adv_window = params.hours_to_ticks(params.adv_window_hours)
    covered_volume = xp.where(valid, columns["dollar_volume"], np.nan)
    mean_volume, _ = trailing_mean_std(covered_volume, adv_window, params.min_periods_for(adv_window),
                                       device=target, block_origin=grid.first_tick)
    columns["adv"] = mean_volume / (params.tick_ms / 1000.0)
    depth_window = params.hours_to_ticks(params.depth_window_hours)
    for side in ("bid", "ask"):
        columns[f"mean_depth_{side}"], _ = trailing_mean_std(
            columns[f"depth_{side}"], depth_window, params.min_periods_for(depth_window),
            device=target, block_origin=grid.first_tick)


#: Kernel record fields named differently from the feature columns they hold.
_KERNEL_NAMES = {"impact_sell_notional": "v_impact", "impact_buy_notional": "v_impact_up",
                 "log_return": "r"}


def _tick_features(columns: dict, grid: TickGrid, params: FeatureParams, xp, target):
    inputs = kernels.TickFeatureInputs(**{
        name: columns[_KERNEL_NAMES.get(name, name)] for name in kernels.TickFeatureInputs._fields})
    outputs = empty_record(kernels.TickFeatures, grid.count, xp)
    kernels.tick_features(grid.count, inputs, outputs, kernels.TickFeatureParams(
        tick_s=params.tick_ms / 1000.0, flow_ticks=int(params.flow_ticks), kappa=float(params.kappa),
        eps=float(params.eps), pi_eps_adv_fraction=float(params.pi_eps_adv_fraction)), target)
    columns.update((_KERNEL_NAMES.get(name, name), values)
                   for name, values in zip(outputs._fields, outputs))
    rv = empty_record(kernels.RealizedVariance, grid.count, xp)
    kernels.realized_variance(grid.count, kernels.SubsampledMids(columns["sub_mid"]), rv,
                              kernels.Subsamples(int(params.rv_subsamples)), target)
    columns["rv"] = rv.rv


def _oi_drop(inputs: ChunkInputs) -> np.ndarray:
    """``OI_{t−Δ_OI} − OI_t`` on the grid (host array; NaN without a fresh, covered OI value)."""
    grid, params, rows = inputs.grid, inputs.params, inputs.open_interest
    if rows is None or not rows["ts"].size:
        return np.full(grid.count, np.nan)
    lag_ns = int(params.oi_lag_s * 1e9)
    max_age_ns = int(params.oi_max_age_s * 1e9)
    halflife_ns = int(params.oi_ewma_halflife_s * 1e9)
    oi = rows["oi"]
    if halflife_ns:
        smoothed = empty_record(kernels.SmoothedOpenInterest, oi.size)
        kernels.oi_ewma(oi.size, kernels.OpenInterest(rows["ts"], oi), smoothed,
                        kernels.EwmaParams(float(halflife_ns), int(EWMA_SUPPORT_HALFLIVES * halflife_ns)),
                        "cpu")
        oi = smoothed.smoothed
    covered = inputs.coverage["open_interest"]

    def carried_forward(times):
        index = as_of(rows["ts"], times)
        safe = np.maximum(index, 0)
        fresh = (index >= 0) & (times - rows["ts"][safe] <= max_age_ns) & covered.contains(times)
        return np.where(fresh, oi[safe], np.nan)

    return carried_forward(grid.times - lag_ns) - carried_forward(grid.times)


def _empty_features() -> pa.Table:
    arrays = {"ts": pa.array([], pa.int64()), "symbol": pa.array([], pa.string())}
    arrays.update((name, pa.array([], _column_type(name))) for name in FEATURE_COLUMNS)
    return pa.table(arrays)


def _column_type(name: str) -> pa.DataType:
    if name == "book_valid" or name in BOOL_COLUMNS:
        return pa.bool_()
    return pa.int8() if name in INT8_COLUMNS else pa.float64()


def _output_table(columns: dict, grid: TickGrid, symbol: str, covered: np.ndarray) -> pa.Table:
    """The requested ticks that some input covers (a tick no input covers has no row)."""
    keep = np.flatnonzero(covered[grid.output_start:]) + grid.output_start
    times = grid.times[keep]
    arrays = {"ts": pa.array(times, pa.int64()),
              "symbol": pa.array([symbol], pa.string()).take(np.zeros(times.size, dtype=np.int32))}
    for name in FEATURE_COLUMNS:
        arrays[name] = pa.array(np.ascontiguousarray(to_host(columns[name])[keep]))
    return pa.table(arrays)
