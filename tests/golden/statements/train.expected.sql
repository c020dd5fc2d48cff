-- the full form
TRAIN MODEL IF NOT EXISTS churn USING mlp FROM customers TARGET churned WITH (epochs = 30, hidden = [64, 32], lr = 1e-3)
--> train(model='churn', exists=True, using='mlp', source='SELECT * FROM "customers"', targets=['churned'], options={'epochs': 30, 'hidden': [64, 32], 'lr': 0.001})
-- a file, and a query with a parameter (the query's text is kept as written)
TRAIN MODEL m FROM 'data/rows.parquet' TARGET y
--> train(model='m', exists=False, source="SELECT * FROM 'data/rows.parquet'", targets=['y'])
-- a file, and a query with a parameter (the query's text is kept as written)
TRAIN MODEL m FROM (SELECT * EXCLUDE (id) FROM t WHERE day > $dbml_p1) TARGET y WITH (epochs = $dbml_p2)
--> train(model='m', exists=False, source='SELECT * EXCLUDE (id) FROM t WHERE day > $dbml_p1', targets=['y'], options={'epochs': 'v2'})
-- lower case, a schema, no target (an autoencoder)
TRAIN MODEL detector USING autoencoder FROM main.payments
--> train(model='detector', exists=False, using='autoencoder', source='SELECT * FROM "main"."payments"')
