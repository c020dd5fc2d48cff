"""Foreign and tampered ONNX graphs run with limits (issue 13, item 4).

Graphs that would read files, allocate without bound or loop for ever are built with
``onnx.helper`` and must be refused at IMPORT or stopped at PREDICT with a dbml error
that names the model. Everything that could take the machine's memory or hang runs in
one child process under an address-space limit and a timeout, so a regression fails
these tests instead of taking down the test machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dbml import runtime
from dbml.registry import graphcheck
from dbml.errors import CorruptBlobError, UnsafeGraphError

SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


def _model(nodes, inputs, outputs, initializers=(), opsets=(("", 17),), sparse=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers), sparse_initializer=list(sparse))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def _x(name="x", shape=(None,)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _y(name="y", shape=(None,), elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, list(shape) if shape is not None else None)


def _external(name, location, dims, length, data_type=TensorProto.UINT8):
    t = TensorProto(name=name, data_type=data_type, dims=list(dims), data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def _secret_reader(location):
    """y = x + the 32 bytes of `location`, as float: PREDICT would return the file's bytes."""
    w = _external("w", location, [32], 32)
    nodes = [helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT), helper.make_node("Add", ["x", "wf"], ["y"])]
    return _model(nodes, [_x(shape=(None, 1))], [_y(shape=(None, 32))], [w])


def _save(model, path):
    path.write_bytes(model.SerializeToString())  # never onnx.save: it would move or resolve external data
    return str(path)


def _tamper(con, model, version, blob):
    con.duckdb.execute("UPDATE dbml.model_blobs SET onnx = ? WHERE model = ? AND version = ?", [blob, model, version])
    con.duckdb.execute(
        "UPDATE dbml.model_versions SET onnx_sha256 = ?, onnx_size = ? WHERE model = ? AND version = ?",
        [hashlib.sha256(blob).hexdigest(), len(blob), model, version],
    )
    runtime.clear_sessions()


def _adder(path):
    """y = x + 1 over [N]: a harmless graph to import and then tamper with."""
    one = numpy_helper.from_array(np.array([1.0], np.float32), "one")
    return _save(_model([helper.make_node("Add", ["x", "one"], ["y"])], [_x()], [_y()], [one]), path)


# -- external data ----------------------------------------------------------------------


def test_external_data_outside_the_model_folder_is_refused(con, tmp_path, monkeypatch):
    models, outside = tmp_path / "models", tmp_path / "outside"
    models.mkdir()
    outside.mkdir()
    (outside / "passwd").write_bytes(SECRET)
    (tmp_path / "passwd").write_bytes(SECRET)
    os.symlink(outside / "passwd", models / "link")
    monkeypatch.chdir(tmp_path)  # the working directory holds a 'passwd' too
    cases = {
        "passwd": "cannot read the external data 'passwd'",  # not beside the model: never looked up in the cwd
        "../outside/passwd": "a path that leaves the model's folder",
        str(outside / "passwd"): "an absolute path",
        "link": "outside the model's folder",
        "*/_ORT_MEM_ADDR_/*": "memory address",
    }
    for location, message in cases.items():
        path = _save(_secret_reader(location), models / "reader.onnx")
        with pytest.raises(UnsafeGraphError, match="initializer 'w'") as err:
            con.sql(f"IMPORT MODEL reader FROM '{path}'")
        assert message in str(err.value), (location, str(err.value))
    assert con.sql("SHOW MODELS").fetchall() == []


