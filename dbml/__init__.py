"""dbml: train, version and score deep-learning models inside DuckDB, in SQL.

    import dbml
    con = dbml.connect("shop.duckdb")
    con.sql("TRAIN MODEL churn FROM customers TARGET churned")
    con.sql("SELECT id, PREDICT(churn, *) FROM new_customers").show()
"""

__version__ = "0.1.0"

from dbml.connection import Connection, connect, install  # noqa: E402
from dbml.errors import *  # noqa: E402,F401,F403
from dbml.errors import __all__ as _errors

__all__ = ["__version__", "connect", "install", "Connection", *_errors]
