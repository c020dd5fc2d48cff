"""The statements table: every head, parser, node, handler and twin in one place, a
statement registered from outside the package, DROP's rule for deployed versions, and
what a misspelt head gets."""

from __future__ import annotations

import pytest

import dbml
from dbml import statements
from dbml.errors import DbmlError, DbmlSyntaxError
from dbml.script import split_script


def test_every_statement_is_one_row_with_its_pieces():
    assert set(statements.STATEMENTS) == {"train", "evaluate", "explain", "monitor", "forecast", "show", "describe",
                                          "drop", "alter", "export", "card", "import", "recommend"}  # fmt: skip
    for s in statements.STATEMENTS.values():
        assert issubclass(s.node, statements.MLStatement) and s.run and s.parse and s.generate and s.twins, s.name
        for name in s.twins:
            assert callable(getattr(dbml.Connection, name)), name
    # the splitter, the dialect and the shell all read the table
    assert {" ".join(h) for h in statements.heads()} >= {"FORECAST MODEL", "EXPORT MODEL CARD", "SHOW MODELS"}
    assert {"HORIZON", "CASCADE", "FORECAST MODEL"} <= statements.keywords()


def test_twins_keep_their_documented_signatures():
    import inspect

    assert list(inspect.signature(dbml.Connection.train).parameters)[:4] == ["self", "model", "source", "target"]
    assert list(inspect.signature(dbml.Connection.forecast).parameters)[:4] == ["self", "model", "horizon", "source"]
    assert "TRAIN MODEL" in dbml.Connection.train.__doc__


class _Ping(statements.MLStatement):
    arg_types = {"this": True, "times": False}


def _ping_parse(r):
    name = r.model_name()
    times = r.number("Expected TIMES n", "TIMES must be a whole number") if r.match("TIMES") else None
    return r.finish(_Ping(this=name, times=times))


def _ping(ctx, model: str, times: int = 1):
    """``PING MODEL m [TIMES n]``: the model's latest version, n times."""
    rec = ctx.registry.get(model)
    return statements.rows_relation(ctx.db(), [{"model": rec["model"], "version": rec["version"], "k": k} for k in range(times)])


PING = statements.Statement(
    name="ping", head=("PING", "MODEL"), node=_Ping, parse=_ping_parse,
    generate=lambda gen, e: f"PING MODEL {gen.sql(e.this)}" + (f" TIMES {e.args['times'].name}" if e.args.get("times") else ""),
    run=lambda ctx, node: _ping(ctx, node.this.name, int(node.args["times"].name) if node.args.get("times") else 1),
    twins={"ping": _ping}, returns_rows=True, keywords=("TIMES",), summary="a test statement",
)  # fmt: skip


@pytest.fixture
def ping():
    statements.register(PING)
    yield PING
    if "ping" in statements.STATEMENTS:
        statements.unregister("ping")
    assert not hasattr(dbml.Connection, "ping")


def test_a_statement_registered_from_outside_parses_runs_composes_and_has_a_twin(con, ping):
    from dbml.dialect import Dbml, parse_statement

    con.sql("CREATE TABLE t AS SELECT i::DOUBLE AS x, i % 2 = 0 AS y FROM range(60) r(i)")
    con.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1)")
    assert split_script("PING MODEL m TIMES 3")[0].kind == "ml"
    assert parse_statement("ping model m times 2").sql(dialect=Dbml) == "PING MODEL m TIMES 2"
    assert con.sql("PING MODEL m TIMES 3").fetchall() == [("m", 1, 0), ("m", 1, 1), ("m", 1, 2)]
    assert con.sql("SELECT sum(k) FROM (PING MODEL m TIMES 4)").fetchall() == [(6,)]
    assert con.ping("m", times=2).fetchall() == [("m", 1, 0), ("m", 1, 1)]
    with pytest.raises(DbmlSyntaxError, match="TIMES must be a whole number, got 1.5"):
        con.sql("PING MODEL m TIMES 1.5")
    from dbml.integrations.shell import keywords

    assert "PING MODEL" in keywords() and "TIMES" in keywords()


def test_register_refuses_a_taken_head(ping):
    with pytest.raises(DbmlError, match="registered already"):
        statements.register(ping)
    clash = statements.Statement(**{**ping.__dict__, "name": "other"})
    with pytest.raises(DbmlError, match="registered already"):
        statements.register(clash)


