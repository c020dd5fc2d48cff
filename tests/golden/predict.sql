-- star in the select list, bare name (latest version)
SELECT id, PREDICT(churn, *) AS p FROM customers
-- pinned version with explicit columns in another order
SELECT PREDICT('churn:1', plan, joined, age) FROM new_rows
-- positional columns whose names differ from the features
SELECT PREDICT(churn, a, b, c) FROM t
-- computed columns given the feature names with AS
SELECT PREDICT(churn, x + 1 AS age, upper(p) AS plan, d AS joined) FROM t
-- qualified star in a join
SELECT c.id, PREDICT(churn, c.*) FROM customers AS c JOIN orders AS o ON o.cid = c.id
-- probabilities and one field of the struct, in WHERE
SELECT PREDICT_PROBA(churn, *) FROM t WHERE PREDICT_PROBA(churn, *).yes > 0.8
-- ORDER BY, inside an expression
SELECT id FROM t ORDER BY PREDICT_PROBA(churn, *).yes * 100 DESC LIMIT 10
-- CTE and subquery
WITH s AS (SELECT PREDICT(churn, *) AS p FROM t) SELECT p, count(*) FROM (SELECT * FROM s) GROUP BY p
-- a regression model gives a DOUBLE
SELECT avg(PREDICT(price, *)) FROM houses
-- an integer target keeps its type
SELECT PREDICT(rating, *) FROM t
-- case of the function name and of the model name does not matter
select predict(CHURN, *) from t
-- the rest of the statement is left exactly as typed
SELECT   'PREDICT(churn, *)' AS s, /* PREDICT(x) */ PREDICT(churn, *) FROM t -- trailing
-- a function of the same name in a schema is not dbml's
SELECT my_schema.predict(a) FROM t
