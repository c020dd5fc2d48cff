-- deploy and roll back
ALTER MODEL churn SET ALIAS production = 3
--> alter(model='churn', alias='production', version=3)
-- deploy and roll back
ALTER MODEL churn UNSET ALIAS production
--> alter(model='churn', alias='production')
