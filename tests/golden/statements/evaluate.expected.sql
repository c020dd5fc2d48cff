-- a table, a version, options
EVALUATE MODEL churn VERSION 2 ON holdout WITH ("by" = region, confusion = TRUE)
--> evaluate(model='churn', version=2, source='SELECT * FROM "holdout"', options={'by': 'region', 'confusion': True})
-- a query with named parameters
EVALUATE MODEL churn ON (SELECT * FROM t WHERE day >= $since) WITH (positive = 'yes')
--> evaluate(model='churn', source='SELECT * FROM t WHERE day >= $since', options={'positive': 'yes'})
