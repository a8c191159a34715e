"""MLflow's aliases name what serves, on a real MLflow store (sqlite): an approval alone does
not make a model the challenger (its deployment may still fail); a deployment does."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from mlops.adapters.mlflow_aliases import PACKAGE_ARN_TAG, MlflowAliases
from mlops.core.approval import ServingState

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/visits/{}"


def test_an_approval_names_no_challenger_until_it_serves(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("visits")
    for version in (1, 2):
        client.create_model_version(
            "visits", f"file://{tmp_path}/{version}", tags={PACKAGE_ARN_TAG: ARN.format(version)}
        )
    aliases = MlflowAliases(uri, "visits")

    def named() -> dict[str, str]:
        return {k: str(v) for k, v in client.get_registered_model("visits").aliases.items()}

    aliases.serving(ServingState(champion=ARN.format(1)))
    assert named() == {"champion": "1"}
    aliases.approved(ARN.format(2), "Approved", "better AUC")
    assert named() == {"champion": "1"}  # approved, not deployed (yet, or ever)
    assert client.get_model_version("visits", "2").tags["approval_status"] == "Approved"
    aliases.serving(ServingState(champion=ARN.format(1), challenger=ARN.format(2)))
    assert named() == {"champion": "1", "challenger": "2"}
    aliases.approved(ARN.format(2), "Rejected", "a late finding")
    assert named() == {"champion": "1"}
    aliases.serving(ServingState(champion=ARN.format(2), challenger=ARN.format(2)))  # promoted
    assert named() == {"champion": "2"}
