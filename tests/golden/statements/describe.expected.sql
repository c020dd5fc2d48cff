-- one row per version
DESCRIBE MODEL churn
--> describe(model='churn')
