"""Change which approved model packages serve: deploy an approved package, or promote.

One flow for every caller (the deploy function on an approval event, ``mlops serving
deploy|promote``, the demo): read what serves, decide (``mlops.core.approval``), deploy the
change, record it once under the request id, notify. Where the change is deployed is the
caller's ``Deployment``: the serving stack's parameters in AWS, the emulator's endpoint on
the embedded default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from botocore.exceptions import ClientError

from mlops.adapters.audit import write_once
from mlops.core import names
from mlops.core.approval import (
    DeploymentRecord,
    PackageRefused,
    PackageScope,
    ServingChange,
    ServingState,
    foreign_package,
    on_approval,
    on_promote,
    package_refusal,
    record,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient

ServingAction = Literal["deploy", "promote"]


class Deployment(Protocol):
    """Where serving changes go."""

    def current(self) -> ServingState: ...

    def deploy(self, change: ServingChange) -> str:
        """Apply ``change``; return a status to record (``UPDATE_IN_PROGRESS``, ...)."""
        ...


@dataclass(frozen=True)
class ServingRequest:
    action: ServingAction
    requested_by: str
    reason: str
    package_arn: str | None = None  # action=deploy: the approved package
    request_id: str | None = None  # names the audit record: a redelivery is recorded once


@dataclass(frozen=True)
class ServingOutcome:
    record: DeploymentRecord
    duplicate: bool  # this request id was recorded before: nothing recorded or notified again


def audit(s3: S3Client, bucket: str, endpoint: str, entry: DeploymentRecord) -> bool:
    """Write the record under its request id, never over another; False if it exists."""
    key = f"{names.SERVING_AUDIT_PREFIX}/{endpoint}/{entry.request_id}.json"
    entry.audit_uri = f"s3://{bucket}/{key}"
    return write_once(
        s3, bucket, key, json.dumps(asdict(entry), indent=2, sort_keys=True, allow_nan=False)
    )


def verify_package(sagemaker: SageMakerClient, arn: str, scope: PackageScope) -> None:
    """Raise ``PackageRefused`` unless the registry says ``arn`` may serve (``scope``)."""
    if foreign := foreign_package(arn, scope):
        raise PackageRefused(foreign)
    try:
        described = sagemaker.describe_model_package(ModelPackageName=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            raise PackageRefused(
                f"{arn}: {exc.response['Error'].get('Message', 'not found')}"
            ) from None
        raise
    refusal = package_refusal(
        str(described.get("ModelPackageArn", arn)),
        described.get("ModelApprovalStatus"),
        described.get("ModelPackageGroupName"),
        scope,
    )
    if refusal:
        raise PackageRefused(refusal)


def change_serving(
    request: ServingRequest,
    *,
    deployment: Deployment,
    registry: SageMakerClient,
    scope: PackageScope,
    endpoint: str,
    initial_challenger_weight: float,
    s3: S3Client,
    audit_bucket: str,
    sns: SNSClient | None = None,
    topic_arn: str | None = None,
) -> ServingOutcome:
    """Decide, deploy, record and notify one serving change.

    ``TrafficError`` (nothing to promote, a package that may not serve, ...) and the
    deployment's own errors propagate before anything is recorded.
    """
    if request.package_arn:
        verify_package(registry, request.package_arn, scope)
    before = deployment.current()
    if request.action == "promote":
        change = on_promote(before)
    else:
        if not request.package_arn:
            raise ValueError("a deploy request names the approved package")
        change = on_approval(
            before, request.package_arn, initial_challenger_weight=initial_challenger_weight
        )
    entry = record(
        action=request.action,
        requested_by=request.requested_by,
        reason=request.reason,
        before=before,
        change=change,
        request_id=request.request_id,
    )
    entry.stack_status = deployment.deploy(change) if change.changed else "UNCHANGED"
    if not audit(s3, audit_bucket, endpoint, entry):
        return ServingOutcome(entry, duplicate=True)
    if sns is not None and topic_arn:
        sns.publish(
            TopicArn=topic_arn,
            Subject=f"{request.action} on {endpoint}"[:100],
            Message=entry.summary,
        )
    return ServingOutcome(entry, duplicate=False)
