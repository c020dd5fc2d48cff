"""Splitting a script into statements the way DuckDB does, and telling dbml's own apart.

Pure text functions, no database. The scanner knows DuckDB's lexical rules for
everything that can hide a ``;``: '...' strings (and E'...' with backslash escapes),
"..." and `...` identifiers, $tag$...$tag$ strings, -- and nested /* */ comments.
``$1`` and ``$name`` are parameters, not quotes. Each statement keeps the text DuckDB
itself would give it (from the end of the previous statement through its own ``;``),
and a *masked* copy of the same length in which comments are blanked and quoted text
is hidden, so that finding keywords and calls of the scoring functions (PREDICT,
PREDICT_PROBA, EMBED, ... : :data:`dbml.outputs.FUNCTION_NAMES`) never looks inside a string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dbml.outputs import FUNCTION_NAMES

__all__ = ["Statement", "split_script", "mask", "predict_calls", "nested_statements", "nested_parts", "suggestion",
           "unnamed_item"]

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_FIRST_WORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_$]*)")
# a call of any scoring function of dbml.outputs; longest names first, so that no name is
# read as a shorter one it starts with (PREDICT_PROBA( is never PREDICT)
_PREDICT = re.compile(
    r"(?<![\w.$\"])(" + "|".join(re.escape(n) for n in sorted(FUNCTION_NAMES, key=len, reverse=True)) + r")\s*\(",
    re.IGNORECASE,
)
# words after which name( is a definition, a table, an alias or a CTE, never a call
_NOT_A_CALL = re.compile(
    r"\b(MACRO|FUNCTION|TABLE|VIEW|INTO|AS|FROM|JOIN|WITH|EXISTS|RECURSIVE|LATERAL)\s*$", re.IGNORECASE
)
_CTE_AFTER = re.compile(r"\s*AS\s*(?:\(|MATERIALIZED\b|NOT\b)", re.IGNORECASE)
_IDENT_CHAR = re.compile(r"[\w$]")


@dataclass(frozen=True)
class Statement:
    """One statement of a script.

    Attributes:
        text: for plain SQL, the text DuckDB would run (leading comments and the
            closing ``;`` included); for dbml's statements and queries calling a scoring
            function, the statement itself from its first to its last significant character.
        kind: "ml" (a dbml statement), "nested" (SQL holding a dbml statement in
            parentheses, such as ``CREATE TABLE f AS FROM (FORECAST MODEL m HORIZON 3)``),
            "predict" (SQL calling a scoring function: PREDICT, EMBED, ...) or "sql".
        masked: ``text`` with comments blanked and quoted text hidden (same length).
    """

    text: str
    kind: str
    masked: str = ""


def mask(sql: str) -> str:
    """``sql`` with comments turned to spaces, string contents to spaces and quoted
    identifiers to ``x``; newlines and quote characters stay, so positions and
    lines are those of ``sql``."""
    out = list(sql)
    n, i = len(sql), 0

    def blank(start: int, end: int, fill: str = " ") -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = fill

    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c == "-" and nxt == "-":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif c == "/" and nxt == "*":
            depth, k = 1, i + 2
            while k < n and depth:
                if sql.startswith("/*", k):
                    depth, k = depth + 1, k + 2
                elif sql.startswith("*/", k):
                    depth, k = depth - 1, k + 2
                else:
                    k += 1
            blank(i, k)
            i = k
        elif c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _IDENT_CHAR.match(sql[i - 2]))
            k = i + 1
            while k < n:
                if escapes and sql[k] == "\\":
                    k += 2
                    continue
                if sql[k] == "'":
                    if k + 1 < n and sql[k + 1] == "'":
                        k += 2
                        continue
                    break
                k += 1
            blank(i + 1, k)
            i = k + 1
        elif c in ('"', "`"):
            k = i + 1
            while k < n:
                if sql[k] == c:
                    if k + 1 < n and sql[k + 1] == c:
                        k += 2
                        continue
                    break
                k += 1
            blank(i + 1, k, "x")
            i = k + 1
        elif c == "$" and (i == 0 or not _IDENT_CHAR.match(sql[i - 1])) and (m := _DOLLAR.match(sql, i)):
            tag = m.group(0)
            close = sql.find(tag, m.end())
            end = n if close < 0 else close + len(tag)
            blank(i + len(tag), end - len(tag) if close >= 0 else n)
            i = end
        else:
            i += 1
    return "".join(out)


def split_script(sql: str) -> list[Statement]:
    """The statements of a script, split at the ``;`` that DuckDB splits at.

    Text holding only comments and blanks (a script's tail, say) is no statement.
    """
    masked = mask(sql)
    out: list[Statement] = []
    start = 0
    bounds = [m.start() for m in re.finditer(";", masked)] + [len(sql)]
    for end in bounds:
        piece = masked[start:end]
        if piece.strip():
            first = start + (len(piece) - len(piece.lstrip()))
            last = start + len(piece.rstrip())
            code, code_masked = sql[first:last], masked[first:last]
            kind = _kind(code_masked)
            if kind == "sql":
                stop = min(end + 1, len(sql))
                out.append(Statement(sql[start:stop], kind, masked[start:stop]))
            else:
                out.append(Statement(code, kind, code_masked))
        start = end + 1
    return out


def _kind(masked: str) -> str:
    if _is_ml(masked):
        return "ml"
    if nested_statements(masked):
        return "nested"
    return "predict" if predict_calls(masked) else "sql"


def _statement_at(masked: str, start: int, end: int | None = None):
    """The dbml statement whose head starts ``masked[start:end]`` (after blanks), else
    None: its words match a head of the statements table, and the row accepts the rest
    (SHOW MODELS and DESCRIBE MODEL m are also DuckDB forms: taken only in dbml's form)."""
    from dbml.statements import by_head

    text = masked[start:end]
    words = _WORD.findall(text[:200])
    upper = [w.upper() for w in words]
    for statement in by_head():
        n = len(statement.head)
        if tuple(upper[:n]) != statement.head:
            continue
        after = 0
        for word in words[:n]:  # the end of the head's last word
            after = text.index(word, after) + len(word)
        if statement.accept is None or statement.accept(text[after:]):
            return statement
    return None


def _is_ml(masked: str) -> bool:
    first = masked.lstrip()[:1]
    # "(FORECAST MODEL f HORIZON 1) LIMIT 1" is a query holding one, not the statement itself
    return (first.isalpha() or first == "_") and _statement_at(masked, 0) is not None


def nested_statements(masked: str) -> list[tuple[int, int]]:
    """(start, end inclusive) of each outermost ``( <dbml statement> )`` in a masked
    statement: the parentheses included, as in ``FROM (FORECAST MODEL m HORIZON 3)``,
    ``WITH f AS (EVALUATE MODEL m ON t)`` or ``COPY (SHOW MODELS) TO 'x.csv'``."""
    from dbml.statements import STATEMENTS

    firsts = {s.head[0] for s in STATEMENTS.values()}
    spans: list[tuple[int, int]] = []
    pos = masked.find("(")
    while pos >= 0:
        word = _FIRST_WORD.match(masked, pos + 1)
        if word is None or word.group(1).upper() not in firsts:  # most parentheses: no statement's first word
            pos = masked.find("(", pos + 1)
            continue
        depth, k = 0, pos
        while k < len(masked):
            if masked[k] == "(":
                depth += 1
            elif masked[k] == ")":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        if k < len(masked) and _statement_at(masked, pos + 1, k) is not None:
            spans.append((pos, k))
            pos = masked.find("(", k + 1)
        else:
            pos = masked.find("(", pos + 1)
    return spans


def nested_parts(sql: str, name) -> tuple[str, list[str]]:
    """``sql`` with each outermost ``( <dbml statement> )`` replaced by ``(FROM "<name(k)>")``
    (k = 0, 1, ...), and the texts of those statements, in order. Pure: the caller runs
    each statement and registers its rows under that name."""
    masked = mask(sql)
    out, inner, last = [], [], 0
    for start, end in nested_statements(masked):
        inner.append(sql[start + 1 : end].strip())
        quoted = name(len(inner) - 1).replace('"', '""')
        out.append(sql[last:start] + f'(FROM "{quoted}")')
        last = end + 1
    out.append(sql[last:])
    return "".join(out), inner


def suggestion(masked: str) -> str | None:
    """What a statement that DuckDB refused probably meant, when it starts like one of
    dbml's: a misspelt head (``TRAIN MODLE``, ``SHOW MODEL``), or a head without the name
    it needs (``DESCRIBE MODEL``). None otherwise (the statement is DuckDB's to judge)."""
    from dbml.statements import STATEMENTS

    words = [w.upper() for w in _WORD.findall(masked[:200])]
    if not words:
        return None
    for statement in sorted(STATEMENTS.values(), key=lambda s: len(s.head)):
        head, n = statement.head, len(statement.head)
        given = tuple(words[:n])
        if given == head:
            if statement.accept is not None and not statement.accept(" ".join(words[n:])):
                if len(words) == n and head[-1] == "MODEL":
                    rest = masked[masked.upper().index(head[-1]) + len(head[-1]) :].strip()
                    if rest.startswith("'"):  # masked keeps the quotes of a string
                        return f"{' '.join(head)} takes a model name, not a string: write it bare or in double quotes"
                    return f"{' '.join(head)} needs a model name: {' '.join(head)} <name>"
            continue
        if len(given) == n and sum(_close(a, b) for a, b in zip(given, head)) == n and sum(a != b for a, b in zip(given, head)) <= 1:
            return f"did you mean {' '.join(head)}?"
    return None


def _close(a: str, b: str) -> bool:
    """Equal, or one edit apart (a letter added, dropped, changed or two swapped), for
    words of four letters or more."""
    if a == b:
        return True
    if min(len(a), len(b)) < 4 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def predict_calls(masked: str) -> list[tuple[int, int]]:
    """(start, end inclusive) of each outermost call of a scoring function (PREDICT(,
    PREDICT_PROBA(, EMBED(, ...: any name of FUNCTION_NAMES) in a masked statement.
    For every one of those names, a call with one argument, a qualified name
    (``main.predict``), a definition (``CREATE MACRO embed(a)``), a table, view, alias
    or CTE of that name with a column list, or a table function in FROM is not dbml's
    and is left out. An unclosed call runs to the end of the text."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while (m := _PREDICT.search(masked, pos)) is not None:
        if _NOT_A_CALL.search(masked[max(0, m.start() - 40) : m.start()]):
            pos = m.end()
            continue
        depth, k, commas = 0, m.end() - 1, 0
        while k < len(masked):
            ch = masked[k]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    break
            elif ch == "," and depth == 1:
                commas += 1
            k += 1
        end = min(k, len(masked) - 1)
        if (commas >= 1 and not _CTE_AFTER.match(masked, end + 1)) or k >= len(masked):
            spans.append((m.start(), end))
        pos = end + 1
    return spans


# words that end a select list (after an item) or start another clause (before one)
_CLAUSES = {"FROM", "WHERE", "GROUP", "HAVING", "QUALIFY", "WINDOW", "ORDER", "LIMIT", "OFFSET", "UNION", "EXCEPT",
            "INTERSECT", "INTO", "ON", "USING", "JOIN", "BY", "SET", "VALUES", "RETURNING", "WHEN", "THEN", "ELSE",
            "CASE", "AND", "OR", "NOT", "IN", "IS", "LIKE", "BETWEEN", "FILTER", "OVER", "AS"}  # fmt: skip
_ENDS = {"FROM", "WHERE", "GROUP", "HAVING", "QUALIFY", "WINDOW", "ORDER", "LIMIT", "OFFSET", "UNION", "EXCEPT",
         "INTERSECT", "INTO"}  # fmt: skip


def unnamed_item(masked: str, start: int, end: int) -> bool:
    """Whether ``masked[start:end + 1]`` (a scoring call) is a whole item of a select list
    with no alias (``SELECT id, PREDICT(m, *) FROM t``), whose column DuckDB would head
    with the text of the rewritten call; not an argument, an operand, a field
    (``PREDICT_PROBA(m, *).yes``) or an item with AS / an alias."""
    before = masked[:start].rstrip()
    words = _WORD.findall(before[-20:])
    if not (before.endswith(",") or (words and words[-1].upper() in ("SELECT", "DISTINCT", "ALL") and before.endswith(words[-1]))):
        return False
    depth, k = 0, len(before) - 1  # back to the SELECT of this list, at the same depth
    while k >= 0:
        ch = masked[k]
        if ch == ")":
            depth += 1
        elif ch == "(":
            if depth == 0:  # inside parentheses that are not a select list: an argument
                return False
            depth -= 1
        elif depth == 0 and (ch.isalpha() or ch == "_") and (k == 0 or not (masked[k - 1].isalnum() or masked[k - 1] in "_$")):
            word = _WORD.match(masked, k)
            w = word.group(0).upper() if word else ""
            if w == "SELECT":
                break
            if w in _CLAUSES:
                return False
        k -= 1
    if k < 0:
        return False
    after = masked[end + 1 :].lstrip()
    if not after or after[0] in ",);":
        return True
    word = _WORD.match(after)
    return word is not None and word.group(0).upper() in _ENDS
