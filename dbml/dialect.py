"""The dbml SQL dialect: DuckDB's, plus the ML statements and the scoring functions.

The ML statements come from the statements table (:data:`dbml.statements.STATEMENTS`):
the parser tries each row's head keywords and hands the rest of the text to the row's
``parse`` (through :class:`_Reader`), and the generator prints a statement's node with
its row's ``generate``, so a statement registered later parses and prints alike. The scoring functions
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

from dbml.errors import DbmlSyntaxError
from dbml.outputs import OUTPUTS
from dbml.statements import STATEMENTS, MLStatement, by_head, option_value
from dbml.statements.alter import AlterModel
from dbml.statements.card import ExportModelCard
from dbml.statements.describe import DescribeModel
from dbml.statements.drop import DropModel
from dbml.statements.evaluate import EvaluateModel
from dbml.statements.explain import ExplainModel
from dbml.statements.export import ExportModel
from dbml.statements.forecast import ForecastModel
from dbml.statements.import_ import ImportModel
from dbml.statements.monitor import MonitorModel
from dbml.statements.show import ShowModels
from dbml.statements.train import TrainModel

__all__ = [
    "Dbml", "ScoringFunction", "PREDICT_FUNCTIONS", "parse_statement", "option_value",
    "TrainModel", "ShowModels", "DescribeModel", "DropModel", "EvaluateModel", "ExplainModel", "MonitorModel",
    "ForecastModel", "AlterModel", "ExportModel", "ExportModelCard", "ImportModel",
]  # fmt: skip


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
        for statement in by_head():
            start = self._index
            if not self._match_text_seq(*statement.head):
                continue
            reader = _Reader(self, statement.head)
            if statement.guard is not None and not statement.guard(reader):
                self._retreat(start)
                continue
            return statement.parse(reader)
        return super()._parse_statement()


class _Reader:
    """The parser as a statement's ``parse`` sees it (:class:`dbml.statements.base.Reader`)."""

    def __init__(self, parser: DbmlParser, head: tuple[str, ...]):
        self.p, self.head = parser, head

    def match(self, *words: str) -> bool:
        if words == ("=",):
            return bool(self.p._match(TokenType.EQ))
        return bool(self.p._match_text_seq(*(w.upper() for w in words)))

    def peek(self, offset: int = 0) -> str | None:
        at = self.p._index + offset
        return self.p._tokens[at].text.upper() if at < len(self.p._tokens) else None

    def error(self, message: str) -> None:
        self.p.raise_error(message)

    def model_name(self) -> exp.Identifier:
        p = self.p
        if not p._curr or p._curr.token_type not in (TokenType.VAR, TokenType.IDENTIFIER, *p.ID_VAR_TOKENS):
            p.raise_error("Expected a model name")
        name = p._parse_id_var(any_token=False)
        if name is None:
            p.raise_error("Expected a model name")
        return name

    def identifier(self, message: str, any_token: bool = False) -> exp.Identifier:
        found = self.p._parse_id_var(any_token=any_token)
        if found is None:
            self.p.raise_error(message)
        return found

    def identifiers(self, message: str) -> list[exp.Identifier]:
        found = self.p._parse_csv(lambda: self.p._parse_id_var(any_token=False))
        if not found or any(f is None for f in found):
            self.p.raise_error(message)
        return found

    def version(self, required: bool = False) -> exp.Literal | None:
        """``VERSION n`` (or a bare number when ``required``, as in SET ALIAS a = 3)."""
        p = self.p
        if not required and not p._match_text_seq("VERSION"):
            return None
        if not p._match(TokenType.NUMBER) or not p._prev.text.isdigit():
            p.raise_error("Expected a whole version number" + ("" if required else " after VERSION"))
        return exp.Literal.number(p._prev.text)

    def number(self, missing: str, bad: str) -> exp.Literal:
        p = self.p
        if not p._match(TokenType.NUMBER):
            p.raise_error(missing)
        if not p._prev.text.isdigit():
            p.raise_error(f"{bad}, got {p._prev.text}")
        return exp.Literal.number(p._prev.text)

    def string(self, message: str) -> exp.Literal:
        if not self.p._match(TokenType.STRING):
            self.p.raise_error(message)
        return exp.Literal.string(self.p._prev.text)

    def source(self, after: str) -> tuple[exp.Expression, str | None]:
        """A table, a quoted file path or (query) after ``after`` (FROM, ON): the node, and
        the user's own text of a query."""
        p = self.p
        if p._match(TokenType.L_PAREN):
            start: Token = p._curr
            query = p._parse_select(nested=True) if p._curr else None
            if query is None:
                p.raise_error(f"Expected a query inside the parentheses after {after}")
            end: Token = p._curr
            p._match_r_paren()
            text = p.sql[start.start : end.start].strip() if end else p.sql[start.start :].strip()
            return exp.Subquery(this=query), text
        if p._match(TokenType.STRING):
            return exp.Literal.string(p._prev.text), None
        if not p._curr:
            p.raise_error(f"Expected a table, a view, a quoted file path or (SELECT ...) after {after}")
        table = p._parse_table_parts()
        if table is None or not table.name:
            p.raise_error(f"Expected a table, a view, a quoted file path or (SELECT ...) after {after}")
        return table, None

    def options(self) -> list[exp.EQ]:
        if not self.p._match(TokenType.WITH):
            return []
        return self.p._parse_wrapped_csv(self._option)

    def _option(self) -> exp.EQ:
        p = self.p
        key = p._parse_id_var(any_token=True)
        if key is None:
            p.raise_error("Expected an option name")
        if not p._match(TokenType.EQ):
            p.raise_error(f"Expected '=' after option {key.name}")
        value = p._parse_bitwise()
        if value is None:
            p.raise_error(f"Expected a value for option {key.name}")
        return exp.EQ(this=key, expression=value)

    def finish(self, node: MLStatement) -> MLStatement:
        if self.p._curr:
            self.p.raise_error(f"Unexpected '{self.p._curr.text}' in {' '.join(self.head)}")
        return self.p.expression(node)


class DbmlGenerator(DuckDB.Generator):
    TRANSFORMS = {
        **DuckDB.Generator.TRANSFORMS,
        **{cls: lambda self, e: self.func(e.sql_name(), e.this, *e.expressions) for cls in PREDICT_FUNCTIONS.values()},
    }

    def sql(self, expression: Any, key: str | None = None, comment: bool = True) -> str:
        if isinstance(expression, MLStatement) and not key:
            for statement in STATEMENTS.values():
                if type(expression) is statement.node:
                    return statement.generate(self, expression)
        return super().sql(expression, key, comment)


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
