-- permutation importance with its options
EXPLAIN MODEL churn ON (SELECT * FROM holdout LIMIT 1000) WITH (repeats = 3, seed = 7)
