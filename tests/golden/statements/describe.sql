-- one row per version
DESCRIBE MODEL churn
