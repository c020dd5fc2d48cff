"""Several connections, cursors and threads on one database in one process; one
version per statement while aliases move; the caller's Python variables in SQL."""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa
import pytest

import dbml

O = "epochs = 2, progress = false, seed = 1"


@pytest.fixture
def path(tmp_path):
    p = str(tmp_path / "shared.duckdb")
    with dbml.connect(p, user="setup") as c:
        c.sql("CREATE TABLE t AS SELECT i AS x, (i * 7) % 10 AS z, i % 2 = 0 AS y FROM range(200) r(i)")
        c.sql(f"TRAIN MODEL m FROM t TARGET y WITH ({O})")
    return p


def test_a_second_connection_and_a_cursor_score_after_the_first(path):
    a = dbml.connect(path)
    b = dbml.connect(path)
    first = a.sql("SELECT PREDICT(m, *) FROM t ORDER BY x").fetchall()
    assert b.sql("SELECT PREDICT(m, *) FROM t ORDER BY x").fetchall() == first
    c = dbml.install(a.duckdb.cursor())
    assert c.sql("SELECT PREDICT(m, *) FROM t ORDER BY x").fetchall() == first
    # a notebook re-running its connect cell
    a.close()
    again = dbml.connect(path)
    assert again.sql("SELECT PREDICT(m, *) FROM t ORDER BY x").fetchall() == first
    b.close(), again.close()


def test_a_dropped_version_stops_scoring_in_every_connection(path):
    a, b = dbml.connect(path), dbml.connect(path)
    a.sql("SELECT PREDICT(m, *) FROM t").fetchall()  # a creates the UDF
    b.sql("SELECT PREDICT(m, *) FROM t").fetchall()  # b finds it
    b.sql("CREATE VIEW scored AS SELECT x, PREDICT(m, *) AS p FROM t")
    b.sql("DROP MODEL m")
    with pytest.raises(dbml.DbmlError, match="model 'm' does not exist"):
        a.sql("SELECT * FROM scored").fetchall()
    a.close(), b.close()


def test_threads_score_train_and_move_aliases_at_once(path):
    errors: list[BaseException] = []
    shared = dbml.connect(path)  # one Connection used from several threads

    def guard(work):
        def run():
            try:
                work()
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        return threading.Thread(target=run)

    def scorer(con):
        def work():
            for _ in range(6):
                rows = con.sql("SELECT PREDICT(m, *) AS p, PREDICT_PROBA(m, *).\"true\" AS q FROM t").fetchall()
                assert len(rows) == 200

        return work

    def trainer():
        with dbml.connect(path, user="trainer") as con:
            for _ in range(2):
                con.sql(f"TRAIN MODEL m FROM t TARGET y WITH ({O})")

    def mover():
        for k in range(8):
            shared.sql("ALTER MODEL m SET ALIAS staging = 1" if k % 2 == 0 else "ALTER MODEL m UNSET ALIAS staging")

    own = [dbml.connect(path) for _ in range(2)]
    threads = [guard(scorer(c)) for c in own] + [guard(scorer(shared)) for _ in range(2)] + [guard(trainer), guard(mover)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=240)
    assert not any(th.is_alive() for th in threads)
    assert errors == []
    versions = shared.sql("SELECT list(version ORDER BY version) FROM dbml.model_versions WHERE model = 'm'").fetchall()
    assert versions == [([1, 2, 3],)]
    for c in own:
        c.close()
    shared.close()


def test_one_statement_scores_with_one_version_while_the_alias_moves(path):
    with dbml.connect(path) as setup:
        # version 2 learns the opposite label, so a mix of versions shows in one row
        setup.sql("TRAIN MODEL m FROM (SELECT x, z, NOT y AS y FROM t) TARGET y WITH (epochs = 30, progress = false, seed = 1)")
        v1 = setup.sql("SELECT PREDICT('m:1', *) FROM t ORDER BY x").fetchall()
        v2 = setup.sql("SELECT PREDICT('m:2', *) FROM t ORDER BY x").fetchall()
        assert sum(a != b for a, b in zip(v1, v2)) > 100  # the versions disagree on most rows
    stop = threading.Event()

    def mover():
        with dbml.connect(path) as con:
            k = 0
            while not stop.is_set():
                con.set_alias("m", "default", 1 + k % 2)
                k += 1

    th = threading.Thread(target=mover)
    th.start()
    mixed = 0
    try:
        with dbml.connect(path) as con:
            for _ in range(25):
                rows = con.sql("SELECT PREDICT(m, *) = PREDICT(m, *) AS same FROM t").fetchall()
                mixed += sum(1 for (same,) in rows if not same)
    finally:
        stop.set()
        th.join()
    assert mixed == 0


