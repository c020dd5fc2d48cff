"""``dbml.spark.train``: TRAIN MODEL on a Spark DataFrame, trained by Spark's
TorchDistributor, recorded in a dbml registry that DuckDB scores from.

    import dbml.spark
    row = dbml.spark.train(df, "churn", target="churned", registry="models.duckdb", num_processes=2)

1. On the driver, before any Spark job: the target is a column of ``df`` and every
   column has a type Arrow (and so DuckDB) takes; else a dbml error names the column.
2. ``df`` is written as parquet to a staging folder (each partition a file: Spark's own
   Arrow conversion). ``staging`` must be a path the driver and the training processes
   both read (local mode: any local folder; a cluster: a shared file system).
3. The driver runs TRAIN MODEL over the staged files with ``streaming = true``: the
   facts, the split, the profile and the held-out rows come from DuckDB on the driver as
   for any streamed source (:mod:`dbml.training.streaming`).
4. The fit runs in ``num_processes`` processes started by
   ``pyspark.ml.torch.distributor.TorchDistributor``. Each reads the staged files as
   Arrow record batches through an in-process DuckDB and keeps its share of the rows
   (the rows whose seeded key is its rank modulo the processes: balanced shards, whatever
   the partitions' sizes; the same encoded columns and split as the driver's), and the gradients are averaged after every step
   over torch.distributed (gloo; NCCL with ``use_gpu``), as ``workers`` does
   (:mod:`dbml.training.distributed`). The trained weights come back to the driver.
5. The driver measures the network on the held-out rows, exports it, checks ONNX parity
   and writes the version to the registry, with the Spark source in its source SQL.

Needs pyspark (``pip install 'dbml[spark]'``) and torch.
"""

from __future__ import annotations

import glob
import math
import os
import tempfile
from typing import TYPE_CHECKING, Any

from dbml.errors import FeatureError, OptionError, TargetError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["train"]


def _check(df: DataFrame, model: str, target: str | None) -> None:
    """The target and every column's type, on the driver, before any job."""
    try:
        from pyspark.sql.pandas.types import to_arrow_type
    except ImportError as err:  # pragma: no cover - pyspark without its Arrow path
        raise OptionError(f"dbml.spark.train needs pyspark with Arrow support: {err}") from None
    names = df.columns
    if target is not None and target.lower() not in {c.lower() for c in names}:
        raise TargetError(f"target column '{target}' of model '{model}' is not in the Spark DataFrame; its columns are "
                          f"{', '.join(names)}")  # fmt: skip
    for field in df.schema.fields:
        try:
            to_arrow_type(field.dataType)
        except (TypeError, NotImplementedError, ValueError) as err:
            raise FeatureError(f"column '{field.name}' of the Spark DataFrame for model '{model}' has type "
                               f"{field.dataType.simpleString()}, which dbml cannot take ({str(err).splitlines()[0][:120]}); "
                               "cast it or leave it out with df.select(...)") from None  # fmt: skip
        if field.dataType.typeName() in ("map", "struct", "binary", "calendarinterval", "variant"):
            raise FeatureError(f"column '{field.name}' of the Spark DataFrame for model '{model}' has type "
                               f"{field.dataType.simpleString()}, which no dbml kind takes; cast it or leave it out "
                               "with df.select(...)")  # fmt: skip


def _files_sql(files: list[str]) -> str:
    from dbml.sqltext import string

    return f"SELECT * FROM read_parquet([{', '.join(string(f) for f in files)}])"


def _worker(recipe: dict[str, Any]):
    """One TorchDistributor process: its share of the staged files, streamed; gradients
    averaged with the others; returns (state dict bytes, log rows), the same on every rank."""
    import duckdb
    import torch
    import torch.distributed as dist

    from dbml.data import source as data_source
    from dbml.data import stream
    from dbml.training import pipeline as pl
    from dbml.training.distributed import DistributedTrainer, pack

    dist.init_process_group("cpu:gloo,cuda:nccl" if recipe["use_gpu"] else "gloo")  # the step flag and sums are CPU tensors
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if recipe["use_gpu"] else torch.device("cpu")
        p, spec = recipe["plan"], recipe["spec"]
        con = duckdb.connect()
        examples = data_source.examples_sql(_files_sql(recipe["files"]), p.target, p.target_type)

        def sql(roles):
            def one(epoch):
                order = epoch if epoch and spec["sort"] else None
                return stream.pass_sql(examples, spec["selects"], spec["target_sql"], p.row_hash, spec["seed"],
                                       spec["fraction"], roles, shard=rank, shards=world, epoch=order)  # fmt: skip

            return one

        batch = max(1, math.ceil(recipe["batch_size"] / world))

        def batches(roles, shuffle):
            return stream.StreamBatches(con, sql(roles), None, spec["convert"], batch, None, spec["buffer"],
                                        seed=spec["seed"], shuffle=shuffle, drop_single=True, model=p.name,
                                        label="(Spark DataFrame)")  # fmt: skip

        net = pl.start_network(p, recipe["features"], recipe["profile"], recipe["target"]).to(device)
        train = batches(spec["roles"], True)
        val = batches((1,), False) if spec["n_val"] and recipe["schedule"] is None else None
        trainer = DistributedTrainer(net, p.task, recipe["options"], [], device, schedule=recipe["schedule"], world=world)
        if val is not None:
            val.rows = spec["n_val"]  # Trainer.fit validates when the batches say they hold rows
        try:
            logs = trainer.fit(train, val)
        finally:
            con.close()
        return pack(net, logs)
    finally:
        dist.destroy_process_group()


