-- the full form
TRAIN MODEL IF NOT EXISTS churn USING mlp FROM customers TARGET churned WITH (epochs = 30, hidden = [64, 32], lr = 1e-3)
-- a file, and a query with a parameter (the query's text is kept as written)
TRAIN MODEL m FROM 'data/rows.parquet' TARGET y
TRAIN MODEL m FROM (SELECT * EXCLUDE (id) FROM t WHERE day > ?) TARGET y WITH (epochs = $2)
-- lower case, a schema, no target (an autoencoder)
train model detector using autoencoder from main.payments
