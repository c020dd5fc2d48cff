"""torch.onnx.export: the TorchScript exporter (``dynamo=False``, what dbml uses)
against the torch.export-based one (``dynamo=True``), on five small modules.

Modules (self-contained, fixed seeds, positional tensor inputs, batch axis "N"):
MLP (NaN imputation + standardisation, three embeddings, softmax over 5), CNN (two
conv/BN/ReLU/maxpool blocks, softmax over 10), LSTM and GRU (28 steps, last hidden
state -> 1 value), Autoencoder (outputs: per-row MSE, MSE > 0.5, 4-dim bottleneck).

Both exporters are called as dbml/export.py ``_export_module`` calls the first one:
opset 17, example batch of 2 rows of zeros, input/output names, batch axis dynamic
(``dynamic_axes`` for TorchScript, ``dynamic_shapes`` with ``Dim("N")`` for dynamo).

Per module and exporter it prints:

* export s: seconds per export, median of 3;
* parity: max |onnxruntime - torch| over all outputs on 512 random rows, and on
  batches of 1 and 37 rows (other than the example's 2: proves the axis is dynamic);
  a bool output adds "bool!=K", K mismatching rows, when K > 0;
* bytes: serialized ModelProto size; bytes bare: the same without value_info, doc
  strings and metadata_props (dynamo puts stack traces/scopes on every node);
  nodes: node count (subgraphs included); ir: the file's IR version;
* checker: onnx.checker.check_model (full_check=True, else plain); opsets: the
  opset imports (dynamo is asked for 17 and may keep 18 if conversion fails);
* ops: operator types used (common / only in one), and any outside ai.onnx;
* ort ms/10k: onnxruntime (1 intra-op thread) time for one 10,000-row batch, median
  of 9 runs interleaved between the two graphs, and the ratio dynamo/torchscript.

Run::

    python benchmarks/export.py
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

OPSET = 17
EXAMPLE_ROWS = 2
PARITY_ROWS = (512, 1, 37)
ORT_ROWS = 10_000
EXPORT_REPEAT = 3
ORT_REPEAT = 9


# ---------------------------------------------------------------- modules


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("mean", torch.randn(20, generator=g))
        self.register_buffer("std", torch.rand(20, generator=g) + 0.5)
        self.emb = nn.ModuleList(nn.Embedding(n, 4) for n in (7, 12, 4))
        self.net = nn.Sequential(nn.Linear(20 + 12, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 5))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x_num), self.mean, x_num)
        x = (x - self.mean) / self.std
        e = [emb(x_cat[:, i]) for i, emb in enumerate(self.emb)]
        return torch.softmax(self.net(torch.cat([x, *e], dim=1)), dim=1)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, 8), block(8, 16))
        self.head = nn.Linear(16 * 2 * 2, 10)
        for m in self.modules():  # non-trivial running statistics
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.view(-1, 1, 8, 8))
        return torch.softmax(self.head(h.flatten(1)), dim=1)


class Recurrent(nn.Module):
    def __init__(self, cell: type[nn.Module]) -> None:
        super().__init__()
        self.rnn = cell(1, 32, batch_first=True)
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x.unsqueeze(-1))
        if isinstance(h, tuple):  # LSTM: (h_n, c_n)
            h = h[0]
        return self.head(h[-1])


class Autoencoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 4), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 30))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        score = ((self.decoder(z) - x) ** 2).mean(dim=1)
        return score, score > 0.5, z


def mlp_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    x = torch.randn(n, 20, generator=g)
    x[torch.rand(n, 20, generator=g) < 0.1] = float("nan")
    cat = torch.stack([torch.randint(0, k, (n,), generator=g) for k in (7, 12, 4)], dim=1)
    return x, cat


def float_inputs(width: int, scale: float = 1.0):
    return lambda n, g: (torch.randn(n, width, generator=g) * scale,)


# name, factory, input names/dtypes/widths, output names, random input maker
MODULES = [
    ("MLP", MLP, [("x_num", torch.float32, 20), ("x_cat", torch.long, 3)], ["probabilities"], mlp_inputs),
    ("CNN", CNN, [("x", torch.float32, 64)], ["probabilities"], float_inputs(64)),
    ("LSTM", lambda: Recurrent(nn.LSTM), [("x", torch.float32, 28)], ["value"], float_inputs(28)),
    ("GRU", lambda: Recurrent(nn.GRU), [("x", torch.float32, 28)], ["value"], float_inputs(28)),
    ("Autoencoder", Autoencoder, [("x", torch.float32, 30)], ["score", "outlier", "z"], float_inputs(30, 0.75)),
]


# ---------------------------------------------------------------- export


def export(module: nn.Module, inputs, outputs, dynamo: bool) -> onnx.ModelProto:
    names = [n for n, _, _ in inputs]
    args = tuple(torch.zeros(EXAMPLE_ROWS, w, dtype=t) for _, t, w in inputs)
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        if not dynamo:
            buf = io.BytesIO()
            axes = {n: {0: "N"} for n in names + outputs}
            torch.onnx.export(
                module, args, buf, input_names=names, output_names=outputs,
                dynamic_axes=axes, opset_version=OPSET, dynamo=False,
            )
            return onnx.load_from_string(buf.getvalue())
        n = torch.export.Dim("N")
        program = torch.onnx.export(
            module, args, input_names=names, output_names=outputs,
            dynamic_shapes=tuple({0: n} for _ in names), opset_version=OPSET, dynamo=True,
        )
        return program.model_proto


def all_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.HasField("g"):
                yield from all_nodes(attr.g)
            for sub in attr.graphs:
                yield from all_nodes(sub)


def describe(proto: onnx.ModelProto, module, make_inputs, names) -> dict:
    d: dict = {}
    raw = proto.SerializeToString()
    d["bytes"] = len(raw)
    bare = onnx.ModelProto()
    bare.CopyFrom(proto)
    del bare.graph.value_info[:]
    del bare.metadata_props[:]
    del bare.graph.metadata_props[:]
    bare.graph.ClearField("doc_string")
    bare.ClearField("doc_string")
    for node in all_nodes(bare.graph):
        del node.metadata_props[:]
        node.ClearField("doc_string")
    d["bytes bare"] = len(bare.SerializeToString())
    d["ir"] = proto.ir_version
    nodes = list(all_nodes(proto.graph))
    for f in proto.functions:
        nodes.extend(f.node)
    d["nodes"] = len(nodes)
    d["ops"] = {(n.domain or "ai.onnx", n.op_type) for n in nodes}
    d["functions"] = len(proto.functions)
    d["opsets"] = ",".join(f"{i.domain or 'ai.onnx'}:{i.version}" for i in proto.opset_import)
    try:
        onnx.checker.check_model(proto, full_check=True)
        d["checker"] = "ok (full)"
    except Exception as err:  # noqa: BLE001
        try:
            onnx.checker.check_model(proto)
            d["checker"] = "ok (plain); full: " + str(err).splitlines()[0][:60]
        except Exception as err2:  # noqa: BLE001
            d["checker"] = "FAIL: " + str(err2).splitlines()[0][:70]
    d["dims"] = " ".join(
        (v.type.tensor_type.shape.dim[0].dim_param or str(v.type.tensor_type.shape.dim[0].dim_value))
        if v.type.tensor_type.shape.dim else "-"
        for v in list(proto.graph.input) + list(proto.graph.output)
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(raw, opts, providers=["CPUExecutionProvider"])
    d["session"] = sess
    g = torch.Generator().manual_seed(7)
    for rows in PARITY_ROWS:
        x = make_inputs(rows, g)
        with torch.no_grad():
            want = module(*x)
        want = want if isinstance(want, tuple) else (want,)
        got = sess.run(None, {n: t.numpy() for n, t in zip(names, x)})
        diff, bad = 0.0, 0
        for w, o in zip(want, got):
            w = w.numpy()
            if w.shape != o.shape:
                raise ValueError(f"shape {o.shape} != torch {w.shape} at {rows} rows")
            if w.dtype == bool:
                bad += int((w != o).sum())
            else:
                diff = max(diff, float(np.abs(w - o).max()))
        d[f"parity{rows}"] = f"{diff:.1e}" + (f" bool!={bad}" if bad else "")
    return d


def time_ort(sessions: dict, feeds: dict) -> dict:
    for s in sessions.values():
        s.run(None, feeds)
    times = {k: [] for k in sessions}
    for _ in range(ORT_REPEAT):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:150]


def main() -> None:
    torch.set_num_threads(1)
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)  # "opset 18 ..." etc. go to stderr
    print(f"torch {torch.__version__}  onnx {onnx.__version__}  onnxruntime {ort.__version__}", end="")
    try:
        import onnxscript

        print(f"  onnxscript {onnxscript.__version__}")
    except ImportError:
        print("  onnxscript MISSING")
    print(f"opset {OPSET}, example batch {EXAMPLE_ROWS}, parity batches {PARITY_ROWS}, ort: 1 thread, {ORT_ROWS} rows\n")
    for i, (title, factory, inputs, outputs, make_inputs) in enumerate(MODULES):
        torch.manual_seed(i)
        module = factory().eval()
        names = [n for n, _, _ in inputs]
        res: dict[str, dict] = {}
        for key, dynamo in (("torchscript", False), ("dynamo", True)):
            try:
                secs = []
                for _ in range(EXPORT_REPEAT):
                    t0 = time.perf_counter()
                    proto = export(module, inputs, outputs, dynamo)
                    secs.append(time.perf_counter() - t0)
                res[key] = {"export s": f"{statistics.median(secs):.3f}"}
                res[key].update(describe(proto, module, make_inputs, names))
            except Exception as err:  # noqa: BLE001  -- a failure is a finding
                res[key] = {"error": first_line(err)}
        ok = {k: v for k, v in res.items() if "session" in v}
        if ok:
            feeds = {n: t.numpy() for n, t in zip(names, make_inputs(ORT_ROWS, torch.Generator().manual_seed(3)))}
            for k, ms in time_ort({k: v["session"] for k, v in ok.items()}, feeds).items():
                res[k]["ort ms/10k"] = f"{ms:.2f}"
        print(f"== {title}  inputs {', '.join(names)} -> outputs {', '.join(outputs)}")
        rows = ["export s", "parity512", "parity1", "parity37", "bytes", "bytes bare", "nodes", "functions", "ir",
                "checker", "opsets", "dims", "ort ms/10k"]
        print(f"   {'':12}{'torchscript':>28}  {'dynamo':>28}")
        for key in ("torchscript", "dynamo"):
            if "error" in res[key]:
                print(f"   {key} FAILED: {res[key]['error']}")
        for r in rows:
            a, b = (str(res[k].get(r, "-")) for k in ("torchscript", "dynamo"))
            print(f"   {r:12}{a:>28}  {b:>28}")
        if len(ok) == 2:
            print(f"   {'ort ratio':12}{'dynamo/torchscript':>28}  "
                  f"{float(res['dynamo']['ort ms/10k']) / float(res['torchscript']['ort ms/10k']):>28.2f}")
            ta, tb = res["torchscript"]["ops"], res["dynamo"]["ops"]
            fmt = lambda s: " ".join(sorted(op if dom == "ai.onnx" else f"{dom}.{op}" for dom, op in s)) or "-"
            print(f"   ops both:   {fmt(ta & tb)}")
            print(f"   only ts:    {fmt(ta - tb)}")
            print(f"   only dyn:   {fmt(tb - ta)}")
        for k, v in ok.items():
            other = sorted({dom for dom, _ in v["ops"]} - {"ai.onnx"})
            print(f"   {k}: ops outside ai.onnx: {', '.join(other) or 'none'}")
        print()


if __name__ == "__main__":
    main()