def test_external_data_beside_the_model_is_stored_inside_the_blob(con, tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    (models / "weights.bin").write_bytes(SECRET)
    path = _save(_secret_reader("weights.bin"), models / "reader.onnx")
    con.sql(f"IMPORT MODEL reader FROM '{path}'")
    (models / "weights.bin").unlink()  # the blob no longer needs it
    monkeypatch.chdir(tmp_path)
    runtime.clear_sessions()
    got = con.sql("SELECT PREDICT(reader, *) FROM (SELECT 0.0 AS x)").fetchall()[0][0]
    assert bytes(int(v) for v in got) == SECRET
    blob = con.registry.blob("reader", 1)
    assert not graphcheck.has_external_data(onnx.load_from_string(blob))


def test_model_saved_by_onnx_with_external_data_imports(con, tmp_path):
    """onnx.save(..., save_as_external_data=True): several tensors in one data file at
    their offsets, read back into the blob; PREDICT equals the self-contained graph's."""
    w1 = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(1, 12) / 7, "w1")
    w2 = numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(12, 1), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]), helper.make_node("MatMul", ["t", "w2"], ["y"])]
    model = _model(nodes, [_x(shape=(None, 1))], [_y(shape=(None, 1))], [w1, w2])
    inline = _save(model, tmp_path / "inline.onnx")
    (tmp_path / "ext").mkdir()
    onnx.save(model, str(tmp_path / "ext" / "m.onnx"), save_as_external_data=True, location="m.data", size_threshold=0)
    assert graphcheck.has_external_data(onnx.load(str(tmp_path / "ext" / "m.onnx"), load_external_data=False))
    con.sql(f"IMPORT MODEL inl FROM '{inline}'")
    con.sql(f"IMPORT MODEL ext FROM '{tmp_path}/ext/m.onnx'")
    src = "SELECT range / 10.0 AS x FROM range(20)"
    assert con.sql(f"SELECT PREDICT(ext, *) FROM ({src})").fetchall() == con.sql(f"SELECT PREDICT(inl, *) FROM ({src})").fetchall()
    assert con.registry.blob("ext", 1) == con.registry.blob("inl", 1)


def test_stored_blob_with_external_data_is_refused_before_onnxruntime(con, tmp_path, monkeypatch):
    con.sql(f"IMPORT MODEL m FROM '{_adder(tmp_path / 'a.onnx')}'")
    (tmp_path / "passwd").write_bytes(SECRET)
    monkeypatch.chdir(tmp_path)
    _tamper(con, "m", 1, _secret_reader("passwd").SerializeToString())
    with pytest.raises(UnsafeGraphError, match=r"model 'm' version 1.*outside the graph \('passwd'\)"):
        con.sql("SELECT PREDICT(m, *) FROM (SELECT 0.0 AS x)").fetchall()


def test_onnxruntime_never_resolves_external_paths(tmp_path, monkeypatch):
    """Behind dbml's own check, sessions resolve external paths in an empty private
    folder, not in the working directory (shown here on onnxruntime directly)."""
    import onnxruntime as ort

    (tmp_path / "passwd").write_bytes(SECRET)
    monkeypatch.chdir(tmp_path)
    blob = _secret_reader("passwd").SerializeToString()
    plain = ort.SessionOptions()
    plain.log_severity_level = 4
    leaked = ort.InferenceSession(blob, plain, providers=["CPUExecutionProvider"]).run(None, {"x": np.zeros((1, 1), np.float32)})[0]
    assert bytes(int(v) for v in leaked[0]) == SECRET  # what onnxruntime does by default with bytes
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.add_session_config_entry("session.model_external_initializers_file_folder_path", runtime._empty_folder())
    with pytest.raises(Exception, match="External data path"):
        ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    assert os.listdir(runtime._empty_folder()) == []


# -- operators and constants refused at IMPORT -------------------------------------------


def test_custom_domain_operator_is_refused(con, tmp_path):
    node = helper.make_node("Steal", ["x"], ["y"], domain="evil.ops")
    path = _save(_model([node], [_x()], [_y()], opsets=(("", 17), ("evil.ops", 1))), tmp_path / "c.onnx")
    with pytest.raises(UnsafeGraphError, match=r"operator 'Steal' of domain 'evil.ops'.*standard ONNX"):
        con.sql(f"IMPORT MODEL c FROM '{path}'")


