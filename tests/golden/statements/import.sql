-- a foreign file with its column names
IMPORT MODEL scorer FROM 'file:///models/scorer.onnx' WITH (inputs = ['age', 'plan'], max_size = 1000000)
