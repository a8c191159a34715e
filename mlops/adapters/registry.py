"""The model registry contract: what every registered model package carries, and how to read
it back. The SageMaker Pipeline's register step (stacks/pipeline_definition.py) and the local
run (mlops/local/pipeline.py) both register with these names and values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from mlops.adapters import s3io

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import (
        DescribeModelPackageOutputTypeDef,
        ModelPackageSummaryTypeDef,
        UpdateModelPackageInputTypeDef,
    )
    from mypy_boto3_sts import STSClient

# Customer metadata keys on every package: the model's lineage.
MLFLOW_RUN_ID_KEY = "mlflow_run_id"
DATASET_HASH_KEY = "dataset_sha256"
DATASET_DVC_KEY = "dataset_dvc_md5"  # the same data as DVC names it: `dvc pull` fetches it
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
ApprovalStatus = Literal["Approved", "Rejected", "PendingManualApproval"]
APPROVAL_STATUSES: tuple[ApprovalStatus, ...] = ("Approved", "Rejected", "PendingManualApproval")


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
    dataset_dvc_md5: str | None
    code_version: str | None
    model_sha256: str | None
    reference_data_uri: str | None
    evaluation_uri: str | None

    @classmethod
    def from_description(cls, described: DescribeModelPackageOutputTypeDef) -> PackageLineage:
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
            dataset_dvc_md5=metadata.get(DATASET_DVC_KEY),
            code_version=metadata.get(CODE_VERSION_KEY),
            model_sha256=metadata.get(MODEL_SHA256_KEY),
            reference_data_uri=metadata.get(REFERENCE_DATA_KEY),
            evaluation_uri=quality.get("S3Uri"),
        )


def approval_status(status: str) -> ApprovalStatus:
    """``status`` as a registry approval status; ValueError if it is none."""
    for known in APPROVAL_STATUSES:
        if status == known:
            return known
    raise ValueError(
        f"approval status must be one of {', '.join(APPROVAL_STATUSES)}, got {status!r}"
    )


def set_approval(
    sagemaker: SageMakerClient, model_package_arn: str, status: str, reason: str = ""
) -> None:
    """Approve or reject a package, keeping its lineage metadata.

    UpdateModelPackage leaves unnamed fields alone in AWS, but the emulator (moto 5.2) clears
    CustomerMetadataProperties when they are not sent: sending them back unchanged is a
    no-op in AWS and keeps the lineage on the embedded default.
    """
    request: UpdateModelPackageInputTypeDef = {
        "ModelPackageArn": model_package_arn,
        "ModelApprovalStatus": approval_status(status),
    }
    described = sagemaker.describe_model_package(ModelPackageName=model_package_arn)
    if reason:
        request["ApprovalDescription"] = reason
    if described.get("CustomerMetadataProperties"):
        request["CustomerMetadataProperties"] = described["CustomerMetadataProperties"]
    sagemaker.update_model_package(**request)


def model_package_of(sagemaker: SageMakerClient, model_name: str) -> str | None:
    """The model package a SageMaker model was made from (None: made from an image)."""
    model = sagemaker.describe_model(ModelName=model_name)
    containers = model.get("Containers") or [model.get("PrimaryContainer", {})]
    package = containers[0].get("ModelPackageName")
    return str(package) if package else None


def list_packages(sagemaker: SageMakerClient, group: str) -> list[ModelPackageSummaryTypeDef]:
    """Every package of the group, newest first."""
    packages: list[ModelPackageSummaryTypeDef] = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    ):
        packages += page["ModelPackageSummaryList"]
    return packages


def package_arn(sts: STSClient, version: str, *, region: str, group: str) -> str:
    """A package named by its ARN, or by its version number in ``group``; ValueError if neither.
    Only a version number asks STS (for the account)."""
    if version.startswith("arn:"):
        return version
    if not version.isdigit():
        raise ValueError(f"a package is named by its version number or ARN, got {version!r}")
    account = sts.get_caller_identity()["Account"]
    partition = "aws-cn" if region.startswith("cn-") else "aws"
    return f"arn:{partition}:sagemaker:{region}:{account}:model-package/{group}/{int(version)}"


def evaluation_auc(s3: S3Client, evaluation_uri: str) -> float | None:
    """The test AUC in the evaluate step's report; None if the report cannot be read."""
    try:
        bucket, key = s3io.split_uri(evaluation_uri)
        report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return float(report["binary_classification_metrics"]["auc"]["value"])
    except (ClientError, KeyError, ValueError):
        return None