def test_model_local_functions_are_checked_inside(con, tmp_path):
    def with_function(op, domain=""):
        body = [helper.make_node(op, ["a", "a"], ["b"], domain=domain)]
        fn = helper.make_function("local.fns", "Twice", ["a"], ["b"], body, [helper.make_opsetid("", 17), helper.make_opsetid("evil.ops", 1)])
        model = _model([helper.make_node("Twice", ["x"], ["y"], domain="local.fns")], [_x()], [_y()],
                       opsets=(("", 17), ("local.fns", 1), ("evil.ops", 1)))  # fmt: skip
        model.functions.append(fn)
        return model

    con.sql(f"IMPORT MODEL tw FROM '{_save(with_function('Add'), tmp_path / 'f.onnx')}'")
    assert con.sql("SELECT PREDICT(tw, *) FROM (SELECT 1.5 AS x)").fetchall() == [(3.0,)]
    with pytest.raises(UnsafeGraphError, match="operator 'Steal' of domain 'evil.ops'"):
        con.sql(f"IMPORT MODEL tw FROM '{_save(with_function('Steal', 'evil.ops'), tmp_path / 'g.onnx')}'")


def test_loops_need_a_small_constant_trip_count(con, tmp_path):
    for trips, message in ((10**12, "of 1,000,000,000,000 iterations"), (None, "computed while the graph runs")):
        path = _save(_loop_model(trips), tmp_path / "loop.onnx")
        with pytest.raises(UnsafeGraphError, match=message):
            con.sql(f"IMPORT MODEL lp FROM '{path}'")
    path = _save(_loop_model(3), tmp_path / "loop.onnx")  # 3 doublings: allowed, and right
    con.sql(f"IMPORT MODEL lp FROM '{path}'")
    assert con.sql("SELECT PREDICT(lp, *) FROM (SELECT 1.5 AS x)").fetchall() == [(12.0,)]


