"""Requests for an endpoint: rows like the training data, or rows from a shifted population.

The demo and the tests send these through the SageMaker runtime protocol (boto3's
sagemaker-runtime client), so capture, drift checks and alarms see real traffic.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline_steps.data import load_bundled_dataset
from pipeline_steps.schema import FEATURE_NAMES

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


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
) -> Counter[str]:
    """Send ``frame`` in CSV and JSON requests of ``batch`` rows; count the serving variants."""
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
    return served
