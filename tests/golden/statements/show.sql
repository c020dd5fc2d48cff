-- every model
SHOW MODELS
