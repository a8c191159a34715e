"""Serving handlers in the SageMaker scikit-learn container's contract.

``model_fn`` -> ``input_fn`` -> ``predict_fn`` -> ``output_fn``. The same functions serve in
AWS (the model tarball's code/inference.py imports them) and on the embedded default's local
endpoint.

Requests: ``text/csv`` (rows of the features in schema order; a header row naming them is
allowed) or ``application/json`` (``{"instances": [[...], ...]}``, ``{"instances": [{name:
value}, ...]}``, a bare list of either, or one ``{name: value}`` object); read by
pipeline_steps.payloads, which the drift check uses too.
Responses: ``application/json`` ``{"predictions": [{"score": p, "label": 0|1}, ...]}`` or
``text/csv`` (one score per line).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_steps import model as model_lib
from pipeline_steps.payloads import CSV, JSON, MAX_ROWS, InvalidRequest, base_type, read_request
from pipeline_steps.schema import FEATURE_NAMES

# The request format's names, where callers have always found them.
__all__ = [
    "CSV",
    "JSON",
    "MAX_ROWS",
    "InvalidRequest",
    "LoadedModel",
    "input_fn",
    "model_fn",
    "output_fn",
    "predict_fn",
]

log = logging.getLogger("pipeline_steps.inference")


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    card: model_lib.ModelCard


def model_fn(model_dir: str) -> LoadedModel:
    folder = Path(model_dir)
    card = model_lib.ModelCard.load(folder)
    if list(card.features) != list(FEATURE_NAMES):
        raise RuntimeError(f"model expects features {card.features}, this code has {FEATURE_NAMES}")
    running = model_lib.sklearn_version()
    if card.sklearn_version.split(".")[:2] != running.split(".")[:2]:
        log.warning(
            "model was trained with scikit-learn %s but this server runs %s: predictions may differ",
            card.sklearn_version,
            running,
        )
    return LoadedModel(estimator=model_lib.load(folder), card=card)


def input_fn(request_body: str | bytes, request_content_type: str | None = CSV) -> np.ndarray:
    return read_request(request_body, request_content_type)


def predict_fn(input_data: np.ndarray, model: LoadedModel) -> np.ndarray:
    return model_lib.scores(model.estimator, input_data)


def output_fn(prediction: np.ndarray, accept: str | None = JSON) -> tuple[str, str]:
    # "application/json, text/csv;q=0.5": the first type this handler can write wins.
    offered = [base_type(part) for part in (accept or JSON).split(",")]
    kind = next((k for k in offered if k in (JSON, CSV, "*/*")), offered[0])
    if kind in (JSON, "*/*"):
        predictions = [
            {"score": round(float(p), 6), "label": int(p >= model_lib.DECISION_THRESHOLD)}
            for p in prediction
        ]
        return json.dumps({"predictions": predictions}), JSON
    if kind == CSV:
        return "".join(f"{float(p):.6f}\n" for p in prediction), CSV
    raise InvalidRequest(f"unsupported accept type {accept!r}; use {JSON} or {CSV}")
