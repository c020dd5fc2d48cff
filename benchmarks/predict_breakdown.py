"""Where PREDICT's time goes, on the tabular case of benchmarks/predict.py (20 FLOAT
columns, an MLP [64, 32]).

Part 1 runs the PREDICT query with a UDF that stops after each step, so each line adds
one step to the one before it (best of ``--repeat``, DuckDB with 1 thread and with one
per core):

1. scan and encode only: the encoded columns packed by ``list_value`` and hashed, no UDF;
2. + DuckDB's Arrow hand-off to a Python UDF that returns a constant;
3. + building onnxruntime's feeds from the Arrow columns (the packed [N, 20] block);
4. + ``session.run`` of the packed scoring graph (the result dropped);
5. + the result as an Arrow column of labels: PREDICT itself.

Part 2 times onnxruntime alone on one 2,048-row batch (and 8,192), prebuilt inputs,
one thread: the stored graph (20 inputs of [N, 1] and a Concat) against the packed
scoring graph PREDICT runs, and that graph with its output buffer reused (IOBinding);
and the number encoder's two exported forms (imputing the
mean before standardising, as versions trained before this change do, and
standardising then zeroing the missing values, as new versions do).

Part 3 is the floor of any Python Arrow UDF in DuckDB: a UDF of one FLOAT argument
that returns a constant column, per 2,048-row call, with a DOUBLE result, a VARCHAR
result built by ``take`` and a VARCHAR result given as a dictionary array, and one of
20 FLOAT arguments; at 1 thread and one per core (the GIL is held for all of it).

Part 4 measures a possible next step for text columns, not what dbml does: on the
``strings`` table, a no-op UDF that takes the 3 VARCHAR columns and converts them to the
numpy object arrays onnxruntime needs (what PREDICT does) against one that takes
their vocabulary codes, looked up by DuckDB through a cast to an ENUM of the
vocabulary (``enum_code(TRY_CAST(c AS vocab))``).

Run::

    python benchmarks/predict_breakdown.py [--rows N] [--repeat R]
"""

from __future__ import annotations

import argparse
import inspect
import os
import time

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
from duckdb import sqltypes
from onnx import TensorProto, helper
from onnx import numpy_helper as nh

import dbml
from dbml.runtime import new_session, packed_graph, run_bounded, scoring_session_for

from predict import best_times, build_table  # noqa: E402 - benchmarks/ is the working folder


def udf_of(n: int, body):
    def udf(*columns):
        return body(columns)

    udf.__signature__ = inspect.Signature([inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(n)])
    return udf


