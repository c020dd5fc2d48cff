"""Streaming: the rows that train, read from DuckDB as record batches on every pass.

A table larger than memory trains through :class:`StreamBatches`, the streaming
implementation of :class:`dbml.data.batches.Batches`: each epoch runs one query over
the source (:func:`pass_sql`) whose Arrow record batches DuckDB hands over as it scans,
so the process holds one shuffle buffer of rows at a time, never the table.

- **The split** is a function of the row alone, so that a pass can filter on it without
  a window over every row: a row validates when its seeded key (:func:`dbml.data.split.key_sql`)
  falls in the first ``validation`` share of the hash range (:func:`role_sql`). The
  validation rows are a Bernoulli sample of that share, not an exact count as in memory.
- **The order** of an epoch: the rows come in the source's order, ``buffer`` rows at a
  time, each buffer in a permutation drawn from (seed, epoch, buffer number); with
  ``shuffle = 'sort'`` DuckDB orders each pass by a hash of the key and the epoch
  first (an exact shuffle of the whole table, at the cost of a sort per epoch). The same
  seed and rows give the same batches whatever sizes DuckDB's record batches have, and
  whatever order the rows of one buffer come in (a buffer is sorted by the rows' hashes
  before its permutation); which rows share a buffer follows the source's order, so a
  query whose order DuckDB does not fix (a GROUP BY, a join) repeats exactly only with
  ``shuffle = 'sort'``.
- **Shards**: worker ``shard`` of ``shards`` reads the rows whose key is ``shard``
  modulo ``shards``; together the shards cover every row once.
- **The fingerprint**: each pass sums the rows' hashes as it reads them, and a pass that
  reads other rows than the first (count or sum) is a :class:`dbml.errors.SourceError`:
  the source changed while the model trained, and nothing is written.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import torch

from dbml.data import split
from dbml.data.batches import Batch, rows, take
from dbml.data.rows import read_error
from dbml.errors import SourceError

__all__ = ["role_sql", "pass_sql", "summary", "read", "Tally", "StreamBatches", "BUFFER_BYTES"]

BUFFER_BYTES = 64 * 2**20  # the shuffle buffer: rows whose tensors take about this much
ROW = split.ROW.strip('"')
_HALF = np.uint64(0xFFFFFFFF)


def role_sql(key: str, fraction: float) -> str:
    """A row's role in a streamed split: 1 (validates) when its ``key`` falls in the
    first ``fraction`` of the hash range, else 0 (trains)."""
    return f"CASE WHEN ({key} >> 11)::DOUBLE * {2.0**-53!r}::DOUBLE < {float(fraction)!r}::DOUBLE THEN 1 ELSE 0 END"


def pass_sql(examples: str, selects: Sequence[str], target_sql: str | None, row_hash: str, seed: int, fraction: float,
             roles: Sequence[int] = (0,), shard: int = 0, shards: int = 1, epoch: int | None = None,
             sample: float = 1.0, keep_key: bool = False) -> str:  # fmt: skip
    """The SQL of one streamed pass: the encoded features, the target
    (``__dbml_target__``) and the row's hash (``dbml/row``), of the rows whose role is
    in ``roles``, of this shard; ``epoch``: ordered by a hash of the key and the epoch;
    ``sample`` < 1: a seeded share of those rows (by another hash of the row than the split's);
    ``keep_key``: with the split's key (``dbml/key``), for :func:`staged_sql`."""
    from dbml.data.rows import TARGET

    inner = list(selects)
    if target_sql:
        inner.append(f"{target_sql} AS {TARGET}")
    inner += [f"{row_hash} AS {split.ROW}", f"{split.key_sql(row_hash, seed)} AS {split.KEY}"]
    where = [f"{role_sql(split.KEY, fraction)} IN ({', '.join(str(int(r)) for r in roles)})"]
    if sample < 1:
        where.append(role_sql(f"hash({split.ROW}, {int(seed) ^ 0x5A5A5A5A}::UBIGINT)", sample).replace(" THEN 1 ELSE 0 END", "")
                     .replace("CASE WHEN ", ""))
    if shards > 1:
        where.append(f"{split.KEY} % {int(shards)} = {int(shard)}")
    order = f"\nORDER BY hash({split.KEY}, {int(epoch)}::UBIGINT)" if epoch is not None else ""
    columns = "*" if keep_key else f"* EXCLUDE ({split.KEY})"
    return (f"SELECT {columns} FROM (\nSELECT {', '.join(inner)} FROM (\n{examples}\n) AS examples\n) AS encoded "
            f"WHERE {' AND '.join(where)}{order}")  # fmt: skip


def staged_sql(path: str, fraction: float, roles: Sequence[int], shard: int = 0, shards: int = 1,
               epoch: int | None = None) -> str:  # fmt: skip
    """A pass over rows a :func:`pass_sql` with ``keep_key`` wrote to the parquet file
    ``path``: the same columns and roles, this shard's share (workers that cannot open
    the source read this)."""
    from dbml.sqltext import string

    where = [f"{role_sql(split.KEY, fraction)} IN ({', '.join(str(int(r)) for r in roles)})"]
    if shards > 1:
        where.append(f"{split.KEY} % {int(shards)} = {int(shard)}")
    order = f" ORDER BY hash({split.KEY}, {int(epoch)}::UBIGINT)" if epoch is not None else ""
    return f"SELECT * EXCLUDE ({split.KEY}) FROM read_parquet({string(path)}) WHERE {' AND '.join(where)}{order}"


def summary(con: duckdb.DuckDBPyConnection, examples: str, params: Any, row_hash: str, seed: int, fraction: float,
            model: str, label: str) -> dict[int, tuple[int, int]]:  # fmt: skip
    """{role: (rows, sum of their hashes)}: one aggregate pass, before any row is read."""
    key = split.key_sql(row_hash, seed)
    sql = (f"SELECT {role_sql(key, fraction)} AS r, count(*), coalesce(sum({row_hash}::HUGEINT), 0) FROM (\n{examples}\n) "
           "AS examples GROUP BY r")  # fmt: skip
    try:
        got = con.execute(sql, params).fetchall()
    except duckdb.Error as err:
        raise read_error(err, model, label) from None
    out = {0: (0, 0), 1: (0, 0)}
    out.update({int(r): (int(n), int(s)) for r, n, s in got})
    return out


def read(con: duckdb.DuckDBPyConnection, sql: str, params: Any, model: str, label: str) -> Iterator[pa.RecordBatch]:
    """The record batches of one pass, as DuckDB scans (the query is closed when the
    caller stops early)."""
    try:
        reader = con.sql(sql, params=params).arrow()
    except duckdb.Error as err:
        raise read_error(err, model, label) from None
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (duckdb.Error, pa.ArrowException) as err:
                raise read_error(err, model, label) from None
            if batch.num_rows:
                yield batch
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()


class Tally:
    """Count and sum of the row hashes of one pass, as it reads."""

    def __init__(self):
        self.count, self.total = 0, 0

    def add(self, hashes: pa.Array | pa.ChunkedArray) -> None:
        h = np.asarray(hashes.to_numpy(zero_copy_only=False), dtype=np.uint64)
        self.count += len(h)  # halves of 32 bits sum without overflow below 2**32 rows a batch
        self.total += (int((h >> np.uint64(32)).sum(dtype=np.uint64)) << 32) + int((h & _HALF).sum(dtype=np.uint64))


class StreamBatches:
    """Batches streamed from DuckDB, one pass per epoch (see the module's notes).

    Args:
        con: the connection the source is read on (one pass at a time).
        sql: () -> the pass's SQL for an epoch number (:func:`pass_sql`).
        params: the source's parameters.
        convert: an Arrow table of the pass's columns -> a batch of CPU tensors.
        batch_size: rows per step.
        expect: (rows, sum of hashes) every pass must read, or None.
        buffer: rows shuffled together.
        seed: the seed of each buffer's order.
        shuffle: a new order each epoch (training) or the rows as they come.
        drop_single: skip a last batch of one row (batch normalisation cannot train on it).
        pin: pin each buffer's tensors (a CUDA device copies them asynchronously).
        model, label: for messages.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, sql: Callable[[int], str], params: Any,
                 convert: Callable[[pa.Table], Batch], batch_size: int, expect: tuple[int, int] | None, buffer: int,
                 seed: int = 0, shuffle: bool = True, drop_single: bool = False, pin: bool = False, model: str = "",
                 label: str = ""):  # fmt: skip
        self.con, self.sql, self.params, self.convert = con, sql, params, convert
        self.batch_size, self.expect, self.buffer = max(int(batch_size), 1), expect, max(int(buffer), 1)
        self.seed, self.shuffle, self.drop_single, self.pin = seed, shuffle, drop_single, pin
        self.model, self.label = model, label
        self.rows = expect[0] if expect is not None else 0
        self.passes = 0

    def _buffers(self, number: int) -> Iterator[pa.Table]:
        """The pass's rows, ``buffer`` at a time (whatever the record batches' sizes)."""
        tally, pending, held = Tally(), [], 0
        for batch in read(self.con, self.sql(number), self.params, self.model, self.label):
            tally.add(batch.column(ROW))
            pending.append(batch)
            held += batch.num_rows
            while held >= self.buffer:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, self.buffer)
                rest = table.slice(self.buffer)
                pending, held = rest.to_batches(), rest.num_rows
        if held:
            yield pa.Table.from_batches(pending)
        self.passes += 1
        if self.expect is not None and (tally.count, tally.total) != tuple(self.expect):
            raise SourceError(
                f"the source {self.label} of model '{self.model}' changed while the model trained: a pass read "
                f"{tally.count:,} rows where the first read {self.expect[0]:,}"
                + (" (same count, other values)" if tally.count == self.expect[0] else "")
                + "; nothing was saved: train again on a source that stays still (a table or a snapshot)"
            )

    def _tensors(self, table: pa.Table) -> Batch:
        out = self.convert(table.drop_columns([ROW]))
        return {k: t.pin_memory() for k, t in out.items()} if self.pin else out

    def _batches(self, number: int, shuffle: bool) -> Iterator[Batch]:
        carry: Batch | None = None
        for i, table in enumerate(self._buffers(number)):
            if shuffle:  # a buffer's order is its rows' hashes', whatever order they came in, then the permutation
                table = table.sort_by([(ROW, "ascending")])
            data = self._tensors(table)
            if carry is not None:  # the rows the last buffer left lead this one's
                data = {k: torch.cat([carry[k], t]) for k, t in data.items()}
                carry = None
            n = rows(data)
            if shuffle:
                order = np.random.default_rng([int(self.seed), int(number), i]).permutation(n)
                data = take(data, torch.from_numpy(order))
            full = n - n % self.batch_size
            for start in range(0, full, self.batch_size):
                yield {k: t[start : start + self.batch_size] for k, t in data.items()}
            if full < n:
                carry = {k: t[full:] for k, t in data.items()}
        if carry is not None and not (self.drop_single and rows(carry) == 1 and self.batch_size > 1):
            yield carry

    def epoch(self, number: int) -> Iterator[Batch]:
        return self._batches(number, self.shuffle)

    def __iter__(self) -> Iterator[Batch]:
        return self._batches(0, False)