def test_tampered_blob_is_a_dbml_error_naming_the_version(con, tmp_path):
    con.sql(f"IMPORT MODEL m FROM '{_adder(tmp_path / 'a.onnx')}'")
    good = con.registry.blob("m", 1)
    _tamper(con, "m", 1, good[: len(good) // 2])  # truncated: protobuf or onnxruntime cannot parse it
    with pytest.raises(CorruptBlobError, match=r"blob of model 'm' version 1.*registry row itself was changed"):
        con.sql("SELECT PREDICT(m, *) FROM (SELECT 0.0 AS x)").fetchall()
    # parses as ONNX, but onnxruntime refuses it (Add of a float and an int64)
    bad = _model([helper.make_node("Add", ["x", "k"], ["y"])], [_x()], [_y()], [numpy_helper.from_array(np.array([1]), "k")])
    _tamper(con, "m", 1, bad.SerializeToString())
    with pytest.raises(CorruptBlobError, match=r"onnxruntime cannot load the ONNX blob of model 'm' version 1"):
        con.sql("SELECT PREDICT(m, *) FROM (SELECT 0.0 AS x)").fetchall()
    _tamper(con, "m", 1, good)
    assert con.sql("SELECT PREDICT(m, *) FROM (SELECT 1.0 AS x)").fetchall() == [(2.0,)]


def test_output_size_is_bounded_per_row(con, tmp_path):
    eight = numpy_helper.from_array(np.array([1, 8], np.int64), "shape")
    nodes = [helper.make_node("Unsqueeze", ["x", "axis"], ["x1"]), helper.make_node("Expand", ["x1", "shape"], ["y"])]
    axis = numpy_helper.from_array(np.array([1], np.int64), "axis")
    con.sql(f"IMPORT MODEL wide FROM '{_save(_model(nodes, [_x()], [_y(shape=(None, 8))], [eight, axis]), tmp_path / 'w.onnx')}'")
    assert len(con.sql("SELECT PREDICT(wide, *) FROM (SELECT 2.0 AS x)").fetchall()[0][0]) == 8
    before = runtime.limits()
    try:
        runtime.configure_limits(values_per_row=4)
        with pytest.raises(Exception, match=r"ResourceLimitError.*imported model 'wide' version 1 returned an output of 24 values for one batch of 3 rows"):
            con.sql("SELECT PREDICT(wide, *) FROM (SELECT range::DOUBLE AS x FROM range(3))").fetchall()
    finally:
        runtime.configure_limits(values_per_row=before.values_per_row)


def test_limits_are_validated():
    from dbml.errors import OptionError

    with pytest.raises(OptionError, match="seconds must be a positive number"):
        runtime.configure_limits(seconds=0)
    with pytest.raises(OptionError, match="memory_bytes must be a positive number"):
        runtime.configure_limits(memory_bytes="lots")


# -- bombs, in a child process with an address-space limit --------------------------------


def _loop_model(trips):
    """y = x doubled `trips` times by a Loop (trips None: the count comes from the data)."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Add", ["v", "v"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("c", TensorProto.BOOL, []), _x("v")],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []), _y("v_out")],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    if trips is None:
        nodes = [helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0), helper.make_node("Cast", ["m"], ["M"], to=TensorProto.INT64)]
        inits = [cond]
    else:
        nodes, inits = [], [cond, numpy_helper.from_array(np.array(trips, np.int64), "M")]
    return _model([*nodes, helper.make_node("Loop", ["M", "cond", "x"], ["y"], body=body)], [_x()], [_y()], inits)


def _expand_model(static):
    """y = Expand(x, [1, n]): n = 1e9 in the graph (static) or the row's own value."""
    if static:
        nodes, inits = [helper.make_node("Expand", ["x", "shape"], ["y"])], [numpy_helper.from_array(np.array([1, 10**9], np.int64), "shape")]
    else:
        nodes = [
            helper.make_node("ReduceMax", ["x"], ["m"], keepdims=1),
            helper.make_node("Cast", ["m"], ["n"], to=TensorProto.INT64),
            helper.make_node("Concat", ["one", "n"], ["shape"], axis=0),
            helper.make_node("Expand", ["x", "shape"], ["y"]),
        ]
        inits = [numpy_helper.from_array(np.array([1], np.int64), "one")]
    return _model(nodes, [_x()], [_y(shape=(None, None))], inits)


def _scan_model():
    """A Scan over as many steps as the row's value says, each a little work on 4,096
    floats: legal, small, and as slow as the data asks."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "e"], ["t"]), helper.make_node("Sin", ["t"], ["s_out"])],
        "body",
        [_x("s", (4096,)), _x("e", ())],
        [_y("s_out", (4096,))],
    )
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["m"], keepdims=1),
        helper.make_node("Cast", ["m"], ["n"], to=TensorProto.INT64),
        helper.make_node("ConstantOfShape", ["n"], ["steps"]),
        helper.make_node("ConstantOfShape", ["width"], ["s0"]),
        helper.make_node("Scan", ["s0", "steps"], ["s"], body=body, num_scan_inputs=1),
        helper.make_node("ReduceSum", ["s"], ["total"], keepdims=1),
        helper.make_node("Mul", ["x", "total"], ["y"]),
    ]
    return _model(nodes, [_x()], [_y()], [numpy_helper.from_array(np.array([4096], np.int64), "width")])


def _huge_constants():
    """A sparse Constant of 2^40 dense floats (onnxruntime densifies it at load) and a
    ConstantOfShape of 2^31 floats (folded at load)."""
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]), helper.make_tensor("i", TensorProto.INT64, [1], [0]), [1 << 20, 1 << 20]
    )
    big = helper.make_node("Constant", [], ["c"], sparse_value=sparse)
    sparse_model = _model([big, helper.make_node("Identity", ["x"], ["y"])], [_x()], [_y()])
    shape = numpy_helper.from_array(np.array([1 << 31], np.int64), "shape")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["zeros"]), helper.make_node("ReduceSum", ["zeros"], ["s"], keepdims=1),
             helper.make_node("Add", ["x", "s"], ["y"])]  # fmt: skip
    return sparse_model, _model(nodes, [_x()], [_y()], [shape])


CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import dbml
    from dbml import runtime
    runtime.configure_limits(memory_bytes=256 << 20, seconds=1.0)
    con = dbml.connect()
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    start_rss = int(status["VmRSS"].split()[0]) << 10
    room = (int(status["VmSize"].split()[0]) << 10) + (3 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (room, room))

    def case(name, statement):
        t = time.perf_counter()
        try:
            con.sql(statement).fetchall()
            out = {"error": None}
        except Exception as err:
            out = {"error": type(err).__name__, "message": str(err)}
        out["seconds"] = time.perf_counter() - t
        print(json.dumps({"case": name, **out}), flush=True)

    def direct_loop():  # a Loop that passed no check: the watchdog alone must stop it
        import numpy as np, onnxruntime as ort
        blob = open(sys.argv[1] + "/loop_direct.onnx", "rb").read()
        opts = ort.SessionOptions(); opts.log_severity_level = 4
        sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
        runtime.run_bounded(sess, None, {"x": np.ones(2048, np.float32)}, "model 'direct' version 1")

    d = sys.argv[1]
    case("expand_static", f"IMPORT MODEL es FROM '{d}/expand_static.onnx'")
    case("loop_import", f"IMPORT MODEL lp FROM '{d}/loop_direct.onnx'")
    case("sparse_constant", f"IMPORT MODEL sc FROM '{d}/sparse.onnx'")
    case("constant_of_shape", f"IMPORT MODEL cs FROM '{d}/cos.onnx'")
    con.sql(f"IMPORT MODEL ed FROM '{d}/expand_dynamic.onnx'")
    case("expand_dynamic", "SELECT PREDICT(ed, *) FROM (SELECT 1e9 AS x)")
    con.sql(f"IMPORT MODEL sl FROM '{d}/scan.onnx'")
    case("scan_small", "SELECT PREDICT(sl, *) FROM (SELECT 3.0 AS x)")
    case("scan_slow", "SELECT PREDICT(sl, *) FROM (SELECT 1e7 AS x)")
    t = time.perf_counter()
    try:
        direct_loop(); out = {"error": None}
    except Exception as err:
        out = {"error": type(err).__name__, "message": str(err)}
    print(json.dumps({"case": "loop_run", "seconds": time.perf_counter() - t, **out}), flush=True)
    # VmHWM, the high-water mark of this process's own memory: ru_maxrss starts at the
    # resident size of the parent (pytest, a GB late in a run) that forked it
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    peak = int(status["VmHWM"].split()[0]) << 10
    print(json.dumps({"case": "memory", "start": start_rss, "peak": peak}), flush=True)
    """
)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    _save(_expand_model(static=True), d / "expand_static.onnx")
    _save(_expand_model(static=False), d / "expand_dynamic.onnx")
    _save(_loop_model(10**12), d / "loop_direct.onnx")
    _save(_scan_model(), d / "scan.onnx")
    sparse, cos = _huge_constants()
    _save(sparse, d / "sparse.onnx")
    _save(cos, d / "cos.onnx")
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(d)], capture_output=True, text=True, timeout=120, cwd=d, env=env
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            results[row.pop("case")] = row
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results