def test_drop_model_refuses_a_deployed_model_naming_its_aliases_and_cascade_drops_them(con):
    con.sql("CREATE TABLE t AS SELECT i::DOUBLE AS x, i % 2 = 0 AS y FROM range(60) r(i)")
    con.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1)")
    con.sql("TRAIN MODEL m FROM t TARGET y WITH (epochs = 1)")
    con.sql("ALTER MODEL m SET ALIAS production = 1")
    with pytest.raises(DbmlError, match=r"model 'm' is deployed under alias production \(version 1\).*DROP MODEL m CASCADE"):
        con.sql("DROP MODEL m")
    with pytest.raises(DbmlError, match=r"version 1 is deployed under alias production.*VERSION 1 CASCADE"):
        con.drop_model("m", version=1)
    assert con.sql("SELECT count(*) FROM (DESCRIBE MODEL m)").fetchall() == [(2,)]  # nothing dropped
    assert con.sql("DROP MODEL m VERSION 2").fetchall() == [("m", 2, "dropped")]  # not deployed: no CASCADE needed
    assert con.sql("DROP MODEL m CASCADE").fetchall() == [("m", 1, "dropped")]
    detail = con.duckdb.sql("SELECT detail FROM dbml.audit_log WHERE action = 'DROP' ORDER BY logged_at DESC LIMIT 1")
    import json

    assert json.loads(detail.fetchall()[0][0]) == {"versions": [1], "aliases": {"production": 1}}
    assert con.duckdb.sql("SELECT count(*) FROM dbml.aliases").fetchall() == [(0,)]


@pytest.mark.parametrize(
    "sql, hint",
    [
        ("TRAIN MODLE t2 FROM t TARGET y", "did you mean TRAIN MODEL?"),
        ("TRIAN MODEL t2 FROM t TARGET y", "did you mean TRAIN MODEL?"),
        ("SHOW MODEL", "did you mean SHOW MODELS?"),
        ("DESCRIBE MODEL", "DESCRIBE MODEL needs a model name"),
        ("FORECAST MODELS f HORIZON 3", "did you mean FORECAST MODEL?"),
        ("EVALUATE MDOEL m ON t", "did you mean EVALUATE MODEL?"),
    ],
)
def test_a_misspelt_head_says_what_was_meant(con, sql, hint):
    with pytest.raises(DbmlSyntaxError) as err:
        con.sql(sql)
    assert hint in str(err.value) and "DuckDB said:" in str(err.value)


def test_plain_sql_errors_stay_duckdbs(con):
    import duckdb

    with pytest.raises(duckdb.CatalogException, match="nosuch"):
        con.sql("SELECT * FROM nosuch")
    with pytest.raises(duckdb.ParserException):
        con.sql("SELEC 1")


def test_register_refuses_what_would_take_from_duckdb_or_from_another_statement_and_changes_nothing(ping):
    before = dict(statements.STATEMENTS)
    grab = statements.Statement(**{**ping.__dict__, "name": "grab", "head": ("SELECT", "X"), "twins": {}})
    with pytest.raises(DbmlError, match="starts DuckDB's own statements: a head starting with SELECT goes on with MODEL"):
        statements.register(grab)
    steal = statements.Statement(**{**ping.__dict__, "name": "steal", "head": ("STEAL", "MODEL"), "twins": {"evaluate": ping.twins["ping"]}})
    with pytest.raises(DbmlError, match="twin named 'evaluate', which is statement 'evaluate''s twin already"):
        statements.register(steal)
    method = statements.Statement(**{**ping.__dict__, "name": "m2", "head": ("M2", "MODEL"), "twins": {"close": ping.twins["ping"]}})
    with pytest.raises(DbmlError, match="twin named 'close', which is a method of Connection already"):
        statements.register(method)
    assert statements.STATEMENTS == before and "steal" not in statements.STATEMENTS
    assert dbml.Connection.evaluate.__name__ == "evaluate" and "EVALUATE MODEL" in dbml.Connection.evaluate.__doc__


def test_replace_and_unregister_take_the_old_row_and_its_twins_away(con, ping):
    again = statements.Statement(**{**ping.__dict__, "name": "ping2", "twins": {"ping2": ping.twins["ping"]}})
    statements.register(again, replace=True)  # same head: the old row and its twin go
    assert "ping" not in statements.STATEMENTS and not hasattr(dbml.Connection, "ping") and hasattr(dbml.Connection, "ping2")
    statements.unregister("ping2")
    assert not hasattr(dbml.Connection, "ping2") and ("PING", "MODEL") not in statements.heads()
    with pytest.raises(DbmlError, match="no statement is registered as 'ping2'"):
        statements.unregister("ping2")


def test_a_broken_entry_point_is_skipped_with_a_warning(monkeypatch):
    from importlib.metadata import EntryPoint

    from dbml import plugins

    broken = EntryPoint(name="broken", value="no_such_module_dbml:THING", group="dbml.statements")
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken] if group == "dbml.statements" else [])
    with pytest.warns(UserWarning, match="the dbml.statements entry point 'broken' .* was not loaded: ModuleNotFoundError"):
        plugins.load_entry_points("dbml.statements", statements.STATEMENTS, statements.register)
    assert "broken" not in statements.STATEMENTS
