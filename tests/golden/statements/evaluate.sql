-- a table, a version, options
EVALUATE MODEL churn VERSION 2 ON holdout WITH (by = region, confusion = true)
-- a query with named parameters
EVALUATE MODEL churn ON (SELECT * FROM t WHERE day >= $since) WITH (positive = 'yes')
