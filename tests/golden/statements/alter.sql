-- deploy and roll back
ALTER MODEL churn SET ALIAS production = 3
ALTER MODEL churn UNSET ALIAS production
