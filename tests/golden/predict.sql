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
-- EMBED of every feature, a FLOAT[k] column
SELECT id, EMBED(churn, *) AS e FROM customers
-- ANOMALY_SCORE of an autoencoder, with explicit columns given by name
SELECT ANOMALY_SCORE(fraud, merchant, amount) AS score FROM payments
-- IS_ANOMALY in WHERE, lower case
SELECT * FROM payments WHERE is_anomaly(fraud, *) AND amount > 100
-- EMBED in a CTE, computed column given the feature name
WITH v AS (SELECT id, EMBED(fraud, amount * 100 AS amount, merchant) AS e FROM payments) SELECT id, array_cosine_similarity(e, e) FROM v
-- PREDICT of an autoencoder gives its DOUBLE score, never cast
SELECT PREDICT(fraud, p.*) FROM payments AS p
-- several scoring functions of one model in one statement
SELECT ANOMALY_SCORE(fraud, *), IS_ANOMALY('fraud', *), PREDICT(churn, *) FROM t
