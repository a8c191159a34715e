"""MLflow, used only when it is installed and MLFLOW_TRACKING_URI is set.

MLflow's fluent API keeps its tracking URI in a process-wide global (and copies it into the
environment). Steps run in-process by the local runner must not leave it behind, so every
use goes through ``tracking()``, which sets it from the environment and clears it after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def tracking_uri() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI") or None


@contextmanager
def tracking() -> Iterator[Any]:
    """Yield the mlflow module pointed at $MLFLOW_TRACKING_URI; restore MLflow's global after."""
    import mlflow  # noqa: PLC0415 - optional dependency

    uri = tracking_uri()
    if uri is None:
        raise RuntimeError("MLFLOW_TRACKING_URI is not set")
    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None clears it
        os.environ["MLFLOW_TRACKING_URI"] = uri  # mlflow unset it; the caller's env stays as it was
