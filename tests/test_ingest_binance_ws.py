"""binance-ws ingest: real captures, idempotence, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gpu_lpi.cli import main
from gpu_lpi.errors import InputError
from gpu_lpi.ingest import ingest
from gpu_lpi.ingest.value_rules import format_ns
from gpu_lpi.store import Spans, TickStore
from tests.conftest import REPO, store_files
from tests.reference import count_ws_messages

# -- real captures -----------------------------------------------------------------------------------


def test_one_row_per_message_of_each_type(real_store, real_captures):
    store, report = real_store
    expected: Counter = Counter()
    for path in real_captures:
        expected.update(count_ws_messages(path))
    stored = Counter()
    for table in ("trades", "book_ticker", "depth_diff"):
        for symbol in store.symbols_in(table):
            stored[table] += store.read(table, symbol, columns=["ts"]).num_rows
    assert stored["trades"] == expected["trade"]
    assert stored["book_ticker"] == expected["bookTicker"]
    assert stored["depth_diff"] == expected["depth_levels"]
    assert sum(report.rejections.values()) == 0
    snapshots = sum(int(store.read_arrays("depth_diff", s, columns=["is_snapshot", "seq_last"])["is_snapshot"].any())
                    for s in store.symbols_in("depth_diff"))
    assert snapshots == 3 and expected["snapshot"] == 5


def test_captures_cover_two_spans_per_usdm_symbol_and_no_false_gaps(real_store):
    _, report = real_store
    # 07-18 -> 07-19 is one capture split at midnight; 08-08 starts a new capture three weeks later,
    # with its own snapshot: a new covered span, not a sequence gap (the chain starts afresh).
    assert report.gaps == []
    minute = 60 * 10**9
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for table in ("trades", "book_ticker", "depth_diff"):
            rows = [c for c in report.coverage if c["symbol"] == symbol and c["table"] == table]
            spans = Spans.union([c["start_ns"] for c in rows], [c["end_ns"] for c in rows]).to_list()
            assert [(format_ns(a // minute * minute), format_ns((b - 1) // minute * minute)) for a, b in spans] == [
                ("2024-07-18T23:57:00", "2024-07-19T00:05:00"), ("2024-08-08T23:54:00", "2024-08-09T00:00:00")]
        assert {c["table"] for c in report.coverage if c["symbol"] == symbol} == {"trades", "book_ticker",
                                                                                  "depth_diff"}
    assert {Path(c["source"]).name for c in report.coverage if c["symbol"] == "BTCUSDT"} == {
        "btcusdt_20240718.gz", "btcusdt_20240719.gz", "btcusdt_20240808.gz"}


def test_exchange_time_and_local_time(real_store):
    store, _ = real_store
    trades = store.read_arrays("trades", "BTCUSDT")
    assert np.all(np.diff(trades["ts"]) >= 0)
    skew = (trades["local_ts"] - trades["ts"]) / 1e9
    assert -2.0 < np.median(skew) < -0.5       # the collector's clock is ~1.3 s behind exchange time
    assert trades["ts"][0] % 1_000_000 == 0     # ms exchange stamps stored as ns


def test_coinm_notional_is_usd_from_contracts(real_store):
    store, _ = real_store
    trades = store.read_arrays("trades", "BTCUSD_PERP")
    np.testing.assert_array_equal(trades["notional"], trades["qty"] * 100.0)
    info = store.symbol_info("BTCUSD_PERP")
    assert info["is_inverse"] and info["contract_size"] == 100.0
    usdm = store.read_arrays("trades", "BTCUSDT")
    np.testing.assert_allclose(usdm["notional"], usdm["price"] * usdm["qty"], rtol=1e-15)


def test_trade_fields_known_answer(real_store):
    store, _ = real_store
    # 1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,
    #  "T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}
    rows = store.read("trades", "BTCUSDT").to_pandas().set_index("trade_id")
    row = rows.loc[5266583935]
    assert row.ts == 1723161256322 * 1_000_000 and row.local_ts == 1723161255088176367
    assert row.price == 61800.30 and row.qty == 0.006 and not row.is_buyer_maker and row.kind == 0


def test_reingest_leaves_store_unchanged(real_captures, tmp_path):
    files = [p for p in real_captures if "ethusdt_2024071" in p.name]
    ingest(files, "binance-ws", tmp_path)
    before = store_files(tmp_path)
    report = ingest(files, "binance-ws", tmp_path)
    assert store_files(tmp_path) == before
    assert sum(report.rows_added.values()) == 0
    ingest(files[:1], "binance-ws", tmp_path)      # a subset of what is stored: still no change
    assert store_files(tmp_path) == before


# -- bad input ----------------------------------------------------------------------------------------

_SNAPSHOT = {"lastUpdateId": 100, "E": 1723161256501, "T": 1723161256493,
             "bids": [["61800.20", "2.909"], ["61800.10", "0.696"]],
             "asks": [["61800.30", "1.000"], ["61800.40", "0.500"]]}


def _diff(first, last, prev, t, bids=(), asks=()):
    return {"stream": "btcusdt@depth@0ms", "data": {
        "e": "depthUpdate", "E": t + 1, "T": t, "s": "BTCUSDT", "U": first, "u": last, "pu": prev,
        "b": [list(b) for b in bids], "a": [list(a) for a in asks]}}


def _trade(trade_id, t, price="61800.30", qty="0.006", maker=False):
    return {"stream": "btcusdt@trade", "data": {"e": "trade", "E": t, "T": t, "s": "BTCUSDT",
                                                 "t": trade_id, "p": price, "q": qty, "X": "MARKET",
                                                 "m": maker}}


def _capture(path: Path, messages, raw_lines=()) -> Path:
    lines = [f"{1723161255000000000 + i * 1000} {json.dumps(m, separators=(',', ':'))}"
             for i, m in enumerate(messages)]
    lines.extend(raw_lines)
    with gzip.open(path, "wt") as out:
        out.write("\n".join(lines) + "\n")
    return path


def _good_messages():
    return [_diff(90, 95, 89, 1723161256400, bids=[("61800.00", "1.0")]), _SNAPSHOT,
            _diff(96, 101, 95, 1723161256600, bids=[("61800.20", "3.0")]),
            _diff(102, 104, 101, 1723161256700, asks=[("61800.30", "0.000")]),
            _trade(1, 1723161256650), _trade(2, 1723161256660)]


def test_good_synthetic_capture(tmp_path):
    path = _capture(tmp_path / "btcusdt_20240808.gz", _good_messages())
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert report.rows[("depth_diff", "BTCUSDT")] == 1 + 4 + 1 + 1
    assert report.rows[("trades", "BTCUSDT")] == 2
    assert not report.rejections and not report.gaps
    assert list((tmp_path / "store" / "_reports").glob("ingest-*.json"))


def test_non_json_unknown_type_and_unsupported_stream_are_counted(tmp_path):
    messages = _good_messages()
    raw = ["1723161255999000000 {not json", "1723161255999000001 "
           '{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT"}}', "garbage line",
           '1723161255999000002 {"e":"kline","E":1,"s":"BTCUSDT"}']
    path = _capture(tmp_path / "btcusdt_20240808.gz", messages, raw)
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert report.rejections == {"not valid JSON": 1, "unsupported stream": 1, "malformed line": 1,
                                 "unknown message type": 1}
    assert report.examples["not valid JSON"][0].startswith(f"{path}:7:")
    assert report.examples["unsupported stream"] == [f"{path}:8: unsupported stream 'btcusdt@kline_1m'"]
    assert report.examples["malformed line"][0].startswith(f"{path}:9:")
    assert report.examples["unknown message type"] == [f"{path}:10: event type 'kline'"]
    assert report.rows[("trades", "BTCUSDT")] == 2


def test_strict_mode_makes_rejections_fatal(tmp_path):
    path = _capture(tmp_path / "btcusdt_20240808.gz", _good_messages(), ["1723161255999000000 {oops"])
    with pytest.raises(InputError, match=r"btcusdt_20240808.gz:7: not valid JSON"):
        ingest([path], "binance-ws", tmp_path / "store", strict=True)
    assert not (tmp_path / "store" / "trades").exists()


def test_sequence_gap_is_reported_and_invalidates_book(tmp_path):
    messages = _good_messages()
    messages[3] = _diff(103, 104, 102, 1723161256700, asks=[("61800.30", "0.000")])   # pu 102 != 101
    path = _capture(tmp_path / "btcusdt_20240808.gz", messages)
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert [(g["line"], g["expected_pu"], g["got_pu"]) for g in report.gaps] == [(4, 101, 102)]
    from gpu_lpi.book import group_messages, replay
    from kernels.book_replay import GAP

    store = TickStore(tmp_path / "store")
    msgs = group_messages(store.read_arrays("depth_diff", "BTCUSDT"), 0.1)
    samples = replay(msgs, np.arange(len(msgs.ts)))
    assert samples.status.tolist()[-1] == GAP and not samples.valid[-1] and samples.valid[-2]


def test_duplicate_and_out_of_order_messages(tmp_path):
    messages = _good_messages()
    messages.insert(3, messages[2])                     # the same diff twice
    messages.append(_diff(97, 99, 96, 1723161256800))   # u=99 after u=104: out of order
    messages.append(_trade(2, 1723161256660))           # the same trade twice
    messages.append(_trade(0, 1723161256640))           # an older trade arriving late: kept
    path = _capture(tmp_path / "btcusdt_20240808.gz", messages)
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert report.rejections == {"duplicate message": 2, "out-of-order depth update": 1}
    store = TickStore(tmp_path / "store")
    assert store.read_arrays("trades", "BTCUSDT")["trade_id"].tolist() == [0, 1, 2]
    assert any("out of id order" in note for note in report.notes)
    assert not report.gaps


def test_truncated_gzip_is_fatal_and_writes_nothing(tmp_path):
    good = _capture(tmp_path / "btcusdt_20240808.gz", _good_messages() * 1)
    data = good.read_bytes()
    bad = tmp_path / "btcusdt_20240809.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"btcusdt_20240809.gz:\d+: truncated or corrupt gzip"):
        ingest([good, bad], "binance-ws", tmp_path / "store")
    assert not any((tmp_path / "store").rglob("*.parquet"))


def test_empty_file_is_noted_and_all_empty_fails(tmp_path):
    empty = tmp_path / "btcusdt_20240807.gz"
    with gzip.open(empty, "wt"):
        pass
    good = _capture(tmp_path / "btcusdt_20240808.gz", _good_messages())
    report = ingest([empty, good], "binance-ws", tmp_path / "store")
    assert any("empty file" in note for note in report.notes)
    with pytest.raises(InputError, match="no rows ingested"):
        ingest([empty], "binance-ws", tmp_path / "store2")


def test_unknown_symbol_is_fatal(tmp_path):
    trade = _trade(1, 1723161256650)
    trade["stream"], trade["data"]["s"] = "foousdt@trade", "FOOUSDT"
    path = _capture(tmp_path / "foousdt_20240808.gz", [trade])
    with pytest.raises(InputError, match=r"foousdt_20240808.gz:1: symbol 'FOOUSDT' has no reference data.*--symbols-file"):
        ingest([path], "binance-ws", tmp_path / "store")
    extra = tmp_path / "symbols.csv"
    extra.write_text("symbol,tick_size,lot_size,contract_size,is_inverse\nFOOUSDT,0.01,1,1,false\n")
    report = ingest([path], "binance-ws", tmp_path / "store", symbols_files=[extra])
    assert report.rows[("trades", "FOOUSDT")] == 1
    assert TickStore(tmp_path / "store").symbol_info("FOOUSDT")["tick_size"] == 0.01


def test_cli_wrong_format_is_one_line_error(tmp_path):
    csv = tmp_path / "BTCUSDT-trades-2024-05-31.csv"
    csv.write_text("id,price,qty,quote_qty,time,is_buyer_maker\n5053880937,68402.6,0.024,1641.6624,1717113600031,false\n")
    result = CliRunner().invoke(main, ["ingest", "--format", "binance-ws", str(csv), "--store",
                                       str(tmp_path / "store")])
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.count("\n") == 0 and message.startswith("error: ")
    assert f"{csv}:1: not a binance-ws capture" in message and "--format binance-archive" in message
    result = CliRunner().invoke(main, ["ingest", "--format", "parquet", str(csv), "--store", "x"])
    assert result.exit_code == 2 and "'parquet' is not one of" in result.output


def test_cli_ingest_prints_summary(tmp_path):
    path = _capture(tmp_path / "btcusdt_20240808.gz", _good_messages())
    result = CliRunner().invoke(main, ["ingest", "--format", "binance-ws", str(path), "--store",
                                       str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert "trades" in result.output and "rejected: 0" in result.output and "depth sequence gaps: 0" in result.output


# -- streams, payloads, spans ---------------------------------------------------------------------------

def _partial(stream: str, update_id: int, t: int, bids, asks):
    return {"stream": stream, "data": {"e": "depthUpdate", "E": t + 2, "T": t, "s": "BTCUSDT", "U": update_id - 3,
                                       "u": update_id, "pu": update_id - 4, "b": [list(b) for b in bids],
                                       "a": [list(a) for a in asks]}}


def test_partial_book_streams_are_top_n_snapshots_never_diffs(tmp_path):
    t = 1723161256400
    messages = [_partial("btcusdt@depth20@100ms", 500, t, [("61800.2", "2.9"), ("61800.1", "0.7")],
                         [("61800.3", "1.0")]),
                _partial("btcusdt@depth5", 510, t + 100, [("61800.2", "3.1")], [("61800.3", "1.2"), ("61800.4", "0.5")]),
                _partial("btcusdt@depth10@500ms", 520, t + 600, [], []),
                _diff(96, 101, 95, t + 700, bids=[("61800.20", "3.0")])]
    path = _capture(tmp_path / "btcusdt_20240808.gz", messages)
    report = ingest([path], "binance-ws", tmp_path / "store")
    store = TickStore(tmp_path / "store")
    levels = store.read("book_levels", "BTCUSDT").to_pylist()
    ms = 1_000_000
    assert [(r["ts"] // ms - t, r["level"], r["bid"], r["bid_qty"], r["ask"], r["ask_qty"]) for r in levels] == [
        (0, 0, 61800.2, 2.9, 61800.3, 1.0), (0, 1, 61800.1, 0.7, None, None),
        (100, 0, 61800.2, 3.1, 61800.3, 1.2), (100, 1, None, None, 61800.4, 0.5)]
    assert levels[0]["local_ts"] == 1723161255000000000
    assert store.read_arrays("depth_diff", "BTCUSDT")["seq_last"].tolist() == [101]
    assert report.rejections == {"partial book without levels": 1}
    assert report.examples["partial book without levels"] == [f"{path}:3: no bid and no ask"]


@pytest.mark.parametrize("stream", ["btcusdt@kline_1m", "btcusdt@ticker", "btcusdt@miniTicker", "btcusdt@depth7",
                                    "btcusdt@depth@1000ms", "btcusdt", "!ticker@arr"])
def test_streams_the_reader_does_not_read_are_rejected_by_name(tmp_path, stream):
    payload = {"e": "24hrTicker", "E": 1723161256400, "s": "BTCUSDT", "t": 5, "p": "1.0", "q": "2.0", "T": 1723161256400,
               "m": True, "c": "61800.0"}
    path = _capture(tmp_path / "btcusdt_20240808.gz", [_trade(1, 1723161256650), {"stream": stream, "data": payload}])
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert report.rejections == {"unsupported stream": 1}
    assert report.examples["unsupported stream"] == [f"{path}:2: unsupported stream {stream!r}"]
    assert report.rows == {("trades", "BTCUSDT"): 1}


def test_local_stamp_unit_is_that_of_the_files_first_stamp(tmp_path):
    # was: each stamp's unit guessed by its digit count, so a file mixing units was stored silently
    stamps = ["172316125508817", "1723161255088", "1723161255088176367", "1723161255088176", "1723161255",
              "1723161255089"]
    lines = [f"{stamp} {json.dumps(_trade(i + 1, 1723161256650), separators=(',', ':'))}"
             for i, stamp in enumerate(stamps)]
    path = tmp_path / "btcusdt_20240808.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    report = ingest([path], "binance-ws", tmp_path / "store")
    local = TickStore(tmp_path / "store").read_arrays("trades", "BTCUSDT")["local_ts"].tolist()
    assert local == [1723161255088000000, 1723161255089000000]   # ms: the first stamp of a known unit
    assert report.examples["local timestamp is not 10, 13, 16 or 19 digits (s, ms, µs, ns)"] == [
        f"{path}:1: local timestamp 172316125508817"]
    assert report.examples["local timestamp in another unit than the rest of the file"] == [
        f"{path}:3: local timestamp 1723161255088176367 (the file's unit is ms)",
        f"{path}:4: local timestamp 1723161255088176 (the file's unit is ms)",
        f"{path}:5: local timestamp 1723161255 (the file's unit is ms)"]
    other = tmp_path / "btcusdt_20240809.gz"      # each file has its own unit
    other.write_bytes(gzip.compress(f"{lines[2].replace('1723161256650', '1723161256651')}\n".encode()))
    assert ingest([other], "binance-ws", tmp_path / "store2").rejections == {}


@pytest.mark.parametrize("unit", ["s", "us"])
def test_exchange_times_in_another_unit_than_the_files_first_are_rejected(tmp_path, unit):
    t = 1723161256650
    odd = t // 1000 if unit == "s" else t * 1000
    messages = [_trade(1, t), _trade(2, odd), _trade(3, t + 1),
                {"stream": "btcusdt@bookTicker", "data": {"e": "bookTicker", "u": 7, "E": odd, "T": odd, "s": "BTCUSDT",
                                                          "b": "61800.2", "B": "1", "a": "61800.3", "A": "2"}}]
    path = _capture(tmp_path / "btcusdt_20240808.gz", messages)
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert report.rejections == {"exchange time in another unit than the rest of the file": 2}
    assert report.examples["exchange time in another unit than the rest of the file"][0] == (
        f"{path}:2: trade T/E {odd} (the file's unit is ms)")
    assert TickStore(tmp_path / "store").read_arrays("trades", "BTCUSDT")["trade_id"].tolist() == [1, 3]


def test_a_silence_begins_a_new_span_and_resets_the_chain_a_pu_break_inside_is_a_gap(tmp_path):
    t = 1723161256400
    first = [_SNAPSHOT, _diff(96, 101, 95, t, bids=[("61800.20", "3.0")]), _trade(1, t + 10),
             _diff(102, 104, 101, t + 20_000)]
    after_silence = [dict(_SNAPSHOT, lastUpdateId=9000), _diff(9001, 9005, 9000, t + 320_000), _trade(2, t + 321_000),
                     _diff(9006, 9007, 9005, t + 330_000), _diff(9010, 9012, 9009, t + 340_000)]   # pu 9009 != 9007
    path = _capture(tmp_path / "btcusdt_20240808.gz", first + after_silence)
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert [(g["line"], g["expected_pu"], g["got_pu"]) for g in report.gaps] == [(9, 9007, 9009)]
    for table in ("trades", "depth_diff"):
        rows = [c for c in report.coverage if c["table"] == table]
        ms = 1_000_000
        assert Spans.union([c["start_ns"] for c in rows], [c["end_ns"] for c in rows]).to_list() == [
            (t * ms, (t + 20_000) * ms + 1), ((t + 320_000) * ms, (t + 340_000) * ms + 1)]
    assert "BTCUSDT        2 span(s)" in report.summary()


_FUZZ_SCRIPT = """
import sys
from gpu_lpi.ingest import ingest
report = ingest([sys.argv[1]], "binance-ws", sys.argv[2])
print(sum(report.rejections.values()), report.rows[("trades", "BTCUSDT")], report.rows[("depth_diff", "BTCUSDT")])
"""

_ODD_PAYLOADS = [
    '{"stream":"btcusdt@trade","data":null}', '{"stream":"btcusdt@trade","data":[]}',
    '{"stream":"btcusdt@trade","data":[null]}', '{"stream":"btcusdt@trade","data":[{"e":"trade"}]}',
    '{"stream":"btcusdt@trade","data":1}', '{"stream":"btcusdt@trade","data":"x"}', '{"stream":"btcusdt@trade","data":true}',
    '{"stream":"btcusdt@trade","data":{}}', '{"stream":"btcusdt@trade","data":{"e":"trade","s":null,"t":null}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1723161256650,"s":"BTCUSDT","t":"x","p":"1","q":"1","m":true}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade","T":1723161256650,"s":"BTCUSDT","t":1e400,"p":"1","q":"1","m":true}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade","T":1723161256650,"s":"BTCUSDT","t":99999999999999999999,"p":"1",'
    '"q":"1","m":true}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade","T":1723161256650,"s":"BTCUSDT","t":7,"p":1.5,"q":"1","m":true}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade","T":"1723161256650","s":"BTCUSDT","t":8,"p":"1","q":"1","m":"no"}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade","T":1723161256650,"s":{"a":[[[]]]},"t":9,"p":"1","q":"1","m":true}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade","T":1723161256650,"s":"BTCUSDT","t":10,"p":"' + "9" * 5000
    + '","q":"1","m":true}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade","T":1723161256650,"s":"BTCUSDT","t":11,"p":NaN,"q":"1","m":true}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade","T":1723161256650,"s":"BTCUSDT","t":12,"p":"-1","q":"1","m":true,'
    '"X":"\\u041c\\u0410\\u0420"}}',
    '{"stream":"btcusdt@trade","data":{"e":"trade"}} {"e":"trade"}',
    '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","T":1723161256650,"s":"BTCUSDT","U":1,"u":2,"pu":0,'
    '"b":null,"a":[]}}',
    '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","T":1723161256650,"s":"BTCUSDT","U":1,"u":2,"pu":0,'
    '"b":[null],"a":[]}}',
    '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","T":1723161256650,"s":"BTCUSDT","U":1,"u":2,"pu":0,'
    '"b":[[null,null]],"a":[]}}',
    '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","T":1723161256650,"s":"BTCUSDT","U":1,"u":2,"pu":0,'
    '"b":"x","a":[]}}',
    '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","T":1723161256650,"s":"BTCUSDT","U":1,"u":2,"pu":0,'
    '"b":[["1"]],"a":[["1","2","3"]]}}',
    '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","T":1723161256650,"s":"BTCUSDT","U":1,"u":2,"pu":0,'
    '"b":[[1,2]],"a":[]}}',
    '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","T":1723161256650,"s":"BTCUSDT","U":{},"u":2,"pu":0,'
    '"b":[],"a":[]}}',
    '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","T":1723161256650,"s":"BTCUSDT","U":1,"u":2,"pu":0,'
    '"b":[["abc","1"]],"a":[]}}',
    '{"stream":"!markPrice@arr","data":null}', '{"stream":"!markPrice@arr","data":[null,7]}',
    '{"stream":"!markPrice@arr","data":[]}', '{"stream":null,"data":{}}', '{"stream":7,"data":{}}',
    '{"stream":"btcusdt@trade"}', '{"data":{}}', "null", "[]", "[null]", "123", '"str"', "true", "{}",
    '{"lastUpdateId":null,"bids":null,"asks":null}', '{"lastUpdateId":5,"bids":[[null]],"asks":"x"}',
    '{"symbol":"BTCUSDT","openInterest":null,"time":1}', "[" * 3000 + "]" * 3000, '{"stream":"btcusdt@trade",',
]


def test_odd_payloads_are_rejected_never_a_crash(tmp_path):
    good = [json.dumps(_trade(100 + i, 1723161256650 + i), separators=(",", ":")) for i in range(3)]
    good.append(json.dumps(_diff(96, 101, 95, 1723161256700, bids=[("61800.20", "3.0")]), separators=(",", ":")))
    lines = [f"{1723161255000000000 + i} {payload}" for i, payload in enumerate(good[:2] + _ODD_PAYLOADS + good[2:])]
    path = tmp_path / "btcusdt_20240808.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    done = subprocess.run([sys.executable, "-c", _FUZZ_SCRIPT, str(path), str(tmp_path / "store")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    rejected, trades, depth_rows = map(int, done.stdout.split())
    assert (trades, depth_rows) == (3, 1)
    assert rejected >= len(_ODD_PAYLOADS)


# -- red-team findings ------------------------------------------------------------------------------------

def test_negative_ids_are_rejected_and_minus_one_never_collides_with_no_id(tmp_path):
    # was: t=-1 stored, and -1 is the store's "no id": re-ingesting t=-1 with another price added a row
    t = 1723161256650
    first = _capture(tmp_path / "a.gz", [_trade(-1, t, price="100.0"), _trade(5, t + 1)])
    second = _capture(tmp_path / "b.gz", [_trade(-1, t, price="200.0"), _trade(5, t + 1)])
    report = ingest([first], "binance-ws", tmp_path / "store")
    assert report.examples == {"negative id": [f"{first}:1: trade field 't' = -1"]}
    ingest([second], "binance-ws", tmp_path / "store")
    assert TickStore(tmp_path / "store").read_arrays("trades", "BTCUSDT")["trade_id"].tolist() == [5]
    agg = {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "E": t, "T": t, "s": "BTCUSDT", "a": 7, "p": "1.5",
                                                  "q": "2", "f": -3, "l": 9, "m": True}}
    ticker = {"stream": "btcusdt@bookTicker", "data": {"e": "bookTicker", "u": -4, "E": t, "T": t, "s": "BTCUSDT",
                                                       "b": "61800.2", "B": "1", "a": "61800.3", "A": "2"}}
    path = _capture(tmp_path / "c.gz", [agg, ticker, dict(_SNAPSHOT, lastUpdateId=-2),
                                        _diff(-1, 101, 95, t), _diff(96, 101, -2, t), _trade(6, t)])
    report = ingest([path], "binance-ws", tmp_path / "store2")
    assert report.rejections == {"negative id": 5}
    assert report.examples["negative id"] == [
        f"{path}:1: aggTrade field 'f' = -3", f"{path}:2: bookTicker field 'u' = -4",
        f"{path}:4: depthUpdate field 'U' = -1", f"{path}:5: depthUpdate field 'pu' = -2",
        f"{path}:3: snapshot field 'lastUpdateId' = -2"]


def test_a_previous_update_id_of_minus_one_is_no_previous_update(tmp_path):
    # Binance sends "pu":-1 where there is no previous update (seen on a COIN-M partial-book stream)
    diff = _diff(96, 101, -1, 1723161256600, bids=[("61800.2", "3")])
    path = _capture(tmp_path / "btcusdt_20240808.gz", [_SNAPSHOT, diff])
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert not report.rejections
    assert TickStore(tmp_path / "store").read_arrays("depth_diff", "BTCUSDT")["seq_prev"].tolist()[-1] == -1


def test_a_depth_update_whose_first_id_is_after_its_last_is_rejected(tmp_path):
    messages = _good_messages()
    messages[3] = _diff(130, 104, 101, 1723161256700, asks=[("61800.30", "0.000")])
    path = _capture(tmp_path / "btcusdt_20240808.gz", messages)
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert report.examples == {"first update id after last": [f"{path}:4: BTCUSDT U=130 > u=104"]}
    assert 104 not in TickStore(tmp_path / "store").read_arrays("depth_diff", "BTCUSDT")["seq_last"].tolist()


def test_a_snapshot_with_a_zero_quantity_level_is_rejected(tmp_path):
    snapshot = dict(_SNAPSHOT, bids=[["61800.20", "0.000"], ["61800.10", "0.696"]])
    diff = _diff(96, 101, 95, 1723161256600, bids=[("61800.2", "0")])
    path = _capture(tmp_path / "btcusdt_20240808.gz", [snapshot, diff])
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert report.examples == {"depth_diff snapshot qty is not a finite number > 0": [f"{path}:1: qty=0.0"]}
    depth = TickStore(tmp_path / "store").read_arrays("depth_diff", "BTCUSDT")
    assert depth["is_snapshot"].tolist() == [False] and depth["qty"].tolist() == [0.0]   # a diff may delete


def test_a_payload_of_another_symbol_than_its_stream_is_rejected(tmp_path):
    odd = _trade(2, 1723161256651)
    odd["data"]["s"] = "ETHUSDT"
    coin_m = {"stream": "btcusd_perp@trade", "data": dict(_trade(3, 1723161256652)["data"], s="BTCUSD_PERP")}
    raw = ['1723161255999000000 {"stream":"ethusdt@trade","data":' + json.dumps(_trade(4, 1723161256653)["data"]) + "}"]
    path = _capture(tmp_path / "btcusdt_20240808.gz", [_trade(1, 1723161256650), odd, coin_m], raw)
    report = ingest([path], "binance-ws", tmp_path / "store")
    assert report.examples == {"stream and symbol disagree": [
        f"{path}:2: stream symbol 'BTCUSDT', message symbol 'ETHUSDT'",
        f"{path}:4: stream symbol 'ETHUSDT', message symbol 'BTCUSDT'"]}
    assert report.rows == {("trades", "BTCUSDT"): 1, ("trades", "BTCUSD_PERP"): 1}


def test_files_are_read_in_capture_order_not_name_order(real_captures, tmp_path):
    # was: files in name order, so a capture's first half named to sort second was out of order
    halves = [p for p in real_captures if p.name in ("btcusdt_20240718.gz", "btcusdt_20240719.gz")]
    (tmp_path / "b_part9.gz").symlink_to(halves[0])
    (tmp_path / "a_part10.gz").symlink_to(halves[1])
    report = ingest([tmp_path], "binance-ws", tmp_path / "store")
    expected = ingest(halves, "binance-ws", tmp_path / "expected")
    assert report.rejections == expected.rejections == {} and report.gaps == []
    assert report.rows == expected.rows
    data = {name: content for name, content in store_files(tmp_path / "store").items() if "coverage" not in name}
    assert data == {name: content for name, content in store_files(tmp_path / "expected").items()
                    if "coverage" not in name}
    spans = sorted((c["table"], c["start_ns"], c["end_ns"]) for c in report.coverage)       # sources named apart
    assert spans == sorted((c["table"], c["start_ns"], c["end_ns"]) for c in expected.coverage)


def test_capture_order_ties_by_name_and_unreadable_first(tmp_path):
    from gpu_lpi.ingest.binance_ws import capture_order

    same = [_capture(tmp_path / name, [_trade(1, 1723161256650)]) for name in ("b.gz", "a.gz")]
    later = tmp_path / "0.txt"
    later.write_text(f"1723161256 {json.dumps(_trade(2, 1723161256650))}\n")           # seconds: after the ns stamps
    empty = tmp_path / "z.gz"
    empty.write_bytes(gzip.compress(b"\n\n"))
    assert [p.name for p in capture_order([later, *same, empty])] == ["z.gz", "a.gz", "b.gz", "0.txt"]


def test_all_lines_rejected_says_why_in_one_line(tmp_path):
    # was: "no rows ingested (is --format binance-ws right?)", hiding the 1,000 rejections
    path = _capture(tmp_path / "btcusdt_20240808.gz", [_trade(i + 1, 1723161256322 + i, price="-1") for i in range(1000)])
    result = CliRunner().invoke(main, ["ingest", "--format", "binance-ws", str(path), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.output == (f"error: {path}: no rows ingested: 1,000 rejected lines, most for 'trades price is not "
                             f"a finite number > 0' (e.g. {path}:1)\n")
    assert not (tmp_path / "s" / "trades").exists()


def test_tables_selection_stores_only_those_and_reports_the_rest(real_captures, tmp_path):
    """``--tables trades``: a trades-only store; the other tables' rows are counted as not selected,
    their spans not recorded; an unknown table is a one-line error before anything changes."""
    from gpu_lpi.errors import ConfigError
    from gpu_lpi.ingest import ingest
    from gpu_lpi.store import TickStore

    report = ingest(real_captures[:2], "binance-ws", tmp_path / "store", tables=["trades"])
    store = TickStore(tmp_path / "store")
    assert store.tables() == ["trades"] and sum(report.rows.values()) > 0
    assert {table for table, _ in report.not_selected} >= {"depth_diff", "book_ticker"}
    assert {span["table"] for span in report.coverage} == {"trades"}
    assert "not stored: table not selected" in report.summary()
    with pytest.raises(ConfigError, match="--tables: unknown table"):
        ingest(real_captures[:1], "binance-ws", tmp_path / "other", tables=["trade"])
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())
