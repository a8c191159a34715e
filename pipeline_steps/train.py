"""Train: fit the classifier with a fixed seed, save it with its inference code, track it.

SageMaker runs this as the training script of the scikit-learn framework image (channels in
SM_CHANNEL_*, the model folder in SM_MODEL_DIR, hyperparameters as --options). Locally the
runner passes the same folders explicitly.

The model folder (model.tar.gz in S3) holds:
  model.joblib       the fitted estimator; its sha256 is the model's identity
  model.json         hyperparameters, feature order, data/code/run lineage, validation metrics
  code/              inference.py and this package: the serving container runs it
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline_steps import model as model_lib
from pipeline_steps.hyperparameters import ALGORITHMS, DEFAULTS, Hyperparameters
from pipeline_steps.preprocess import MANIFEST
from pipeline_steps.schema import FEATURE_NAMES, LABEL
from pipeline_steps.tracking import ARTIFACT_ROOT_ENV, artifact_location, tracking, tracking_uri

log = logging.getLogger("pipeline_steps.train")
INPUT_EXAMPLE_ROWS = 5
DATASET_NAME = "training"
MLFLOW_DIGEST_LENGTH = 36  # the longest dataset digest MLflow stores
SKOPS_TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
PACKAGE_DIR = Path(__file__).resolve().parent
INFERENCE_SHIM = (
    '"""SageMaker scikit-learn serving entry point: the handlers live in pipeline_steps."""\n'
    "from pipeline_steps.inference import input_fn, model_fn, output_fn, predict_fn\n\n"
    '__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]\n'
)


def _read_split(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV file in {folder}")
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    missing = [c for c in (*FEATURE_NAMES, LABEL) if c not in frame.columns]
    if missing:
        raise ValueError(f"{folder}: missing column(s) {missing}; was it written by preprocess?")
    return frame


def copy_inference_code(model_dir: Path) -> None:
    """Put the serving handler and this package in model_dir/code (sorted, .py files only)."""
    code = model_dir / "code"
    package = code / "pipeline_steps"
    package.mkdir(parents=True, exist_ok=True)
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        shutil.copyfile(source, package / source.name)
    (code / "inference.py").write_text(INFERENCE_SHIM)


@dataclass(frozen=True)
class TrainingData:
    """What a run was trained on: the frame, and where it came from."""

    frame: pd.DataFrame  # the train split, as the estimator was fitted on it
    manifest_path: Path
    source: str | None  # the input the pipeline read (an s3:// or local URI); None: unknown


def _track(
    params: Hyperparameters,
    estimator: Any,
    card: model_lib.ModelCard,
    data: TrainingData,
) -> tuple[str, str] | None:
    """Log to MLflow when a tracking URI is set; return the run id and the logged model URI."""
    if tracking_uri() is None:
        log.info("MLFLOW_TRACKING_URI is not set: not tracking this run")
        return None
    with tracking() as mlflow:
        # By id, not mlflow.set_experiment(): that would leave an active experiment (and
        # MLFLOW_EXPERIMENT_ID) behind in a process that runs several steps.
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "training")
        client = mlflow.MlflowClient()
        found = client.get_experiment_by_name(name)
        experiment_id = (
            found.experiment_id
            if found
            # With no location MLflow would put a local store's artifacts in ./mlruns.
            else client.create_experiment(
                name,
                artifact_location=artifact_location(
                    mlflow.get_tracking_uri(), name, root=os.environ.get(ARTIFACT_ROOT_ENV)
                ),
            )
        )
        return _log_run(mlflow, params, estimator, card, data, experiment_id)


def _log_run(
    mlflow: Any,
    params: Hyperparameters,
    estimator: Any,
    card: model_lib.ModelCard,
    data: TrainingData,
    experiment_id: str,
) -> tuple[str, str]:
    run_name = f"{params.algorithm}-seed{params.seed}"
    features = data.frame[list(FEATURE_NAMES)].astype(float)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.log_params(params.used())
        with warnings.catch_warnings():
            # The label is an integer never missing: MLflow's hint on the schema does not apply.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            mlflow.log_input(
                _dataset(mlflow, data, card),
                context="training",
                tags={"dataset_sha256": card.dataset_sha256},
            )
        mlflow.log_metrics({f"validation_{k}": v for k, v in card.validation_metrics.items()})
        mlflow.set_tags(
            {
                "dataset_sha256": card.dataset_sha256,
                "code_version": card.code_version,
                "model_sha256": card.model_sha256,
                "sklearn_version": card.sklearn_version,
                "python_version": platform.python_version(),
            }
        )
        mlflow.log_artifact(str(data.manifest_path), artifact_path="data")
        with warnings.catch_warnings():
            # MLflow checks the input example by predicting on it as a frame; the estimator
            # is fitted (and served) on a matrix of the same columns, and says so.
            warnings.filterwarnings("ignore", message="X has feature names", category=UserWarning)
            # The predicted class is an integer that is never missing: MLflow's hint does not apply.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            logged = _log_model(mlflow, estimator, card, features)
        return str(run.info.run_id), str(logged.model_uri)


def _log_model(mlflow: Any, estimator: Any, card: model_lib.ModelCard, features: Any) -> Any:
    return mlflow.sklearn.log_model(
        estimator,
        name="model",
        # Named columns, as callers send them; the estimator was fitted on the same
        # columns in this order (as a matrix, which is what it is given here too).
        signature=mlflow.models.infer_signature(features, estimator.predict(features.to_numpy())),
        input_example=features.head(INPUT_EXAMPLE_ROWS),
        # MLflow stores sklearn models with skops, which loads only types it trusts: the
        # tree predictor of HistGradientBoosting is ours to vouch for.
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        # Naming requirements skips MLflow's slow import-capturing dependency inference.
        pip_requirements=[f"scikit-learn=={card.sklearn_version}"],
    )


def _dataset(mlflow: Any, data: TrainingData, card: model_lib.ModelCard) -> Any:
    """The training split as an MLflow dataset, named by the data version the pipeline records.

    MLflow keeps a digest of at most 36 characters: the sha256's first 36 hex digits are the
    digest, and the whole sha256 is the input's ``dataset_sha256`` tag (and the run's).
    """
    return mlflow.data.from_pandas(
        data.frame,
        source=data.source or data.manifest_path.parent.resolve().as_uri(),
        targets=LABEL,
        name=f"{DATASET_NAME}-{card.dataset_sha256[:12]}",
        digest=card.dataset_sha256[:MLFLOW_DIGEST_LENGTH],
    )


def run(
    *,
    train_dir: Path,
    validation_dir: Path,
    manifest_dir: Path,
    model_dir: Path,
    params: Hyperparameters,
    code_version: str = "unknown",
    dataset_source: str | None = None,
) -> model_lib.ModelCard:
    train = _read_split(train_dir)
    validation = _read_split(validation_dir)
    manifest_path = manifest_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text())

    estimator = model_lib.fit(params, train)
    _, model_sha256 = model_lib.save(estimator, model_dir)
    validation_metrics = model_lib.metrics(
        validation[LABEL].to_numpy(), model_lib.scores(estimator, validation)
    )
    card = model_lib.ModelCard(
        hyperparameters=params.used(),
        features=list(FEATURE_NAMES),
        label=LABEL,
        sklearn_version=model_lib.sklearn_version(),
        model_sha256=model_sha256,
        dataset_sha256=str(manifest["dataset_sha256"]),
        code_version=code_version,
        validation_metrics=validation_metrics,
        runtime=model_lib.runtime_versions(),
    )
    tracked = _track(params, estimator, card, TrainingData(train, manifest_path, dataset_source))
    if tracked is not None:
        card.mlflow_run_id, card.mlflow_model_uri = tracked
    card.save(model_dir)
    copy_inference_code(model_dir)
    return card


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    env = os.environ
    parser = argparse.ArgumentParser(prog="train", description="Train the classifier.")
    parser.add_argument("--train", type=Path, default=Path(env.get("SM_CHANNEL_TRAIN", "train")))
    parser.add_argument(
        "--validation", type=Path, default=Path(env.get("SM_CHANNEL_VALIDATION", "validation"))
    )
    parser.add_argument(
        "--manifest", type=Path, default=Path(env.get("SM_CHANNEL_MANIFEST", "manifest"))
    )
    parser.add_argument("--model-dir", type=Path, default=Path(env.get("SM_MODEL_DIR", "model")))
    parser.add_argument("--algorithm", choices=ALGORITHMS, default=DEFAULTS.algorithm)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--max-iter", type=int, default=DEFAULTS.max_iter)
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS.learning_rate)
    parser.add_argument("--c", type=float, default=DEFAULTS.c)
    # The pipeline's input URI: MLflow records it as the training data's source.
    parser.add_argument("--dataset-source", "--dataset_source", default=None)
    args = parser.parse_args(argv)
    params = Hyperparameters(
        algorithm=args.algorithm,
        seed=args.seed,
        max_iter=args.max_iter,
        learning_rate=args.learning_rate,
        c=args.c,
    )
    card = run(
        train_dir=args.train,
        validation_dir=args.validation,
        manifest_dir=args.manifest,
        model_dir=args.model_dir,
        params=params,
        code_version=env.get("CODE_VERSION", "unknown"),
        dataset_source=args.dataset_source,
    )
    print(json.dumps({"model_sha256": card.model_sha256, "validation": card.validation_metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
