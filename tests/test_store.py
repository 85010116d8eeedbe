"""The tick store as a database: merge rules, bounded merges, transactions, crashes, concurrent writers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpu_lpi.errors import StoreError
from gpu_lpi.schema import NO_ID, TABLES
from gpu_lpi.store import TickStore
from gpu_lpi.store.coverage import Spans
from gpu_lpi.store.merge import merge_partition, merge_rows, sort_rows, write_rows
from tests.conftest import REPO, store_files

T0 = 1_722_816_000 * 10**9  # 2024-08-05
MS = 1_000_000


def trades(ts, ids, price, qty=None, sell=None) -> pa.Table:
    n = len(ts)
    return pa.table({
        "ts": pa.array(ts, pa.int64()), "price": pa.array(price, pa.float64()),
        "qty": pa.array(qty if qty is not None else [1.0] * n, pa.float64()),
        "is_buyer_maker": pa.array(sell if sell is not None else [True] * n, pa.bool_()),
        "notional": pa.array(np.asarray(price, float) * (qty if qty is not None else 1.0), pa.float64()),
        "kind": pa.array([0] * n, pa.int8()), "trade_id": pa.array(ids, pa.int64()),
        "local_ts": pa.nulls(n, pa.int64())}, schema=TABLES["trades"].schema)


SPEC = TABLES["trades"]


# -- merge rules -----------------------------------------------------------------------------------
def test_identity_repeat_is_dropped_and_changed_values_are_a_conflict():
    stored = trades([T0, T0 + MS], [1, 2], [100.0, 101.0])
    new = trades([T0, T0 + MS, T0 + 2 * MS], [1, 2, 3], [100.0, 999.0, 102.0],
                 qty=[1.0, 1.0, 1.0])
    new = new.set_column(7, "local_ts", pa.array([5, 6, 7], pa.int64()))  # another collector
    merged = merge_rows(stored, new, SPEC)
    assert merged.added == 1 and merged.conflicts == 1
    assert merged.rows.column("trade_id").to_pylist() == [1, 2, 3]
    assert merged.rows.column("price").to_pylist() == [100.0, 101.0, 102.0]   # stored row kept
    assert "trade_id=2" in merged.examples[0] and "price=999.0" in merged.examples[0]


def test_rows_without_ids_are_a_multiset():
    stored = trades([T0, T0], [NO_ID, NO_ID], [100.0, 100.0])
    new = trades([T0, T0, T0, T0 + MS], [NO_ID] * 4, [100.0, 100.0, 100.0, 100.0])
    merged = merge_rows(stored, new, SPEC)
    # the store held two identical rows, the source has three: one more is added, plus the new time
    assert merged.added == 2 and merged.conflicts == 0
    assert merged.rows.num_rows == 4


def test_two_new_rows_with_one_id_keep_the_first():
    new = trades([T0, T0], [7, 7], [100.0, 100.5])
    merged = merge_rows(trades([], [], []), new, SPEC)
    assert merged.added == 1 and merged.conflicts == 1
    assert merged.rows.column("price").to_pylist() == [100.0]


def test_depth_levels_are_identified_within_their_message():
    spec = TABLES["depth_diff"]
    def rows(qty, ts=T0):
        return pa.table({"ts": [ts] * 3, "seq_first": [10] * 3, "seq_last": [12] * 3, "seq_prev": [9] * 3,
                         "side": pa.array([0, 1, -1], pa.int8()), "price": [100.0, 101.0, float("nan")],
                         "qty": qty, "is_snapshot": [False] * 3, "local_ts": pa.nulls(3, pa.int64())},
                        schema=spec.schema)
    assert merge_rows(rows([1.0, 2.0, float("nan")]), rows([1.0, 2.0, float("nan")]), spec).added == 0
    changed = merge_rows(rows([1.0, 2.0, float("nan")]), rows([1.0, 3.0, float("nan")]), spec)
    assert changed.added == 0 and changed.conflicts == 1
    # one level twice in a new message: the later quantity is the one the replay would apply
    twice = pa.concat_tables([rows([1.0, 2.0, float("nan")]).slice(0, 2), rows([5.0, 2.0, 0.0]).slice(0, 1)])
    merged = merge_rows(spec.schema.empty_table(), twice, spec)
    assert merged.added == 2 and merged.conflicts == 1
    assert dict(zip(merged.rows.column("side").to_pylist(), merged.rows.column("qty").to_pylist())) == {0: 5.0, 1: 2.0}


def test_a_stored_id_with_another_time_is_a_conflict_across_windows(tmp_path):
    stored = tmp_path / "stored.parquet"
    write_rows(trades([T0 + i * MS for i in range(100)], list(range(100)), [100.0] * 100), stored)
    staged = tmp_path / "new.parquet"
    write_rows(trades([T0 + 10**12], [5], [100.0]), staged)   # id 5, 1000 s later
    conflicts = []
    added = merge_partition(stored, [staged], SPEC, tmp_path / "out.parquet",
                            lambda n, examples: conflicts.append(n), window_rows=10)
    assert added == 0 and conflicts == [1]


def test_windowed_merge_equals_one_window(tmp_path):
    rng = np.random.default_rng(3)
    ts = np.sort(T0 + rng.integers(0, 10**9, 5_000))
    ids = np.arange(5_000)
    stored = tmp_path / "stored.parquet"
    write_rows(trades(ts[::2], ids[::2], np.full(2_500, 100.0)), stored)
    staged = []
    for k in range(3):   # overlapping new rows, some repeats, some new, a few changed
        pick = np.sort(rng.choice(5_000, 1_500, replace=False))
        price = np.where(rng.random(pick.size) < 0.01, 101.0, 100.0)
        path = tmp_path / f"chunk-{k}.parquet"
        write_rows(sort_rows(trades(ts[pick], ids[pick], price), SPEC), path)
        staged.append(path)
    outputs = {}
    for window in (50, 10**9):
        out = tmp_path / f"out-{window}.parquet"
        found = []
        added = merge_partition(stored, staged, SPEC, out, lambda n, e: found.append(n), window_rows=window)
        outputs[window] = (pq.read_table(out), added, sum(found))
    small, big = outputs[50], outputs[10**9]
    assert small[0].equals(big[0]) and small[1:] == big[1:]
    table = small[0]
    assert np.all(np.diff(table.column("ts").to_numpy()) >= 0)
    assert np.unique(table.column("trade_id").to_numpy()).size == table.num_rows


def test_spans_union_and_queries():
    spans = Spans.union([10, 0, 30, 20], [20, 5, 40, 25])
    assert spans.to_list() == [(0, 5), (10, 25), (30, 40)]
    assert spans.contains([0, 4, 5, 10, 24, 25, 39, 40]).tolist() == [True, True, False, True, True,
                                                                         False, True, False]
    # (low, high] inside one span
    assert spans.contains_intervals([9, 8, 20], [24, 24, 26]).tolist() == [True, False, False]
    assert spans.intersect(Spans.union([3, 22], [12, 35])).to_list() == [(3, 5), (10, 12), (22, 25), (30, 35)]


# -- transactions ----------------------------------------------------------------------------------
def _write(store, rows, symbol="BTCUSDT", cover=None):
    with store.transaction() as tx:
        tx.write("trades", symbol, rows)
        if cover:
            tx.cover("trades", symbol, *cover, "test")


def test_failed_transaction_changes_nothing_and_leaves_no_staging(tmp_path):
    store = TickStore(tmp_path)
    _write(store, trades([T0], [1], [100.0]), cover=(T0, T0 + MS))
    before = store_files(tmp_path)
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.write("trades", "BTCUSDT", trades([T0 + MS], [2], [101.0]))
            tx.cover("trades", "BTCUSDT", T0, T0 + 2 * MS, "x")
            raise RuntimeError("parse failed")
    assert store_files(tmp_path) == before
    assert not (tmp_path / "_staging").exists()
    assert store.coverage("BTCUSDT", "trades").to_list() == [(T0, T0 + MS)]


def test_corrupt_partition_is_named_with_a_repair(tmp_path):
    store = TickStore(tmp_path)
    _write(store, trades([T0], [1], [100.0]))
    part = tmp_path / "trades" / "symbol=BTCUSDT" / "date=2024-08-05" / "part-0.parquet"
    part.write_bytes(b"not parquet at all")
    with pytest.raises(StoreError, match=r"part-0.parquet: corrupt store partition.*remove the partition folder"):
        store.read("trades", "BTCUSDT")
    with pytest.raises(StoreError, match="corrupt store partition"):
        _write(store, trades([T0 + MS], [2], [100.0]))
    assert part.read_bytes() == b"not parquet at all"


def test_unwritable_store_fails_before_anything_changes(tmp_path):
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store folder should be")
    with pytest.raises(StoreError, match="not writable"):
        TickStore(blocker).transaction()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_store_is_refused(tmp_path):
    store = TickStore(tmp_path / "store")
    _write(store, trades([T0], [1], [100.0]))
    for path in [store.root, *store.root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        with pytest.raises(StoreError, match="not writable"):
            store.transaction()
        assert store.read("trades", "BTCUSDT").num_rows == 1   # reading still works
    finally:
        for path in [store.root, *store.root.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


# -- real processes: kills and concurrent writers ------------------------------------------------
WRITER = textwrap.dedent("""
    import sys, time, os
    import numpy as np
    sys.path.insert(0, {repo!r})
    from tests.test_store import trades, T0, MS
    from gpu_lpi.store import TickStore
    import gpu_lpi.store.journal as journal
    import gpu_lpi.store.transaction as transaction
    slow = float(sys.argv[3])

    def slowed(phase, function):
        calls = []
        def run(*args, **kwargs):
            if not calls:
                print(phase, flush=True)
            calls.append(1)
            time.sleep(slow)
            return function(*args, **kwargs)
        return run

    if slow:   # make staging, merging and publishing slow, so that a kill can land in each
        transaction.write_rows = slowed("staging", transaction.write_rows)
        transaction.merge_partition = slowed("merging", transaction.merge_partition)
        journal.os.replace = slowed("publishing", os.replace)
    store = TickStore(sys.argv[1])
    first = int(sys.argv[2])
    print("START", flush=True)
    with store.transaction(on_wait=lambda text: print("WAIT", text, flush=True)) as tx:
        for day in range(4):          # four partitions per table, two tables
            ts = T0 + day * 86_400 * 10**9 + np.arange(first, first + 200) * MS
            tx.write("trades", "BTCUSDT", trades(ts, np.arange(first, first + 200) + day * 10**6,
                                                 np.full(200, 100.0)))
            tx.write("trades", "ETHUSDT", trades(ts, np.arange(first, first + 200) + day * 10**6,
                                                 np.full(200, 10.0)))
            tx.cover("trades", "BTCUSDT", int(ts[0]), int(ts[-1]) + 1, f"writer-{{first}}")
        print("STAGED", flush=True)
