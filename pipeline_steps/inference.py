"""Serving handlers in the SageMaker scikit-learn container's contract.

``model_fn`` -> ``input_fn`` -> ``predict_fn`` -> ``output_fn``. The same functions serve in
AWS (the model tarball's code/inference.py imports them) and on the embedded default's local
endpoint.

Requests: ``text/csv`` (rows of the features in schema order; a header row naming them is
allowed) or ``application/json`` (``{"instances": [[...], ...]}``, ``{"instances": [{name:
value}, ...]}``, a bare list of either, or one ``{name: value}`` object).
Responses: ``application/json`` ``{"predictions": [{"score": p, "label": 0|1}, ...]}`` or
``text/csv`` (one score per line).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_steps import model as model_lib
from pipeline_steps.schema import FEATURE_NAMES

log = logging.getLogger("pipeline_steps.inference")
CSV = "text/csv"
JSON = "application/json"
MAX_ROWS = 10_000


class InvalidRequest(ValueError):
    """The request cannot be scored; the message says why."""


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


def _base_type(content_type: str | None) -> str:
    return (content_type or CSV).split(";")[0].strip().lower()


def _row(values: Any, where: str) -> list[float]:
    if isinstance(values, dict):
        missing = [name for name in FEATURE_NAMES if name not in values]
        if missing:
            raise InvalidRequest(f"{where}: missing feature(s) {', '.join(missing)}")
        values = [values[name] for name in FEATURE_NAMES]
    if not isinstance(values, list | tuple):
        raise InvalidRequest(
            f"{where}: expected a list of {len(FEATURE_NAMES)} numbers or an object"
        )
    if len(values) != len(FEATURE_NAMES):
        raise InvalidRequest(
            f"{where}: expected {len(FEATURE_NAMES)} values ({', '.join(FEATURE_NAMES)}), got {len(values)}"
        )
    row = []
    for name, value in zip(FEATURE_NAMES, values, strict=True):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidRequest(f"{where}, feature {name!r}: not a number: {value!r}") from None
        if not math.isfinite(number):
            raise InvalidRequest(f"{where}, feature {name!r}: not a finite number: {value!r}")
        row.append(number)
    return row


def input_fn(request_body: str | bytes, request_content_type: str | None = CSV) -> np.ndarray:
    try:
        body = request_body.decode("utf-8") if isinstance(request_body, bytes) else request_body
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"body is not UTF-8 text: {exc}") from None
    kind = _base_type(request_content_type)
    if kind == CSV:
        lines = [
            line for line in csv.reader(io.StringIO(body)) if line and any(c.strip() for c in line)
        ]
        header = [c.strip() for c in lines[0]] if lines else []
        if sorted(header) == sorted(FEATURE_NAMES):
            # A header row names the columns: the rows may come in any column order.
            order = [header.index(name) for name in FEATURE_NAMES]
            lines = [
                [line[i] for i in order] if len(line) == len(header) else line for line in lines[1:]
            ]
        rows = [_row([c.strip() for c in line], f"CSV row {i + 1}") for i, line in enumerate(lines)]
    elif kind == JSON:
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"body is not valid JSON: {exc}") from None
        except RecursionError:  # legal JSON, nested deeper than the parser goes: the caller's
            raise InvalidRequest("body is JSON nested too deeply to read") from None
        if isinstance(payload, dict) and "instances" in payload:
            payload = payload["instances"]
        elif isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list):
            raise InvalidRequest('expected {"instances": [...]}, a list of rows, or one object')
        rows = [_row(item, f"instance {i}") for i, item in enumerate(payload)]
    else:
        raise InvalidRequest(
            f"unsupported content type {request_content_type!r}; use {CSV} or {JSON}"
        )
    if not rows:
        raise InvalidRequest("the request holds no rows to score")
    if len(rows) > MAX_ROWS:
        raise InvalidRequest(f"at most {MAX_ROWS} rows per request, got {len(rows)}")
    return np.asarray(rows, dtype=float)


def predict_fn(input_data: np.ndarray, model: LoadedModel) -> np.ndarray:
    return model_lib.scores(model.estimator, input_data)


def output_fn(prediction: np.ndarray, accept: str | None = JSON) -> tuple[str, str]:
    # "application/json, text/csv;q=0.5": the first type this handler can write wins.
    offered = [_base_type(part) for part in (accept or JSON).split(",")]
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
