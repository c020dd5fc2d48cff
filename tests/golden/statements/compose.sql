-- a table from a forecast
CREATE TABLE fc AS FROM (FORECAST MODEL demand HORIZON 12)
-- a CTE, and a statement inside a statement's own source
WITH e AS (EVALUATE MODEL churn ON (SELECT * FROM holdout)) SELECT * FROM e WHERE accuracy > 0.9
-- COPY, a join, strings and comments that only look like statements
COPY (SELECT s.model, d.version FROM (SHOW MODELS) s JOIN (DESCRIBE MODEL churn) d ON true WHERE s.model <> '(SHOW MODELS)') TO 'm.csv' -- (SHOW MODELS)
