"""SQL functions that dbml registers in DuckDB.

Every function carries the ``dbml_`` prefix. The scoring functions users write
(PREDICT, PREDICT_PROBA, EMBED, ANOMALY_SCORE, IS_ANOMALY: :data:`dbml.outputs.OUTPUTS`)
are never registered under those names: the rewriter turns each call into a call of
the model version's own vectorized Arrow UDF (see :mod:`dbml.udfs.predict`).
"""

from dbml.udfs.predict import (
    FUNCTIONS,
    function_digest,
    function_names,
    label_field,
    parse_function_name,
    register_imported,
    register_version,
    version_info,
)

__all__ = ["FUNCTIONS", "function_digest", "function_names", "label_field", "parse_function_name", "register_imported",
           "register_version", "version_info"]  # fmt: skip
