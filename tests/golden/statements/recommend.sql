-- the top 10 of each user a query gives
RECOMMEND MODEL rec FOR (SELECT user_id FROM users WHERE active) TOP 10
-- a pinned version, from a table, the user's training items left out
RECOMMEND MODEL rec VERSION 2 FOR users TOP 5 EXCLUDE SEEN
-- a negative TOP parses, and the handler refuses it by name
RECOMMEND MODEL rec FOR (SELECT 1 AS user_id) TOP -3
