"""MLflow's registered-model aliases follow what serves: ``champion`` and ``challenger``.

The SageMaker Model Registry is the record of what may serve; MLflow's registry mirrors it
(mlops/local/pipeline.py registers each package's version there, tagged with the package
ARN). These aliases say which MLflow version each variant serves, so that
``models:/<group>@champion`` loads the model in production:

- approve: the version is tagged with its approval status; a rejected one loses the
  ``challenger`` alias. An approved one gets it when it is deployed, not before: a deployment
  that fails must not leave the alias on a model that does not serve;
- deploy and promote: both aliases name the versions the variants serve afterwards (none for
  a variant that does not exist, or that serves the champion's model, as after a promotion);
- rollback: the challenger, its traffic taken away, loses the ``challenger`` alias (a later
  deployment gives the alias to the next one); the version keeps a ``rolled_back`` tag.

The model's registered name is the package group's. mlflow is imported only when an alias
moves: the Lambda image has no MLflow client (lambdas/requirements.txt).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops.core.approval import ServingState
from mlops.core.names import CHALLENGER, CHAMPION

PACKAGE_ARN_TAG = "model_package_arn"
# Read by the Lambda handlers: set by no stack (README: "MLflow"), by the embedded default's
# demo around its functions' invocations.
REGISTERED_MODEL_ENV = "MLFLOW_REGISTERED_MODEL_NAME"
log = logging.getLogger(__name__)


class AliasError(RuntimeError):
    """An alias could not be moved (no MLflow version for a package, MLflow unreachable)."""


@dataclass(frozen=True)
class MlflowAliases:
    tracking_uri: str
    model_name: str  # the registered model: the SageMaker package group's name

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> MlflowAliases | None:
        """The aliases a function moves: None unless both MLFLOW_TRACKING_URI and
        MLFLOW_REGISTERED_MODEL_NAME are set (no stack sets them in AWS)."""
        uri, name = environ.get("MLFLOW_TRACKING_URI"), environ.get(REGISTERED_MODEL_ENV)
        return cls(uri, name) if uri and name else None

    def _client(self) -> Any:
        mlflow = importlib.import_module("mlflow")
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def version_of(self, client: Any, package_arn: str) -> str:
        """The MLflow version registered for ``package_arn``; AliasError if there is none."""
        found = client.search_model_versions(
            f"name = '{self.model_name}' and tags.{PACKAGE_ARN_TAG} = '{package_arn}'"
        )
        if not found:
            raise AliasError(
                f"no version of MLflow model {self.model_name!r} is tagged {PACKAGE_ARN_TAG}="
                f"{package_arn} (registered without tracking?)"
            )
        return str(max(int(v.version) for v in found))

    def approved(self, package_arn: str, status: str, reason: str) -> None:
        client = self._client()
        version = self.version_of(client, package_arn)
        client.set_model_version_tag(self.model_name, version, "approval_status", status)
        if status != "Approved" and _alias(client, self.model_name, CHALLENGER) == version:
            client.delete_registered_model_alias(self.model_name, CHALLENGER)
        log.info("MLflow %s v%s: %s (%s)", self.model_name, version, status, reason)

    def serving(self, state: ServingState) -> None:
        """Both aliases name the versions the variants serve (none: the alias is removed)."""
        client = self._client()
        # After a promotion both variants serve the new champion: there is no challenger.
        challenger = None if state.challenger == state.champion else state.challenger
        for alias, arn in ((CHAMPION, state.champion), (CHALLENGER, challenger)):
            if arn is None:
                if _alias(client, self.model_name, alias) is not None:
                    client.delete_registered_model_alias(self.model_name, alias)
            else:
                version = self.version_of(client, arn)
                client.set_registered_model_alias(self.model_name, alias, version)

    def rolled_back(self, reason: str) -> None:
        client = self._client()
        version = _alias(client, self.model_name, CHALLENGER)
        if version is None:
            return
        client.delete_registered_model_alias(self.model_name, CHALLENGER)
        client.set_model_version_tag(self.model_name, version, "rolled_back", reason[:500])


def _alias(client: Any, model_name: str, alias: str) -> str | None:
    """The version ``alias`` names, or None (also when the model is not registered yet)."""
    try:
        return str(client.get_registered_model(model_name).aliases.get(alias) or "") or None
    except Exception as exc:  # MlflowException: mlflow is not imported at module level
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")):
            return None
        raise


def follow(action: str, move: Callable[[], None]) -> str | None:
    """Move the aliases (``move()``); the error as text instead of raising. The serving
    change or approval is made and recorded: a lagging alias must not undo it, nor make a
    retry deploy again."""
    try:
        move()
    except Exception as exc:  # MLflow's errors and the network's alike
        log.warning("MLflow aliases not moved after %s: %s", action, exc)
        return f"MLflow aliases not moved: {type(exc).__name__}: {exc}"
    return None
