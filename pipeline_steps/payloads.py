"""The serving handlers' requests, read: ``text/csv`` or ``application/json`` to a matrix of
the schema's features (the format is described in pipeline_steps.inference).

Apart from the handlers so that what reads captured requests as the model saw them (the drift
check, mlops.core.variant_check) need not load scikit-learn, which the handlers' model module
imports. numpy and the standard library only. Shipped with the model's code like the rest of
the package (pipeline_steps.train.copy_inference_code copies every module).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np

from pipeline_steps.schema import FEATURE_NAMES

CSV = "text/csv"
JSON = "application/json"
MAX_ROWS = 10_000


class InvalidRequest(ValueError):
    """The request cannot be scored; the message says why."""


def base_type(content_type: str | None) -> str:
    """The media type without parameters, lower case; CSV when none is given."""
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


def read_request(request_body: str | bytes, request_content_type: str | None = CSV) -> np.ndarray:
    """The request's rows (features in schema order); InvalidRequest says why there are none."""
    try:
        body = request_body.decode("utf-8") if isinstance(request_body, bytes) else request_body
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"body is not UTF-8 text: {exc}") from None
    kind = base_type(request_content_type)
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
