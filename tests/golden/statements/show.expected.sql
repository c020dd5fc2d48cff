-- every model
SHOW MODELS
--> show()