""")


def _writer(root, first, slow=0.0):
    script = WRITER.format(repo=str(REPO))
    return subprocess.Popen([sys.executable, "-c", script, str(root), str(first), str(slow)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(store, symbol="BTCUSDT"):
    return sorted(store.read("trades", symbol, columns=["trade_id"]).column("trade_id").to_pylist())


def test_concurrent_writers_lose_nothing(tmp_path):
    store = TickStore(tmp_path)
    writers = [_writer(tmp_path, first) for first in (0, 1_000, 2_000)]
    outputs = [w.communicate(timeout=300) for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0], outputs
    expected = sorted(day * 10**6 + i for first in (0, 1_000, 2_000) for day in range(4)
                      for i in range(first, first + 200))
    assert _rows(store) == expected and _rows(store, "ETHUSDT") == expected
    assert len(store.coverage_table()) == 12
    assert not (tmp_path / "_staging").exists()


def test_a_second_writer_waits_and_says_for_whom(tmp_path):
    store = TickStore(tmp_path)
    slow = _writer(tmp_path, 0, slow=0.3)         # holds the writer lock for a few seconds
    while "STAGED" not in slow.stdout.readline():
        pass
    other = _writer(tmp_path, 5_000)
    out, err = other.communicate(timeout=300)
    slow.communicate(timeout=300)
    assert other.returncode == 0, err
    assert "WAIT waiting for process" in out
    assert len(_rows(store)) == 1_600


@pytest.mark.parametrize("phase, steps, published", [
    ("staging", 3.5, False), ("merging", 0.5, False), ("merging", 6.5, False),
    ("publishing", 0.5, False),    # the first rename is the journal's own
    ("publishing", 1.5, True), ("publishing", 4.5, True)])
def test_kill_at_any_moment_leaves_before_or_after(tmp_path, phase, steps, published):
    """Killed while staging, merging or publishing (each slowed to 0.1 s a file): the store is the
    old or the new one, and the next command completes or undoes the commit and removes the staging
    debris. ``bench/crash_trials.py`` runs many random kill times with the real ``gpu-lpi ingest``."""
    before_store = TickStore(tmp_path / "store")
    _write(before_store, trades([T0], [10**9], [100.0]))
    before = store_files(before_store.root)
    after_root = tmp_path / "reference"
    _write(TickStore(after_root), trades([T0], [10**9], [100.0]))
    reference = _writer(after_root, 0)
    reference.communicate(timeout=300)
    after = store_files(after_root)

    step = 0.1
    victim = _writer(before_store.root, 0, slow=step)
    while victim.stdout.readline().strip() != phase:
        assert victim.poll() is None, victim.stderr.read()
    time.sleep(steps * step)     # kill this many slowed steps into the phase
    victim.kill()
    victim.communicate()
    assert (before_store.root / "_journal.json").exists() == published
    rows = _rows(TickStore(before_store.root))   # any command finishes or undoes what was left
    state = store_files(before_store.root)
    assert state == (after if published else before)
    assert len(rows) == (1 + 800 if published else 1)
    staging = before_store.root / "_staging"
    assert not staging.exists() or not any(staging.iterdir())
    assert not (before_store.root / "_journal.json").exists()


def test_reingested_agg_trade_with_another_price_is_a_reported_conflict(tmp_path):
    """The issue's case: one agg_trade_id re-ingested with a changed price was stored twice."""
    from gpu_lpi.ingest import ingest

    header = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
    rows = [f"{1000 + i},{60000 + i}.5,0.010,{5000 + i},{5000 + i},{1722816000000 + i * 100},false"
            for i in range(50)]
    source = tmp_path / "a" / "BTCUSDT-aggTrades-2024-08-05.csv"
    source.parent.mkdir()
    source.write_text("\n".join([header, *rows]) + "\n")
    store = tmp_path / "store"
    ingest([source], "binance-archive", store)
    rows[7] = rows[7].replace("60007.5", "60107.5")
    changed = tmp_path / "b" / "BTCUSDT-aggTrades-2024-08-05.csv"
    changed.parent.mkdir()
    changed.write_text("\n".join([header, *rows]) + "\n")
    report = ingest([changed], "binance-archive", store)
    assert report.conflicts[("agg_trades", "BTCUSDT")] == 1
    assert "trade_id=1007" in report.conflict_examples[("agg_trades", "BTCUSDT")][0]
    stored = TickStore(store).read("agg_trades", "BTCUSDT")
    assert stored.num_rows == 50
    assert stored.column("price").to_pylist()[7] == 60007.5
    assert "conflicts" in report.summary()


