"""TRAIN MODEL end to end against a hand-written torch loop over the same rows and network.

For each family (mlp on 20 FLOAT columns, cnn on an 8x8 FLOAT[64] image, lstm on a
16-step sequence), in one run:

1. **In memory.** ``TRAIN MODEL ... WITH (streaming = false)`` end to end (facts,
   read, profile, fit, validation every epoch, export, parity check, registry write)
   against a loop that fetches the same table as Arrow, standardises it, and trains the
   same trunk (built by ``dbml.architectures``, so the modules are identical) with a
   linear head and AdamW, on the same number of training rows (80%), batch size and
   epochs, with no validation, export or registry.
2. **Streaming from parquet.** The table written to a parquet file;
   ``TRAIN MODEL ... FROM 'file.parquet' WITH (streaming = true)`` against a loop that
   reads the parquet with pyarrow in record batches on every epoch (one pass for the
   means and spreads first), shuffles within batches of the same buffer size, and
   trains the same network.

dbml trains with ``refit = false`` and a patience larger than the epochs, so both run
exactly ``--epochs`` epochs over the same rows. Printed: seconds of each (the fastest of
``--repeat`` runs, 3 by default: these machines are noisy), the ratio dbml / hand loop, and both models' held-out accuracy (so a fast wrong loop shows).
``epochs s`` is the part of dbml's time its training log gives to the epochs (training
and validation); the rest is the facts pass, the read, the profile, export, the parity
check and the registry write. dbml trains with ``threads`` set to torch's thread count,
as the hand loop does (its default picks one thread for small networks: see
``dbml.training.pipeline._cpu_threads``).

    python benchmarks/train.py                       # mlp, cnn, lstm; 200k / 50k / 20k rows
    python benchmarks/train.py --families mlp --rows 400000 --epochs 3
    python benchmarks/train.py --device cuda         # on a GPU (both sides)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

import dbml
from dbml.architectures import get_architecture

BUFFER_BYTES = 64 * 2**20  # as dbml.data.stream
TIMES: list[float] = []  # seconds of dbml's epochs (training_log), per run


def make_table(family: str, n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    if family == "mlp":
        x = rng.normal(size=(n, 20)).astype(np.float32)
        w = np.random.default_rng(123).normal(size=20)  # the same rule for every seed's rows
        y = (x @ w + 0.5 * x[:, 0] * x[:, 1] + rng.normal(size=n) > 0).astype(np.int64)
        return pa.table({**{f"x{i}": x[:, i] for i in range(20)}, "y": y})
    if family == "cnn":
        base = rng.normal(size=(n, 8, 8)).astype(np.float32) * 0.5
        y = rng.integers(0, 2, n)
        base[y == 1, 2:6, 3:5] += 1.0  # a vertical bar in class 1
        flat = base.reshape(n, 64)
        return pa.table({"px": pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), 64), "y": y.astype(np.int64)})
    if family == "lstm":
        steps = 16
        y = rng.integers(0, 2, n)
        t = np.arange(steps)
        freq = np.where(y == 1, 0.9, 0.5)[:, None]
        s = (np.sin(freq * t[None, :] + rng.uniform(0, 6, (n, 1))) + 0.3 * rng.normal(size=(n, steps))).astype(np.float64)
        return pa.table({"s": pa.ListArray.from_arrays(pa.array(np.arange(0, n * steps + 1, steps, dtype=np.int32)),
                                                       pa.array(s.ravel())), "y": y.astype(np.int64)})  # fmt: skip
    raise ValueError(family)


USING = {"mlp": ("mlp", ""), "cnn": ("cnn", "shape = [1, 8, 8], "), "lstm": ("lstm", "")}


def _trunk(family: str):
    arch = get_architecture(family)
    options = {o.name: o.default for o in arch.options}
    if family == "mlp":
        inputs = {"scalar": (20,)}
    elif family == "cnn":
        options["shape"] = [1, 8, 8]
        inputs = {"array:px": (64,)}
    else:
        inputs = {"array:s": (16, 2)}
    trunk = arch.build(inputs, "classification", options)
    return inputs, trunk


class HandNet(torch.nn.Module):
    def __init__(self, family: str):
        super().__init__()
        inputs, self.trunk = _trunk(family)
        self.key = next(iter(inputs))
        self.head = torch.nn.Linear(int(self.trunk.width), 2)

    def forward(self, x):
        return self.head(self.trunk({self.key: x}))


def _features(family: str, table: pa.Table) -> np.ndarray:
    if family == "mlp":
        return np.column_stack([table.column(f"x{i}").to_numpy() for i in range(20)]).astype(np.float32)
    if family == "cnn":
        return table.column("px").combine_chunks().flatten().to_numpy().reshape(-1, 64).astype(np.float32)
    values = table.column("s").combine_chunks().flatten().to_numpy().reshape(-1, 16).astype(np.float32)
    return values


def _prepared(family: str, x: np.ndarray, mean, std) -> torch.Tensor:
    z = torch.from_numpy((x - mean) / std)
    if family == "lstm":
        return torch.stack([z, torch.ones_like(z)], dim=2)  # (value, present) per step
    return z


def _train_hand(family: str, batches_of_epoch, epochs: int, lr=1e-3, weight_decay=1e-4, device="cpu"):
    torch.manual_seed(0)
    net = HandNet(family).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    for epoch in range(epochs):
        net.train()
        for xb, yb in batches_of_epoch(epoch):
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
    return net.eval()


def _accuracy(net, family, x_test, y_test, mean, std, device) -> float:
    with torch.no_grad():
        out = net(_prepared(family, x_test, mean, std).to(device)).argmax(1).cpu().numpy()
    return float((out == y_test).mean())


def hand_in_memory(con, family, table_name, epochs, batch_size, test, device):
    started = time.perf_counter()
    table = con.sql(f"SELECT * FROM {table_name}").arrow().read_all()
    x, y = _features(family, table), table.column("y").to_numpy()
    n_train = int(round(len(y) * 0.8))
    x, y = x[:n_train], y[:n_train].copy()
    axis = None if family != "mlp" else 0
    mean, std = x.mean(axis=axis), x.std(axis=axis) + 1e-8
    xt, yt = _prepared(family, x, mean, std), torch.from_numpy(y)

    def batches(epoch):
        order = torch.from_numpy(np.random.default_rng(epoch).permutation(n_train))
        for i in range(0, n_train, batch_size):
            idx = order[i : i + batch_size]
            yield xt[idx], yt[idx]

    net = _train_hand(family, batches, epochs, device=device)
    seconds = time.perf_counter() - started
    return seconds, _accuracy(net, family, _features(family, test), test.column("y").to_numpy(), mean, std, device)


def hand_parquet(family, path, epochs, batch_size, test, device):
    started = time.perf_counter()
    f = pq.ParquetFile(path)
    n, s, s2 = 0, 0.0, 0.0  # the means and spreads: one pass
    for batch in f.iter_batches(batch_size=65536):
        x = _features(family, pa.Table.from_batches([batch])).astype(np.float64)
        axis = 0 if family == "mlp" else None
        n += x.shape[0] if axis == 0 else x.size
        s, s2 = s + x.sum(axis=axis), s2 + (x**2).sum(axis=axis)
    mean = (s / n).astype(np.float32)
    std = (np.sqrt(np.maximum(s2 / n - (s / n) ** 2, 0)) + 1e-8).astype(np.float32)
    width = {"mlp": 20, "cnn": 64, "lstm": 16}[family]
    buffer = max(batch_size, BUFFER_BYTES // (8 * width + 8))

    def batches(epoch):
        rng = np.random.default_rng(epoch)
        for batch in f.iter_batches(batch_size=buffer):
            t = pa.Table.from_batches([batch])
            xt = _prepared(family, _features(family, t), mean, std)
            yt = torch.from_numpy(t.column("y").to_numpy().copy())
            keep = torch.from_numpy(rng.random(len(yt)) >= 0.2)  # the same share of training rows as dbml
            xt, yt = xt[keep], yt[keep]
            order = torch.from_numpy(rng.permutation(len(yt)))
            for i in range(0, len(yt), batch_size):
                idx = order[i : i + batch_size]
                yield xt[idx], yt[idx]

    net = _train_hand(family, batches, epochs, device=device)
    seconds = time.perf_counter() - started
    return seconds, _accuracy(net, family, _features(family, test), test.column("y").to_numpy(), mean, std, device)


def dbml_train(con, family, source, epochs, batch_size, streaming, device, test_name):
    arch, extra = USING[family]
    started = time.perf_counter()
    con.sql(f"TRAIN MODEL bench_{family} USING {arch} FROM {source} TARGET y WITH ({extra}epochs = {epochs}, "
            f"patience = {epochs + 1}, refit = false, batch_size = {batch_size}, streaming = {str(streaming).lower()}, "
            f"device = '{device}', threads = {torch.get_num_threads()}, verbose = 0)").fetchall()  # fmt: skip
    seconds = time.perf_counter() - started
    epochs_s = con.sql(f"SELECT sum(seconds) FROM dbml.training_log WHERE model = 'bench_{family}' AND version = "
                       f"(SELECT max(version) FROM dbml.model_versions WHERE model = 'bench_{family}')").fetchall()[0][0]  # fmt: skip
    TIMES.append(epochs_s)
    cols = {"mlp": ", ".join(f"x{i}" for i in range(20)), "cnn": "px", "lstm": "s"}[family]
    acc = con.sql(f"SELECT avg((PREDICT(bench_{family}, {cols}) = y)::DOUBLE) FROM {test_name}").fetchall()[0][0]
    return seconds, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default="mlp,cnn,lstm")
    ap.add_argument("--rows", type=int, default=0, help="rows of every family (default 200k mlp, 50k cnn, 20k lstm)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--skip-streaming", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side; the fastest is shown (a noisy machine)")
    args = ap.parse_args()
    default_rows = {"mlp": 200_000, "cnn": 50_000, "lstm": 20_000}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, epochs {args.epochs}, "
          f"batch size {args.batch_size}, fastest of {args.repeat} runs a side, taking turns; python {sys.version.split()[0]}")  # fmt: skip
    print(f"{'family':<6} {'rows':>8} {'path':<22} {'dbml s':>8} {'epochs s':>8} {'hand s':>8} {'ratio':>6} {'dbml acc':>9} "
          f"{'hand acc':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            n = args.rows or default_rows[family]
            con = dbml.connect(os.path.join(tmp, f"{family}.duckdb"))
            table, test = make_table(family, n, 0), make_table(family, 10_000, 1)
            con.duckdb.register("bench_rows", table)
            con.duckdb.register("bench_test", test)
            con.sql("CREATE TABLE src AS SELECT * FROM bench_rows")
            con.sql("CREATE TABLE test_rows AS SELECT * FROM bench_test")
            # warm both paths once (imports, thread pools) on a few rows
            dbml_train(con, family, "(SELECT * FROM src LIMIT 2000)", 1, args.batch_size, False, args.device, "test_rows")
            rows, epoch_s = [], []

            def interleaved(ours, theirs):
                """The fastest of --repeat runs of each side, the sides taking turns (the machine drifts)."""
                got_d, got_h = [], []
                for _ in range(args.repeat):
                    TIMES[:] = []
                    got_d.append((ours(), TIMES[0] if TIMES else float("nan")))
                    got_h.append(theirs())
                d, es = min(got_d, key=lambda g: g[0][0])
                return d, es, min(got_h, key=lambda g: g[0])

            for streaming in [False] + ([] if args.skip_streaming else [True]):
                source, label = "src", "in memory"
                if streaming:
                    path = os.path.join(tmp, f"{family}.parquet")
                    pq.write_table(table, path)
                    source, label = f"'{path}'", f"parquet, {os.path.getsize(path) / 2**20:.0f} MiB"
                    theirs = lambda: hand_parquet(family, path, args.epochs, args.batch_size, test, args.device)  # noqa: E731
                else:
                    theirs = lambda: hand_in_memory(con, family, "src", args.epochs, args.batch_size, test, args.device)  # noqa: E731
                d, es, h = interleaved(lambda: dbml_train(con, family, source, args.epochs, args.batch_size, streaming,
                                                          args.device, "test_rows"), theirs)  # fmt: skip
                rows.append((label, d, h))
                epoch_s.append(es)
            for (label, (ds, da), (hs, ha)), es in zip(rows, epoch_s):
                print(f"{family:<6} {n:>8,} {label:<22} {ds:>8.2f} {es:>8.2f} {hs:>8.2f} {ds / hs:>6.2f} {da:>9.4f} {ha:>9.4f}",
                      flush=True)  # fmt: skip
            con.close()


if __name__ == "__main__":
    main()