def train(df: DataFrame, model: str, target: str | None = None, registry: str = "dbml.duckdb", *,
          using: str | None = None, num_processes: int = 2, local_mode: bool = True, use_gpu: bool = False,
          staging: str | None = None, **options: Any) -> dict[str, Any]:  # fmt: skip
    """Train the next version of ``model`` on the rows of ``df`` with TorchDistributor and
    record it in the DuckDB file ``registry``; returns TRAIN MODEL's row as a dict.

    Args:
        df: the rows (a Spark DataFrame), the target among its columns.
        model, target, using, options: as in TRAIN MODEL (``streaming`` and ``workers``
            are set here).
        registry: the DuckDB file the version goes to.
        num_processes, local_mode, use_gpu: TorchDistributor's.
        staging: a folder the driver and the training processes share (default: a new
            temporary folder, removed afterwards).
    """
    import dataclasses
    import shutil

    import dbml
    from dbml.names import check_model_name
    from dbml.request import TrainRequest
    from dbml.training import distributed, pipeline

    name = check_model_name(model)
    for key in ("streaming", "workers"):
        if key in {k.lower() for k in options}:
            raise OptionError(f"option '{key}' of dbml.spark.train for model '{name}' is set by dbml.spark.train "
                              "(the rows stream from the staged files to the TorchDistributor processes)")  # fmt: skip
    if not isinstance(num_processes, int) or num_processes < 1:
        raise OptionError(f"num_processes of dbml.spark.train for model '{name}' must be a positive integer, got {num_processes!r}")
    _check(df, name, target)
    own = staging is None
    stage = tempfile.mkdtemp(prefix="dbml-spark-") if own else staging
    try:
        df.write.mode("overwrite").parquet(os.path.join(stage, "rows"))
        files = sorted(glob.glob(os.path.join(stage, "rows", "*.parquet")))
        if not files:
            raise TargetError(f"the Spark DataFrame for model '{name}' has no rows")
        source_sql = _files_sql(files)
        where = ", ".join(sorted({os.path.dirname(f) for f in files}))
        try:
            inputs = list(df.inputFiles())  # the files Spark read the DataFrame from, where it knows them
        except Exception:  # noqa: BLE001 - a DataFrame of no files
            inputs = []
        read_from = f"; read by Spark from {', '.join(inputs[:20])}{' ...' if len(inputs) > 20 else ''}" if inputs else ""
        written = (f"-- a Spark DataFrame ({len(df.columns)} columns{read_from}), staged to {where} by "
                   f"dbml.spark.train\n{source_sql}")  # fmt: skip

        def fit_with(p, features, prof, target_, opts, train_batches, val, schedule):
            from pyspark.ml.torch.distributor import TorchDistributor

            light = dataclasses.replace(p, req=dataclasses.replace(p.req, callbacks=[], fit_with=None))
            recipe = {"plan": light, "features": features, "profile": prof, "target": target_, "options": opts,
                      "spec": train_batches.spec, "files": files, "batch_size": train_batches.batch_size,
                      "schedule": schedule, "use_gpu": use_gpu}  # fmt: skip
            try:
                packed = TorchDistributor(num_processes=num_processes, local_mode=local_mode,
                                          use_gpu=use_gpu).run(_worker, recipe)  # fmt: skip
            except Exception as err:  # noqa: BLE001 - a failed Spark run, said as dbml says it
                raise distributed.failure(str(err), f"the TorchDistributor run of model '{name}'") from None
            return distributed.unpack(p, features, prof, target_, packed)

        con = dbml.connect(registry)
        try:
            req = TrainRequest(model=name, source_sql=source_sql, source_label="(Spark DataFrame)",
                               targets=[target] if target else [], architecture=using,
                               options={**options, "streaming": True}, written_sql=written, fit_with=fit_with)  # fmt: skip
            return pipeline.train(con.duckdb, con.registry, req)
        finally:
            con.close()
    finally:
        if own:
            shutil.rmtree(stage, ignore_errors=True)
