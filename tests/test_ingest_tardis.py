"""Ingest of Tardis.dev CSV datasets (``--format tardis``).

Fixtures are the verbatim example rows of FORMATS.md section C plus constructed binance-futures rows.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from gpu_lpi.errors import InputError
from gpu_lpi.ingest import ingest
from gpu_lpi.ingest.tardis import book_snapshot_layout, open_interest_changes
from gpu_lpi.schema import LIQ_BUY, LIQ_SELL, NO_ID, SIDE_ASK, SIDE_BID, TRADE_KIND_MARKET
from gpu_lpi.store import TickStore
from tests.conftest import store_files

TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
L2_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
QUOTES_HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
TICKER_HEADER = ("exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,predicted_funding_rate,"
                 "open_interest,last_price,index_price,mark_price")
SNAPSHOT_5_HEADER = ",".join(f.name for f in book_snapshot_layout(5))
SNAPSHOT_5_ROWS = [  # verbatim, nautilus_trader binance-futures_book_snapshot_5_BTCUSDT.csv
    "binance-futures,BTCUSDT,1598918403696000,1598918403810979,11657.08,1.714,11657.07,10.896,11657.54,5.4,"
    "11656.97,0.2,11657.56,0.238,11655.78,0.2,11657.61,0.077,11655.77,0.98,11657.92,0.918,11655.68,0.111",
    "binance-futures,BTCUSDT,1598918403888000,1598918403894256,11657.08,1.476,11657.07,10.896,11657.54,5.4,"
    "11656.97,0.2,11657.56,0.238,11655.78,0.2,11657.61,0.077,11655.77,0.98,11657.92,0.918,11655.68,0.111"]

US = 1_000


def write_gz(folder: Path, name: str, lines: list[str]) -> Path:
    """Write ``lines`` gzip-compressed as ``folder/name`` (creating folders)."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode() if lines else b""))
    return path


def ingest_tardis(tmp_path: Path, files: list[Path], **kwargs):
    store = tmp_path / "store"
    return ingest(files, "tardis", store, **kwargs), TickStore(store)


def test_trades(tmp_path):
    path = write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz", [
        TRADES_HEADER,
        "binance-futures,BTCUSDT,1722816000123000,1722816000130500,5053880937,sell,54000.5,0.01",
        "binance-futures,BTCUSDT,1722816000124000,1722816000131000,,buy,54001,0.5"])
    report, store = ingest_tardis(tmp_path, [path])
    rows = store.read("trades", "BTCUSDT").to_pylist()
    assert rows[0] == {"ts": 1722816000123000 * US, "price": 54000.5, "qty": 0.01, "is_buyer_maker": True,
                       "notional": pytest.approx(540.005), "kind": TRADE_KIND_MARKET, "trade_id": 5053880937,
                       "local_ts": 1722816000130500 * US}
    assert (rows[1]["is_buyer_maker"], rows[1]["trade_id"]) == (False, NO_ID)
    assert report.rejections == {}


def test_trades_with_ns_timestamps_and_uuid_ids(tmp_path):
    path = write_gz(tmp_path, "bitmex_trades_2020-03-01_XBTUSD.csv.gz", [
        TRADES_HEADER,
        "bitmex,XBTUSD,1583020803145000000,1583020803307160000,ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf,sell,8531.5,2152",
        "bitmex,XBTUSD,1583020803145000000,1583020803307160000,,unknown,8531.5,1"])
    symbols = tmp_path / "symbols.csv"
    symbols.write_text("symbol,tick_size,lot_size,contract_size,is_inverse\nXBTUSD,0.5,1,1,true\n")
    report, store = ingest_tardis(tmp_path, [path], symbols_files=[symbols])
    assert store.read("trades", "XBTUSD").to_pylist() == [
        {"ts": 1583020803145000000, "price": 8531.5, "qty": 2152.0, "is_buyer_maker": True, "notional": 2152.0,
         "kind": TRADE_KIND_MARKET, "trade_id": NO_ID, "local_ts": 1583020803307160000}]
    assert report.rejections == {"trade side is not buy or sell": 1}
    assert report.examples["trade side is not buy or sell"] == [
        f"{path}:3: trade side is not buy or sell: side='unknown'"]
    assert any("1 trade ids are not integers" in note for note in report.notes)


