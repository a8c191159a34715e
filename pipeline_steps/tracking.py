"""MLflow, used only when it is installed and MLFLOW_TRACKING_URI is set.

MLflow's fluent API keeps its tracking URI in a process-wide global (and copies it into the
environment). Steps run in-process by the local runner must not leave it behind, so every
use goes through ``tracking()``, which sets it from the environment and puts back what was
there before.

MLflow's defaults are relative to the working directory (``sqlite:///mlflow.db`` and
``./mlruns``): nothing here may fall back on them, or a run litters wherever it was started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

# The artifact store of a local database store, as the embedded default lays it out
# (mlops.local.emulator.Home): <folder>/mlflow.db and <folder>/artifacts.
ARTIFACTS_BESIDE_DATABASE = "artifacts"
# Where a new experiment's artifacts go, when the client chooses: a team's own tracking server
# in AWS (the pipeline sets it to s3://<artifacts bucket>/mlflow, the job's role writes there).
ARTIFACT_ROOT_ENV = "MLOPS_MLFLOW_ARTIFACT_ROOT"
_SERVER_SCHEMES = ("http", "https", "databricks", "arn")
_DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")


def tracking_uri() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def artifact_location(uri: str, experiment: str, root: str | None = None) -> str | None:
    """Where a new experiment's artifacts go: under ``root`` if given, else derived from ``uri``.

    None means the tracking store chooses, which is right only where it never picks the
    working directory.
    """
    if root:
        return f"{root.rstrip('/')}/{experiment}"
    scheme = urlsplit(uri).scheme.split("+")[0]  # postgresql+psycopg2 -> postgresql
    if scheme in _SERVER_SCHEMES:
        # A tracking server (in SageMaker, a managed MLflow server given by its ARN) has its
        # own artifact store: the stack gives its role the bucket prefix it writes under and
        # nothing else, and a client-chosen location would bypass that store.
        return None
    if scheme in ("", "file"):
        # A file store keeps artifacts inside its own folder, not in the working directory.
        return None
    if scheme == "sqlite":
        path = unquote(urlsplit(uri).path)  # sqlite:////abs/x.db -> //abs/x.db
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db is relative to the working directory
        if path and path != ":memory:":
            database = Path(path).resolve()
            return f"{(database.parent / ARTIFACTS_BESIDE_DATABASE).as_uri()}/{experiment}"
    if scheme in ("sqlite", *_DATABASE_SCHEMES):
        # A bare database has no artifact store: MLflow would use ./mlruns.
        raise ValueError(
            f"MLflow tracking URI {uri!r}: no place for artifacts; use an sqlite file or a "
            "tracking server (mlflow server --artifacts-destination ...)"
        )
    return None


@contextmanager
def tracking() -> Iterator[Any]:
    """Yield the mlflow module pointed at $MLFLOW_TRACKING_URI; restore MLflow's global after."""
    # Optional: only the tracked SageMaker images install it. (Binds mlflow too.)
    import mlflow.tracking._tracking_service.utils  # noqa: PLC0415

    uri = tracking_uri()
    if uri is None:
        raise RuntimeError("MLFLOW_TRACKING_URI is not set")
    # The global itself, not mlflow.get_tracking_uri(): that falls back on the environment
    # and then the working-directory default, and pinning either would outlive this step.
    # MLflow has no public way to tell whether a URI was set.
    previous: str | None = mlflow.tracking._tracking_service.utils._tracking_uri
    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow
    finally:
        # None only when none was set before: MLflow then reads $MLFLOW_TRACKING_URI again,
        # which is put back just below, so this is not the working-directory default.
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]
        os.environ["MLFLOW_TRACKING_URI"] = uri  # mlflow rewrote it; the caller's env stays
