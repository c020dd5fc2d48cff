-- star in the select list, bare name (latest version)
SELECT id, dbml_predict__churn__v2(CAST("age" AS REAL), COALESCE(CAST("plan" AS TEXT), ''), CAST(epoch(CAST("joined" AS DATE)) / 86400.0 AS REAL)) AS p FROM customers
-- pinned version with explicit columns in another order
SELECT dbml_predict__churn__v1(CAST(age AS REAL), COALESCE(CAST(plan AS TEXT), ''), CAST(epoch(CAST(joined AS DATE)) / 86400.0 AS REAL)) FROM new_rows
-- positional columns whose names differ from the features
SELECT dbml_predict__churn__v2(CAST(a AS REAL), COALESCE(CAST(b AS TEXT), ''), CAST(epoch(CAST(c AS DATE)) / 86400.0 AS REAL)) FROM t
-- computed columns given the feature names with AS
SELECT dbml_predict__churn__v2(CAST(x + 1 AS REAL), COALESCE(CAST(UPPER(p) AS TEXT), ''), CAST(epoch(CAST(d AS DATE)) / 86400.0 AS REAL)) FROM t
-- qualified star in a join
SELECT c.id, dbml_predict__churn__v2(CAST(c."age" AS REAL), COALESCE(CAST(c."plan" AS TEXT), ''), CAST(epoch(CAST(c."joined" AS DATE)) / 86400.0 AS REAL)) FROM customers AS c JOIN orders AS o ON o.cid = c.id
-- probabilities and one field of the struct, in WHERE
SELECT dbml_proba__churn__v2(CAST("age" AS REAL), COALESCE(CAST("plan" AS TEXT), ''), CAST(epoch(CAST("joined" AS DATE)) / 86400.0 AS REAL)) FROM t WHERE dbml_proba__churn__v2(CAST("age" AS REAL), COALESCE(CAST("plan" AS TEXT), ''), CAST(epoch(CAST("joined" AS DATE)) / 86400.0 AS REAL)).yes > 0.8
-- ORDER BY, inside an expression
SELECT id FROM t ORDER BY dbml_proba__churn__v2(CAST("age" AS REAL), COALESCE(CAST("plan" AS TEXT), ''), CAST(epoch(CAST("joined" AS DATE)) / 86400.0 AS REAL)).yes * 100 DESC LIMIT 10
-- CTE and subquery
WITH s AS (SELECT dbml_predict__churn__v2(CAST("age" AS REAL), COALESCE(CAST("plan" AS TEXT), ''), CAST(epoch(CAST("joined" AS DATE)) / 86400.0 AS REAL)) AS p FROM t) SELECT p, count(*) FROM (SELECT * FROM s) GROUP BY p
-- a regression model gives a DOUBLE
SELECT avg(dbml_predict__price__v4(CAST("sqft" AS REAL))) FROM houses
-- an integer target keeps its type
SELECT CAST(dbml_predict__rating__v1(CAST("text_len" AS REAL)) AS INT) FROM t
-- case of the function name and of the model name does not matter
select dbml_predict__churn__v2(CAST("age" AS REAL), COALESCE(CAST("plan" AS TEXT), ''), CAST(epoch(CAST("joined" AS DATE)) / 86400.0 AS REAL)) from t
-- the rest of the statement is left exactly as typed
SELECT   'PREDICT(churn, *)' AS s, /* PREDICT(x) */ dbml_predict__churn__v2(CAST("age" AS REAL), COALESCE(CAST("plan" AS TEXT), ''), CAST(epoch(CAST("joined" AS DATE)) / 86400.0 AS REAL)) FROM t -- trailing
-- a function of the same name in a schema is not dbml's
SELECT my_schema.predict(a) FROM t
