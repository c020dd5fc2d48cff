"""Golden pairs, one file per statement (tests/golden/statements/<name>.sql): what each
statement becomes. For every input: its text printed back by the dialect (parameters
named as the handler binds them), and what the handler is given (model, version,
source query, options, ...). compose.sql shows a query holding statements as DuckDB runs
it, and the statements run first. Pure: no database.

Set DBML_GOLDEN_WRITE=1 to write the .expected.sql files from the code (then read the diff)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlglot import exp

from dbml import statements
from dbml.dialect import Dbml, parse_statement
from dbml.script import mask, nested_parts, split_script
from dbml.statements.base import numbered_parameters, options_of, source_query

GOLDEN = Path(__file__).parent.parent / "golden" / "statements"
FILES = sorted(p.stem for p in GOLDEN.glob("*.sql") if not p.stem.endswith(".expected"))


def _cases(path: Path) -> list[tuple[str, str]]:
    cases, title = [], None
    for line in path.read_text().splitlines():
        if line.startswith("-- "):
            title = line[3:]
        elif line.strip():
            cases.append((title, line))
    return cases


def _params(text: str):
    """Values for a statement's parameters, so that the golden shows how they are named."""
    masked = mask(text)
    if "?" in masked or "$1" in masked or "$2" in masked:
        return ["v1", "v2", "v3"]
    if "$" in masked:
        return {"since": "2024-01-01"}
    return None


def _inputs(node) -> str:
    """What the handler reads of a node, as a line."""
    out = []
    for key in node.arg_types:
        value = node.args.get(key)
        if key in ("source_sql",) or value is None or value == []:
            continue
        if key == "this":
            out.append(f"model={node.this.name!r}")
        elif key == "source":
            out.append(f"source={source_query(value, node.args.get('source_sql'))[0]!r}")
        elif key == "options":
            out.append(f"options={options_of(node, {'dbml_p1': 'v1', 'dbml_p2': 'v2', 'since': '2024-01-01'})!r}")
        elif isinstance(value, bool):
            out.append(f"{key}={value}")
        elif isinstance(value, list):
            out.append(f"{key}={[v.name for v in value]!r}")
        elif isinstance(value, exp.Literal):
            out.append(f"{key}={value.this if value.is_string else int(value.this)!r}")
        else:
            out.append(f"{key}={value.sql(dialect=Dbml)!r}")
    return ", ".join(out)


def _becomes(text: str) -> list[str]:
    part = split_script(text)[0]
    if part.kind == "nested":
        outer, inner = nested_parts(part.text, lambda k: f"__dbml_rows_{k + 1}")
        return [f"--> DuckDB runs: {outer}"] + [f"-->   __dbml_rows_{k + 1}: {line}" for k, t in enumerate(inner) for line in _becomes(t)[:1]]
    assert part.kind == "ml", text
    named, _ = numbered_parameters(part.text, part.masked, _params(part.text))
    node = parse_statement(named)
    statement = statements.statement_of(node)
    return [node.sql(dialect=Dbml), f"--> {statement.name}({_inputs(node)})"]


def _render(name: str) -> str:
    lines = []
    for title, text in _cases(GOLDEN / f"{name}.sql"):
        lines.append(f"-- {title}")
        lines.extend(_becomes(text))
    return "\n".join(lines) + "\n"


def test_every_statement_has_a_golden_file():
    assert {s.name for s in statements.STATEMENTS.values()} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_golden(name):
    expected = GOLDEN / f"{name}.expected.sql"
    got = _render(name)
    if os.environ.get("DBML_GOLDEN_WRITE"):
        expected.write_text(got)
    assert got == expected.read_text()