@pytest.mark.realdata
def test_ctrl_c_during_an_ingest_exits_130_and_changes_nothing(real_captures, tmp_path):
    """Also while numba compiles: an interrupt raised inside LLVM's callbacks once crashed the
    process (SIGSEGV); now it waits for the end of the compile."""
    import signal

    store = TickStore(tmp_path / "store")
    _write(store, trades([T0], [10**9], [100.0]))
    before = store_files(store.root)
    for delay in (0.8, 1.5, 4.0):    # a cold compile cache: the first ones land while numba compiles
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / f"cache-{delay}"))
        process = subprocess.Popen([sys.executable, "-m", "gpu_lpi.cli", "ingest", "--format", "binance-ws",
                                    *map(str, real_captures), "--store", str(store.root)], cwd=REPO,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        if process.poll() is not None:
            pytest.skip("the ingest finished before the signal")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=300)
        assert process.returncode == 130, err[-2000:]
        assert store_files(store.root) == before
        staging = store.root / "_staging"
        assert not staging.exists() or not any(staging.iterdir())


def test_a_reader_during_a_publish_sees_one_version(tmp_path):
    """Reads that span two tables while a slow commit publishes its files one by one: every read is
    wholly before or wholly after it, while a plain sequence of reads (in a thread beside) sees a mix."""
    import threading

    store = TickStore(tmp_path)
    _write(store, trades([T0], [10**9], [100.0]))
    writer = _writer(tmp_path, 0, slow=0.1)

    def counts(read):
        return (read("trades", "BTCUSDT", None, None, ["ts"]).num_rows,
                read("trades", "ETHUSDT", None, None, ["ts"]).num_rows)

    plain = set()

    def plain_reads():
        while writer.poll() is None:
            try:
                plain.add(counts(TickStore(tmp_path)._read))
            except StoreError:
                pass     # a file renamed away under the dataset scan

    thread = threading.Thread(target=plain_reads)
    thread.start()
    seen = set()
    while writer.poll() is None:
        seen.add(store.read_consistent(lambda: counts(store._read)))
    thread.join()
    assert writer.returncode == 0, writer.stderr.read()
    seen.add(store.read_consistent(lambda: counts(store._read)))
    assert seen <= {(1, 0), (801, 800)} and (801, 800) in seen
    assert plain - {(1, 0), (801, 800)}, "the slowed publish should have been caught midway"