@pytest.mark.parametrize(
    "case, message",
    [
        ("expand_static", r"tensor 'y' of shape \[1, 1000000000\]: 4,000,000,000 bytes"),
        ("loop_import", "Loop .* of 1,000,000,000,000 iterations"),
        ("sparse_constant", r"constant of shape \[1048576, 1048576\]"),
        ("constant_of_shape", r"tensor 'zeros' of shape \[2147483648\]"),
    ],
)
def test_bombs_are_refused_at_import(bombs, case, message):
    import re

    got = bombs[case]
    assert got["error"] == "UnsafeGraphError", got
    assert re.search(message, got["message"]), got["message"]
    assert got["seconds"] < 5


def test_expand_from_the_data_is_bounded_by_memory(bombs):
    got = bombs["expand_dynamic"]
    assert got["error"] is not None and "ResourceLimitError: dbml: PREDICT of imported model 'ed' version 1" in got["message"]
    assert "needed more memory than the bound of 268,435,456 bytes" in got["message"]
    assert "Available memory of" in got["message"]  # the arena refused it, not the address-space limit
    assert got["seconds"] < 5


def test_slow_scan_is_stopped_by_the_time_bound(bombs):
    assert bombs["scan_small"]["error"] is None
    got = bombs["scan_slow"]
    assert got["error"] is not None and "ran past the time bound of 1 s" in got["message"], got
    assert "imported model 'sl' version 1" in got["message"]
    assert got["seconds"] < 4


def test_onnxruntime_honours_terminate_in_a_loop(bombs):
    got = bombs["loop_run"]
    assert got["error"] == "ResourceLimitError" and "model 'direct' version 1 ran past the time bound" in got["message"], got
    assert got["seconds"] < 3


def test_peak_memory_stays_modest(bombs):
    memory = bombs["memory"]
    assert memory["peak"] - memory["start"] < 600 << 20, memory
