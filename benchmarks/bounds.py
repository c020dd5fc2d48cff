"""Cost of PREDICT's scoring bounds (dbml.runtime: shared arena, run_bounded) on one 2,048-row batch of a small dbml-trained MLP.

Variants, interleaved, median of many runs each:
  plain    session.run on a session with onnxruntime's own per-session arena (the old new_session)
  arena    session.run on a dbml.runtime.new_session session (shared arena with max_mem)
  bounded  dbml.runtime.run_bounded on the same session (RunOptions + watchdog + output check)
  + the whole PREDICT query over 20,480 rows, old path vs new.
Ratios are against the plain variant measured in the same run.

    python benchmarks/bounds.py
"""
import statistics, time
import onnxruntime as ort
import dbml
from dbml import runtime
from dbml.features import FeatureSpec

con = dbml.connect()
con.sql("""CREATE TABLE t AS SELECT i, (i % 97) / 10.0 AS a, (i % 13)::DOUBLE AS b, ((i * 7) % 31)::DOUBLE AS c,
           ['x','y','z'][1 + i % 3] AS d, (i % 5) > 1 AS y FROM range(20480) r(i)""")
con.sql("TRAIN MODEL m FROM (SELECT a, b, c, d, y FROM t) TARGET y WITH (epochs = 1, progress = false)")
rec = con.registry.get("m", 1)
blob = con.registry.blob("m", 1)
features = [FeatureSpec(**f) for f in rec["features"]]
batch = con.duckdb.sql("SELECT a::FLOAT a, b::FLOAT b, c::FLOAT c, d FROM t LIMIT 2048").to_arrow_table()
feeds = runtime.arrow_feeds(features, [batch.column(f.name) for f in features])

o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1; o.log_severity_level = 3
plain = ort.InferenceSession(blob, o, providers=["CPUExecutionProvider"])
bounded = runtime.new_session(blob)
out = ["probabilities"]
runs = {"plain": lambda: plain.run(out, feeds), "arena": lambda: bounded.run(out, feeds),
        "bounded": lambda: runtime.run_bounded(bounded, out, feeds, "m")}
for f in runs.values():
    for _ in range(50): f()
times = {k: [] for k in runs}
for _ in range(300):
    for k, f in runs.items():
        t = time.perf_counter()
        for _ in range(5): f()
        times[k].append((time.perf_counter() - t) / 5)
for k, v in times.items():
    v = sorted(v); print(f"{k:8s} min {v[0]*1e6:7.1f}  p10 {v[len(v)//10]*1e6:7.1f}  median {statistics.median(v)*1e6:7.1f} us per 2,048-row batch")
base = statistics.median(times["plain"])
for k in ("arena", "bounded"):
    print(f"{k} / plain: {statistics.median(times[k]) / base:.3f} (median per batch)")
t = time.perf_counter(); n = 200000
for _ in range(n): r = ort.RunOptions()
print(f"RunOptions(): {(time.perf_counter()-t)/n*1e6:.2f} us")
w = runtime._watchdog
t = time.perf_counter()
for _ in range(n): w.forget(w.watch(r, 60.0))
print(f"watch+forget: {(time.perf_counter()-t)/n*1e6:.2f} us")
# whole query
q = "SELECT sum(PREDICT_PROBA(m, *).\"true\") FROM t"
con.sql(q).fetchall()
qt = []
for _ in range(15):
    t = time.perf_counter(); con.sql(q).fetchall(); qt.append(time.perf_counter() - t)
print(f"PREDICT_PROBA over 20,480 rows (10 batches): median {statistics.median(qt)*1e3:.2f} ms")
import dbml.udfs.predict as up
real = up.run_bounded
def raw(session, outputs, feeds, what=None): return session.run(outputs, feeds)
res = {"run_bounded": [], "session.run": []}
for _ in range(12):
    for name, fn in (("run_bounded", real), ("session.run", raw)):
        up.run_bounded = fn
        t = time.perf_counter(); con.sql(q).fetchall(); res[name].append(time.perf_counter() - t)
up.run_bounded = real
for k, v in res.items(): print(f"query with {k:12s}: median {statistics.median(v)*1e3:.2f} ms  min {min(v)*1e3:.2f} ms")
print(f"query run_bounded / session.run: {statistics.median(res['run_bounded']) / statistics.median(res['session.run']):.3f}")