@pytest.mark.parametrize("damage", ["renamed_ts", "ts_as_timestamp", "no_local_ts", "reversed_rows"])
def test_partitions_rewritten_by_other_tools_are_named_not_misread(tmp_path, damage):
    """The red team's case: a partition rewritten with a renamed ``ts`` gave zero volume on every
    tick (the reader filled the missing column with nulls); rows out of time order gave wrong sums."""
    import pyarrow.compute as pc

    store = TickStore(tmp_path)
    _write(store, trades([T0 + i * MS for i in range(10)], list(range(10)), [100.0] * 10))
    part = tmp_path / "trades" / "symbol=BTCUSDT" / "date=2024-08-05" / "part-0.parquet"
    table = pq.read_table(part)
    if damage == "renamed_ts":
        table = table.rename_columns(["time" if n == "ts" else n for n in table.column_names])
    elif damage == "ts_as_timestamp":
        table = table.set_column(0, "ts", pc.cast(table.column("ts"), pa.timestamp("ns")))
    elif damage == "no_local_ts":
        table = table.drop_columns(["local_ts"])
    else:
        table = table.take(pa.array(np.arange(table.num_rows)[::-1]))
    pq.write_table(table, part)
    message = "not in time order" if damage == "reversed_rows" else "columns missing or of another type"
    with pytest.raises(StoreError, match=f"part-0.parquet: corrupt store partition.*{message}"):
        store.read("trades", "BTCUSDT")
    with pytest.raises(StoreError, match=message):
        list(store.iter_batches("trades", "BTCUSDT", 0, 2**62))
    if damage == "reversed_rows":   # a merge reads by time windows and writes the rows back in order
        _write(store, trades([T0 + 99 * MS], [99], [100.0]))
        assert store.read("trades", "BTCUSDT").column("trade_id").to_pylist() == [*range(10), 99]
        return
    with pytest.raises(StoreError, match=message):
        _write(store, trades([T0 + 99 * MS], [99], [100.0]))


