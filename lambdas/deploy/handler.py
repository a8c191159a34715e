"""Deploy-on-approval Lambda: a newly approved model package becomes the challenger.

Triggers:
- "SageMaker Model Package State Change" to Approved in the model family's group
  (EventBridge): the package becomes the challenger at the configured starting weight, the
  champion stays; with no endpoint yet, the first approved package becomes the champion;
- a direct invocation: {"action": "promote", "reason": "...", "requested_by": "..."} makes
  the challenger the champion with all traffic.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from mlops.config import PlatformConfig
from mlops.deployer import DeploymentError, StackDeployment, audit, record
from mlops.serving import on_approval, on_promote
from mlops.traffic import TrafficError

logger = Logger(service="deploy")


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    project: str = Field(alias="PROJECT")
    stage: str = Field(alias="STAGE")
    model_family: str = Field(alias="MODEL_FAMILY")
    model_package_group: str = Field(alias="MODEL_PACKAGE_GROUP")
    initial_challenger_weight: float = Field(alias="INITIAL_CHALLENGER_WEIGHT", ge=0, le=1)
    audit_bucket: str = Field(alias="AUDIT_BUCKET")
    topic_arn: str | None = Field(default=None, alias="TOPIC_ARN")
    cloudformation_role_arn: str | None = Field(default=None, alias="CLOUDFORMATION_ROLE_ARN")

    def platform(self) -> PlatformConfig:
        return PlatformConfig.from_context(
            {"project": self.project, "stage": self.stage, "model_family": self.model_family}
        )


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.model_validate(dict(os.environ))
    config = settings.platform()
    deployment = StackDeployment(
        cloudformation=boto3.client("cloudformation"),
        ssm=boto3.client("ssm"),
        config=config,
        role_arn=settings.cloudformation_role_arn,
    )
    try:
        if event.get("detail-type") == "SageMaker Model Package State Change":
            detail = event.get("detail", {})
            if detail.get("ModelApprovalStatus") != "Approved":
                return {
                    "ok": True,
                    "skipped": f"{detail.get('ModelPackageArn')} is {detail.get('ModelApprovalStatus')}",
                }
            if detail.get("ModelPackageGroupName") != settings.model_package_group:
                return {
                    "ok": False,
                    "error": f"package of group {detail.get('ModelPackageGroupName')}, not {settings.model_package_group}",
                }
            arn = str(detail["ModelPackageArn"])
            action, requested_by, reason = "deploy", "model-registry:approval", f"{arn} approved"
            request_id = str(event.get("id") or context.aws_request_id)
            before = deployment.current()
            change = on_approval(
                before, arn, initial_challenger_weight=settings.initial_challenger_weight
            )
        elif event.get("action") == "promote":
            action, requested_by = "promote", str(event.get("requested_by") or "unknown")
            reason = str(event.get("reason") or "promote the challenger")
            request_id = str(event.get("request_id") or context.aws_request_id)
            before = deployment.current()
            change = on_promote(before)
        else:
            return {
                "ok": False,
                "error": 'expected a model package approval event or {"action": "promote"}',
            }
    except (TrafficError, DeploymentError) as exc:
        logger.warning("refused", extra={"error": str(exc)})
        return {"ok": False, "error": str(exc)}

    entry = record(
        action=action,
        requested_by=requested_by,
        reason=reason,
        before=before,
        change=change,
        request_id=request_id,
    )
    if change.changed:
        entry.stack_status = deployment.deploy(change)  # DeploymentBusy raises: retried
    s3 = boto3.client("s3")
    if not audit(s3, settings.audit_bucket, config.endpoint_name, entry):
        return {"ok": True, "duplicate": True, "request_id": request_id}
    if settings.topic_arn:
        boto3.client("sns").publish(
            TopicArn=settings.topic_arn,
            Subject=f"{action} on {config.endpoint_name}"[:100],
            Message=entry.summary,
        )
    logger.info("deployment", extra={"record": entry.__dict__})
    return {"ok": True, **entry.__dict__}
