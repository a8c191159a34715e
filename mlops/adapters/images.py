"""The SageMaker scikit-learn image URIs, read from the SDK's own table without importing it
(the SDK's import is slow and opens boto3 clients)."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

SKLEARN_VERSION = "1.9-0"


@cache
def _sklearn_table() -> dict[str, Any]:
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the SageMaker Python SDK (sagemaker 3.27) is not installed")
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "core"
        / "image_uri_config"
        / "sklearn.json"
    )
    table: dict[str, Any] = json.loads(path.read_text())
    return table


def sklearn_image_uri(region: str, scope: Literal["training", "inference"]) -> str:
    version = _sklearn_table()[scope]["versions"][SKLEARN_VERSION]
    registries = version["registries"]
    if region not in registries:
        raise ValueError(f"no SageMaker scikit-learn {SKLEARN_VERSION} image in region {region}")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return (
        f"{registries[region]}.dkr.ecr.{region}.{domain}/{version['repository']}"
        f":{SKLEARN_VERSION}-cpu-py3"
    )
