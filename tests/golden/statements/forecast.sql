-- from the series' ends kept at training
FORECAST MODEL demand HORIZON 14
-- from a query, a pinned version, an interval
FORECAST MODEL demand VERSION 2 HORIZON 7 FROM (SELECT * FROM sales WHERE store = 1) WITH (confidence = 0.8)
