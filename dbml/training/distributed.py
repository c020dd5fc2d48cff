"""Option ``workers``: one version trained by N processes on this machine, data parallel.

Each worker (a process started with ``spawn``) builds the same network from the same
seed, takes its shard of every epoch's order (:class:`dbml.data.batches.TensorBatches`
with ``shard``/``shards``: together the shards cover every row once) from tensors the
parent shares with it (torch's shared memory, no copy per worker), and after every
backward pass the gradients are averaged over the workers with one all-reduce (gloo on
the CPU, NCCL on GPUs), which is what DistributedDataParallel does, minus its overlap of
communication with the backward pass. The workers' weights therefore stay equal, every
worker takes the same early-stopping decision (the validation loss is summed over the
shards), and rank 0 hands the weights and the log back to the parent, which measures,
exports and records the version as for one process: only the parent holds the DuckDB
connection (a DuckDB file has one writing process).

Each worker takes ``ceil(batch_size / N)`` rows a step, so a step sees as many rows as
one process would. A worker that dies stops the others (their process group is torn
down and they are terminated), and training ends with a :class:`TrainingError`; nothing
is written.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

import torch

from dbml.data.batches import TensorBatches
from dbml.tasks import Task
from dbml.training.loop import Trainer
from dbml.errors import DbmlError, OptionError, TrainingError

__all__ = ["check", "fit", "DistributedTrainer"]


def check(name: str, options: dict[str, Any], device: torch.device, streaming: bool = False) -> None:
    """Refuse a ``workers`` this machine or this training cannot give, before any row is read."""
    n = options.get("workers") or 1
    if n <= 1:
        return
    if device.type == "cuda":
        have, what = torch.cuda.device_count(), "GPUs"
    else:
        have, what = os.cpu_count() or 1, "CPU cores"
    if n > have:
        raise OptionError(f"option 'workers' = {n} of TRAIN MODEL {name}: this machine has {have} {what}; "
                          f"give at most workers = {have}")  # fmt: skip


@contextlib.contextmanager
def _main_not_reimported():
    """While workers start: multiprocessing's ``spawn`` runs the caller's main script
    again in each worker unless the script guards itself with ``if __name__ ==
    '__main__'``, which a user's script that runs TRAIN MODEL need not do. The workers
    need nothing of it (their function lives in this module), so the main module's file
    and spec are hidden from the spawn's preparation, then put back."""
    main = sys.modules.get("__main__")
    saved = {a: getattr(main, a) for a in ("__file__", "__spec__") if main is not None and hasattr(main, a)}
    try:
        if "__file__" in saved:
            del main.__file__
        if "__spec__" in saved:
            main.__spec__ = None
        yield
    finally:
        for attr, value in saved.items():
            setattr(main, attr, value)


def _stop(procs) -> None:
    """Terminate and reap every worker still running."""
    if procs is None:
        return
    for proc in procs.processes:
        if proc.is_alive():
            proc.terminate()
    for proc in procs.processes:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DistributedTrainer(Trainer):
    """The loop of one worker: :class:`dbml.training.Trainer` with gradients averaged over
    the ``world`` workers after every backward pass, every worker stepping while all of
    them have a batch, and the losses summed over the shards."""

    def __init__(self, *args, world: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.world = world

    def backward(self, loss):
        import torch.distributed as dist

        loss.backward()
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= self.world
            at = 0
            for g in grads:
                g.copy_(flat[at : at + g.numel()].view_as(g))
                at += g.numel()

    def steps(self, batches):
        import torch.distributed as dist

        batches = iter(batches)
        while True:
            batch = next(batches, None)
            go = torch.tensor([1.0 if batch is not None else 0.0])
            dist.all_reduce(go, op=dist.ReduceOp.MIN)  # every worker steps, or none
            if go.item() < 1:
                return
            yield batch

    def reduce(self, sums):
        import torch.distributed as dist

        total = torch.tensor(sums, dtype=torch.float64)
        dist.all_reduce(total)
        return total.tolist()


def pack(net, logs) -> tuple[bytes, list[tuple]]:
    """A trained network and its log as bytes and tuples: what a worker hands back (not
    shared tensors: the worker may be gone before they are read)."""
    import dataclasses
    import io

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buf)
    return buf.getvalue(), [dataclasses.astuple(log) for log in logs]


