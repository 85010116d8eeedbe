"""Ingest of Binance public-archive futures CSVs (``--format binance-archive``).

Fixtures are the verbatim example rows of FORMATS.md section A plus a few constructed rows.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gpu_lpi.errors import InputError
from gpu_lpi.ingest import ingest
from gpu_lpi.ingest.binance_archive import count_out_of_order
from gpu_lpi.ingest.timestamps import epoch_to_ns
from gpu_lpi.schema import LIQ_BUY, LIQ_SELL, TABLES, TRADE_KIND_MARKET
from gpu_lpi.store import TickStore
from tests.conftest import store_files

AGG_TRADES_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
AGG_TRADES_ROWS = ["1290241731,1868.42,0.5,2943174956,2943174958,1682899200037,false",
                   "1290241732,1868.43,2.5,2943174959,2943174959,1682899200045,true"]
#: Verbatim (binance-public-data issue #342): the archive has zero-quantity aggregate trades.
ZERO_QTY_AGG_TRADE = "1290241731,1868.42,0.0,2943174956,2943174958,1682899200037,false"
TRADES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker"
TRADES_ROWS = ["5053880937,68402.6,0.024,1641.6624,1717113600031,false",
               "5053880938,68402.5,0.005,342.0125,1717113600130,true"]
BOOK_TICKER_HEADER = ("update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,"
                      "event_time")
BOOK_TICKER_ROWS = [  # verbatim, out of time order (binance-public-data issue #305)
    "3831603310013,2474.30000000,6.00900000,2474.31000000,44.75700000,1705276800000,1705276800005",
    "3835812359996,2535.78000000,57.39300000,2535.79000000,14.66800000,1705350085394,1705350085401",
    "3831603310668,2474.30000000,6.09000000,2474.31000000,44.75700000,1705276800011,1705276800016"]
BOOK_DEPTH_ROWS = ["timestamp,percentage,depth,notional",
                   "2025-05-19 11:07:31,-5,7885.27500000,647368074.36920000",
                   "2025-05-19 11:07:31,-4,7178.45300000,590768470.27090000",
                   "2025-05-19 11:07:31,1,2097.41000000,176607765.20950000"]
METRICS_HEADER = ("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
                  "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio")
LIQUIDATION_HEADER = ("time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
                      "last_fill_quantity,accumulated_fill_quantity")
LIQUIDATION_ROWS_COIN_M = ["1687656471926,BUY,LIMIT,IOC,7,30741.3,30631.6,FILLED,6,7",
                           "1687656471926,BUY,LIMIT,IOC,7,30741.3,30631.6,FILLED,6,7",
                           "1687656473356,BUY,LIMIT,IOC,43,30756.6,30631.6,FILLED,1,43"]

MS = 1_000_000


def write_csv(folder: Path, name: str, lines: list[str], packing: str = "plain") -> Path:
    """Write ``lines`` as a CSV named ``name`` (without extension) packed as plain, gz or zip."""
    text = ("\n".join(lines) + "\n").encode()
    if packing == "zip":
        path = folder / f"{name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{name}.csv", text)
    elif packing == "gz":
        path = folder / f"{name}.csv.gz"
        path.write_bytes(gzip.compress(text))
    else:
        path = folder / f"{name}.csv"
        path.write_bytes(text)
    return path


def ingest_archive(tmp_path: Path, files: list[Path], **kwargs):
    store = tmp_path / "store"
    return ingest(files, "binance-archive", store, **kwargs), TickStore(store)


@pytest.mark.parametrize("packing", ["plain", "gz", "zip"])
@pytest.mark.parametrize("with_header", [True, False])
def test_agg_trades_values(tmp_path, packing, with_header):
    lines = ([AGG_TRADES_HEADER] if with_header else []) + AGG_TRADES_ROWS
    path = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01", lines, packing)
    report, store = ingest_archive(tmp_path, [path])
    rows = store.read("agg_trades", "ETHUSDT").to_pylist()
    assert report.rejections == {}
    assert rows[0] == {"ts": 1682899200037 * MS, "price": 1868.42, "qty": 0.5, "is_buyer_maker": False,
                       "notional": 1868.42 * 0.5, "trade_id": 1290241731, "first_trade_id": 2943174956,
                       "last_trade_id": 2943174958, "local_ts": None}
    assert rows[1]["is_buyer_maker"] is True
    assert rows[1]["notional"] == pytest.approx(1868.43 * 2.5)
    assert store.read("agg_trades", "ETHUSDT").schema == TABLES["agg_trades"].schema


@pytest.mark.parametrize("with_header", [True, False])
def test_trades_values(tmp_path, with_header):
    lines = ([TRADES_HEADER] if with_header else []) + TRADES_ROWS
    path = write_csv(tmp_path, "BTCUSDT-trades-2024-05-31", lines, "zip")
    _, store = ingest_archive(tmp_path, [path])
    table = store.read("trades", "BTCUSDT")
    assert table.column("ts").to_pylist() == [1717113600031 * MS, 1717113600130 * MS]
    assert table.column("trade_id").to_pylist() == [5053880937, 5053880938]
    assert table.column("is_buyer_maker").to_pylist() == [False, True]
    assert table.column("kind").to_pylist() == [TRADE_KIND_MARKET] * 2
    assert table.column("notional").to_numpy() == pytest.approx([68402.6 * 0.024, 68402.5 * 0.005])


def test_microsecond_timestamps_and_capitalised_booleans(tmp_path):
    path = write_csv(tmp_path, "BTCUSDT-trades-2025-01-02", ["1,100.5,2,201,1735776000123456,True",
                                                             "2,100.5,1,100.5,1735776000123999,False"])
    _, store = ingest_archive(tmp_path, [path])
    table = store.read("trades", "BTCUSDT")
    assert table.column("ts").to_pylist() == [1735776000123456000, 1735776000123999000]
    assert table.column("is_buyer_maker").to_pylist() == [True, False]


def test_epoch_unit_by_digit_count():
    ns, bad = epoch_to_ns(np.array([1682899200, 1682899200037, 1682899200037123, 1682899200037123456, 12345, 0]))
    assert ns[:4].tolist() == [1682899200 * 10**9, 1682899200037 * MS, 1682899200037123000, 1682899200037123456]
    assert bad.tolist() == [False, False, False, False, True, True]


def test_coin_m_trades_notional_in_usd_from_contracts(tmp_path):
    path = write_csv(tmp_path, "BTCUSD_PERP-trades-2023-06-25",
                     ["id,price,qty,base_qty,time,is_buyer_maker", "1,30741.3,7,0.00022771,1687656471926,true"])
    _, store = ingest_archive(tmp_path, [path])
    row = store.read("trades", "BTCUSD_PERP").to_pylist()[0]
    assert (row["qty"], row["notional"]) == (7.0, 700.0)  # 7 contracts of 100 USD


def test_coin_m_header_on_a_linear_symbol_is_fatal(tmp_path):
    path = write_csv(tmp_path, "BTCUSDT-trades-2023-06-25",
                     ["id,price,qty,base_qty,time,is_buyer_maker", "1,30741.3,7,0.00022771,1687656471926,true"])
    with pytest.raises(InputError, match=r"BTCUSDT-trades-2023-06-25.csv:1: this is a COIN-M header.*--symbols-file"):
        ingest_archive(tmp_path, [path])


def test_book_ticker_is_resorted_and_the_count_noted(tmp_path):
    path = write_csv(tmp_path, "ETHUSDT-bookTicker-2024-01-15", [BOOK_TICKER_HEADER] + BOOK_TICKER_ROWS, "zip")
    report, store = ingest_archive(tmp_path, [path])
    table = store.read("book_ticker", "ETHUSDT")
    assert table.column("ts").to_pylist() == [1705276800000 * MS, 1705276800011 * MS, 1705350085394 * MS]
    assert table.column("update_id").to_pylist() == [3831603310013, 3831603310668, 3835812359996]
    assert table.slice(0, 1).to_pylist()[0] == {"ts": 1705276800000 * MS, "bid": 2474.3, "bid_qty": 6.009,
                                                "ask": 2474.31, "ask_qty": 44.757, "update_id": 3831603310013,
                                                "local_ts": None}
    assert any("1 rows out of time order" in note for note in report.notes)


def test_count_out_of_order():
    assert count_out_of_order(np.array([1, 5, 2, 3, 6, 6, 4])) == 3
    assert count_out_of_order(np.array([], dtype=np.int64)) == 0


def test_book_depth_bands(tmp_path):
    path = write_csv(tmp_path, "BTCUSDT-bookDepth-2025-05-19",
                     BOOK_DEPTH_ROWS + ["2025-05-19 11:07,2,1.0,2.0", "2025-13-19 11:07:31,2,1.0,2.0"], "zip")
    report, store = ingest_archive(tmp_path, [path])
    rows = store.read("depth_bands", "BTCUSDT").to_pylist()
    ts = np.datetime64("2025-05-19T11:07:31", "ns").astype(np.int64)
    assert rows[0] == {"ts": ts, "pct": -5.0, "depth": 7885.275, "notional": 647368074.3692}
    assert [r["pct"] for r in rows] == [-5.0, -4.0, 1.0]
    assert report.rejections == {"not a YYYY-MM-DD HH:MM:SS time in column 'timestamp'": 2}
    assert [e.split(":")[1] for e in report.examples[next(iter(report.rejections))]] == ["5", "6"]


def test_metrics_open_interest_coin_m_with_empty_fields(tmp_path):
    path = write_csv(tmp_path, "BTCUSD_PERP-metrics-2023-06-25", [
        METRICS_HEADER,
        '2023-06-25 00:00:00,BTCUSD_PERP,5578700.00000000,18265.00911826,"","","",0.00855776',
        '2023-06-25 00:05:00,BTCUSD_PERP,5578209.00000000,18261.90678854,"","","",1.19645130',
        '2023-06-25 00:05:00,BTCUSD_PERP,5578209.00000000,18261.90678854,"","","",1.19645130'])
    report, store = ingest_archive(tmp_path, [path])
    rows = store.read("open_interest", "BTCUSD_PERP").to_pylist()
    start = np.datetime64("2023-06-25T00:00:00", "ns").astype(np.int64)
    assert rows == [{"ts": start, "oi": 5578700.0, "oi_value": 557870000.0, "local_ts": None},
                    {"ts": start + 300 * 10**9, "oi": 5578209.0, "oi_value": 557820900.0, "local_ts": None}]
    assert any("1 exact duplicate BTCUSD_PERP rows collapsed" in note for note in report.notes)


def test_metrics_symbol_from_column_and_date_only_time(tmp_path):
    path = write_csv(tmp_path, "BTCUSDT-metrics-2023-01-21", [
        METRICS_HEADER,
        "2023-01-21,BTCUSDT,98666.16300000,2236289208.19726700,0.766568632422291,1.1363333457,"
        "0.8332767017782309,0.9253075900",
        '2023-01-21 00:05:00,ETHUSDT,"",1.5,"","","",""'])
    _, store = ingest_archive(tmp_path, [path])
    btc = store.read("open_interest", "BTCUSDT").to_pylist()
    assert btc == [{"ts": np.datetime64("2023-01-21", "ns").astype(np.int64), "oi": 98666.163,
                    "oi_value": 2236289208.197267, "local_ts": None}]
    assert store.read("open_interest", "ETHUSDT").to_pylist()[0]["oi"] is None


def test_funding_rate(tmp_path):
    path = write_csv(tmp_path, "ETHUSDT-fundingRate-2025-07",
                     ["calc_time,funding_interval_hours,last_funding_rate", "1751328000007,8,0.00008191"], "zip")
    _, store = ingest_archive(tmp_path, [path])
    assert store.read("funding", "ETHUSDT").to_pylist() == [
        {"ts": 1751328000007 * MS, "rate": 0.00008191, "mark_price": None, "local_ts": None}]


def test_liquidation_snapshot_duplicates_collapsed_coin_m(tmp_path):
    path = write_csv(tmp_path, "BTCUSD_PERP-liquidationSnapshot-2023-06-25",
                     [LIQUIDATION_HEADER] + LIQUIDATION_ROWS_COIN_M, "zip")
    report, store = ingest_archive(tmp_path, [path])
    rows = store.read("liquidations", "BTCUSD_PERP").to_pylist()
    assert rows == [
        {"ts": 1687656471926 * MS, "side": LIQ_BUY, "price": 30741.3, "qty": 7.0, "notional": 700.0,
         "avg_price": 30631.6, "local_ts": None},
        {"ts": 1687656473356 * MS, "side": LIQ_BUY, "price": 30756.6, "qty": 43.0, "notional": 4300.0,
         "avg_price": 30631.6, "local_ts": None}]
    assert report.rows[("liquidations", "BTCUSD_PERP")] == 2
    assert any("1 exact duplicate rows collapsed" in note for note in report.notes)


def test_liquidation_snapshot_usd_m_filled_quantity_at_average_price(tmp_path):
    path = write_csv(tmp_path, "BTCUSDT-liquidationSnapshot-2023-07-31",
                     [LIQUIDATION_HEADER, "1690761600123,SELL,LIMIT,IOC,0.5,29000,29100,FILLED,0.1,0.4"])
    _, store = ingest_archive(tmp_path, [path])
    row = store.read("liquidations", "BTCUSDT").to_pylist()[0]
    assert (row["side"], row["qty"], row["avg_price"]) == (LIQ_SELL, 0.4, 29100.0)
    assert row["notional"] == pytest.approx(0.4 * 29100)


def test_reingest_is_idempotent(tmp_path):
    files = [write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01", [AGG_TRADES_HEADER] + AGG_TRADES_ROWS, "zip"),
             write_csv(tmp_path, "ETHUSDT-bookTicker-2024-01-15", [BOOK_TICKER_HEADER] + BOOK_TICKER_ROWS)]
    _, store = ingest_archive(tmp_path, files)
    first = store_files(store.root)
    report, _ = ingest_archive(tmp_path, files)
    assert store_files(store.root) == first
    assert sum(report.rows_added.values()) == 0
    assert store.read("agg_trades", "ETHUSDT").num_rows == 2


def test_missing_column_is_fatal_naming_file_line_and_column(tmp_path):
    path = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01",
                     [AGG_TRADES_HEADER.replace("price", "prize")] + AGG_TRADES_ROWS)
    with pytest.raises(InputError) as err:
        ingest_archive(tmp_path, [path])
    assert str(err.value) == (f"{path}:1: missing column 'price'; expected header {AGG_TRADES_HEADER}")
    assert not (tmp_path / "store").exists() or store_files(tmp_path / "store") == {}


def test_bad_rows_are_counted_with_their_line(tmp_path):
    path = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01", [
        AGG_TRADES_HEADER, AGG_TRADES_ROWS[0], "", "1290241740,n/a,1.0,1,1,1682899200050,false",
        "1290241741,1868.5,1.0,2,2", "1290241742,1868.5,1.0,3,3,1682899200060,maybe",
        "1290241743,1868.5,,4,4,1682899200070,true", "1290241744,1868.5,1.0,5,5,16828992000,true",
        AGG_TRADES_ROWS[1]])
    report, store = ingest_archive(tmp_path, [path])
    assert store.read("agg_trades", "ETHUSDT").column("trade_id").to_pylist() == [1290241731, 1290241732]
    assert report.rejections == {"not a number in column 'price'": 1, "wrong number of fields": 1,
                                 "not true or false in column 'is_buyer_maker'": 1,
                                 "empty column 'quantity'": 1,
                                 "timestamp in column 'transact_time' is not 10, 13, 16 or 19 digits "
                                 "(s, ms, µs, ns)": 1}
    examples = [example for kept in report.examples.values() for example in kept]
    assert sorted(int(e.split(":")[1]) for e in examples) == [4, 5, 6, 7, 8]
    assert f"{path}:4: not a number in column 'price': price='n/a'" in examples


def test_strict_mode_makes_a_bad_row_fatal(tmp_path):
    path = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01",
                     AGG_TRADES_ROWS + ["1290241740,n/a,1.0,1,1,1682899200050,false"], "gz")
    with pytest.raises(InputError, match=r"aggTrades-2023-05-01.csv.gz:3: not a number in column 'price'"):
        ingest_archive(tmp_path, [path], strict=True)


@pytest.mark.parametrize("first_line, suggested", [
    ("exchange,symbol,timestamp,local_timestamp,id,side,price,amount", "tardis"),
    ('1722816000123456 {"stream":"btcusdt@aggTrade","data":{}}', "binance-ws")])
def test_other_format_is_fatal_and_suggests_the_right_one(tmp_path, first_line, suggested):
    path = write_csv(tmp_path, "BTCUSDT-trades-2024-08-05", [first_line])
    with pytest.raises(InputError, match=rf"trades-2024-08-05.csv:1: .*use --format {suggested}"):
        ingest_archive(tmp_path, [path])


def test_unknown_file_name_is_fatal_and_names_the_pattern(tmp_path):
    path = write_csv(tmp_path, "BTCUSDT-1m-2024-08-05", ["1722816000000,1,1,1,1,1,1722816059999,1,1,1,1,0"])
    with pytest.raises(InputError, match=r"BTCUSDT-1m-2024-08-05.csv: not a Binance archive file name; "
                                         r"expected \{SYMBOL\}-\{dataType\}"):
        ingest_archive(tmp_path, [path])


def test_truncated_zip_and_gzip_are_fatal_naming_the_file(tmp_path):
    for packing in ("gz", "zip"):
        path = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01", [AGG_TRADES_HEADER] + AGG_TRADES_ROWS * 500,
                         packing)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(InputError, match=rf"{path.name}"):
            ingest_archive(tmp_path, [path])


def test_unknown_symbol_is_fatal_and_mentions_symbols_file(tmp_path):
    path = write_csv(tmp_path, "FOOUSDT-aggTrades-2023-05-01", AGG_TRADES_ROWS)
    with pytest.raises(InputError, match=r"FOOUSDT-aggTrades-2023-05-01.csv: symbol 'FOOUSDT'.*--symbols-file"):
        ingest_archive(tmp_path, [path])


def test_unknown_symbol_accepted_with_a_symbols_file(tmp_path):
    symbols = tmp_path / "symbols.csv"
    symbols.write_text("symbol,tick_size,lot_size,contract_size,is_inverse\nFOOUSD_PERP,0.1,1,10,true\n")
    path = write_csv(tmp_path, "FOOUSD_PERP-aggTrades-2023-05-01", ["1,2.5,3,1,1,1682899200037,false"])
    _, store = ingest_archive(tmp_path, [path], symbols_files=[symbols])
    assert store.read("agg_trades", "FOOUSD_PERP").column("notional").to_pylist() == [30.0]


def test_a_fatal_error_leaves_the_store_unchanged(tmp_path):
    good = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01", [AGG_TRADES_HEADER] + AGG_TRADES_ROWS[:1])
    _, store = ingest_archive(tmp_path, [good])
    before = store_files(store.root)
    more = write_csv(tmp_path, "ETHUSDT-trades-2023-05-01", TRADES_ROWS)
    bad = write_csv(tmp_path, "ETHUSDT-fundingRate-2023-05", ["calc_time,last_funding_rate", "1,2"])
    good.write_text("\n".join([AGG_TRADES_HEADER] + AGG_TRADES_ROWS) + "\n")
    with pytest.raises(InputError, match="missing column 'funding_interval_hours'"):
        ingest_archive(tmp_path, [good, more, bad])
    assert store_files(store.root) == before
    assert not (store.root / "_staging").exists()


def _day_ns(day: str) -> int:
    return int(np.datetime64(day, "ns").astype(np.int64))


def test_a_file_covers_its_day_or_month_and_rows_outside_are_noted(tmp_path):
    daily = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01", [AGG_TRADES_HEADER] + AGG_TRADES_ROWS
                      + ["1290241799,1868.5,1.0,5,5,1682985600000,true"])            # 2023-05-02 00:00
    monthly = write_csv(tmp_path, "ETHUSDT-fundingRate-2025-12",
                        ["calc_time,funding_interval_hours,last_funding_rate", "1764547200000,8,0.0001"])
    metrics = write_csv(tmp_path, "BTCUSDT-metrics-2023-01-21", [
        METRICS_HEADER, '2023-01-21 00:00:00,BTCUSDT,5,10,"","","",""', '2023-01-21 00:05:00,ETHUSDT,5,10,"","","",""'])
    empty = tmp_path / "BTCUSDT-trades-2024-05-31.csv"
    empty.write_text("")
    report, _ = ingest_archive(tmp_path, [daily, monthly, metrics, empty])
    assert sorted((c["table"], c["symbol"], c["start_ns"], c["end_ns"], c["source"]) for c in report.coverage) == sorted([
        ("agg_trades", "ETHUSDT", _day_ns("2023-05-01"), _day_ns("2023-05-02"), str(daily)),
        ("funding", "ETHUSDT", _day_ns("2025-12-01"), _day_ns("2026-01-01"), str(monthly)),
        ("open_interest", "BTCUSDT", _day_ns("2023-01-21"), _day_ns("2023-01-22"), str(metrics)),
        ("open_interest", "ETHUSDT", _day_ns("2023-01-21"), _day_ns("2023-01-22"), str(metrics))])
    assert f"{daily}: 1 rows timestamped outside the file's period 2023-05-01 (kept)" in report.notes
    assert f"{empty}: empty file" in report.notes


def test_zero_quantity_aggregate_trades_are_rejected(tmp_path):
    path = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01", [AGG_TRADES_HEADER, ZERO_QTY_AGG_TRADE, AGG_TRADES_ROWS[1]])
    report, store = ingest_archive(tmp_path, [path])
    assert store.read("agg_trades", "ETHUSDT").column("trade_id").to_pylist() == [1290241732]
    assert report.examples == {"agg_trades qty is not a finite number > 0": [f"{path}:2: qty=0.0"]}


def test_an_impossible_date_in_the_file_name_is_a_one_line_error(tmp_path):
    path = write_csv(tmp_path, "BTCUSDT-trades-2024-13-45", TRADES_ROWS)
    with pytest.raises(InputError, match=r"BTCUSDT-trades-2024-13-45.csv: '2024-13-45' in the file name is not a date"):
        ingest_archive(tmp_path, [path])


# -- red-team findings: ids, empty days, non-UTF-8 lines, mixed units ----------------------------------

def test_negative_ids_are_rejected(tmp_path):
    # was: stored, and -1 is the store's "no id", so a re-ingest with another price added a second row
    agg = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01", [
        AGG_TRADES_HEADER, "-1,1868.42,0.5,2943174956,2943174958,1682899200037,false",
        "1290241732,1868.43,2.5,-7,2943174959,1682899200045,true",
        "1290241733,1868.43,2.5,2943174960,-2,1682899200046,true", AGG_TRADES_ROWS[1].replace("1290241732", "1290241734")])
    trades = write_csv(tmp_path, "BTCUSDT-trades-2024-05-31",
                       [TRADES_HEADER, "-5,68402.6,0.024,1641.6624,1717113600031,false", TRADES_ROWS[1]])
    ticker = write_csv(tmp_path, "ETHUSDT-bookTicker-2024-01-15", [BOOK_TICKER_HEADER, "-3" + BOOK_TICKER_ROWS[0][13:],
                                                                  BOOK_TICKER_ROWS[1]])
    report, store = ingest_archive(tmp_path, [agg, trades, ticker])
    assert report.rejections == {"negative id in column 'agg_trade_id'": 1, "negative id in column 'first_trade_id'": 1,
                                 "negative id in column 'last_trade_id'": 1, "negative id in column 'id'": 1,
                                 "negative id in column 'update_id'": 1}
    assert report.examples["negative id in column 'first_trade_id'"] == [
        f"{agg}:3: negative id in column 'first_trade_id': first_trade_id=-7"]
    assert store.read("agg_trades", "ETHUSDT").column("trade_id").to_pylist() == [1290241734]
    assert store.read("trades", "BTCUSDT").column("trade_id").to_pylist() == [5053880938]
    assert store.read("book_ticker", "ETHUSDT").column("update_id").to_pylist() == [3835812359996]


def test_a_header_only_file_covers_its_day_with_no_events(tmp_path):
    # was: no coverage (the day read as unknown), and an ingest of such files alone failed
    header_only = write_csv(tmp_path, "BTCUSDT-liquidationSnapshot-2024-08-06", [LIQUIDATION_HEADER, ""])
    report, store = ingest_archive(tmp_path, [header_only])
    assert [(c["table"], c["symbol"], c["start_ns"], c["end_ns"]) for c in report.coverage] == [
        ("liquidations", "BTCUSDT", _day_ns("2024-08-06"), _day_ns("2024-08-07"))]
    assert "BTCUSDT        1 span(s): 2024-08-06T00:00:00 .. 2024-08-07T00:00:00" in report.summary()
    assert f"{header_only}: a header only: no liquidations in 2024-08-06 (covered)" in report.notes
    assert store.coverage("BTCUSDT", "liquidations").to_list() == [(_day_ns("2024-08-06"), _day_ns("2024-08-07"))]
    assert "liquidations" not in store.tables()
    rejected = write_csv(tmp_path, "BTCUSDT-liquidationSnapshot-2024-08-07",         # every row rejected: unknown
                         [LIQUIDATION_HEADER, "1722988800005,SELL,LIMIT,IOC,0.5,-61000,61010,FILLED,0.5,0.5"])
    with pytest.raises(InputError, match="no rows ingested: 1 rejected line, most for 'liquidations price is not"):
        ingest([rejected], "binance-archive", tmp_path / "other")


def test_a_non_utf8_line_is_rejected_with_its_line_and_the_rest_read(tmp_path, capfd):
    # was: "Exception ignored in _ArrowCsvReader._collect_invalid" with a traceback, and the whole
    # file failed at line 1
    rows = [f"{1290241731 + i},1868.4,0.5,{i},{i},{1682899200037 + i},false" for i in range(6)]
    text = ("\n".join([AGG_TRADES_HEADER] + rows) + "\n").encode()
    text = text.replace(b"\n1290241733,", b"\n\xff\xfe5,").replace(b"\n1290241735,1868.4", b"\n1290241735,\xe9")
    report, store = None, None
    for packing in ("csv", "zip"):
        name = "ETHUSDT-aggTrades-2023-05-01"
        path = tmp_path / packing / (f"{name}.csv" if packing == "csv" else f"{name}.zip")
        path.parent.mkdir()
        if packing == "csv":
            path.write_bytes(text)
        else:
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(f"{name}.csv", text)
        report = ingest([path], "binance-archive", tmp_path / packing / "store")
        store = TickStore(tmp_path / packing / "store")
        assert report.rejections == {"not UTF-8 text": 2}
        assert report.examples["not UTF-8 text"] == [f"{path}:4: bytes b'\\xff\\xfe5,1868.4,0.5,2,2,1682899200039,false'",
                                                      f"{path}:6: bytes b'1290241735,\\xe9,0.5,4,4,1682899200041,false'"]
        assert store.read("agg_trades", "ETHUSDT").column("trade_id").to_pylist() == [
            1290241731, 1290241732, 1290241734, 1290241736]
    assert "Traceback" not in capfd.readouterr().err


def test_non_utf8_lines_found_in_a_large_block(tmp_path):
    from gpu_lpi.ingest.csv_tables import non_utf8_lines

    lines = [b"%d,ok" % i for i in range(20_000)]
    for bad in (3, 7_777, 19_999):
        lines[bad] = b"\x80" + lines[bad]
    data = b"\n".join(lines)
    bad, starts, ends = non_utf8_lines(data)
    assert bad == [3, 7_777, 19_999]
    assert data[starts[7_777]:ends[7_777]] == b"\x807777,ok"
    assert non_utf8_lines(data, skip=4)[0] == [7_777, 19_999]
    assert non_utf8_lines(b"caf\xc3\xa9\n")[0] == []


@pytest.mark.parametrize("odd, unit", [(1682899200, "s"), (1682899200037123, "µs")])
def test_timestamps_in_another_unit_than_the_files_first_are_rejected(tmp_path, odd, unit):
    # was: each value's unit guessed by its digit count, so a row in seconds among ms was stored
    path = write_csv(tmp_path, "ETHUSDT-aggTrades-2023-05-01", [
        AGG_TRADES_HEADER, AGG_TRADES_ROWS[0], f"1290241740,1868.5,1.0,1,1,{odd},false", AGG_TRADES_ROWS[1]])
    report, store = ingest_archive(tmp_path, [path])
    reason = "timestamp in column 'transact_time' in another unit than the rest of the file"
    assert report.rejections == {reason: 1}
    assert report.examples[reason] == [f"{path}:3: {reason}: transact_time={odd} (the file's unit is ms)"]
    assert store.read("agg_trades", "ETHUSDT").column("trade_id").to_pylist() == [1290241731, 1290241732]


def test_only_when_nothing_was_recognised_is_format_suggested(tmp_path):
    checksum = tmp_path / "BTCUSDT-trades-2024-05-31.zip.CHECKSUM"
    checksum.write_text("0" * 64 + "  BTCUSDT-trades-2024-05-31.zip\n")
    with pytest.raises(InputError, match=r"CHECKSUM: no rows ingested: nothing in the input was recognised "
                                         r"\(is --format binance-archive right\?\)$"):
        ingest_archive(tmp_path, [checksum])
