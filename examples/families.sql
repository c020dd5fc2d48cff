-- The model families on data made in SQL: a cnn on tiny images, an autoencoder that
-- finds odd payments, an lstm that forecasts daily sales. Run: python examples/families.py

-- 8x8 images: a horizontal or a vertical bar at a random place, with noise
CREATE TABLE images AS
SELECT i AS id, i % 2 = 0 AS horizontal,
       list_transform(range(64), lambda p:
           (CASE WHEN (i % 2 = 0 AND p // 8 = (i // 2) % 8) OR (i % 2 = 1 AND p % 8 = (i // 2) % 8) THEN 1.0 ELSE 0.0 END
            + 0.3 * random())::FLOAT)::FLOAT[64] AS pixels
FROM range(600) r(i);

TRAIN MODEL bars USING cnn FROM (SELECT pixels, horizontal FROM images) TARGET horizontal
  WITH (shape = [1, 8, 8], epochs = 15, progress = false);

SELECT avg((PREDICT(bars, *) = horizontal)::INT) AS accuracy, any_value(EMBED(bars, *))[1:4] AS embedding_start
FROM images;

-- payments: amount follows the plan; 1% break the rule
CREATE TABLE payments AS
SELECT i AS id, ['basic', 'plus', 'pro'][1 + i % 3] AS plan,
       CASE WHEN i % 100 = 7 THEN 900 + random() * 100 ELSE (1 + i % 3) * 10 + random() * 2 END AS amount,
       i % 100 = 7 AS planted
FROM range(3000) r(i);

TRAIN MODEL odd USING autoencoder FROM (SELECT plan, amount FROM payments) WITH (contamination = 0.02, progress = false);

EVALUATE MODEL odd ON (SELECT plan, amount, planted FROM payments) WITH (label = planted);

SELECT id, plan, round(amount, 1) AS amount, ANOMALY_SCORE(odd, *) AS score
FROM payments WHERE IS_ANOMALY(odd, *) ORDER BY score DESC LIMIT 5;

-- daily sales of two stores with a weekly pattern and a trend
CREATE TABLE sales AS
SELECT s AS store, DATE '2025-01-01' + d::INTEGER AS day,
       round(20 + 10 * s + 5 * sin(2 * pi() * d / 7) + d * 0.05 + random(), 2) AS units
FROM range(2) a(s), range(180) b(d);

TRAIN MODEL demand USING lstm FROM sales TARGET units
  WITH (time = 'day', series = 'store', window = 28, horizon = 7, progress = false);

FORECAST MODEL demand HORIZON 10 WITH (confidence = 0.8);

EVALUATE MODEL demand ON (SELECT * FROM sales WHERE day >= DATE '2025-04-01') WITH (by = store);

SHOW MODELS;