def test_incremental_book_l2(tmp_path):
    path = write_gz(tmp_path, "binance-futures_incremental_book_L2_2026-09-01_BTCUSDT.csv.gz", [
        L2_HEADER,
        "binance-futures,BTCUSDT,1788220800400000,1788220800900000,false,bid,78549.5,1.5",
        "binance-futures,BTCUSDT,1788220800464000,1788220800991078,true,ask,78549.6,5.687",
        "binance-futures,BTCUSDT,1788220800464000,1788220800991078,true,bid,78549.5,2",
        "binance-futures,BTCUSDT,1788220800600000,1788220801000000,false,bid,78549.5,0"])
    report, store = ingest_tardis(tmp_path, [path])
    rows = store.read("depth_diff", "BTCUSDT").to_pylist()
    assert rows[1] == {"ts": 1788220800464000 * US, "seq_first": NO_ID, "seq_last": NO_ID, "seq_prev": NO_ID,
                       "side": SIDE_ASK, "price": 78549.6, "qty": 5.687, "is_snapshot": True,
                       "local_ts": 1788220800991078 * US}
    assert [(r["side"], r["qty"], r["is_snapshot"]) for r in rows] == [
        (SIDE_BID, 1.5, False), (SIDE_ASK, 5.687, True), (SIDE_BID, 2.0, True), (SIDE_BID, 0.0, False)]
    assert any("1 BTCUSDT book updates precede the first snapshot" in note for note in report.notes)


def test_book_snapshot_5_one_row_per_level(tmp_path):
    thin = ",".join(["binance-futures", "BTCUSDT", "1598918404000000", "1598918404100000", "11657.08", "1.5"]
                    + [""] * 18)  # one ask level only
    path = write_gz(tmp_path, "binance-futures_book_snapshot_5_2020-09-01_BTCUSDT.csv.gz",
                    [SNAPSHOT_5_HEADER] + SNAPSHOT_5_ROWS + [thin])
    report, store = ingest_tardis(tmp_path, [path])
    assert report.rejections == {}
    rows = store.read("book_levels", "BTCUSDT").to_pylist()
    assert len(rows) == 15
    assert rows[0] == {"ts": 1598918403696000 * US, "level": 0, "bid": 11657.07, "bid_qty": 10.896,
                       "ask": 11657.08, "ask_qty": 1.714, "local_ts": 1598918403810979 * US}
    assert rows[4] == {"ts": 1598918403696000 * US, "level": 4, "bid": 11655.68, "bid_qty": 0.111,
                       "ask": 11657.92, "ask_qty": 0.918, "local_ts": 1598918403810979 * US}
    assert rows[5]["ask_qty"] == 1.476
    assert rows[10] == {"ts": 1598918404000000 * US, "level": 0, "bid": None, "bid_qty": None,
                        "ask": 11657.08, "ask_qty": 1.5, "local_ts": 1598918404100000 * US}
    assert rows[14]["ask"] is None


def test_quotes_column_order(tmp_path):
    path = write_gz(tmp_path, "binance-futures_quotes_2023-11-14_BTCUSDT.csv.gz", [
        QUOTES_HEADER, "binance-futures,BTCUSDT,1700000000000000,1700000000000010,100.1,10,99.9,10.5",
        "binance-futures,BTCUSDT,1700000000001000,1700000000001010,,,99.9,10.5"])
    _, store = ingest_tardis(tmp_path, [path])
    assert store.read("book_ticker", "BTCUSDT").to_pylist() == [
        {"ts": 1700000000000000 * US, "bid": 99.9, "bid_qty": 10.5, "ask": 10.0, "ask_qty": 100.1,
         "update_id": NO_ID, "local_ts": 1700000000000010 * US},
        {"ts": 1700000000001000 * US, "bid": 99.9, "bid_qty": 10.5, "ask": None, "ask_qty": None,
         "update_id": NO_ID, "local_ts": 1700000000001010 * US}]


