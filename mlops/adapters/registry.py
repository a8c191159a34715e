"""The model registry contract: what every registered model package carries, and how to read
it back. The SageMaker Pipeline's register step (stacks/pipeline_definition.py) and the local
run (mlops/local/pipeline.py) both register with these names and values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Customer metadata keys on every package: the model's lineage.
MLFLOW_RUN_ID_KEY = "mlflow_run_id"
DATASET_HASH_KEY = "dataset_sha256"
CODE_VERSION_KEY = "code_version"
MODEL_SHA256_KEY = "model_sha256"
REFERENCE_DATA_KEY = "reference_data_uri"
EXECUTION_KEY = "pipeline_execution"

CONTENT_TYPES = ("text/csv", "application/json")
RESPONSE_TYPES = ("application/json", "text/csv")
# The model tarball carries its own inference code (pipeline_steps/train.py puts it there).
SERVING_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
}
APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")


@dataclass(frozen=True)
class PackageLineage:
    """Where a registered model came from."""

    model_package_arn: str
    version: int | None
    approval_status: str
    model_data_url: str
    image: str
    mlflow_run_id: str | None
    dataset_sha256: str | None
    code_version: str | None
    model_sha256: str | None
    reference_data_uri: str | None
    evaluation_uri: str | None

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> PackageLineage:
        metadata = described.get("CustomerMetadataProperties", {})
        container = described["InferenceSpecification"]["Containers"][0]
        quality = described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
        return cls(
            model_package_arn=described["ModelPackageArn"],
            version=described.get("ModelPackageVersion"),
            approval_status=described.get("ModelApprovalStatus", "Unknown"),
            model_data_url=container.get("ModelDataUrl", ""),
            image=container.get("Image", ""),
            mlflow_run_id=metadata.get(MLFLOW_RUN_ID_KEY),
            dataset_sha256=metadata.get(DATASET_HASH_KEY),
            code_version=metadata.get(CODE_VERSION_KEY),
            model_sha256=metadata.get(MODEL_SHA256_KEY),
            reference_data_uri=metadata.get(REFERENCE_DATA_KEY),
            evaluation_uri=quality.get("S3Uri"),
        )


def set_approval(sagemaker: Any, model_package_arn: str, status: str, reason: str = "") -> None:
    """Approve or reject a package, keeping its lineage metadata.

    UpdateModelPackage leaves unnamed fields alone in AWS, but the emulator (moto 5.2) clears
    CustomerMetadataProperties when they are not sent: sending them back unchanged is a
    no-op in AWS and keeps the lineage on the embedded default.
    """
    if status not in APPROVAL_STATUSES:
        raise ValueError(
            f"approval status must be one of {', '.join(APPROVAL_STATUSES)}, got {status!r}"
        )
    described = sagemaker.describe_model_package(ModelPackageName=model_package_arn)
    request: dict[str, Any] = {"ModelPackageArn": model_package_arn, "ModelApprovalStatus": status}
    if reason:
        request["ApprovalDescription"] = reason
    if described.get("CustomerMetadataProperties"):
        request["CustomerMetadataProperties"] = described["CustomerMetadataProperties"]
    sagemaker.update_model_package(**request)


def model_package_of(sagemaker: Any, model_name: str) -> str | None:
    """The model package a SageMaker model was made from (None: made from an image)."""
    model = sagemaker.describe_model(ModelName=model_name)
    containers = model.get("Containers") or [model.get("PrimaryContainer", {})]
    package = containers[0].get("ModelPackageName")
    return str(package) if package else None
