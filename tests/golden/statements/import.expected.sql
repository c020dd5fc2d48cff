-- a foreign file with its column names
IMPORT MODEL scorer FROM 'file:///models/scorer.onnx' WITH (inputs = ['age', 'plan'], max_size = 1000000)
--> import(model='scorer', url='file:///models/scorer.onnx', options={'inputs': ['age', 'plan'], 'max_size': 1000000})
