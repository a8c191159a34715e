"""The scripts SageMaker runs for the training pipeline, runnable locally with the same code.

preprocess -> train -> evaluate; ``inference`` is the serving handler packed with every model.
These modules depend only on numpy, pandas, scikit-learn and joblib (present in SageMaker's
scikit-learn images); MLflow is used when installed and a tracking URI is set. Nothing here
imports boto3: the local runner and SageMaker both stage data in and out of S3 around them.
"""
