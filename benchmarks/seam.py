"""What the next family costs: the counts of the plug-in seam, read off the tree it runs in.

Static counts (Python's tokenizer and ast over dbml/ and udfs/, docstrings included as
the literals they are):

* task-name literals outside dbml/tasks/: string literals whose whole text is a built-in
  task name (classification, regression, reconstruction; forecast apart), the branches
  a new task would have to join;
* kind-name literals outside dbml/kinds/: string literals whose whole text is a built-in
  kind name (numeric, boolean, datetime, category, array, sequence);
* task and kind branches: of those literals, the ones compared with something
  (``rec["task"] == "forecast"``, ``kind in ("array", "sequence")``); the rest are names
  used as data (a statement called FORECAST, its result column ``forecast``);
* reads of ``dbml.*`` outside the registry: string literals naming a registry table, in
  modules other than the registry's own;
* modules listing statement heads: modules whose string literals name three or more of
  dbml's statement heads, as phrases ("TRAIN MODEL") or pairs ("TRAIN", "MODEL");
* modules importing ``Connection`` (dbml.connection), at any level, type checking too;
* the import cycle through dbml.connection: the strongly connected component of the
  static import graph (every import statement, function-level too) that holds it.

Measured (a counting function in the source's WHERE, rows counted per call):

* full passes over the source per TRAIN MODEL, for an mlp on a plain table and for an
  lstm forecaster on series (rows the counting function saw / rows of the source).

Run from the repository root (about 30 s): ``python benchmarks/seam.py`` (``--static``
for the static counts only). To measure another checkout (the base commit, say), run
this file with that checkout first on the path: ``PYTHONPATH=/path/to/checkout python
benchmarks/seam.py --root /path/to/checkout``.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import sys
import tokenize
from collections import defaultdict
from pathlib import Path

TASKS = ("classification", "regression", "reconstruction")
KINDS = ("numeric", "boolean", "datetime", "category", "array", "sequence")
TABLES = ("model_versions", "model_blobs", "aliases", "training_log", "audit_log", "models", "monitor_runs",
          "monitor_results", "evaluation_runs", "schema_version")  # fmt: skip
HEADS = ("TRAIN", "EVALUATE", "EXPLAIN", "MONITOR", "FORECAST", "DESCRIBE", "IMPORT", "EXPORT", "ALTER")
_TABLE = re.compile(r"\bdbml\.(" + "|".join(TABLES) + r")\b")


def _modules(root: Path) -> dict[str, Path]:
    """{dotted module name: path} of dbml/ and udfs/ (installed as dbml.udfs)."""
    out = {}
    for path in sorted((root / "dbml").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    for path in sorted((root / "udfs").glob("*.py")):
        name = "dbml.udfs" + ("" if path.stem == "__init__" else "." + path.stem)
        out[name] = path
    return out


def _strings(path: Path) -> list[str]:
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if tok.type == tokenize.STRING:
            try:
                value = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError):  # an f-string: its literal parts
                value = tok.string
            out.append(value if isinstance(value, str) else "")
    return out


def _branches(path: Path, names: tuple[str, ...]) -> int:
    """Comparisons with one of ``names`` (``x == "forecast"``, ``t in ("a", "b")``): the
    branches a new task or kind would have to join, as opposed to names used as data."""
    found = 0
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                consts = [side] if isinstance(side, ast.Constant) else list(getattr(side, "elts", []))
                found += sum(isinstance(c, ast.Constant) and c.value in names for c in consts)
    return found


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            # "from dbml import statements" imports the submodule; the package itself only
            # when a name is no submodule of it
            names = subs + ([] if all(n in known for n in subs) else [base])
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _imports_connection(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "dbml.connection":
            if any(a.name in ("Connection", "*") for a in node.names):
                return True
        if isinstance(node, ast.Import) and any(a.name == "dbml.connection" for a in node.names):
            return True
    return False


def _component(graph: dict[str, set[str]], start: str) -> set[str]:
    """The strongly connected component of ``start`` (modules reachable both ways)."""

    def reach(edges: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    back: dict[str, set[str]] = defaultdict(set)
    for a, bs in graph.items():
        for b in bs:
            back[b].add(a)
    both = reach(graph) & reach(back)
    return both if len(both) > 1 else set()


def static_counts(root: Path) -> dict[str, object]:
    modules = _modules(root)
    registry = [m for m in modules if _in(m, "dbml.registry") or m in ("dbml.records",)]
    counts: dict[str, object] = {}
    task_lits: dict[str, int] = defaultdict(int)
    forecast_lits: dict[str, int] = defaultdict(int)
    kind_lits: dict[str, int] = defaultdict(int)
    reads: dict[str, int] = defaultdict(int)
    heads: list[str] = []
    task_branches: dict[str, int] = defaultdict(int)
    kind_branches: dict[str, int] = defaultdict(int)
    for module, path in modules.items():
        strings = _strings(path)
        if not _in(module, "dbml.tasks"):
            task_lits[module] += sum(s in TASKS for s in strings)
            forecast_lits[module] += sum(s == "forecast" for s in strings)
            task_branches[module] += _branches(path, (*TASKS, "forecast", "imported"))
        if not _in(module, "dbml.kinds"):
            kind_lits[module] += sum(s in KINDS for s in strings)
            kind_branches[module] += _branches(path, KINDS)
        if module not in registry:
            reads[module] += sum(len(_TABLE.findall(s)) for s in strings)
        pairs = zip(strings, strings[1:])
        named = {s for s in strings if re.fullmatch(rf"({'|'.join(HEADS)})\s+MODELS?", s)}
        named |= {a for a, b in pairs if a in HEADS and b in ("MODEL", "MODELS")}
        if len({n.split()[0] for n in named}) >= 3:
            heads.append(module)

    def total(d: dict[str, int]) -> tuple[int, int, dict[str, int]]:
        nonzero = {k: v for k, v in sorted(d.items(), key=lambda kv: -kv[1]) if v}
        return sum(nonzero.values()), len(nonzero), nonzero

    for key, d in (("task_literals", task_lits), ("forecast_literals", forecast_lits), ("kind_literals", kind_lits),
                   ("task_branches", task_branches), ("kind_branches", kind_branches),
                   ("registry_reads_outside", reads)):  # fmt: skip
        n, m, detail = total(d)
        counts[key] = {"count": n, "modules": m, "by_module": detail}
    counts["modules_listing_heads"] = heads
    counts["modules_importing_connection"] = sorted(m for m, p in modules.items() if m != "dbml.connection" and _imports_connection(p))
    known = set(modules)
    graph = {m: _imports(m, p, known) for m, p in modules.items()}
    cycle = _component(graph, "dbml.connection") if "dbml.connection" in graph else set()
    counts["cycle_through_connection"] = sorted(cycle)
    return counts


def source_passes(rows: int = 2_000) -> dict[str, float]:
    """Full passes over the source per TRAIN MODEL (mlp; lstm forecaster)."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    import dbml

    seen = [0]

    def counting(x):
        seen[0] += len(x)
        return pa.array(np.ones(len(x), dtype=bool))

    con = dbml.connect()
    raw = con.duckdb
    raw.create_function("seam_count", counting, [duckdb.sqltypes.DOUBLE], duckdb.sqltypes.BOOLEAN, type="arrow",
                        side_effects=True)  # fmt: skip
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    tab = pa.table({"a": a, "b": b, "c": rng.choice(["x", "y", "z"], rows), "y": (a + b > 0)})
    raw.register("tab_view", tab)
    raw.execute("CREATE TABLE t AS SELECT * FROM tab_view")
    out = {}
    seen[0] = 0
    con.sql("TRAIN MODEL m FROM (SELECT * FROM t WHERE seam_count(a)) TARGET y WITH (epochs = 1)")
    out["mlp"] = seen[0] / rows
    n_series, length = 4, rows // 4
    series = pa.table({
        "s": np.repeat(np.arange(n_series), length).astype(np.int64),
        "t": np.tile(np.arange(length), n_series).astype(np.int64),
        "v": np.sin(np.arange(rows) / 5.0) + rng.normal(scale=0.1, size=rows),
    })  # fmt: skip
    raw.register("series_view", series)
    raw.execute("CREATE TABLE ts AS SELECT * FROM series_view")
    seen[0] = 0
    con.sql("TRAIN MODEL f USING lstm FROM (SELECT * FROM ts WHERE seam_count(v)) TARGET v "
            "WITH (time = 't', series = ['s'], horizon = 3, window = 8, epochs = 1)")  # fmt: skip
    out["forecaster"] = seen[0] / rows
    con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="the checkout to count")
    parser.add_argument("--static", action="store_true", help="static counts only (no TRAIN)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    counts = static_counts(Path(args.root))
    if not args.static:
        counts["source_passes_per_train"] = source_passes()
    if args.json:
        print(json.dumps(counts, indent=1))
        return
    for key, value in counts.items():
        if isinstance(value, dict) and "count" in value:
            print(f"{key}: {value['count']} in {value['modules']} modules  {value['by_module']}")
        elif isinstance(value, list):
            print(f"{key}: {len(value)}  {value}")
        else:
            print(f"{key}: {value}")


if __name__ == "__main__":
    sys.exit(main())