def test_spans_less_than_a_minute_apart_are_one_span():
    """Files of one capture ingested one by one: their spans meet across a short gap."""
    spans = Spans.union([0, 10**9 + 59 * 10**9, 300 * 10**9], [10**9, 200 * 10**9, 301 * 10**9],
                        join_gap_ns=60 * 10**9)
    assert spans.to_list() == [(0, 200 * 10**9), (300 * 10**9, 301 * 10**9)]


def test_changed_reference_data_of_a_stored_symbol_is_refused(tmp_path):
    """The red team's case: a later --symbols-file switching BTCUSDT to contract_size 100 and
    inverse replaced the stored row silently, leaving notionals made two ways in one partition."""
    def symbols(contract_size, inverse):
        return pa.table({"symbol": ["BTCUSDT"], "tick_size": [0.1], "lot_size": [0.001],
                         "contract_size": [contract_size], "is_inverse": [inverse]})

    store = TickStore(tmp_path)
    with store.transaction() as tx:
        tx.write("trades", "BTCUSDT", trades([T0], [1], [100.0]))
        tx.write_symbols(symbols(1.0, False))
    before = store_files(tmp_path)
    with pytest.raises(StoreError, match=r"BTCUSDT is stored with other reference data \(contract_size 1.0 "
                                         r"-> 100.0, is_inverse False -> True\)"):
        with store.transaction() as tx:
            tx.write("trades", "BTCUSDT", trades([T0 + MS], [2], [100.0]))
            tx.write_symbols(symbols(100.0, True))
    assert store_files(tmp_path) == before
    with store.transaction() as tx:      # the same values again are fine
        tx.write("trades", "BTCUSDT", trades([T0 + MS], [2], [100.0]))
        tx.write_symbols(symbols(1.0, False))
    assert store.read("trades", "BTCUSDT").num_rows == 2


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "_version").write_text("banana\n"), "commit counter is damaged"),
    (lambda root: (root / "_journal.json").write_text("{nope"), "commit journal is damaged"),
    (lambda root: (root / "_staging").write_text("x"), "staging folder is not writable"),
    (lambda root: (root / "trades" / "symbol=BTCUSDT" / "date=notadate").mkdir()
     or (root / "trades" / "symbol=BTCUSDT" / "date=notadate" / "part-0.parquet").write_bytes(b""),
     "not a partition of the store"),
])
def test_damaged_bookkeeping_is_a_one_line_error(tmp_path, damage, message):
    """The red team's cases: each of these ended in a traceback."""
    store = TickStore(tmp_path)
    _write(store, trades([T0], [1], [100.0]))
    damage(tmp_path)
    with pytest.raises(StoreError, match=message):
        TickStore(tmp_path).read("trades", "BTCUSDT")
        _write(TickStore(tmp_path), trades([T0 + MS], [2], [100.0]))