def test_derivative_ticker_funding_every_row_open_interest_on_change(tmp_path):
    path = write_gz(tmp_path, "binance-futures_derivative_ticker_2020-02-01_BTCUSDT.csv.gz", [
        TICKER_HEADER,
        "binance-futures,BTCUSDT,1580515202348000,1580515202497335,,,,,9364.51,,",
        "binance-futures,BTCUSDT,1580515203000000,1580515203100000,1580544000000000,0.0001,,1500.5,9364.5,9360,9361",
        "binance-futures,BTCUSDT,1580515204000000,1580515204100000,1580544000000000,0.0001,,1500.5,9364.5,9360,9362",
        "binance-futures,BTCUSDT,1580515205000000,1580515205100000,1580544000000000,0.0002,,1400,9364.5,9360,9363"])
    _, store = ingest_tardis(tmp_path, [path])
    funding = store.read("funding", "BTCUSDT").to_pylist()
    assert [(r["rate"], r["mark_price"]) for r in funding] == [(None, None), (0.0001, 9361.0), (0.0001, 9362.0),
                                                                (0.0002, 9363.0)]
    assert funding[0]["local_ts"] == 1580515202497335 * US
    assert store.read("open_interest", "BTCUSDT").to_pylist() == [
        {"ts": 1580515203000000 * US, "oi": 1500.5, "oi_value": pytest.approx(1500.5 * 9361),
         "local_ts": 1580515203100000 * US},
        {"ts": 1580515205000000 * US, "oi": 1400.0, "oi_value": pytest.approx(1400 * 9363),
         "local_ts": 1580515205100000 * US}]


def test_open_interest_changes():
    nan = np.nan
    oi = np.array([nan, 5, 5, nan, 5, 6, 6, 5])
    keep = open_interest_changes(oi, ~np.isnan(oi))
    assert keep.tolist() == [False, True, False, False, False, True, False, True]
    # continuing a block whose last present value was 5: the first 5 is no change
    assert open_interest_changes(oi, ~np.isnan(oi), 5.0).tolist() == [False] * 5 + [True, False, True]


def test_liquidations_mixed_symbols_split_per_symbol(tmp_path):
    path = write_gz(tmp_path, "binance-futures_liquidations_2021-09-01_PERPETUALS.csv.gz", [
        TRADES_HEADER,
        "binance-futures,BTCUSDT,1632009737493000,1632009737505152,,sell,100,2",
        "binance-futures,ETHUSDT,1632009737600000,1632009737700000,,buy,3000,1.5"])
    report, store = ingest_tardis(tmp_path, [path])
    assert store.read("liquidations", "BTCUSDT").to_pylist() == [
        {"ts": 1632009737493000 * US, "side": LIQ_SELL, "price": 100.0, "qty": 2.0, "notional": 200.0,
         "avg_price": None, "local_ts": 1632009737505152 * US}]
    eth = store.read("liquidations", "ETHUSDT").to_pylist()[0]
    assert (eth["side"], eth["notional"]) == (LIQ_BUY, 4500.0)
    assert set(report.rows) == {("liquidations", "BTCUSDT"), ("liquidations", "ETHUSDT")}


def test_data_type_from_the_header_or_the_folder(tmp_path):
    quotes = write_gz(tmp_path, "quotes.csv.gz",
                      [QUOTES_HEADER, "binance-futures,BTCUSDT,1700000000000000,1700000000000010,1,101,100,2"])
    liquidation = write_gz(tmp_path, "binance-futures/liquidations/2021/09/01/PERPETUALS.csv.gz", [
        TRADES_HEADER, "binance-futures,BTCUSDT,1632009737493000,1632009737505152,,sell,100,2"])
    report, store = ingest_tardis(tmp_path, [quotes, liquidation])
    assert store.read("book_ticker", "BTCUSDT").num_rows == 1
    assert store.read("liquidations", "BTCUSDT").num_rows == 1
    ambiguous = write_gz(tmp_path / "elsewhere", "BTCUSDT.csv.gz", [
        TRADES_HEADER, "binance-futures,BTCUSDT,1632009737493000,1632009737505152,,sell,100,2"])
    with pytest.raises(InputError, match="fits several data types.*liquidations.*file name"):
        ingest_tardis(tmp_path, [ambiguous])


