-- a file as the source
MONITOR MODEL churn VERSION 3 ON 'new/*.parquet' WITH (threshold = 0.1)
--> monitor(model='churn', version=3, source="SELECT * FROM 'new/*.parquet'", options={'threshold': 0.1})
