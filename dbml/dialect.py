"""The dbml SQL dialect: DuckDB's, plus the ML statements and the scoring functions.

Each ML statement is an expression class, a branch of ``_parse_statement`` and a
generator entry, so a new statement is four small pieces. The scoring functions
(``PREDICT``, ``PREDICT_PROBA``, ``EMBED``, ...) are made from the table
:data:`dbml.outputs.OUTPUTS`: one expression class each, all parsed and generated
alike, so a new function is a new row there. Plain SQL never goes through this
module's generator: :mod:`dbml.script` hands it to DuckDB as typed.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from dbml.errors import DbmlSyntaxError, OptionError
from dbml.outputs import OUTPUTS

__all__ = [
    "Dbml",
    "TrainModel",
    "ShowModels",
    "DescribeModel",
    "DropModel",
    "EvaluateModel",
    "ExplainModel",
    "MonitorModel",
    "ForecastModel",
    "AlterModel",
    "ExportModel",
    "ExportModelCard",
    "ImportModel",
    "ScoringFunction",
    "PREDICT_FUNCTIONS",
    "parse_statement",
    "option_value",
]


class TrainModel(exp.Expression):
    """``TRAIN MODEL [IF NOT EXISTS] m [USING arch] FROM src [TARGET a, b] [WITH (k = v)]``.

    ``source`` is a Table, a string Literal (a file path) or a Subquery; ``source_sql``
    keeps the user's own text of a subquery, untouched.
    """

    arg_types = {
        "this": True,
        "exists": False,
        "using": False,
        "source": True,
        "source_sql": False,
        "targets": False,
        "options": False,
    }


class ShowModels(exp.Expression):
    """``SHOW MODELS``."""

    arg_types: dict[str, bool] = {}


class DescribeModel(exp.Expression):
    """``DESCRIBE MODEL m``."""

    arg_types = {"this": True}


class DropModel(exp.Expression):
    """``DROP MODEL [IF EXISTS] m [VERSION n]``."""

    arg_types = {"this": True, "exists": False, "version": False}


class EvaluateModel(exp.Expression):
    """``EVALUATE MODEL m [VERSION n] ON <table | 'file' | (query)> [WITH (by = col, confusion = true)]``."""

    arg_types = {"this": True, "version": False, "source": True, "source_sql": False, "options": False}


class ExplainModel(exp.Expression):
    """``EXPLAIN MODEL m [VERSION n] ON <source> [WITH (repeats = 5, seed = 0)]``: permutation importance."""

    arg_types = {"this": True, "version": False, "source": True, "source_sql": False, "options": False}


class ForecastModel(exp.Expression):
    """``FORECAST MODEL m [VERSION n] HORIZON h [FROM <source>] [WITH (confidence = 0.9)]``:
    the next h values of each series, with an interval."""

    arg_types = {"this": True, "version": False, "horizon": True, "source": False, "source_sql": False, "options": False}


class MonitorModel(exp.Expression):
    """``MONITOR MODEL m [VERSION n] ON <source> [WITH (threshold = 0.2)]``: drift against training."""

    arg_types = {"this": True, "version": False, "source": True, "source_sql": False, "options": False}


class AlterModel(exp.Expression):
    """``ALTER MODEL m SET ALIAS a = n`` (version None: ``UNSET ALIAS a``)."""

    arg_types = {"this": True, "alias": True, "version": False}


class ExportModel(exp.Expression):
    """``EXPORT MODEL m [VERSION n] TO 'url'``."""

    arg_types = {"this": True, "version": False, "url": True}


class ExportModelCard(exp.Expression):
    """``EXPORT MODEL CARD m [VERSION n] TO 'url'``: the version's HTML model card.
    (``EXPORT MODEL card TO 'url'`` still exports a model named card.)"""

    arg_types = {"this": True, "version": False, "url": True}


class ImportModel(exp.Expression):
    """``IMPORT MODEL m FROM 'url' [WITH (...)]``."""

    arg_types = {"this": True, "url": True, "options": False}


class ScoringFunction(exp.Expression, exp.Func):
    """A call of one scoring function: ``NAME(model, *)`` or ``NAME(model, col, ...)``,
    where an argument may carry the feature name it stands for (``x + 1 AS age``).
    Each row of :data:`dbml.outputs.OUTPUTS` has its own subclass."""

    arg_types = {"this": True, "expressions": False}
    is_var_len_args = True


def _class_name(function: str) -> str:
    """``PREDICT_PROBA`` -> ``PredictProba``."""
    return "".join(word.capitalize() for word in function.split("_"))


# {SQL name: expression class} over the whole table: Predict, PredictProba, Embed,
# AnomalyScore, IsAnomaly (each importable from this module by that name).
PREDICT_FUNCTIONS: dict[str, type[ScoringFunction]] = {
    o.function: type(
        _class_name(o.function),
        (ScoringFunction,),
        {"__doc__": f"``{o.function}(model, ...)``: {o.description}.", "__module__": __name__, "_sql_names": [o.function]},
    )
    for o in OUTPUTS
}
globals().update({cls.__name__: cls for cls in PREDICT_FUNCTIONS.values()})
__all__ += [cls.__name__ for cls in PREDICT_FUNCTIONS.values()]

# Statement heads that mark a statement as dbml's own; everything else goes to DuckDB.
ML_STATEMENT_HEADS = (
    ("TRAIN", "MODEL"), ("SHOW", "MODELS"), ("DESCRIBE", "MODEL"), ("DROP", "MODEL"),
    ("EVALUATE", "MODEL"), ("ALTER", "MODEL"), ("EXPORT", "MODEL"), ("IMPORT", "MODEL"),
    ("EXPLAIN", "MODEL"), ("MONITOR", "MODEL"),
)  # fmt: skip


def _build_predict(cls: type[ScoringFunction]):
    def build(args: list[exp.Expression]) -> ScoringFunction:
        if not args:
            raise ParseError(f"{cls.sql_name()} needs a model as its first argument")
        return cls(this=args[0], expressions=args[1:])

    return build


class DbmlParser(DuckDB.Parser):
    FUNCTIONS = {
        **{k: v for k, v in DuckDB.Parser.FUNCTIONS.items() if k not in PREDICT_FUNCTIONS},
        **{name: _build_predict(cls) for name, cls in PREDICT_FUNCTIONS.items()},
    }
    # PREDICT(m, x + 1 AS age), EMBED(m, ...): an argument may carry the feature name it stands for.
    FUNCTIONS_WITH_ALIASED_ARGS = {*DuckDB.Parser.FUNCTIONS_WITH_ALIASED_ARGS, *PREDICT_FUNCTIONS}

    def _parse_statement(self) -> exp.Expression | None:
        if not self._curr:
            return None
        if self._match_text_seq("TRAIN", "MODEL"):
            return self._parse_train_model()
        if self._match_text_seq("SHOW", "MODELS"):
            return self.expression(ShowModels())
        if self._match_text_seq("DESCRIBE", "MODEL"):
            return self.expression(DescribeModel(this=self._parse_model_name()))
        if self._match_text_seq("DROP", "MODEL"):
            exists = self._match_text_seq("IF", "EXISTS")
            name = self._parse_model_name()
            return self._finish(DropModel(this=name, exists=exists, version=self._parse_version()))
        for head, node_class in (("EVALUATE", EvaluateModel), ("EXPLAIN", ExplainModel), ("MONITOR", MonitorModel)):
            if self._match_text_seq(head, "MODEL"):
                name = self._parse_model_name()
                version = self._parse_version()
                if not self._match(TokenType.ON):
                    self.raise_error("Expected ON (query) after the model")
                source, source_sql = self._parse_train_source()
                options = self._parse_wrapped_csv(self._parse_train_option) if self._match(TokenType.WITH) else []
                return self._finish(node_class(this=name, version=version, source=source, source_sql=source_sql, options=options))
        if self._match_text_seq("FORECAST", "MODEL"):
            name = self._parse_model_name()
            version = self._parse_version()
            if not self._match_text_seq("HORIZON") or not self._match(TokenType.NUMBER):
                self.raise_error("Expected HORIZON and a whole number of steps after the model")
            if not self._prev.text.isdigit():
                self.raise_error(f"HORIZON must be a whole number of steps, got {self._prev.text}")
            horizon = exp.Literal.number(self._prev.text)
            source = source_sql = None
            if self._match(TokenType.FROM):
                source, source_sql = self._parse_train_source()
            options = self._parse_wrapped_csv(self._parse_train_option) if self._match(TokenType.WITH) else []
            return self._finish(ForecastModel(this=name, version=version, horizon=horizon, source=source,
                                              source_sql=source_sql, options=options))  # fmt: skip
        if self._match_text_seq("ALTER", "MODEL"):
            name = self._parse_model_name()
            if self._match_text_seq("SET", "ALIAS"):
                alias = self._parse_id_var(any_token=False)
                if alias is None or not self._match(TokenType.EQ):
                    self.raise_error("Expected SET ALIAS name = version")
                version = self._parse_version(required=True)
                return self._finish(AlterModel(this=name, alias=alias, version=version))
            if self._match_text_seq("UNSET", "ALIAS"):
                alias = self._parse_id_var(any_token=False)
                if alias is None:
                    self.raise_error("Expected an alias name after UNSET ALIAS")
                return self._finish(AlterModel(this=name, alias=alias))
            self.raise_error("Expected SET ALIAS or UNSET ALIAS")
        if self._match_text_seq("EXPORT", "MODEL"):
            node_class = ExportModel
            if self._curr and self._curr.text.upper() == "CARD" and self._next and self._next.text.upper() not in ("TO", "VERSION"):
                self._advance()  # CARD followed by a name: the model card, not a model named card
                node_class = ExportModelCard
            name = self._parse_model_name()
            version = self._parse_version()
            if not self._match_text_seq("TO") or not self._match(TokenType.STRING):
                self.raise_error("Expected TO 'url' after the model")
            return self._finish(node_class(this=name, version=version, url=exp.Literal.string(self._prev.text)))
        if self._match_text_seq("IMPORT", "MODEL"):
            name = self._parse_model_name()
            if not self._match(TokenType.FROM) or not self._match(TokenType.STRING):
                self.raise_error("Expected FROM 'url' after the model name")
            url = exp.Literal.string(self._prev.text)
            options = self._parse_wrapped_csv(self._parse_train_option) if self._match(TokenType.WITH) else []
            return self._finish(ImportModel(this=name, url=url, options=options))
        return super()._parse_statement()

    def _parse_version(self, required: bool = False) -> exp.Literal | None:
        """``VERSION n`` (or a bare number when ``required``, as in SET ALIAS a = 3)."""
        if not required and not self._match_text_seq("VERSION"):
            return None
        if not self._match(TokenType.NUMBER) or not self._prev.text.isdigit():
            self.raise_error("Expected a whole version number" + ("" if required else " after VERSION"))
        return exp.Literal.number(self._prev.text)

    def _finish(self, node: exp.Expression) -> exp.Expression:
        if self._curr:
            self.raise_error(f"Unexpected '{self._curr.text}'")
        return self.expression(node)

    def _parse_model_name(self) -> exp.Identifier:
        if not self._curr or self._curr.token_type not in (TokenType.VAR, TokenType.IDENTIFIER, *self.ID_VAR_TOKENS):
            self.raise_error("Expected a model name")
        name = self._parse_id_var(any_token=False)
        if name is None:
            self.raise_error("Expected a model name")
        return name

    def _parse_train_model(self) -> TrainModel:
        exists = self._match_text_seq("IF", "NOT", "EXISTS")
        name = self._parse_model_name()
        using = None
        if self._match(TokenType.USING):
            using = self._parse_id_var(any_token=True)
            if using is None:
                self.raise_error("Expected an architecture name after USING")
        if not self._match(TokenType.FROM):
            self.raise_error("Expected FROM after the model name")
        source, source_sql = self._parse_train_source()
        targets = []
        if self._match_text_seq("TARGET"):
            targets = self._parse_csv(lambda: self._parse_id_var(any_token=False))
            if not targets or any(t is None for t in targets):
                self.raise_error("Expected a column name after TARGET")
        options = []
        if self._match(TokenType.WITH):
            options = self._parse_wrapped_csv(self._parse_train_option)
        if self._curr:
            self.raise_error(f"Unexpected '{self._curr.text}' in TRAIN MODEL")
        return self.expression(
            TrainModel(
                this=name,
                exists=exists,
                using=using,
                source=source,
                source_sql=source_sql,
                targets=targets,
                options=options,
            )
        )

    def _parse_train_source(self) -> tuple[exp.Expression, str | None]:
        if self._match(TokenType.L_PAREN):
            start: Token = self._curr
            query = self._parse_select(nested=True) if self._curr else None
            if query is None:
                self.raise_error("Expected a query inside the parentheses after FROM")
            end: Token = self._curr
            self._match_r_paren()
            text = self.sql[start.start : end.start].strip() if end else self.sql[start.start :].strip()
            return exp.Subquery(this=query), text
        if self._match(TokenType.STRING):
            return exp.Literal.string(self._prev.text), None
        if not self._curr:
            self.raise_error("Expected a table, a view, a quoted file path or (SELECT ...) after FROM")
        table = self._parse_table_parts()
        if table is None or not table.name:
            self.raise_error("Expected a table, a view, a quoted file path or (SELECT ...) after FROM")
        return table, None

    def _parse_train_option(self) -> exp.EQ:
        key = self._parse_id_var(any_token=True)
        if key is None:
            self.raise_error("Expected an option name")
        if not self._match(TokenType.EQ):
            self.raise_error(f"Expected '=' after option {key.name}")
        value = self._parse_bitwise()
        if value is None:
            self.raise_error(f"Expected a value for option {key.name}")
        return exp.EQ(this=key, expression=value)


def _name(expr: exp.Expression | None) -> str:
    return expr.sql(dialect="duckdb") if expr is not None else ""


class DbmlGenerator(DuckDB.Generator):
    TRANSFORMS = {
        **DuckDB.Generator.TRANSFORMS,
        **{cls: lambda self, e: self.func(e.sql_name(), e.this, *e.expressions) for cls in PREDICT_FUNCTIONS.values()},
        ShowModels: lambda self, e: "SHOW MODELS",
        DescribeModel: lambda self, e: f"DESCRIBE MODEL {_name(e.this)}",
        DropModel: lambda self, e: "DROP MODEL "
        + ("IF EXISTS " if e.args.get("exists") else "")
        + _name(e.this)
        + (f" VERSION {e.args['version'].name}" if e.args.get("version") else ""),
        TrainModel: lambda self, e: _train_sql(self, e),
        EvaluateModel: lambda self, e: f"EVALUATE MODEL {_name(e.this)}{_version_sql(e)} ON ({e.args.get('source_sql') or self.sql(e.args['source'])})",
        AlterModel: lambda self, e: f"ALTER MODEL {_name(e.this)} "
        + (f"SET ALIAS {_name(e.args['alias'])} = {e.args['version'].name}" if e.args.get("version") else f"UNSET ALIAS {_name(e.args['alias'])}"),
        ExportModel: lambda self, e: f"EXPORT MODEL {_name(e.this)}{_version_sql(e)} TO {self.sql(e.args['url'])}",
        ExportModelCard: lambda self, e: f"EXPORT MODEL CARD {_name(e.this)}{_version_sql(e)} TO {self.sql(e.args['url'])}",
        ImportModel: lambda self, e: f"IMPORT MODEL {_name(e.this)} FROM {self.sql(e.args['url'])}",
        ForecastModel: lambda self, e: f"FORECAST MODEL {_name(e.this)}{_version_sql(e)} HORIZON {e.args['horizon'].name}"
        + (f" FROM ({e.args.get('source_sql') or self.sql(e.args['source'])})" if e.args.get("source") else ""),
    }


def _version_sql(e: exp.Expression) -> str:
    return f" VERSION {e.args['version'].name}" if e.args.get("version") else ""


def _train_sql(gen: DbmlGenerator, e: TrainModel) -> str:
    parts = ["TRAIN MODEL"]
    if e.args.get("exists"):
        parts.append("IF NOT EXISTS")
    parts.append(gen.sql(e.this))
    if e.args.get("using"):
        parts.append(f"USING {gen.sql(e.args['using'])}")
    source = e.args["source"]
    if isinstance(source, exp.Subquery) and e.args.get("source_sql"):
        parts.append(f"FROM ({e.args['source_sql']})")
    else:
        parts.append(f"FROM {gen.sql(source)}")
    if e.args.get("targets"):
        parts.append("TARGET " + ", ".join(gen.sql(t) for t in e.args["targets"]))
    if e.args.get("options"):
        parts.append("WITH (" + ", ".join(f"{gen.sql(o.this)} = {gen.sql(o.expression)}" for o in e.args["options"]) + ")")
    return " ".join(parts)


class Dbml(DuckDB):
    """DuckDB's dialect with dbml's statements and functions."""

    class Tokenizer(DuckDB.Tokenizer):
        # DuckDB's tokenizer swallows everything after EXPLAIN as one string; dbml reads
        # the tokens (EXPLAIN MODEL, and PREDICT inside EXPLAIN SELECT ...).
        KEYWORDS = {**DuckDB.Tokenizer.KEYWORDS, "EXPLAIN": TokenType.VAR}

    Parser = DbmlParser
    Generator = DbmlGenerator


_DIALECT = Dbml()


def _syntax_error(err: ParseError | TokenError, sql: str) -> DbmlSyntaxError:
    info: dict[str, Any] = (getattr(err, "errors", None) or [{}])[0]
    line, col = info.get("line"), info.get("col")
    token = info.get("highlight")
    if col is not None and token:
        col = col - len(token) + 1  # sqlglot points at the token's last character
    desc = info.get("description") or str(err).split("\n")[0]
    where = f" at line {line}, column {col}" if line is not None else ""
    near = f" near '{token}'" if token else ""
    return DbmlSyntaxError(f"syntax error{where}{near}: {desc}", line=line, col=col, token=token)


def parse_statement(sql: str) -> exp.Expression:
    """Parse one statement with the dbml dialect.

    Raises:
        DbmlSyntaxError: naming the offending token and its line and column.
    """
    try:
        statements = _DIALECT.parse(sql)
    except (ParseError, TokenError) as err:
        raise _syntax_error(err, sql) from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise DbmlSyntaxError(f"expected one statement, got {len(statements)}")
    return statements[0]


def option_value(name: str, value: exp.Expression) -> Any:
    """Turn an option's SQL literal (number, string, boolean, NULL, list) into Python."""
    if isinstance(value, exp.Paren):
        return option_value(name, value.this)
    if isinstance(value, exp.Neg):
        inner = option_value(name, value.this)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner
    elif isinstance(value, exp.Boolean):
        return bool(value.this)
    elif isinstance(value, exp.Null):
        return None
    elif isinstance(value, exp.Literal):
        if value.is_string:
            return value.this
        text = value.this
        try:
            return int(text)
        except ValueError:
            return float(text)
    elif isinstance(value, exp.Array):
        return [option_value(name, v) for v in value.expressions]
    elif isinstance(value, (exp.Column, exp.Identifier)) and value.name.lower() in ("true", "false"):
        return value.name.lower() == "true"
    elif isinstance(value, exp.Column) and not value.table:
        return value.name  # a bare name, such as a column in WITH (by = region)
    raise OptionError(
        f"option '{name}' has value {value.sql(dialect='duckdb')!r}, which is not a number, "
        "string, boolean or [list]"
    )