def test_reingest_is_idempotent(tmp_path):
    files = [write_gz(tmp_path, "binance-futures_book_snapshot_5_2020-09-01_BTCUSDT.csv.gz",
                      [SNAPSHOT_5_HEADER] + SNAPSHOT_5_ROWS),
             write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz",
                      [TRADES_HEADER, "binance-futures,BTCUSDT,1722816000124000,1722816000131000,,buy,54001,0.5"])]
    _, store = ingest_tardis(tmp_path, files)
    first = store_files(store.root)
    report, _ = ingest_tardis(tmp_path, files)
    assert store_files(store.root) == first
    assert sum(report.rows_added.values()) == 0
    assert store.read("book_levels", "BTCUSDT").num_rows == 10


def test_empty_gzip_is_a_note_but_only_empty_files_fail(tmp_path):
    empty = write_gz(tmp_path, "binance-futures_liquidations_2024-08-05_BTCUSDT.csv.gz", [])
    trades = write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz",
                      [TRADES_HEADER, "binance-futures,BTCUSDT,1722816000124000,1722816000131000,,buy,54001,0.5"])
    report, _ = ingest_tardis(tmp_path, [empty, trades])
    assert f"{empty}: empty file" in report.notes
    assert not [c for c in report.coverage if c["table"] == "liquidations"]
    # was: "no rows ingested (is --format tardis right?)", which hid that the inputs were empty
    with pytest.raises(InputError, match=r"\.csv\.gz: no rows ingested: the input file is empty$"):
        ingest_tardis(tmp_path / "other", [empty])
    header_only = write_gz(tmp_path, "binance-futures_trades_2024-08-06_BTCUSDT.csv.gz", [TRADES_HEADER])
    with pytest.raises(InputError, match=r"no rows ingested: 2 of the 2 input files hold no rows "
                                         r"\(1 a header only, 1 empty\)$"):
        ingest_tardis(tmp_path / "other", [empty, header_only])


def test_renamed_column_is_fatal_naming_file_line_and_expected_header(tmp_path):
    path = write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz", [
        TRADES_HEADER.replace("amount", "size"), "binance-futures,BTCUSDT,1722816000124000,1722816000131000,,buy,1,1"])
    with pytest.raises(InputError) as err:
        ingest_tardis(tmp_path, [path])
    assert str(err.value) == f"{path}:1: missing column 'amount'; expected header {TRADES_HEADER}"


@pytest.mark.parametrize("first_line, suggested", [
    ('1722816000123456 {"stream":"btcusdt@trade","data":{"e":"trade"}}', "binance-ws"),
    ("5053880937,68402.6,0.024,1641.6624,1717113600031,false", "binance-archive"),
    ("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker", "binance-archive")])
def test_other_format_is_fatal_and_suggests_the_right_one(tmp_path, first_line, suggested):
    path = write_gz(tmp_path, "capture.csv.gz", [first_line])
    with pytest.raises(InputError, match=rf"capture.csv.gz:1: this looks like .*use --format {suggested}"):
        ingest_tardis(tmp_path, [path])


def test_non_numeric_price_is_a_counted_rejection(tmp_path):
    path = write_gz(tmp_path, "binance-futures_quotes_2023-11-14_BTCUSDT.csv.gz", [
        QUOTES_HEADER, "binance-futures,BTCUSDT,1700000000000000,1700000000000010,1,101,100,2",
        "binance-futures,BTCUSDT,1700000000001000,1700000000001010,1,abc,100,2"])
    report, store = ingest_tardis(tmp_path, [path])
    assert store.read("book_ticker", "BTCUSDT").num_rows == 1
    assert report.examples == {"not a number in column 'ask_price'": [
        f"{path}:3: not a number in column 'ask_price': ask_price='abc'"]}


