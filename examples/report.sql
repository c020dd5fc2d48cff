-- A report over the demo's database (penguins.duckdb, made by examples/quickstart.py),
-- for the dbml shell in any output mode:  dbml penguins.duckdb -csv -f examples/report.sql
SHOW MODELS;

SELECT species AS actual, PREDICT(species, *) AS predicted, round(PREDICT_PROBA(species, *).Gentoo, 3) AS p_gentoo
FROM penguins WHERE year = 2009 ORDER BY bill_length_mm LIMIT 5;

EVALUATE MODEL species ON (SELECT * FROM penguins WHERE year = 2009);
