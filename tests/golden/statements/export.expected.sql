-- a version to a URL
EXPORT MODEL churn VERSION 3 TO 's3://bucket/churn.onnx'
--> export(model='churn', version=3, url='s3://bucket/churn.onnx')
-- a model named card is a model, not the model card
EXPORT MODEL card TO 'card.onnx'
--> export(model='card', url='card.onnx')
