-- a file as the source
MONITOR MODEL churn VERSION 3 ON 'new/*.parquet' WITH (threshold = 0.1)
