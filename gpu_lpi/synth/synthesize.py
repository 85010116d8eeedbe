"""``synthesize``: a realistic synthetic market with planted, labelled episodes, written as raw files.

This is what ``gpu-lpi synth`` runs. For each symbol it plans the episodes (:mod:`.episodes`), runs
the market simulation (:mod:`.market`) in chunks and streams each chunk to the chosen writer
(:mod:`.writers_binance_ws` or :mod:`.writers_tardis`); then it writes ``labels.parquet``.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gpu_lpi.interrupts import checkpoint
from gpu_lpi.progress import progress_bar

from . import calibration as cal
from .episodes import KIND_NAMES, plan_episodes
from .market import CHUNK_MS, DAY_MS, new_simulation, run_chunks
from .rng import new_state
from .stream_format import SymbolFormat
from .writers_binance_ws import BinanceWsWriter
from .writers_tardis import TardisWriter

WRITERS = {"binance-ws": BinanceWsWriter, "tardis": TardisWriter}
SYMBOLS_CSV = Path(__file__).resolve().parent.parent / "data" / "symbols.csv"
LABEL_SCHEMA = pa.schema([("symbol", pa.string()), ("ts_start", pa.int64()), ("ts_end", pa.int64()),
                          ("kind", pa.string()), ("side", pa.string()), ("violent", pa.bool_())])


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`synthesize` wrote.

    Attributes
    ----------
    out_dir : Path
        The output folder.
    files : tuple of Path
        Raw data files, per symbol in day order.
    labels_path : Path
        ``out_dir/labels.parquet``.
    episodes : int
        Number of planted episodes (rows of the labels).
    messages : int
        Number of simulated exchange messages (before formatting).
    seconds : float
        Wall time of the run.
    """

    out_dir: Path
    files: tuple[Path, ...]
    labels_path: Path
    episodes: int
    messages: int
    seconds: float


def _reference(symbols: list[str]) -> dict[str, tuple[SymbolFormat, float, float]]:
    """Formatting facts, tick and lot of each symbol; unknown symbols raise ValueError."""
    table = pd.read_csv(SYMBOLS_CSV, dtype=str).set_index("symbol")
    unknown = [symbol for symbol in symbols if symbol not in table.index or symbol not in cal.MARKETS]
    if unknown:
        raise ValueError(f"unknown symbol {', '.join(unknown)}; known symbols: {', '.join(table.index)}")
    reference = {}
    for symbol in symbols:
        row = table.loc[symbol]
        fmt = SymbolFormat.from_reference(symbol, row.tick_size, row.lot_size, row.is_inverse.lower() == "true")
        reference[symbol] = (fmt, float(row.tick_size), float(row.lot_size))
    return reference


def _labels(symbol: str, episodes: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "symbol": symbol,
        "ts_start": episodes["start_ms"].astype(np.int64) * 1_000_000,
        "ts_end": episodes["end_ms"].astype(np.int64) * 1_000_000,
        "kind": [KIND_NAMES[kind] for kind in episodes["kind"]],
        "side": np.where(episodes["direction"] < 0, "down", "up"),
        "violent": episodes["violent"] == 1,
    })


def _write_labels(path: Path, labels: pd.DataFrame) -> None:
    partial = path.with_name(path.name + ".partial")
    pq.write_table(pa.Table.from_pandas(labels, schema=LABEL_SCHEMA, preserve_index=False), partial)
    partial.replace(path)


def _check_arguments(fmt: str, days: int, rate_scale: float) -> None:
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(WRITERS)}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if not rate_scale > 0:
        raise ValueError(f"rate_scale must be positive, got {rate_scale}")


def synthesize(out_dir, fmt: str, symbols, start: date, days: int, seed: int, rate_scale: float = 1.0,
               progress: bool = False) -> SynthSummary:
    """Write a synthetic market with planted liquidation cascades and informed repricings.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created if missing). Raw files go directly in it, plus ``labels.parquet``
        (symbol, ts_start, ts_end in ns exchange time, kind ``forced``/``informed``, side
        ``down``/``up``, and ``violent``: cascade-sized flow and sweeps through the book -- true
        for every forced episode and for about half of the informed ones, see
        :mod:`gpu_lpi.synth.episodes`).
    fmt : {"binance-ws", "tardis"}
        ``binance-ws``: ``<symbol>_<YYYYMMDD>.gz`` websocket captures; ``tardis``:
        ``<exchange>_<data_type>_<YYYY-MM-DD>_<SYMBOL>.csv.gz``.
    symbols : list of str
        Symbols from ``gpu_lpi/data/symbols.csv`` (e.g. ``["BTCUSDT", "ETHUSDT"]``).
    start : datetime.date
        First UTC day.
    days : int
        Number of whole UTC days.
    seed : int
        Seed; the same arguments give byte-identical files.
    rate_scale : float, default 1.0
        Multiplier of the book and trade event rates (1 = calibrated on real captures; 0.01 makes a
        day small enough for tests). Mark price, open-interest polls and the sweeps of violent
        episodes (liquidations, informed block orders) keep their clocks.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    SynthSummary

    Raises
    ------
    ValueError
        For an unknown symbol or format, ``days < 1`` or a non-positive ``rate_scale``.
    """
    began = time.perf_counter()
    symbols = list(symbols)
    _check_arguments(fmt, days, rate_scale)
    reference = _reference(symbols)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first_day_ms = int(datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp() * 1000)
    bar = progress_bar(len(symbols) * days * DAY_MS // CHUNK_MS, "synth", unit="chunk", enabled=progress)
    files, labels, messages = [], [], 0
    for symbol in symbols:
        symbol_fmt, tick, lot = reference[symbol]
        symbol_hash = zlib.crc32(symbol.encode())
        episodes = plan_episodes(np.random.default_rng([seed, symbol_hash]), first_day_ms, days)
        simulation = new_simulation(cal.MARKETS[symbol], tick, lot, first_day_ms, days, episodes,
                                    new_state([seed, symbol_hash, 1]), rate_scale)
        writer = WRITERS[fmt](out_dir, symbol_fmt, start, days)
        for chunk in run_chunks(simulation):
            writer.write(chunk)
            messages += chunk.messages.size
            bar.update(1)
            checkpoint()
        files += writer.close()
        labels.append(_labels(symbol, episodes))
    bar.close()
    labels_path = out_dir / "labels.parquet"
    all_labels = pd.concat(labels, ignore_index=True)
    _write_labels(labels_path, all_labels)
    return SynthSummary(out_dir, tuple(files), labels_path, len(all_labels), messages, time.perf_counter() - began)
