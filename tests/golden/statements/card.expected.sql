-- the HTML model card of a version
EXPORT MODEL CARD churn VERSION 3 TO 'cards/churn.html'
--> card(model='churn', version=3, url='cards/churn.html')
