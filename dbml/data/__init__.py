"""The data a model learns from, read by DuckDB.

TRAIN MODEL reads its source twice at most, whatever the family:

1. the *facts pass* (:mod:`dbml.data.source`): one aggregate query over the source
   (the target's distinct values and range; a forecaster's series, steps and ends in
   :mod:`dbml.data.series`; the place for per-column facts a kind's detection needs);
2. the *rows pass* (:mod:`dbml.data.rows`): one query that encodes every row, gives
   each its role in the split (:mod:`dbml.data.split`: a seeded row hash in DuckDB,
   stratified where the task asks, by time for a forecaster) and the fingerprint of
   the rows it read (:mod:`dbml.registry.lineage`).

The profile is DuckDB SQL over the training rows of that read. Training consumes
:class:`dbml.data.batches.Batches`, an iterator of dict batches with a per-epoch
order and a shard per worker; :class:`~dbml.data.batches.TensorBatches` holds the
rows in memory, and a streaming implementation over DuckDB record batches can take
its place without touching the loop.

Only :mod:`dbml.data.batches` needs torch; nothing here imports it at package level.
"""