def test_truncated_gzip_is_fatal_naming_the_file(tmp_path):
    rows = [f"binance-futures,BTCUSDT,{1722816000124000 + i},1722816000131000,{i},buy,54001,0.5" for i in range(3000)]
    path = write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz", [TRADES_HEADER] + rows)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(InputError, match=rf"{path.name}:\d+: truncated or corrupt gzip"):
        ingest_tardis(tmp_path, [path])


def test_unknown_symbol_is_fatal_and_the_store_unchanged(tmp_path):
    good = write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz",
                    [TRADES_HEADER, "binance-futures,BTCUSDT,1722816000124000,1722816000131000,,buy,54001,0.5"])
    _, store = ingest_tardis(tmp_path, [good])
    before = store_files(store.root)
    mixed = write_gz(tmp_path, "binance-futures_liquidations_2024-08-05_PERPETUALS.csv.gz", [
        TRADES_HEADER, "binance-futures,BTCUSDT,1722816000125000,1722816000131000,,sell,54000,1",
        "binance-futures,NEWUSDT,1722816000126000,1722816000131000,,sell,1.5,10"])
    with pytest.raises(InputError, match=rf"{mixed.name}:3: symbol 'NEWUSDT'.*--symbols-file"):
        ingest_tardis(tmp_path, [good, mixed])
    assert store_files(store.root) == before


def test_coin_m_notional_in_usd_from_contracts(tmp_path):
    path = write_gz(tmp_path, "binance-delivery_liquidations_2023-06-25_BTCUSD_PERP.csv.gz", [
        TRADES_HEADER, "binance-delivery,BTCUSD_PERP,1687656471926000,1687656472000000,,buy,30741.3,7"])
    _, store = ingest_tardis(tmp_path, [path])
    row = store.read("liquidations", "BTCUSD_PERP").to_pylist()[0]
    assert (row["side"], row["qty"], row["notional"]) == (LIQ_BUY, 7.0, 700.0)  # 7 contracts of 100 USD


def test_coverage_is_the_day_of_the_file_name_or_the_rows_span(tmp_path):
    named = write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz", [
        TRADES_HEADER, "binance-futures,BTCUSDT,1722816000124000,1722816000131000,,buy,54001,0.5"])
    other = write_gz(tmp_path, "quotes.csv.gz", [
        QUOTES_HEADER, "binance-futures,ETHUSDT,1700000000000000,1700000000000010,1,101,100,2",
        "binance-futures,ETHUSDT,1700000000500000,1700000000500010,1,101,100,2"])
    empty = write_gz(tmp_path, "binance-futures_liquidations_2024-08-05_BTCUSDT.csv.gz", [])
    report, _ = ingest_tardis(tmp_path, [named, other, empty])
    day = 1722816000 * 10**9
    assert sorted((c["table"], c["symbol"], c["start_ns"], c["end_ns"], c["source"]) for c in report.coverage) == [
        ("book_ticker", "ETHUSDT", 1700000000000000 * US, 1700000000500000 * US + 1, str(other)),
        ("trades", "BTCUSDT", day, day + 86_400 * 10**9, str(named))]
    assert f"{empty}: empty file" in report.notes


def test_an_impossible_date_in_the_file_name_is_a_one_line_error(tmp_path):
    path = write_gz(tmp_path, "binance-futures_trades_2024-02-30_BTCUSDT.csv.gz", [
        TRADES_HEADER, "binance-futures,BTCUSDT,1722816000124000,1722816000131000,,buy,54001,0.5"])
    with pytest.raises(InputError, match=r"_2024-02-30_BTCUSDT.csv.gz: '2024-02-30' in the file name is not a date"):
        ingest_tardis(tmp_path, [path])


# -- red-team findings: ids, snapshots, units, stray symbols ---------------------------------------------

T0 = 1722816000000000     # 2024-08-05 in µs


def _trade_row(i: int, symbol="BTCUSDT", ts=None, trade_id=None, price="61800.5") -> str:
    ts = T0 + i * 1000 if ts is None else ts
    return f"binance-futures,{symbol},{ts},{ts + 5},{1000 + i if trade_id is None else trade_id},buy,{price},0.1"