class Notebook:
    """A caller whose own names (self, con) must not leak into SQL, while its data does."""

    def __init__(self, con):
        self.con = con

    def run(self):
        frame = pa.table({"x": [1.0, 2.0, 3.0, 4.0] * 20, "z": [0, 1, 0, 1] * 20, "y": [True, False] * 40})
        total = self.con.sql("SELECT sum(x) FROM frame").fetchall()
        self.con.sql("TRAIN MODEL nb FROM frame TARGET y WITH (epochs = 1, progress = false)")
        scored = self.con.sql("SELECT count(PREDICT(nb, *)) FROM frame").fetchall()
        via_twin = self.con.train("nb2", "frame", target="y", epochs=1, progress=False).fetchall()
        return total, scored, via_twin


def test_sql_sees_the_callers_python_variables_and_not_dbmls(con):
    total, scored, via_twin = Notebook(con).run()
    assert total == [(200.0,)] and scored == [(80,)] and via_twin[0][2] == "trained"
    with pytest.raises(duckdb.CatalogException, match="self"):
        con.sql("SELECT * FROM self")  # dbml's own `self` is never scanned
    data = pa.table({"a": [1, 2, 3]})
    assert con.sql("SELECT sum(a) FROM data").fetchall() == [(6,)]
    assert con.execute("SELECT sum(a) FROM data WHERE a > ?", [1]).fetchall() == [(5,)]
    assert con.sql("CREATE TABLE kept AS SELECT * FROM data; SELECT count(*) FROM kept").fetchall() == [(3,)]


def test_a_file_open_in_another_process_is_a_dbml_error(tmp_path):
    import subprocess
    import sys
    import textwrap

    p = str(tmp_path / "locked.duckdb")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({p!r}); con.sql("CREATE TABLE t(a INT)")
            print("ready", flush=True); sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(dbml.DbmlError, match=r"is open in process \d+.*read_only=True"):
            dbml.connect(p)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_transactions_opened_before_the_functions_existed(path):
    import subprocess
    import sys
    import textwrap

    with dbml.connect(path) as c:
        c.sql("CREATE VIEW v AS SELECT PREDICT(m, *) AS p FROM t")
    child = textwrap.dedent(f"""
        import dbml
        c = dbml.connect({path!r})
        c.sql("BEGIN")
        try:
            c.sql("SELECT count(*) FROM v").fetchall()
        except dbml.DbmlError as err:
            print("view:", "COMMIT or ROLLBACK" in str(err))
        for _ in range(3):
            assert len(c.sql("SELECT PREDICT(m, *) FROM t").fetchall()) == 200
        names = c.sql("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'dbml_predict%'").fetchall()
        print("private:", names[0][0])
        try:
            c.sql("CREATE VIEW w AS SELECT PREDICT(m, *) AS p FROM t")
        except dbml.DbmlError as err:
            print("create:", "after COMMIT or ROLLBACK" in str(err))
        c.sql("ROLLBACK")
        print("after:", c.sql("SELECT count(*) FROM v").fetchall()[0][0])
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert out.stdout.split("\n")[:4] == ["view: True", "private: 1", "create: True", "after: 200"], out.stderr


def test_a_callback_inside_train_sees_its_own_variables(con):
    from dbml.training import Callback

    other = dbml.connect()
    seen = []

    class Peek(Callback):
        def on_epoch_end(self, log):
            piece = pa.table({"k": [1, 2, 3]})  # noqa: F841 - read by name in SQL
            seen.append(other.sql("SELECT sum(k) FROM piece").fetchall())

    frame = pa.table({"x": [1.0, 2.0, 3.0, 4.0] * 10, "y": [True, False] * 20})  # noqa: F841
    con.train("cb", "frame", target="y", epochs=2, progress=False, callbacks=[Peek()])
    assert seen == [[(6,)], [(6,)]]
    assert con.sql("SELECT count(*) FROM frame").fetchall() == [(40,)]
    other.close()
