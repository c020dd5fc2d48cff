-- the top 10 of each user a query gives
RECOMMEND MODEL rec FOR (SELECT user_id FROM users WHERE active) TOP 10
--> recommend(model='rec', source='SELECT user_id FROM users WHERE active', top=10)
-- a pinned version, from a table, the user's training items left out
RECOMMEND MODEL rec VERSION 2 FOR users TOP 5 EXCLUDE SEEN
--> recommend(model='rec', version=2, source='SELECT * FROM "users"', top=5, exclude_seen=True)
-- a negative TOP parses, and the handler refuses it by name
RECOMMEND MODEL rec FOR (SELECT 1 AS user_id) TOP -3
--> recommend(model='rec', source='SELECT 1 AS user_id', top=3, negative=True)