def per_batch(sess: ort.InferenceSession, feeds: dict, output: str, reps: int = 50, rounds: int = 15) -> float:
    """Best microseconds per run over ``rounds`` rounds of ``reps`` runs."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            sess.run([output], feeds)
        best = min(best, (time.perf_counter() - start) / reps * 1e6)
    return best


def encoder_graphs(width: int) -> dict[str, ort.InferenceSession]:
    rng = np.random.default_rng(0)
    mean = rng.random((1, width)).astype(np.float32)
    std = (rng.random((1, width)) + 0.5).astype(np.float32)
    inits = [nh.from_array(mean, "mean"), nh.from_array(std, "std"), nh.from_array(np.zeros((), np.float32), "zero")]
    forms = {
        "impute, then standardise (earlier versions)": [
            helper.make_node("IsNaN", ["x"], ["c"]), helper.make_node("Where", ["c", "mean", "x"], ["w"]),
            helper.make_node("Sub", ["w", "mean"], ["s"]), helper.make_node("Div", ["s", "std"], ["y"])],
        "standardise, then zero the missing (new versions)": [
            helper.make_node("IsNaN", ["x"], ["c"]), helper.make_node("Sub", ["x", "mean"], ["s"]),
            helper.make_node("Div", ["s", "std"], ["d"]), helper.make_node("Where", ["c", "zero", "d"], ["y"])],
    }  # fmt: skip
    out = {}
    for name, nodes in forms.items():
        graph = helper.make_graph(nodes, "encoder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])], inits)  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        out[name] = new_session(model.SerializeToString())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    con = dbml.connect()
    duck = con.duckdb
    build_table(duck, "tabular", args.rows)
    con.sql("TRAIN MODEL m FROM (SELECT * FROM t LIMIT 20000) TARGET y WITH (epochs = 1, hidden = [64, 32], progress = false)")
    sig = con.signature("m")
    features = sig.features
    rec = con.registry.get("m", 1)
    blob = con.registry.blob("m", 1)
    scoring = scoring_session_for(rec["onnx_sha256"], rec["onnx_size"], lambda: blob, "model 'm'", features)
    labels = pa.array([str(v) for v in rec["labels"]])
    const = pa.array(["no"] * 2048)
    session, feeds = scoring.session, scoring.feeds
    steps = {
        "2. + Arrow hand-off (no-op UDF)": lambda cols: const[: len(cols[0])],
        "3. + feeds": lambda cols: (feeds(cols), const[: len(cols[0])])[1],
        "4. + session.run": lambda cols: (run_bounded(session, ["probabilities"], feeds(cols)), const[: len(cols[0])])[1],
        "5. + labels (PREDICT)": lambda cols: labels.take(pa.array(run_bounded(session, ["probabilities"], feeds(cols))[0].argmax(axis=1))),
    }  # fmt: skip
    udf = sig.functions["PREDICT"]
    predict_sql = con.rewrite("SELECT sum(hash(PREDICT(m, *))) FROM t")
    inner = predict_sql[predict_sql.index(udf + "(") + len(udf) + 1 : predict_sql.rindex(")))")]
    measures = {"1. scan and encode (list_value, no UDF)": f"SELECT sum(hash(list_value({inner}))) FROM t"}
    for k, (name, body) in enumerate(steps.items()):
        duck.create_function(f"step{k}", udf_of(len(features), body), [sqltypes.FLOAT] * len(features), sqltypes.VARCHAR,
                             type="arrow", null_handling="special", side_effects=False)  # fmt: skip
        measures[name] = f"SELECT sum(hash(step{k}({inner}))) FROM t"
    measures["PREDICT itself"] = predict_sql
    print(f"Part 1: {args.rows:,} rows, best of {args.repeat}")
    for threads in (1, os.cpu_count() or 1):
        duck.execute(f"SET threads = {threads}")
        calls = {name: (lambda q=q: duck.sql(q).fetchall()) for name, q in measures.items()}
        best_times(calls, 1)
        times = best_times(calls, args.repeat)
        print(f"\nDuckDB threads: {threads}")
        previous = 0.0
        for name, seconds in times.items():
            print(f"  {name:<42}{seconds:>7.3f} s   step {seconds - previous:+.3f} s   {seconds / args.rows * 1e9:>6.0f} ns/row")
            previous = seconds if name[0].isdigit() else previous

    print("\nPart 2: onnxruntime alone, one thread, prebuilt inputs (microseconds per run)")
    stored = new_session(blob)
    proto = onnx.load_from_string(blob)
    packed = packed_graph(proto, features)
    packed_input = next(iter(packed))
    derived = new_session(proto.SerializeToString())
    rng = np.random.default_rng(0)
    for n in (2048, 8192):
        x = rng.random((n, len(features)), dtype=np.float32)
        columns = {f.name: np.ascontiguousarray(x[:, i : i + 1]) for i, f in enumerate(features)}
        a = per_batch(stored, columns, "probabilities")
        b = per_batch(derived, {packed_input: np.ascontiguousarray(x.T)}, "probabilities")
        print(f"  {n:>5} rows: stored graph (20 inputs + Concat) {a:7.0f}   packed scoring graph {b:7.0f}   ratio {b / a:.2f}")
        # reusing the output buffer: the packed graph through an IOBinding bound to one array
        by_column = np.ascontiguousarray(x.T)
        out = np.empty((n, len(rec["labels"])), np.float32)
        io = derived.io_binding()
        best = float("inf")
        for _ in range(15):
            start = time.perf_counter()
            for _ in range(50):
                io.bind_cpu_input(packed_input, by_column)
                io.bind_output("probabilities", "cpu", 0, np.float32, out.shape, out.ctypes.data)
                derived.run_with_iobinding(io)
            best = min(best, (time.perf_counter() - start) / 50 * 1e6)
        print(f"  {n:>5} rows: packed scoring graph, output buffer reused (IOBinding) {best:7.0f}   ratio to run() {best / b:.2f}")
    for n in (2048, 8192):
        x = rng.random((n, len(features)), dtype=np.float32)
        x[::7, 3] = np.nan
        times = {name: per_batch(s, {"x": x}, "y", reps=100) for name, s in encoder_graphs(len(features)).items()}
        (old_name, old), (new_name, new) = times.items()
        print(f"  {n:>5} rows: encoder {old_name} {old:5.0f}   {new_name} {new:5.0f}   ratio {new / old:.2f}")
    udf_floor(duck, args.rows, args.repeat)
    enum_lookup(args.rows, args.repeat)


def by_threads(duck, queries: dict[str, str], repeat: int, shown) -> None:
    """Print the best time of each query (``shown`` formats it) at 1 DuckDB thread and one per core."""
    for threads in (1, os.cpu_count() or 1):
        duck.execute(f"SET threads = {threads}")
        timed = {name: (lambda q=q: duck.sql(q).fetchall()) for name, q in queries.items()}
        best_times(timed, 1)
        times = best_times(timed, repeat)
        print(f"  DuckDB threads {threads}: " + ", ".join(f"{name} {shown(seconds)}" for name, seconds in times.items()))


def udf_floor(duck, rows: int, repeat: int) -> None:
    calls = -(-rows // 2048)
    double = pa.array(np.zeros(2048))
    labels, codes = pa.array(["no", "yes"]), pa.array((np.arange(2048) % 2).astype(np.int32))
    floors = {
        "1 argument, DOUBLE result": (1, sqltypes.DOUBLE, lambda cols: double[: len(cols[0])]),
        "1 argument, VARCHAR by take": (1, sqltypes.VARCHAR, lambda cols: labels.take(codes[: len(cols[0])])),
        "1 argument, VARCHAR as dictionary": (1, sqltypes.VARCHAR, lambda cols: pa.DictionaryArray.from_arrays(codes[: len(cols[0])], labels)),
        "20 arguments, DOUBLE result": (20, sqltypes.DOUBLE, lambda cols: double[: len(cols[0])]),
    }  # fmt: skip
    queries = {"no UDF: sum(f0)": "SELECT sum(f0) FROM t"}
    for k, (name, (n, result, body)) in enumerate(floors.items()):
        duck.create_function(f"floor{k}", udf_of(n, body), [sqltypes.FLOAT] * n, result, type="arrow",
                             null_handling="special", side_effects=False)  # fmt: skip
        queries[name] = f"SELECT sum(hash(floor{k}({', '.join(f'f{i}' for i in range(n))}))) FROM t"
    print(f"\nPart 3: the Python UDF floor, {calls:,} calls of 2,048 rows (microseconds per call)")
    by_threads(duck, queries, repeat, lambda seconds: f"{seconds / calls * 1e6:.0f}")


def enum_lookup(rows: int, repeat: int) -> None:
    import duckdb

    duck = duckdb.connect()
    build_table(duck, "strings", rows)
    for k, n in enumerate((10, 100, 1000)):
        values = ", ".join(f"'c{i}'" for i in range(n))
        duck.execute(f"CREATE TYPE vocab{k} AS ENUM ({values})")
    zero = pa.array(np.zeros(2048))

    def convert(columns):
        for c in columns[20:]:
            (c.chunk(0) if isinstance(c, pa.ChunkedArray) else c).to_numpy(zero_copy_only=False)
        return zero[: len(columns[0])]

    for name, kind in (("texts", sqltypes.VARCHAR), ("codes", sqltypes.INTEGER)):
        duck.create_function(name, udf_of(23, convert), [sqltypes.FLOAT] * 20 + [kind] * 3, sqltypes.DOUBLE,
                             type="arrow", null_handling="special", side_effects=False)  # fmt: skip
    numbers = ", ".join(f"f{i}" for i in range(20))
    texts = ", ".join(f"coalesce(c{k}, '')" for k in range(3))
    codes = ", ".join(f"coalesce(enum_code(TRY_CAST(c{k} AS vocab{k}))::INTEGER + 1, 0)" for k in range(3))
    queries = {"VARCHAR arguments, object arrays": f"SELECT sum(texts({numbers}, {texts})) FROM t",
               "codes from an ENUM cast": f"SELECT sum(codes({numbers}, {codes})) FROM t"}  # fmt: skip
    print(f"\nPart 4: 3 text columns of {rows:,} rows into a UDF (seconds)")
    by_threads(duck, queries, repeat, lambda seconds: f"{seconds:.3f}")


if __name__ == "__main__":
    main()
