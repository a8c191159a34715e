"""The model family: a binary classifier of `any_visit` from the schema's features."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline_steps.hashing import file_sha256
from pipeline_steps.hyperparameters import Hyperparameters
from pipeline_steps.schema import FEATURE_NAMES, LABEL

MODEL_FILE = "model.joblib"
CARD_FILE = "model.json"
DECISION_THRESHOLD = 0.5


@dataclass
class ModelCard:
    """What is known about a trained model; saved beside it as model.json."""

    hyperparameters: dict[str, Any]
    features: list[str]
    label: str
    sklearn_version: str
    model_sha256: str
    dataset_sha256: str
    code_version: str
    mlflow_run_id: str | None = None
    mlflow_model_uri: str | None = None
    validation_metrics: dict[str, float] = field(default_factory=dict)
    # Model bytes are reproducible for the same runtime: these name it.
    runtime: dict[str, str] = field(default_factory=dict)

    def save(self, model_dir: Path) -> Path:
        path = model_dir / CARD_FILE
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: Path) -> ModelCard:
        return cls(**json.loads((model_dir / CARD_FILE).read_text()))


def build(params: Hyperparameters) -> Any:
    if params.algorithm == "logistic":
        return Pipeline(
            [
                ("scale", StandardScaler()),
                (
                    "classify",
                    LogisticRegression(
                        C=params.c, max_iter=params.max_iter, random_state=params.seed
                    ),
                ),
            ]
        )
    return HistGradientBoostingClassifier(
        learning_rate=params.learning_rate,
        max_iter=params.max_iter,
        early_stopping=False,  # a random validation split inside fit would not help reproducibility
        random_state=params.seed,
    )


def fit(params: Hyperparameters, train: pd.DataFrame) -> Any:
    model = build(params)
    model.fit(train[list(FEATURE_NAMES)].to_numpy(dtype=float), train[LABEL].to_numpy())
    return model


def scores(model: Any, features: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Probability of the positive class (a visit)."""
    matrix = (
        features[list(FEATURE_NAMES)].to_numpy(dtype=float)
        if isinstance(features, pd.DataFrame)
        else features
    )
    return np.asarray(model.predict_proba(matrix)[:, 1], dtype=float)


def metrics(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    y_pred = (y_score >= DECISION_THRESHOLD).astype(int)
    return {
        "auc": float(roc_auc_score(y_true, y_score)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
    }


def save(model: Any, model_dir: Path) -> tuple[Path, str]:
    """Write the estimator; return its path and content hash (the model's identity)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    # HistGradientBoosting pickles the thread count it was fitted with: the same model would
    # hash differently on a 2-core laptop and an 8-core instance. None means "all cores",
    # which is also what it uses when predicting.
    mapper = getattr(model, "_bin_mapper", None)
    if mapper is not None:
        mapper.n_threads = None
    path = model_dir / MODEL_FILE
    joblib.dump(model, path, compress=0)
    return path, file_sha256(path)


def load(model_dir: Path) -> Any:
    return joblib.load(model_dir / MODEL_FILE)


def sklearn_version() -> str:
    return str(sklearn.__version__)


def runtime_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": str(np.__version__),
        "pandas": str(pd.__version__),
        "scikit-learn": sklearn_version(),
        "joblib": str(joblib.__version__),
    }
