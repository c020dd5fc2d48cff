-- one version, if it exists
DROP MODEL IF EXISTS churn VERSION 2
--> drop(model='churn', exists=True, version=2, cascade=False)
-- a deployed model with its aliases
DROP MODEL churn CASCADE
--> drop(model='churn', exists=False, cascade=True)
