-- one version, if it exists
DROP MODEL IF EXISTS churn VERSION 2
-- a deployed model with its aliases
DROP MODEL churn CASCADE