def test_an_unwritable_report_folder_stops_the_ingest_before_the_store_changes(tmp_path):
    """The issue's case: an unwritable ``_reports`` gave a traceback after the store had changed."""
    from gpu_lpi.ingest import ingest

    source = tmp_path / "in" / "BTCUSDT-aggTrades-2024-08-05.csv"
    source.parent.mkdir()
    source.write_text("1,60000.5,0.01,1,1,1722816000000,false\n")
    store = tmp_path / "store"
    store.mkdir()
    (store / "_reports").write_text("a file where the report folder should be")
    before = store_files(store)
    with pytest.raises(StoreError, match="report folder is not writable"):
        ingest([source], "binance-archive", store)
    assert store_files(store) == before and not (store / "agg_trades").exists()


MERGE_MEMORY = textwrap.dedent("""
    import resource, sys
    import numpy as np
    sys.path.insert(0, {repo!r})
    import gpu_lpi.store.merge as merge
    from gpu_lpi.store import TickStore
    from tests.test_store import trades, T0
    merge.WINDOW_ROWS = 50_000
    rows = int(sys.argv[2])
    store = TickStore(sys.argv[1])
    with store.transaction() as tx:
        for first in range(0, rows, 250_000):
            ids = np.arange(first, first + 250_000)
            tx.write("trades", "BTCUSDT", trades(T0 + ids * 1000, ids, np.full(ids.size, 100.0)))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**10)
""")


def test_a_merge_does_not_hold_a_whole_partition(tmp_path):
    """The issue's case: the commit merged a whole partition at once (15.7 GB for a full-rate day).
    The memory a commit adds beyond the staging must not grow with the partition: 4 M rows (about
    200 MB as Arrow) add no more than 0.5 M rows plus a margin."""
    script = MERGE_MEMORY.format(repo=str(REPO))
    grown = {}
    for rows in (500_000, 4_000_000):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"s{rows}"), str(rows)], cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        grown[rows] = float(done.stdout.split()[-1])     # MB
    assert grown[4_000_000] < grown[500_000] + 60, grown