def unpack(p, features, prof, target, packed):
    """(network of plan ``p`` with the packed weights, logs) in this process."""
    import io

    from dbml.training import pipeline as pl
    from dbml.training.loop import EpochLog

    data, rows = packed
    with torch.random.fork_rng(devices=[p.device] if p.device.type == "cuda" else []):
        net = pl.build_network(p, features, prof, target)
    net.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))  # tensors only, never code
    return net, [EpochLog(*row) for row in rows]


def failure(text: str, what: str) -> TrainingError:
    """The error of a worker that raised: its own dbml error when it raised one, else the
    last line of its traceback."""
    found = next((line for line in text.splitlines() if "dbml: " in line), None)
    if found is not None:
        return TrainingError(found[found.index("dbml: ") + 6 :])
    last = text.strip().splitlines()[-1][:300] if text.strip() else "no message"
    return TrainingError(f"{what} failed: {last}; nothing was saved")


def _worker(rank: int, world: int, port: int, recipe: dict[str, Any], results) -> None:
    import torch.distributed as dist

    from dbml.training import ProgressBar
    from dbml.training import pipeline as pl

    backend = "cpu:gloo,cuda:nccl" if recipe["device"].type == "cuda" else "gloo"  # the step flag and sums are CPU tensors
    device = torch.device("cuda", rank) if recipe["device"].type == "cuda" else recipe["device"]
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(recipe["threads"])
        p, options = recipe["plan"], recipe["options"]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            net = pl.start_network(p, recipe["features"], recipe["profile"], recipe["target"]).to(device)
        batch = max(1, math.ceil(recipe["batch_size"] / world))
        staged = recipe.get("staged")
        if staged is not None:  # streamed: this worker's share of the rows the parent staged, through its own DuckDB
            import duckdb

            from dbml.data import stream

            con = duckdb.connect()
            spec = staged["spec"]

            def batches(roles, shuffle):
                def sql(epoch):
                    order = epoch if shuffle and epoch and options.get("shuffle") == "sort" else None
                    return stream.staged_sql(staged["path"], spec["fraction"], roles, rank, world, epoch=order)

                out = stream.StreamBatches(con, sql, None, spec["convert"], batch, None, spec["buffer"],
                                           seed=options["seed"], shuffle=shuffle, drop_single=True, model=p.name)  # fmt: skip
                out.rows = staged["rows"][tuple(roles)]
                return out

            train = batches(spec["roles"], True)
            val = batches((1,), False) if recipe["schedule"] is None and staged["rows"][(1,)] else None
        else:
            train = TensorBatches(recipe["train"], batch, seed=options["seed"], shard=rank, shards=world, drop_single=True)
            val = None
            if recipe["val"] is not None:
                val = TensorBatches(recipe["val"], max(batch, pl.VALIDATION_BATCH), shuffle=False, shard=rank, shards=world)
                val.rows = val.total  # every worker validates (a shard may hold none of the rows): the sums are collective
        if p.parent is None and p.base is None and type(p.task).start is not Task.start:
            p.task.start(net, train, val, options)  # on each worker's shard: every worker takes rank 0's weights
            for t in net.state_dict().values():
                dist.broadcast(t, 0)
        bar = [ProgressBar(recipe["label"], options["verbose"], recipe["prefix"])] if rank == 0 and options["verbose"] else []
        trainer = DistributedTrainer(net, p.task, options, bar, device, schedule=recipe["schedule"], world=world)
        logs = trainer.fit(train, val if val is not None and val.rows else None)
        if rank == 0:
            results.put(pack(net, logs))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def fit(p, features, prof, target, options: dict[str, Any], train: TensorBatches, val: TensorBatches | None,
        schedule, label: str, prefix: str = ""):  # fmt: skip
    """Train plan ``p``'s network on ``options['workers']`` processes; returns (network
    with the trained weights, logs) in this process.

    Raises:
        TrainingError: a worker died or failed (the others are stopped; nothing is written).
    """
    import dataclasses

    world = int(options["workers"])
    light = dataclasses.replace(p, req=dataclasses.replace(p.req, callbacks=[]))
    recipe = {
        "plan": light, "features": features, "profile": prof, "target": target, "options": options,
        "batch_size": train.batch_size, "schedule": schedule, "device": p.device, "label": label, "prefix": prefix,
        "threads": max(1, (options["threads"] or os.cpu_count() or 1) // world), "train": None, "val": None,
    }  # fmt: skip
    stage = None
    if hasattr(train, "spec"):  # streamed rows: staged once for the workers (a DuckDB file has one process that opens it)
        stage = tempfile.mkdtemp(prefix="dbml-workers-")
        recipe["staged"] = _stage(p, train, os.path.join(stage, "rows.parquet"))
    else:
        try:
            recipe["train"] = {k: t.cpu().share_memory_() for k, t in train.tensors.items()}
            if val is not None and val.tensors:
                recipe["val"] = {k: t.cpu().share_memory_() for k, t in val.tensors.items()}
        except RuntimeError as err:  # shared memory (/dev/shm) too small for the rows
            raise TrainingError(f"the rows of TRAIN MODEL {p.name} do not fit in shared memory for the workers ({err}); "
                                "give the machine more /dev/shm, or add streaming = true (the workers then read a "
                                "staged file)") from None  # fmt: skip
    try:
        return _run(p, world, recipe)
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def _stage(p, train, path: str) -> dict[str, Any]:
    """Write the encoded rows of every role a streamed fit reads, with their split keys, to
    the parquet file ``path`` in one pass over the source; refuse a source that changed."""
    from dbml.data import split, stream
    from dbml.data.rows import read_error
    from dbml.errors import SourceError
    from dbml.sqltext import string

    spec = train.spec
    body = stream.pass_sql(spec["examples"], spec["selects"], spec["target_sql"], spec["row_hash"], spec["seed"],
                           spec["fraction"], (0, 1), keep_key=True)  # fmt: skip
    try:
        train.con.execute(f"COPY (\n{body}\n) TO {string(path)} (FORMAT parquet)", train.params)
        role = stream.role_sql(split.KEY, spec["fraction"])
        got = train.con.execute(f"SELECT {role} AS r, count(*), coalesce(sum({split.ROW}::HUGEINT), 0) FROM "
                                f"read_parquet({string(path)}) GROUP BY r").fetchall()  # fmt: skip
    except Exception as err:  # noqa: BLE001 - a source DuckDB cannot read now: said as the streamed pass says it
        raise read_error(err, p.name, p.req.source_label) from None
    counts = {int(r): (int(n), int(t)) for r, n, t in got}
    zero = (0, 0)
    rows = {(0,): counts.get(0, zero)[0], (1,): counts.get(1, zero)[0]}
    rows[(0, 1)] = rows[(0,)] + rows[(1,)]
    read = tuple(sum(counts.get(r, zero)[i] for r in spec["roles"]) for i in (0, 1))
    if spec["expect"] is not None and read != tuple(spec["expect"]):
        raise SourceError(f"the source {p.req.source_label} of model '{p.name}' changed while the model trained: "
                          f"{read[0]:,} rows where the first pass read {spec['expect'][0]:,}; "
                          "nothing was saved")  # fmt: skip
    return {"path": path, "spec": spec, "rows": rows}


def _run(p, world: int, recipe: dict[str, Any]):
    import torch.multiprocessing as mp


    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    procs, got = None, None
    try:
        with _main_not_reimported():
            procs = mp.start_processes(_worker, args=(world, _free_port(), recipe, results), nprocs=world, join=False,
                                       start_method="spawn")  # fmt: skip
        while True:
            if got is None and not results.empty():  # read as it comes: a pipe holds ~64 KiB, rank 0 waits on us
                got = results.get()
            if procs.join(timeout=0.2):
                break
    except mp.ProcessRaisedException as err:
        raise failure(str(err), f"a worker of TRAIN MODEL {p.name}") from None
    except mp.ProcessExitedException as err:
        raise TrainingError(f"worker {err.error_index} of {world} of TRAIN MODEL {p.name} stopped "
                            f"({'signal ' + err.signal_name if err.signal_name else 'exit code ' + str(err.exit_code)}); "
                            "the others were stopped and nothing was saved") from None  # fmt: skip
    except DbmlError:
        raise
    except BaseException:  # an interrupt, or anything else: no worker is left running
        _stop(procs)
        raise
    if got is None and not results.empty():
        got = results.get()
    if got is None:
        raise TrainingError(f"the workers of TRAIN MODEL {p.name} ended without a result; nothing was saved")
    net, logs = unpack(p, recipe["features"], recipe["profile"], recipe["target"], got)
    return net.to(p.device), logs
