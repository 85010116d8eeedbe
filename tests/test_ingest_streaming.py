"""Every format is read a bounded block of lines at a time: tiny blocks give exactly what one big block
gives (rows, rejections, line numbers, notes, coverage); memory does not grow with the file; a
damaged gzip file reports the true number of readable lines."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pyarrow as pa
import pytest

from gpu_lpi.errors import InputError
from gpu_lpi.ingest import files as ingest_files
from gpu_lpi.ingest import format_parser, ingest
from gpu_lpi.ingest.report import IngestContext, IngestReport
from gpu_lpi.reference_data import SymbolRegistry
from tests.conftest import REPO

TARDIS_COMMON = "exchange,symbol,timestamp,local_timestamp"
T0 = 1722816000000000  # 2024-08-05 in µs


def _write(path: Path, lines: list[str], packing: str = "gz") -> Path:
    text = ("\n".join(lines) + "\n").encode()
    if packing == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(path.name.replace(".zip", ".csv"), text)
    elif packing == "gz":
        path.write_bytes(gzip.compress(text))
    else:
        path.write_bytes(text)
    return path


def _archive_files(folder: Path) -> list[Path]:
    """One file of each archive data type, with bad rows, blank lines, repeats and disorder."""
    agg = ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"]
    for i in range(120):
        agg.append(f"{1000 + i},{1868 + i % 7}.5,{(i % 5) * 0.5},{i},{i},{1682899200037 + i * 10},{'true' if i % 3 else 'false'}")
    agg[40] = "1039,n/a,1.0,1,1,1682899200050,false"
    agg[55] = "1054,1868.5,1.0,2,2"
    agg.insert(70, "")
    agg[90] = "1089,-5,1.0,3,3,1682899200060,true"
    trades = [f"{5000 + i},{68402 + i % 3}.6,0.0{1 + i % 9},1.0,{1717113600031 + i},{'false' if i % 2 else 'true'}"
              for i in range(80)]
    ticker = ["update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time"]
    for i in range(90):
        t = 1705276800000 + (i * 7919) % 90 * 100           # out of time order
        ticker.append(f"{3831603310013 + i},2474.30,6.009,2474.31,44.757,{t},{t + 5}")
    depth = ["timestamp,percentage,depth,notional"]
    for i in range(60):
        depth.append(f"2025-05-19 11:{i // 10:02d}:{i % 10:02d},{i % 10 - 5},{7885.2 + i},{647368074.3 + i}")
    depth[33] = "2025-13-19 11:07:31,2,1.0,2.0"
    metrics = ["create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
               "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"]
    for i in range(50):
        row = f'2023-06-25 {i // 12:02d}:{i % 12 * 5:02d}:00,BTCUSD_PERP,{5578700 - i}.0,{18265.0 + i},"","","",0.5'
        metrics.extend([row, row] if i % 4 == 0 else [row])
    funding = ["calc_time,funding_interval_hours,last_funding_rate"] + [
        f"{1751328000007 + i * 28800000},8,0.0000{8191 + i}" for i in range(40)]
    liquidations = ["time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
                    "last_fill_quantity,accumulated_fill_quantity"]
    for i in range(40):
        row = f"{1687656471926 + i * 1000},{'BUY' if i % 2 else 'SELL'},LIMIT,IOC,7,{30741 + i}.3,30631.6,FILLED,6,{7 + i}"
        liquidations.extend([row, row])                       # the archive lists every liquidation twice
    liquidations[17] = liquidations[17].replace(",BUY,", ",HOLD,")
    return [_write(folder / "ETHUSDT-aggTrades-2023-05-01.zip", agg, "zip"),
            _write(folder / "BTCUSDT-trades-2024-05-31.csv", trades, "plain"),
            _write(folder / "ETHUSDT-bookTicker-2024-01-15.csv.gz", ticker),
            _write(folder / "BTCUSDT-bookDepth-2025-05-19.zip", depth, "zip"),
            _write(folder / "BTCUSD_PERP-metrics-2023-06-25.csv.gz", metrics),
            _write(folder / "ETHUSDT-fundingRate-2025-07.csv", funding, "plain"),
            _write(folder / "BTCUSD_PERP-liquidationSnapshot-2023-06-25.zip", liquidations, "zip")]


def _tardis_files(folder: Path) -> list[Path]:
    """One file of each Tardis data type, with bad rows and per-file state that crosses blocks."""
    trades = [f"{TARDIS_COMMON},id,side,price,amount"]
    for i in range(100):
        side = "unknown" if i % 17 == 5 else ("buy" if i % 2 else "sell")
        trade_id = f"uuid-{i}" if i % 11 == 3 else str(700 + i)
        trades.append(f"binance-futures,BTCUSDT,{T0 + i * 1000},{T0 + i * 1000 + 50},{trade_id},{side},{54000 + i}.5,0.{1 + i % 8}")
    trades[60] = trades[60].replace(",0.", ",-0.")
    book = [f"{TARDIS_COMMON},is_snapshot,side,price,amount"]
    for i in range(120):
        symbol = "ETHUSDT" if i % 3 == 0 else "BTCUSDT"
        snapshot = "true" if 40 <= i < 46 or 90 <= i < 93 else "false"
        book.append(f"binance-futures,{symbol},{T0 + i * 100},{T0 + i * 100 + 7},{snapshot},{'bid' if i % 2 else 'ask'},"
                    f"{78549 + i % 5}.5,{i % 4}")
    snapshot_header = ",".join([TARDIS_COMMON] + [f"{side}[{k}].{v}" for k in range(5) for side in ("asks", "bids")
                                                   for v in ("price", "amount")])
    snapshots = [snapshot_header]
    for i in range(50):
        levels = [f"{11657 + k}.08,1.{k}" if side == "asks" else f"{11656 - k}.07,2.{k}"
                  for k in range(5) for side in ("asks", "bids")]
        if i == 20:
            levels[3] = "-1,2.0"                                  # a negative bid price: the whole snapshot goes
        snapshots.append(f"binance-futures,BTCUSDT,{T0 + i * 100000},{T0 + i * 100000 + 5}," + ",".join(levels))
    quotes = [f"{TARDIS_COMMON},ask_amount,ask_price,bid_price,bid_amount"] + [
        f"binance-futures,BTCUSDT,{T0 + i * 500},{T0 + i * 500 + 3}," + (",,99.9,10.5" if i % 9 == 4 else f"1.{i},101,100,2")
        for i in range(70)]
    ticker = [f"{TARDIS_COMMON},funding_timestamp,funding_rate,predicted_funding_rate,open_interest,last_price,"
              "index_price,mark_price"]
    for i in range(80):
        oi = "" if i % 13 == 0 else str(1500 + i // 6)           # repeats that cross block boundaries
        ticker.append(f"binance-futures,BTCUSDT,{T0 + i * 1000},{T0 + i * 1000 + 9},{T0},0.0001,,{oi},9364.5,9360,{9361 + i}")
    liquidations = [f"{TARDIS_COMMON},id,side,price,amount"] + [
        f"binance-futures,{'ETHUSDT' if i % 2 else 'BTCUSDT'},{T0 + i * 7000},{T0 + i * 7000 + 1},,"
        f"{'buy' if i % 3 else 'sell'},{100 + i},{1 + i % 3}" for i in range(40)]
    return [_write(folder / "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz", trades),
            _write(folder / "binance-futures_incremental_book_L2_2024-08-05_PERPETUALS.csv.gz", book),
            _write(folder / "binance-futures_book_snapshot_5_2024-08-05_BTCUSDT.csv.gz", snapshots),
            _write(folder / "quotes.csv.gz", quotes),
            _write(folder / "binance-futures_derivative_ticker_2024-08-05_BTCUSDT.csv.gz", ticker),
            _write(folder / "binance-futures_liquidations_2024-08-05_PERPETUALS.csv.gz", liquidations)]


def _parse_everything(fmt: str, files: list[Path]):
    """Run a format's parser (no store): the rows per (table, symbol) in canonical order, the
    report, and how many chunks each (table, symbol) came in."""
    report = IngestReport(fmt)
    tables, chunks = {}, {}
    for table, symbol, rows in format_parser(fmt)(files, IngestContext(report, SymbolRegistry())):
        tables.setdefault((table, symbol), []).append(rows)
        chunks[(table, symbol)] = chunks.get((table, symbol), 0) + 1
    rows = {}
    for key, parts in tables.items():
        whole = pa.concat_tables(parts)
        rows[key] = whole.sort_by([(name, "ascending") for name in whole.column_names]).to_pylist()
    return rows, report, chunks


def _assert_same_parse(fmt, files, monkeypatch, small_block: int, min_chunks: int) -> None:
    whole_rows, whole, _ = _parse_everything(fmt, files)
    monkeypatch.setattr(ingest_files, "LINE_BLOCK_BYTES", small_block)
    rows, report, chunks = _parse_everything(fmt, files)
    assert rows.keys() == whole_rows.keys()
    for key in rows:
        assert rows[key] == whole_rows[key], key
    assert report.rejections == whole.rejections
    assert report.examples == whole.examples
    assert report.notes == whole.notes
    assert report.gaps == whole.gaps
    assert sorted(map(str, report.coverage)) == sorted(map(str, whole.coverage))
    assert max(chunks.values()) >= min_chunks       # the small blocks really were read one by one


def test_archive_small_blocks_give_what_one_block_gives(tmp_path, monkeypatch):
    files = _archive_files(tmp_path)
    _, report, _ = _parse_everything("binance-archive", files)
    assert len(report.rejections) >= 5 and any("exact duplicate" in note for note in report.notes)
    assert any("out of time order" in note for note in report.notes)
    _assert_same_parse("binance-archive", files, monkeypatch, small_block=64, min_chunks=20)


def test_tardis_small_blocks_give_what_one_block_gives(tmp_path, monkeypatch):
    files = _tardis_files(tmp_path)
    _, report, _ = _parse_everything("tardis", files)
    assert any("precede the first snapshot" in note for note in report.notes)
    assert any("trade ids are not integers" in note for note in report.notes)
    _assert_same_parse("tardis", files, monkeypatch, small_block=64, min_chunks=20)


def test_binance_ws_small_blocks_give_what_one_block_gives(real_captures, monkeypatch):
    files = [p for p in real_captures if p.name.startswith("btcusdt_2024071")]
    _assert_same_parse("binance-ws", files, monkeypatch, small_block=200_000, min_chunks=10)


def test_binance_ws_bad_lines_in_tiny_blocks(tmp_path, monkeypatch):
    t = 1723161256400
    lines = []
    for i in range(60):
        trade = {"e": "trade", "E": t + i, "T": t + i, "s": "BTCUSDT", "t": i // 2 if i % 9 == 0 else i,
                 "p": "-1" if i % 13 == 0 else "61800.30", "q": "0.006", "m": False}
        diff = {"e": "depthUpdate", "E": t + i, "T": t + i, "s": "BTCUSDT", "U": 100 + 2 * i, "u": 101 + 2 * i,
                "pu": 99 + 2 * i if i % 17 else 90, "b": [["61800.2", str(i % 3)]], "a": []}
        lines.append(f'{1723161255000000000 + i} {{"stream":"btcusdt@trade","data":{json.dumps(trade)}}}')
        lines.append(f'{1723161255000000000 + i} {{"stream":"btcusdt@depth@0ms","data":{json.dumps(diff)}}}')
        if i % 11 == 0:
            lines.extend(["garbage", f'{1723161255000000000 + i} {{"stream":"btcusdt@kline_1m","data":{{}}}}', ""])
    path = tmp_path / "btcusdt_20240808.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    _, report, _ = _parse_everything("binance-ws", [path])
    assert report.gaps and {"duplicate message", "malformed line", "unsupported stream",
                            "trades price is not a finite number > 0"} <= set(report.rejections)
    _assert_same_parse("binance-ws", [path], monkeypatch, small_block=300, min_chunks=20)


def _reference_line_count(data: bytes) -> int:
    """Complete lines of a gzip byte string cut anywhere: zlib on all of it at once, member by member."""
    text, rest = b"", data
    while rest:
        inflater = zlib.decompressobj(31)
        try:
            text += inflater.decompress(rest)
        except zlib.error:
            break
        rest = inflater.unused_data if inflater.eof else b""
    return text.count(b"\n")


@pytest.mark.parametrize("fmt", ["tardis", "binance-ws"])
def test_truncated_gzip_reports_the_true_count_of_readable_lines(tmp_path, fmt):
    if fmt == "tardis":
        lines = [f"{TARDIS_COMMON},id,side,price,amount"] + [
            f"binance-futures,BTCUSDT,{T0 + i},{T0 + i + 5},{i},buy,{54000 + i % 100}.5,0.{i % 9 + 1}" for i in range(40_000)]
        name = "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz"
    else:
        lines = [f'{1722816000000000000 + i * 1000} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":{1722816000000 + i},'
                 f'"T":{1722816000000 + i},"s":"BTCUSDT","t":{i + 1},"p":"54000.{i % 10}","q":"0.01","m":true}}}}'
                 for i in range(40_000)]
        name = "btcusdt_20240805.gz"
    half = len(lines) // 2                            # two gzip members, as `cat a.gz b.gz` makes
    data = (gzip.compress(("\n".join(lines[:half]) + "\n").encode())
            + gzip.compress(("\n".join(lines[half:]) + "\n").encode()))
    path = tmp_path / name
    for cut in (len(data) // 7, len(data) // 2 - 10, len(data) // 2 + 100, len(data) - 3):
        path.write_bytes(data[:cut])
        expected = _reference_line_count(data[:cut])
        assert 0 < expected <= len(lines)
        with pytest.raises(InputError) as err:
            ingest([path], fmt, tmp_path / "store")
        assert str(err.value) == (f"{path}:{expected + 1}: truncated or corrupt gzip stream (the file ends inside "
                                  f"compressed data); {expected:,} complete lines were readable")


def test_corrupt_gzip_counts_the_lines_before_the_damage(tmp_path):
    text = b"".join(b"%d,%d\n" % (i, i * i) for i in range(50_000))
    data = bytearray(gzip.compress(text))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        list(ingest_files.iter_line_blocks(path, 1 << 16))
    readable = ingest_files.readable_gzip_lines(path)
    assert 0 < readable <= 50_000
    assert str(err.value).startswith(f"{path}:{readable + 1}: truncated or corrupt gzip stream (")
    assert str(err.value).endswith(f"); {readable:,} complete lines were readable")


@pytest.mark.parametrize("read_bytes", [ingest_files.READ_BYTES, 7])
@pytest.mark.parametrize("trailer", [b"garbage!!", b"x", b"\0\0\0junk"])
def test_trailing_data_after_a_gzip_stream_is_named(tmp_path, monkeypatch, read_bytes, trailer):
    # was: "the file ends inside compressed data"
    monkeypatch.setattr(ingest_files, "READ_BYTES", read_bytes)
    text = b"".join(b"line %d\n" % i for i in range(3_000))
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(text[:10_001]) + gzip.compress(text[10_001:]) + trailer)
    with pytest.raises(InputError) as err:
        list(ingest_files.iter_line_blocks(path, 4096))
    assert str(err.value) == (f"{path}:3001: truncated or corrupt gzip stream (trailing data after the gzip "
                              f"stream); 3,000 complete lines were readable")
    path.write_bytes(gzip.compress(text) + b"\0" * 9)          # zero padding is no trailing data
    assert b"".join(block for _, block in ingest_files.iter_line_blocks(path, 4096)) == text


def test_multi_member_gzip_and_zip_members_are_streamed_whole(tmp_path):
    text = b"".join(b"line %d\n" % i for i in range(30_000))
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(text[:100_003]) + gzip.compress(text[100_003:]) + b"\0" * 10)
    blocks = list(ingest_files.iter_line_blocks(path, 4096))
    assert b"".join(block for _, block in blocks) == text and len(blocks) > 20
    assert [first for first, _ in blocks] == [1 + b"".join(b for _, b in blocks[:i]).count(b"\n")
                                              for i in range(len(blocks))]
    zipped = _write(tmp_path / "b.zip", [line.decode() for line in text.splitlines()], "zip")
    assert b"".join(block for _, block in ingest_files.iter_line_blocks(zipped, 4096)) == text


_PEAK_SCRIPT = """
import resource, sys
from pathlib import Path
from gpu_lpi.ingest import files
from gpu_lpi.ingest.tardis import parse
from gpu_lpi.ingest.report import IngestContext, IngestReport
from gpu_lpi.reference_data import SymbolRegistry
files.LINE_BLOCK_BYTES = 1 << 20
def run(path):
    ctx = IngestContext(IngestReport("tardis"), SymbolRegistry())
    return sum(rows.num_rows for _, _, rows in parse([Path(path)], ctx))
run(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = run(sys.argv[2])
print(rows, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_parse_memory_does_not_grow_with_the_file(tmp_path):
    header = f"{TARDIS_COMMON},is_snapshot,side,price,amount\n"
    rows = "".join(f"binance-futures,BTCUSDT,{T0 + i * 100},{T0 + i * 100 + 7},false,{'bid' if i % 2 else 'ask'},"
                   f"{78549 + i % 50}.5,{i % 7}\n" for i in range(20_000))
    small = tmp_path / "binance-futures_incremental_book_L2_2024-08-05_BTCUSDT.csv.gz"
    small.write_bytes(gzip.compress((header + rows).encode(), compresslevel=1))
    big = tmp_path / "binance-futures_incremental_book_L2_2024-08-06_BTCUSDT.csv.gz"
    big.write_bytes(gzip.compress((header + rows * 60).encode(), compresslevel=1))   # ~95 MB of text
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(small), str(big)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    parsed, growth_mb = map(int, done.stdout.split())
    assert parsed == 1_200_000
    assert growth_mb < 60, f"peak RSS grew {growth_mb} MB parsing a 95 MB file in 1 MB blocks"
