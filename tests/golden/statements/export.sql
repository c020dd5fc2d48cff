-- a version to a URL
EXPORT MODEL churn VERSION 3 TO 's3://bucket/churn.onnx'
-- a model named card is a model, not the model card
EXPORT MODEL card TO 'card.onnx'
