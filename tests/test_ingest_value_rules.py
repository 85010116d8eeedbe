"""One set of value rules at ingest for every format: what the issue found stored without rejection
(negative and zero prices, negative quantities, NaN/inf/1e400, timestamps in 2200 and 1969, negative
instrument sizes) is rejected, counted with file and line, and never reaches the store."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gpu_lpi.cli import main
from gpu_lpi.errors import ConfigError, InputError
from gpu_lpi.ingest import ingest
from gpu_lpi.ingest.report import IngestReport
from gpu_lpi.ingest.value_rules import TimeBounds
from gpu_lpi.store import TickStore

MS_2200 = 7258118400000          # 2200-01-01 in ms
MS_2016 = 1451606400000          # 2016-01-01 in ms
NS = 1_000_000


def _partitions(store: Path) -> set[str]:
    return {p.name for p in store.rglob("date=*")}


def _ws_line(i: int, message: dict) -> str:
    return f"{1723161255000000000 + i * 1000} {json.dumps(message, separators=(',', ':'))}"


def _ws_trade(trade_id: int, t: int, price="61800.30", qty="0.006") -> dict:
    return {"stream": "btcusdt@trade", "data": {"e": "trade", "E": t, "T": t, "s": "BTCUSDT", "t": trade_id,
                                                 "p": price, "q": qty, "X": "MARKET", "m": False}}


def _ws_capture(path: Path, messages: list[dict]) -> Path:
    path.write_bytes(gzip.compress(("\n".join(_ws_line(i, m) for i, m in enumerate(messages)) + "\n").encode()))
    return path


def test_binance_ws_bad_numbers_and_times_are_rejected(tmp_path):
    t = 1723161256322
    bad = [("-61800.30", "0.006"), ("0", "0.006"), ("NaN", "0.006"), ("inf", "0.006"), ("1e400", "0.006"),
           ("61800.30", "-0.5"), ("61800.30", "0"), ("61800.30", "Infinity")]
    messages = [_ws_trade(1, t)] + [_ws_trade(10 + i, t, p, q) for i, (p, q) in enumerate(bad)]
    messages += [_ws_trade(30, MS_2200), _ws_trade(31, MS_2016), _ws_trade(32, -1000), _ws_trade(2, t + 1)]
    messages.append({"stream": "btcusdt@bookTicker", "data": {"e": "bookTicker", "u": 5, "E": t, "T": t, "s": "BTCUSDT",
                                                              "b": "-1", "B": "1", "a": "61800.4", "A": "2"}})
    messages.append({"stream": "btcusdt@depth@0ms", "data": {"e": "depthUpdate", "E": t, "T": t, "s": "BTCUSDT", "U": 1,
                                                             "u": 2, "pu": 0, "b": [["61800.2", "-3"], ["61800.1", "0"]],
                                                             "a": []}})
    path = _ws_capture(tmp_path / "btcusdt_20240808.gz", messages)
    report = ingest([path], "binance-ws", tmp_path / "store")
    store = TickStore(tmp_path / "store")
    assert store.read_arrays("trades", "BTCUSDT")["trade_id"].tolist() == [1, 2]
    assert report.rejections["trades price is not a finite number > 0"] == 5      # -1, 0, NaN, inf, 1e400
    assert report.rejections["trades qty is not a finite number > 0"] == 3        # -0.5, 0, Infinity
    assert report.rejections["book_ticker bid is not a finite number > 0"] == 1
    assert report.rejections["depth_diff qty is not a finite number >= 0"] == 1   # the whole message
    assert sum(n for reason, n in report.rejections.items() if reason.startswith("ts outside")) == 2
    assert report.rejections["exchange time is not 10, 13, 16 or 19 digits (s, ms, µs, ns)"] == 1
    assert "depth_diff" not in store.tables()
    examples = report.examples["trades price is not a finite number > 0"]
    assert examples[0] == f"{path}:2: price=-61800.3" and examples[2] == f"{path}:4: price=nan"
    assert _partitions(tmp_path / "store") == {"date=2024-08-08"}


def _archive(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / f"{name}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_binance_archive_bad_values_are_rejected_and_no_2200_partition(tmp_path):
    agg = _archive(tmp_path, "ETHUSDT-aggTrades-2023-05-01", [
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker",
        "1290241731,1868.42,0.0,2943174956,2943174958,1682899200037,false",      # zero quantity (FORMATS A.1)
        "1290241732,-1868.43,2.5,2943174959,2943174959,1682899200045,true",
        "1290241733,1868.43,-2.5,2943174960,2943174960,1682899200046,true",
        f"1290241734,1868.43,2.5,2943174961,2943174961,{MS_2200},true",
        "1290241735,nan,2.5,2943174962,2943174962,1682899200047,true",
        "1290241736,1868.44,1.5,2943174963,2943174963,1682899200048,true"])
    metrics = _archive(tmp_path, "BTCUSDT-metrics-2023-01-21", [
        "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
        "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio",
        '2023-01-21 00:00:00,BTCUSDT,-5,10,"","","",""', '2023-01-21 00:05:00,BTCUSDT,5,10,"","","",""'])
    report = ingest([agg, metrics], "binance-archive", tmp_path / "store")
    store = TickStore(tmp_path / "store")
    assert store.read_arrays("agg_trades", "ETHUSDT")["trade_id"].tolist() == [1290241736]
    in_time = {r: n for r, n in report.rejections.items()
               if not r.startswith("ts outside the accepted time range [2017-01-01T00:00:00, ")}
    assert sum(report.rejections.values()) - sum(in_time.values()) == 1                  # the 2200 row
    assert in_time == {"agg_trades qty is not a finite number > 0": 2,
                       "agg_trades price is not a finite number > 0": 2,
                       "open_interest oi is not a finite number >= 0": 1}
    assert report.examples["agg_trades qty is not a finite number > 0"] == [
        f"{agg}:2: qty=0.0", f"{agg}:4: qty=-2.5"]
    assert _partitions(tmp_path / "store") == {"date=2023-05-01", "date=2023-01-21"}


TARDIS = "exchange,symbol,timestamp,local_timestamp"


def _tardis(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_tardis_bad_values_are_rejected_and_zero_deletes_a_level(tmp_path):
    t = 1722816000123000
    trades = _tardis(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz", [
        f"{TARDIS},id,side,price,amount", f"binance-futures,BTCUSDT,{t},{t + 5},1,sell,-54000.5,0.01",
        f"binance-futures,BTCUSDT,{t},{t + 5},2,sell,54000.5,-0.01", f"binance-futures,BTCUSDT,{t},{t + 5},3,sell,54000.5,inf",
        f"binance-futures,BTCUSDT,{t},{MS_2200 * 1000},4,sell,54000.5,0.01",
        f"binance-futures,BTCUSDT,{t},{t + 5},5,buy,54000.5,0.02"])
    book = _tardis(tmp_path, "binance-futures_incremental_book_L2_2024-08-05_BTCUSDT.csv.gz", [
        f"{TARDIS},is_snapshot,side,price,amount", f"binance-futures,BTCUSDT,{t},{t + 5},true,bid,78549.5,1.5",
        f"binance-futures,BTCUSDT,{t},{t + 5},false,bid,78549.5,0", f"binance-futures,BTCUSDT,{t},{t + 5},false,bid,-1,1",
        f"binance-futures,BTCUSDT,{t},{t + 5},false,ask,78549.6,-2"])
    report = ingest([trades, book], "tardis", tmp_path / "store")
    store = TickStore(tmp_path / "store")
    assert store.read_arrays("trades", "BTCUSDT")["trade_id"].tolist() == [5]
    assert store.read_arrays("depth_diff", "BTCUSDT")["qty"].tolist() == [1.5, 0.0]
    local = next(r for r in report.rejections if r.startswith("local_ts outside"))
    assert report.examples[local] == [f"{trades}:5: local_ts=2200-01-01T00:00:00"]
    assert report.rejections["trades price is not a finite number > 0"] == 1
    assert report.rejections["trades qty is not a finite number > 0"] == 2
    assert report.rejections["depth_diff price is not a finite number > 0"] == 1
    assert report.rejections["depth_diff qty is not a finite number >= 0"] == 1
    assert _partitions(tmp_path / "store") == {"date=2024-08-05"}


def test_time_bounds_are_configurable_from_the_cli(tmp_path):
    path = _ws_capture(tmp_path / "btcusdt_20240808.gz", [_ws_trade(1, 1723161256322), _ws_trade(2, 1723075199999)])
    result = CliRunner().invoke(main, ["ingest", "--format", "binance-ws", str(path), "--store", str(tmp_path / "s"),
                                       "--earliest", "2024-08-08", "--latest", "2024-08-08"])
    assert result.exit_code == 0, result.output
    assert TickStore(tmp_path / "s").read_arrays("trades", "BTCUSDT")["trade_id"].tolist() == [1]
    assert "ts outside the accepted time range [2024-08-08T00:00:00, 2024-08-09T00:00:00)" in result.output
    for options, message in ((["--earliest", "2024-08-10", "--latest", "2024-08-09"], "--earliest 2024-08-10 is after"),
                             (["--earliest", "0001-01-01"], "expected a date from 1678-01-01")):
        result = CliRunner().invoke(main, ["ingest", "--format", "binance-ws", str(path), "--store",
                                           str(tmp_path / "s2"), *options])
        assert result.exit_code == 2 and result.output.count("\n") == 1 and message in result.output, result.output
    assert not (tmp_path / "s2" / "trades").exists()


def test_time_bounds_default_and_errors():
    bounds = TimeBounds.of()
    assert bounds.start_ns == np.datetime64("2017-01-01", "ns").astype(np.int64)
    assert bounds.end_ns > np.datetime64("now", "ns").astype(np.int64) + 23 * 3600 * 10**9
    assert str(TimeBounds.of("2024-01-01", "2024-01-31")) == "[2024-01-01T00:00:00, 2024-02-01T00:00:00)"
    with pytest.raises(ConfigError, match="expected a date YYYY-MM-DD"):
        TimeBounds.of("yesterday")


@pytest.mark.parametrize("row, message", [
    ("FOOUSDT,-0.01,1,1,false", r"symbols.csv:3: tick_size is -0.01; expected a finite number > 0"),
    ("FOOUSDT,0.01,0,1,false", r"symbols.csv:3: lot_size is 0.0; expected a finite number > 0"),
    ("FOOUSDT,0.01,1,-100,true", r"symbols.csv:3: contract_size is -100.0; expected a finite number > 0"),
    ("FOOUSDT,0.01,1,nan,true", r"symbols.csv:3: contract_size is nan; expected a finite number > 0"),
    ("FOOUSDT,,1,1,true", r"symbols.csv:3: tick_size is empty; expected a finite number > 0")])
def test_bad_reference_data_is_a_one_line_error_naming_file_line_and_field(tmp_path, row, message):
    symbols = tmp_path / "symbols.csv"
    symbols.write_text(f"symbol,tick_size,lot_size,contract_size,is_inverse\nBARUSDT,0.1,1,1,false\n{row}\n")
    path = _ws_capture(tmp_path / "btcusdt_20240808.gz", [_ws_trade(1, 1723161256322)])
    with pytest.raises(InputError, match=message):
        ingest([path], "binance-ws", tmp_path / "store", symbols_files=[symbols])
    result = CliRunner().invoke(main, ["ingest", "--format", "binance-ws", str(path), "--store", str(tmp_path / "store"),
                                       "--symbols-file", str(symbols)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1
    assert not (tmp_path / "store" / "trades").exists()


_SYMBOLS_HEADER = "symbol,tick_size,lot_size,contract_size,is_inverse\n"


def _cli_ingest_error(tmp_path, *symbols_files) -> str:
    path = _ws_capture(tmp_path / "btcusdt_20240808.gz", [_ws_trade(1, 1723161256322)])
    args = [a for f in symbols_files for a in ("--symbols-file", str(f))]
    result = CliRunner().invoke(main, ["ingest", "--format", "binance-ws", str(path), "--store", str(tmp_path / "store"),
                                       *args])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "store" / "trades").exists()
    return result.output


def test_a_symbol_listed_twice_with_other_values_is_a_one_line_error(tmp_path):
    # was: accepted silently (the first row won)
    symbols = tmp_path / "symbols.csv"
    symbols.write_text(_SYMBOLS_HEADER + "FOOUSDT,0.1,0.001,1,false\n\nBARUSDT,1,1,1,false\nFOOUSDT,0.5,0.001,1,false\n")
    assert _cli_ingest_error(tmp_path, symbols) == (
        f"error: {symbols}:5: symbol 'FOOUSDT' is listed again with other values (first on line 2): "
        "tick_size 0.1 then 0.5 (symbols file)\n")
    same = tmp_path / "same.csv"                      # an identical repeat is harmless
    same.write_text(_SYMBOLS_HEADER + "FOOUSDT,0.1,0.001,1,false\nFOOUSDT,0.1,0.001,1,false\n")
    other = tmp_path / "other.csv"
    other.write_text(_SYMBOLS_HEADER + "FOOUSDT,0.1,0.001,10,false\n")
    path = _ws_capture(tmp_path / "btcusdt_20240808.gz", [_ws_trade(1, 1723161256322)])
    ingest([path], "binance-ws", tmp_path / "ok", symbols_files=[same, same])
    assert _cli_ingest_error(tmp_path, same, other) == (
        f"error: {other}:2: symbol 'FOOUSDT' has other values than in {same}: contract_size 1.0 then 10.0 "
        "(symbols file)\n")


def test_a_symbols_file_that_is_not_utf8_is_a_one_line_error(tmp_path):
    # was: a UnicodeDecodeError traceback
    symbols = tmp_path / "symbols.csv"
    symbols.write_bytes(_SYMBOLS_HEADER.encode() + b"FOOUSDT,0.1,0.001,1,false\n\xff\xfe\x00garbage\n")
    assert _cli_ingest_error(tmp_path, symbols).startswith(f"error: {symbols}:3: not UTF-8 text (byte 0xff)")


def test_conflicts_are_counted_with_examples_in_summary_and_json():
    report = IngestReport("binance-ws")
    report.conflict("agg_trades", "BTCUSDT", "agg_trade_id 7: price 100.0 stored, 101.0 now")
    report.conflict("agg_trades", "BTCUSDT", "", count=4)
    assert report.conflicts[("agg_trades", "BTCUSDT")] == 5
    assert report.to_dict()["conflicts"] == {"agg_trades/BTCUSDT": 5}
    assert report.to_dict()["conflict_examples"]["agg_trades/BTCUSDT"][0].startswith("agg_trade_id 7")
    assert "conflicts (re-ingested with other values; stored rows kept): 5" in report.summary()
    assert "agg_trades BTCUSDT  e.g. agg_trade_id 7: price 100.0 stored, 101.0 now" in report.summary()
