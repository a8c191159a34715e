"""Evaluate: score the trained model on the held-out test split.

Writes evaluation.json in the layout SageMaker's Model Registry shows as model quality
(``binary_classification_metrics.<metric>.value``), plus a ``lineage`` block the pipeline's
register step reads (MLflow run, dataset hash, model hash, code version). The pipeline's
condition step gates registration on ``binary_classification_metrics.auc.value``.
Next to it, scores.csv holds the model's test-set scores: the drift check's reference for
prediction drift.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from pipeline_steps import model as model_lib
from pipeline_steps.hashing import file_sha256
from pipeline_steps.preprocess import MANIFEST
from pipeline_steps.schema import FEATURE_NAMES, LABEL
from pipeline_steps.tracking import tracking, tracking_uri

log = logging.getLogger("pipeline_steps.evaluate")
EVALUATION = "evaluation.json"
SCORES = "scores.csv"  # next to evaluation.json
SCORE_COLUMN = "prediction_score"
NOT_TRACKED = "not-tracked"


def unpack_model(source: Path, into: Path) -> Path:
    """The model folder: ``source`` itself, or model.tar.gz inside it unpacked into ``into``."""
    if (source / model_lib.MODEL_FILE).is_file():
        return source
    archive = source if source.is_file() else source / "model.tar.gz"
    if not archive.is_file():
        raise FileNotFoundError(f"no {model_lib.MODEL_FILE} or model.tar.gz in {source}")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")  # refuses absolute paths and links out of `into`
    return into


def sagemaker_metrics(
    values: dict[str, float], y_true: np.ndarray, y_score: np.ndarray
) -> dict[str, Any]:
    matrix = confusion_matrix(
        y_true, (y_score >= model_lib.DECISION_THRESHOLD).astype(int), labels=[0, 1]
    )
    section: dict[str, Any] = {
        name: {"value": value, "standard_deviation": "NaN"} for name, value in values.items()
    }
    section["confusion_matrix"] = {
        str(actual): {str(pred): int(matrix[actual][pred]) for pred in (0, 1)} for actual in (0, 1)
    }
    return {"binary_classification_metrics": section}


def run(*, model_source: Path, test_dir: Path, manifest_dir: Path, output: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = unpack_model(model_source, Path(scratch))
        estimator = model_lib.load(model_dir)
        card = model_lib.ModelCard.load(model_dir)
        actual_sha = file_sha256(model_dir / model_lib.MODEL_FILE)
    if actual_sha != card.model_sha256:
        raise ValueError(
            f"model.joblib hash {actual_sha} does not match model.json {card.model_sha256}"
        )

    files = sorted(test_dir.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV file in {test_dir}")
    test = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    y_true = test[LABEL].to_numpy()
    y_score = model_lib.scores(estimator, test[list(FEATURE_NAMES)])
    values = model_lib.metrics(y_true, y_score)
    manifest = json.loads((manifest_dir / MANIFEST).read_text())

    report = sagemaker_metrics(values, y_true, y_score)
    report["rows"] = len(test)
    report["lineage"] = {
        "mlflow_run_id": card.mlflow_run_id or NOT_TRACKED,
        "dataset_sha256": manifest["dataset_sha256"],
        "dataset_dvc_md5": manifest["dataset_dvc_md5"],
        "model_sha256": card.model_sha256,
        "code_version": card.code_version,
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / EVALUATION).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    # The prediction-drift reference: the model's scores on held-out rows, with their labels.
    pd.DataFrame({SCORE_COLUMN: y_score, LABEL: y_true}).to_csv(output / SCORES, index=False)
    _track(card, values)
    return report


def _track(card: model_lib.ModelCard, values: dict[str, float]) -> None:
    """Add the test metrics to the training run, where MLflow is available (not in SageMaker's
    processing image, where the registry's model quality report carries them instead)."""
    if not (card.mlflow_run_id and tracking_uri()):
        return
    try:
        with tracking() as mlflow, mlflow.start_run(run_id=card.mlflow_run_id):
            mlflow.log_metrics({f"test_{k}": v for k, v in values.items()})
    except ImportError:
        log.info("mlflow is not installed here: test metrics are in evaluation.json only")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="evaluate", description="Evaluate the trained model.")
    parser.add_argument("--model", type=Path, required=True, help="model folder or model.tar.gz")
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    report = run(
        model_source=args.model, test_dir=args.test, manifest_dir=args.manifest, output=args.output
    )
    auc = report["binary_classification_metrics"]["auc"]["value"]
    print(json.dumps({"auc": auc, "rows": report["rows"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
