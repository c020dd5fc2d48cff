"""TRAIN MODEL on a table larger than memory: the same stages as
:func:`dbml.training.pipeline.train`, with the rows streamed from DuckDB on every pass
(:mod:`dbml.data.stream`) instead of read once into memory.

    summary (rows and fingerprint per role) -> the target's values -> profile (DuckDB
    SQL over the training rows) -> the validation rows, in memory -> fit on streamed
    batches -> export and the parity check -> record

What the process holds: one shuffle buffer of training rows and the validation rows (at
most :data:`VALIDATION_BYTES` of tensors: beyond it the validation share shrinks to
fit). Above :data:`PROFILE_ROWS` training rows (or :data:`PROFILE_BYTES` of values), the profile (scaling, quantiles,
vocabularies) and the target's preparation (labels, a regression's mean and spread)
read a seeded sample of that many training rows, so that exact quantiles do not hold a
column in memory; every distinct target value joins the sample once when there are few,
so that no class is missed. Below it they read every training row, as in memory.

:func:`decide` chooses between the paths: option ``streaming`` forces one; by default a
source whose rows' tensors would take more than :func:`auto_bytes` streams.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import torch

from dbml.data import rows as data_rows
from dbml.data import split, stream
from dbml.data.batches import Batch, TensorBatches
from dbml.errors import OptionError, SourceError
from dbml.kinds import kind_of
from dbml.registry import Registry, lineage
from dbml.sqltext import quote as _q

__all__ = ["decide", "auto_bytes", "row_bytes", "train", "VALIDATION_BYTES"]

VALIDATION_BYTES = 64 * 2**20  # the validation rows' tensors held in memory, at most
PROFILE_ROWS = 1_000_000  # the profile and the target's preparation read a seeded sample of at most this many training rows
PROFILE_BYTES = 128 * 2**20  # ... and of at most this many bytes of values (exact quantiles hold a column in DuckDB)
_TARGET = data_rows.TARGET


def auto_bytes() -> int:
    """Above this many bytes of tensors, option ``streaming``'s default streams: a
    sixteenth of the machine's memory (the in-memory path holds about three copies of
    the rows at its peak), at most 2 GiB."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 16 * 2**30
    return int(min(2 * 2**30, physical // 16))


def row_bytes(features) -> int:
    """About how many bytes of tensors one row makes (8 a value; a text column counts
    its longest code row, 64 words and as many pairs)."""
    total = 8  # the target
    for f in features:
        try:
            shape = kind_of(f).tensor_shape([f], None)
        except Exception:  # noqa: BLE001 - a kind whose shape needs the profile (text)
            shape = (128,)
        total += 8 * int(np.prod(shape or (1,)))
    return total


def decide(p, con: duckdb.DuckDBPyConnection | None = None) -> bool:
    """Whether plan ``p`` streams: option ``streaming`` when given, else whether the
    rows' tensors would take more than :func:`auto_bytes`. A plan that cannot stream
    (see :func:`refusal`) is refused when the option asks for it, else kept in memory."""
    wanted = p.options.get("streaming")
    why = refusal(p)
    if wanted is True and why:
        raise OptionError(f"option 'streaming' of TRAIN MODEL {p.name}: {why}; leave streaming out (or false)")
    if wanted is not None:
        return bool(wanted)
    rows = p.facts.get("rows")
    if rows is None and not why and con is not None:  # no facts pass ran: count the rows that train
        try:
            rows = con.execute(f"SELECT count(*) FROM (\n{p.data_sql}\n) AS examples", p.req.params).fetchall()[0][0]
        except duckdb.Error as err:
            raise data_rows.read_error(err, p.name, p.req.source_label) from None
        p.facts["rows"] = int(rows)
    return not why and rows is not None and int(rows) * row_bytes(p.features) > auto_bytes()


def refusal(p) -> str:
    """Why plan ``p`` cannot stream ('' when it can)."""
    if p.row_hash is None:
        return (f"a {p.task.name} model learns from rows of its own making (windows or interactions), which are "
                "read in memory")  # fmt: skip
    if p.req.params:
        return "a source with query parameters cannot stream (the profile's queries take none): write the values in the query"
    if p.base is not None:
        return "a transfer (option base) reads its rows in memory"
    return ""


def _selects(p) -> list[str]:
    from sqlglot import exp

    from dbml.features import feature_sql

    return [f"{feature_sql(f, exp.column(f.name, quoted=True), p.name).sql(dialect='duckdb')} AS {_q(f.name)}"
            for f in p.features]  # fmt: skip


class Converter:
    """An Arrow table of a pass's columns -> a batch of CPU tensors (the kinds' tensors and
    the task's target), each row checked as the in-memory path checks it; picklable, so
    that processes elsewhere convert their own rows the same way."""

    def __init__(self, model: str, task, features, prof, target, options):
        self.model, self.task, self.features, self.prof, self.target, self.options = model, task, features, prof, target, options

    def __call__(self, table: pa.Table) -> Batch:
        from dbml.training import pipeline as pl

        for f in self.features:
            kind_of(f).check_rows(self.model, f, table.column(f.name), self.options)
        arrays = pl.batches(table, self.features, self.prof, self.model)
        out = {k: _tensor(a) for k, a in arrays.items()}
        if _TARGET in table.column_names:
            out["target"] = self.task.y_tensor(self.target, table.column(_TARGET))
        return out


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``a``'s memory, or a copy of an array Arrow keeps read-only."""
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _read_table(con, sql: str, params, p, empty_ok: bool = False) -> pa.Table | None:
    """The rows of ``sql``, whole; None when there are none and ``empty_ok``, else a
    SourceError (the rows the summary pass counted are gone: the source changed)."""
    batches = list(stream.read(con, sql, params, p.name, p.req.source_label))
    if not batches:
        if empty_ok:
            return None
        raise SourceError(f"the source {p.req.source_label} of model '{p.name}' changed while the model trained: a read "
                          "found none of the rows the first pass counted; nothing was saved")  # fmt: skip
    return pa.Table.from_batches(batches)

def train(con: duckdb.DuckDBPyConnection, registry: Registry, p, started: float) -> dict[str, Any]:
    """Run TRAIN MODEL for plan ``p`` with its rows streamed; returns the result row."""
    from dbml.training import pipeline as pl

    seed, fraction = p.options["seed"], p.options["validation"]
    label, params = p.req.source_label, p.req.params
    total = int(p.facts.get("rows") or 0)
    per_row = row_bytes(p.features)
    if total and fraction > 0 and total * fraction * per_row > VALIDATION_BYTES:
        fraction = VALIDATION_BYTES / (total * per_row)  # the validation rows that fit in memory
    counts = stream.summary(con, p.data_sql, params, p.row_hash, seed, fraction, p.name, label)
    (n_train, sum_train), (n_val, sum_val) = counts[0], counts[1]
    if n_train + n_val == 0:
        having = f" with a non-NULL '{p.target}'" if p.target else ""
        raise SourceError(f"the source {label} of model '{p.name}' has no rows{having}")
    if n_train == 0:
        raise OptionError(f"option 'validation' = {p.options['validation']} leaves no training rows out of {n_val}")
    fingerprint = lineage.fingerprint_value(n_train + n_val, sum_train + sum_val)
    selects = _selects(p)
    target_sql = p.task.target_sql(p.target, p.target_type) if p.target or p.task.own_target else None

    def sql(roles, epoch=None, sample=1.0):
        return stream.pass_sql(p.data_sql, selects, target_sql, p.row_hash, seed, fraction, roles, epoch=epoch,
                               sample=sample)

    # one read of a seeded sample of the training rows (all of them below PROFILE_ROWS and PROFILE_BYTES): the
    # profile is DuckDB SQL over it, as over the training rows in memory, and the task's preparation (labels,
    # scaling) reads its target values, with every distinct value once when there are few (no class is missed)
    share = min(1.0, PROFILE_ROWS / n_train, PROFILE_BYTES / (n_train * per_row))
    sample = _read_table(con, sql((0,), sample=share), params, p, empty_ok=True)
    if sample is None:  # a tiny share of a few rows can miss them all
        sample = _read_table(con, f"{sql((0,))}\nORDER BY {split.ROW} LIMIT {PROFILE_ROWS}", params, p)
    sample = sample.drop_columns([stream.ROW])
    y_train = None
    if target_sql:
        y_train = sample.column(_TARGET)
        if 0 < int(p.facts.get("distinct") or 0) <= PROFILE_ROWS // 100:  # the validation rows' values too
            distinct = _read_table(con, f"SELECT DISTINCT {_q(_TARGET)} FROM (\n{sql((0, 1))}\n) AS d", params, p)
            y_train = pa.chunked_array(y_train.chunks + distinct.column(_TARGET).cast(y_train.type).chunks)
    target = p.task.prepare(p.name, p.target, p.target_type, y_train, p.parent)
    target.extra.update(p.facts.get("extra") or {})
    del y_train
    prof = p.parent.record["profile"] if p.parent is not None else data_rows.profile(sample, p.features, p.options)
    del sample
    for f in p.features:
        kind_of(f).check(p.name, f, prof, p.options)
    features = [kind_of(f).settle(f, prof) for f in p.features]
    pl._check_profile(p.name, features, prof, p.options)
    batch_size = p.options["batch_size"] or pl._auto_batch_size(n_train)
    pl._check_sizes(p.name, features, prof, target, n_val or min(n_train, 4096), batch_size, p.options)

    convert = Converter(p.name, p.task, features, prof, target, p.options)

    # the held-out rows, in memory (metrics, early stopping, the parity check); with none, a
    # buffer of training rows stands in for the metrics, as the in-memory path uses its training rows
    held_sql = sql((1,)) if n_val else f"{sql((0,))}\nORDER BY {split.ROW} LIMIT {max(1, VALIDATION_BYTES // per_row)}"
    held = _read_table(con, held_sql, params, p).drop_columns([stream.ROW])
    for f in features:
        kind_of(f).check_rows(p.name, f, held.column(f.name), p.options)
    held_arrays = pl.batches(held, features, prof, p.name)
    held_data = {k: _tensor(a).to(p.device) for k, a in held_arrays.items()}
    if _TARGET in held.column_names:
        held_data["target"] = p.task.y_tensor(target, held.column(_TARGET)).to(p.device)
    eval_target = target
    if _TARGET in held.column_names and target.y is not None:  # the tasks' metrics read the held-out rows' values
        eval_target = dataclasses.replace(target, y=p.task.target_values(target, held.column(_TARGET)))
    eval_idx = np.arange(held.num_rows)

    buffer = max(batch_size, stream.BUFFER_BYTES // per_row)
    order = p.options["shuffle"] == "sort"
    pin = p.device.type == "cuda"

    def batches(roles, expect):
        out = stream.StreamBatches(con, lambda epoch: sql(roles, epoch if order and epoch else None), params, convert,
                                   batch_size, expect, buffer, seed=seed, drop_single=True, pin=pin, model=p.name,
                                   label=label)  # fmt: skip
        # what a pass reads, for processes elsewhere that read their own share (dbml.integrations.spark.train)
        out.spec = {"selects": selects, "target_sql": target_sql, "seed": seed, "fraction": fraction, "roles": roles,
                    "buffer": buffer, "convert": convert, "n_val": n_val, "examples": p.data_sql, "row_hash": p.row_hash,
                    "expect": expect, "sort": order}  # fmt: skip
        return out

    train_batches = batches((0,), (n_train, sum_train))
    val = TensorBatches(held_data, max(batch_size, pl.VALIDATION_BATCH), shuffle=False) if n_val else None

    def every():
        return batches((0, 1), (n_train + n_val, sum_train + sum_val))

    net, logs, seconds, batch_size, metrics = pl.fit_batches(p, features, prof, target, train_batches, val, held_data,
                                                             eval_target, eval_idx, every, batch_size, n_train, n_val)  # fmt: skip
    blob, parity = pl.export_and_check(p, net, features, prof, target, held, held_arrays, eval_idx[:2048])
    rec = pl.record(con, registry, p, features, prof, target, n_train + n_val, n_train, n_val, fingerprint, metrics,
                    logs, seconds, batch_size, blob, parity, {"streaming": True})  # fmt: skip
    rec["seconds"] = time.perf_counter() - started
    return pl._result(rec, "trained")
