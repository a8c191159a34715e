"""Requests for an endpoint: rows like the training data, or rows from a shifted population.

The demo and the tests send these through the SageMaker runtime protocol (boto3's
sagemaker-runtime client), so capture, drift checks and alarms see real traffic. The
benchmarks and tests that need more capture than an endpoint would write in time write it
directly (``capture_line``, ``write_capture_files``), as SageMaker would have captured them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.core.capture import CSV_TYPES, JSON_TYPES, encode_record, object_key
from pipeline_steps.data import load_bundled_dataset
from pipeline_steps.schema import FEATURE_NAMES

if TYPE_CHECKING:
    from pathlib import Path

    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

CAPTURE_ENCODINGS = ("CSV", "JSON", "BASE64")


def shifted(frame: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The same people after a plan change and in worse health: free care (no coinsurance, no
    deductible plan), more chronic disease and limitation, health rated fair or poor. Six of
    the nine features move, so the dataset-level drift share passes 0.5."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(out)
    out["lncoins"] = 0.0
    out["idp"] = 0
    out["fmde"] = 0.0
    out["disea"] = np.clip(out["disea"] + rng.normal(15, 3, n), 0, 100)
    out["physlm"] = np.clip(out["physlm"] + 0.4, 0, 1)
    poor = rng.random(n) < 0.6
    out["hlthg"] = 0
    out["hlthp"] = poor.astype(int)
    out["hlthf"] = (~poor).astype(int)
    return out


def requests(rows: int, *, seed: int, drifted: bool = False) -> pd.DataFrame:
    """``rows`` rows drawn from the bundled data as they are (no added noise: even small
    noise moves a tree model's scores enough to show as prediction drift), or shifted."""
    base = load_bundled_dataset()
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), size=rows)].reset_index(drop=True)
    return shifted(frame, seed=seed) if drifted else frame


def send(
    runtime: SageMakerRuntimeClient,
    endpoint: str,
    frame: pd.DataFrame,
    *,
    batch: int = 10,
    target_variant: str | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Send ``frame`` in CSV and JSON requests of ``batch`` rows; count the serving variants.
    ``on_sent`` hears the rows of each request as it is answered (progress)."""
    served: Counter[str] = Counter()
    values = frame[list(FEATURE_NAMES)].to_numpy(dtype=float)
    for number, start in enumerate(range(0, len(values), batch)):
        chunk = values[start : start + batch]
        if number % 2:
            body, kind = json.dumps({"instances": chunk.tolist()}), "application/json"
        else:
            body = "\n".join(",".join(f"{v:g}" for v in row) for row in chunk)
            kind = "text/csv"
        request: dict[str, Any] = {
            "EndpointName": endpoint,
            "Body": body,
            "ContentType": kind,
            "Accept": "application/json",
        }
        if target_variant:
            request["TargetVariant"] = target_variant
        response = runtime.invoke_endpoint(**request)
        response["Body"].read()
        served[response["InvokedProductionVariant"]] += len(chunk)
        if on_sent is not None:
            on_sent(len(chunk))
    return served


def capture_line(
    row: Sequence[float] | np.ndarray,
    score: float,
    when: datetime,
    *,
    encoding: str = "CSV",
    event_id: str | None = None,
    label: int | None = None,
) -> str:
    """One captured one-row request and the model's answer, in SageMaker's capture format.

    ``encoding``: CSV (a text/csv request, values as ``{:g}``), JSON (an application/json
    request, ``{"instances": [row]}``), or BASE64 (the CSV request, captured by an endpoint
    whose CaptureContentTypeHeader lists no type). The label is the score's at 0.5 unless
    given. A random event id unless given, as SageMaker's."""
    if encoding not in CAPTURE_ENCODINGS:
        raise ValueError(f"encoding must be one of {CAPTURE_ENCODINGS}, got {encoding!r}")
    if encoding == "JSON":
        body, kind = json.dumps({"instances": [[float(v) for v in row]]}), "application/json"
    else:
        body, kind = ",".join(f"{v:g}" for v in row), "text/csv"
    # No listed content type: SageMaker stores the payload base64-encoded.
    listed = ((), ()) if encoding == "BASE64" else (CSV_TYPES, JSON_TYPES)
    answer = {"score": score, "label": int(score >= 0.5) if label is None else int(label)}
    return encode_record(
        request=body.encode(),
        request_type=kind,
        response=json.dumps({"predictions": [answer]}).encode(),
        response_type="application/json",
        inference_time=when,
        event_id=event_id,
        csv_types=listed[0],
        json_types=listed[1],
    )


def write_capture_files(
    root: Path,
    values: Sequence[Sequence[float]] | np.ndarray,
    scores: Sequence[float],
    *,
    endpoint: str,
    variant: str,
    first: datetime,
    per_file: int,
    encoding: str = "CSV",
    labels: Sequence[int] | None = None,
) -> list[Path]:
    """``values`` (one row per request) and their ``scores`` as capture files of ``per_file``
    records under ``root``, at SageMaker's keys (``capture/<endpoint>/<variant>/yyyy/mm/dd/hh/``);
    file k's records at ``first`` + k seconds. Labels as ``capture_line``'s unless given."""
    if len(scores) != len(values) or (labels is not None and len(labels) != len(values)):
        raise ValueError("values, scores and labels must have one entry per row")
    paths = []
    for start in range(0, len(values), per_file):
        when = first + timedelta(seconds=start // per_file)
        stop = min(start + per_file, len(values))
        lines = [
            capture_line(
                values[n],
                scores[n],
                when,
                encoding=encoding,
                label=None if labels is None else labels[n],
            )
            for n in range(start, stop)
        ]
        path = root / object_key("capture", endpoint, variant, when)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(("\n".join(lines) + "\n").encode())
        paths.append(path)
    return paths
