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

__all__ = ["Statement", "split_script", "mask"]

# Statement heads that are dbml's own. SHOW MODELS and DESCRIBE MODEL m are also
# DuckDB forms (SHOW/DESCRIBE of a table named models or model), so they are taken
# only in exactly dbml's form; see _is_ml.
ML_HEADS = {
    ("TRAIN", "MODEL"), ("SHOW", "MODELS"), ("DESCRIBE", "MODEL"), ("DROP", "MODEL"),
    ("EVALUATE", "MODEL"), ("ALTER", "MODEL"), ("EXPORT", "MODEL"), ("IMPORT", "MODEL"),
    ("EXPLAIN", "MODEL"), ("MONITOR", "MODEL"), ("FORECAST", "MODEL"),
}  # fmt: skip

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
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
        kind: "ml" (a dbml statement), "predict" (SQL calling a scoring function:
            PREDICT, EMBED, ...) or "sql".
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
    return "predict" if predict_calls(masked) else "sql"


def _is_ml(masked: str) -> bool:
    words = _WORD.findall(masked[:200])
    if len(words) < 2 or (words[0].upper(), words[1].upper()) not in ML_HEADS:
        return False
    head = (words[0].upper(), words[1].upper())
    rest = masked[masked.upper().index(words[1].upper()) + len(words[1]) :].strip()
    if head == ("SHOW", "MODELS"):
        return rest == ""
    if head == ("DESCRIBE", "MODEL"):
        # DESCRIBE MODEL churn, not DESCRIBE model (a table) nor DESCRIBE model.t (a schema)
        return bool(re.fullmatch(r'(?:[A-Za-z_][\w$]*|"x*")', rest))
    return True


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
