-- from the series' ends kept at training
FORECAST MODEL demand HORIZON 14
--> forecast(model='demand', horizon=14)
-- from a query, a pinned version, an interval
FORECAST MODEL demand VERSION 2 HORIZON 7 FROM (SELECT * FROM sales WHERE store = 1) WITH (confidence = 0.8)
--> forecast(model='demand', version=2, horizon=7, source='SELECT * FROM sales WHERE store = 1', options={'confidence': 0.8})
