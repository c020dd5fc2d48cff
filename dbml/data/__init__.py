"""The data a model learns from: the source read by DuckDB, the split, the profile and
facts, the batches, and the windows of a series (:mod:`dbml.data.series`)."""