def test_a_negative_integer_trade_id_is_rejected(tmp_path):
    # was: stored as -1, the store's "no id", with a note that it was not an integer
    path = write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz",
                    [TRADES_HEADER, _trade_row(0), _trade_row(1, trade_id="-7"), _trade_row(2, trade_id="abc-def")])
    report, store = ingest_tardis(tmp_path, [path])
    assert report.examples == {"negative id in column 'id'": [f"{path}:3: negative id in column 'id': id='-7'"]}
    assert store.read("trades", "BTCUSDT").column("trade_id").to_pylist() == [1000, NO_ID]
    assert f"{path}: 1 trade ids are not integers; stored as -1" in report.notes


def test_a_snapshot_level_must_have_a_quantity_a_diff_may_delete(tmp_path):
    # was: a zero-quantity snapshot row stored (a snapshot lists levels that exist)
    rows = [f"binance-futures,BTCUSDT,{T0},{T0 + 5},true,bid,61800,1",
            f"binance-futures,BTCUSDT,{T0},{T0 + 5},true,ask,61801,0",
            f"binance-futures,BTCUSDT,{T0 + 1000},{T0 + 1005},false,bid,61800,0"]
    path = write_gz(tmp_path, "binance-futures_incremental_book_L2_2024-08-05_BTCUSDT.csv.gz", [L2_HEADER] + rows)
    report, store = ingest_tardis(tmp_path, [path])
    assert report.examples == {"depth_diff snapshot qty is not a finite number > 0": [f"{path}:3: qty=0.0"]}
    depth = store.read_arrays("depth_diff", "BTCUSDT")
    assert depth["qty"].tolist() == [1.0, 0.0] and depth["is_snapshot"].tolist() == [True, False]


def test_timestamps_in_another_unit_than_the_files_first_are_rejected(tmp_path):
    # was: a ms timestamp among µs ones stored (each value's unit guessed by its digit count)
    path = write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz",
                    [TRADES_HEADER, _trade_row(0), _trade_row(9, ts=T0 // 1000 + 9), _trade_row(1)])
    report, store = ingest_tardis(tmp_path, [path])
    reason = "timestamp in column 'timestamp' in another unit than the rest of the file"
    assert report.examples == {reason: [f"{path}:3: {reason}: timestamp={T0 // 1000 + 9} (the file's unit is µs)"]}
    assert store.read("trades", "BTCUSDT").column("trade_id").to_pylist() == [1000, 1001]


def test_a_row_of_another_symbol_in_a_symbol_named_file_is_rejected(tmp_path):
    # was: the stray ETHUSDT row gave ETHUSDT a whole day of (false) coverage
    named = write_gz(tmp_path, "binance-futures_trades_2024-08-05_BTCUSDT.csv.gz",
                     [TRADES_HEADER, _trade_row(0), _trade_row(1, symbol="ETHUSDT"), _trade_row(2, symbol="NOPE")])
    report, store = ingest_tardis(tmp_path, [named])
    assert report.rejections == {"row of ETHUSDT in a file of BTCUSDT": 1, "row of NOPE in a file of BTCUSDT": 1}
    assert report.examples["row of ETHUSDT in a file of BTCUSDT"] == [f"{named}:3: row of ETHUSDT in a file of BTCUSDT"]
    assert {c["symbol"] for c in report.coverage} == {"BTCUSDT"} and store.symbols_in("trades") == ["BTCUSDT"]
    grouped = write_gz(tmp_path, "binance-futures_liquidations_2024-08-05_PERPETUALS.csv.gz", [
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        f"binance-futures,BTCUSDT,{T0},{T0 + 5},,sell,61800,0.5", f"binance-futures,ETHUSDT,{T0},{T0 + 5},,buy,2500,1"])
    report, _ = ingest_tardis(tmp_path / "grouped", [grouped])
    assert not report.rejections and {c["symbol"] for c in report.coverage} == {"BTCUSDT", "ETHUSDT"}
