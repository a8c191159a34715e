"""Deploy-on-approval Lambda: a newly approved model package becomes the challenger.

Triggers:
- "SageMaker Model Package State Change" to Approved in the model family's group
  (EventBridge): the package becomes the challenger at the configured starting weight, the
  champion stays; with no endpoint yet, the first approved package becomes the champion;
- a direct invocation: {"action": "promote", "reason": "...", "requested_by": "..."} makes
  the challenger the champion with all traffic.

Any other event is answered {"ok": false, "error": "<one line naming the field>"} before any
AWS call, and never raised (retrying it would only lead it into the dead-letter queue).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from lambdas.events import (
    MODEL_PACKAGE_STATE_CHANGE,
    EventId,
    EventRefused,
    ModelPackageStateChange,
    NoticeNotSent,
    one_line,
    parse_event,
    refusal,
)
from mlops.adapters.mlflow_aliases import MlflowAliases
from mlops.adapters.stack_deployment import DeploymentError, StackDeployment
from mlops.adapters.target import AwsTarget
from mlops.core.approval import PackageScope
from mlops.core.functions import DeploySettings
from mlops.core.traffic import TrafficError
from mlops.usecases.approve import ServingRequest, change_serving

logger = Logger(service=DeploySettings.service)


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # as the console's test events may carry more

    action: Literal["promote"]
    reason: str = Field(default="promote the challenger", min_length=3, max_length=1000)
    requested_by: str = Field(default="unknown", min_length=1, max_length=256)
    request_id: EventId | None = None  # names the audit record


def serving_request(
    event: object, context: LambdaContext, settings: DeploySettings
) -> ServingRequest | dict[str, Any]:
    """The serving change an event asks for, or the answer to an event that asks for none."""
    if isinstance(event, dict) and "detail-type" in event:
        if event["detail-type"] != MODEL_PACKAGE_STATE_CHANGE:
            raise EventRefused(
                f"detail-type: expected {MODEL_PACKAGE_STATE_CHANGE!r}, "
                f"got {one_line(repr(event['detail-type']))}"
            )
        approval = parse_event(event, ModelPackageStateChange)
        detail = approval.detail
        if detail.model_approval_status != "Approved":
            return {
                "ok": True,
                "skipped": f"{detail.model_package_arn} is {detail.model_approval_status}",
            }
        if detail.model_package_group_name != settings.model_package_group:
            return refusal(
                f"detail.ModelPackageGroupName: package of group "
                f"{detail.model_package_group_name}, not {settings.model_package_group}"
            )
        return ServingRequest(
            action="deploy",
            requested_by="model-registry:approval",
            reason=f"{detail.model_package_arn} approved",
            package_arn=detail.model_package_arn,
            request_id=approval.id,
        )
    if not isinstance(event, dict):
        raise EventRefused(
            'expected a model package approval event or {"action": "promote"}, '
            f"got {type(event).__name__}"
        )
    if "action" not in event:
        raise EventRefused(
            'expected a model package approval event (a detail-type) or {"action": "promote"}: '
            "the event has neither detail-type nor action"
        )
    if event["action"] != "promote":
        raise EventRefused(
            'action: expected a model package approval event or {"action": "promote"}, '
            f"got {one_line(repr(event['action']))}"
        )
    promote = parse_event(event, PromoteRequest)
    return ServingRequest(
        action="promote",
        requested_by=promote.requested_by,
        reason=promote.reason,
        request_id=promote.request_id or context.aws_request_id,
    )


def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = DeploySettings.from_environment(os.environ)
    aws = AwsTarget.lambda_runtime()
    try:
        request = serving_request(event, context, settings)
        if isinstance(request, dict):
            return request
        outcome = change_serving(
            request,
            deployment=StackDeployment(
                cloudformation=aws.client("cloudformation"),
                ssm=aws.client("ssm"),
                stack_name=settings.serving_stack_name,
                weight_parameters=settings.weight_parameters,
                role_arn=settings.cloudformation_role_arn,
            ),
            registry=aws.client("sagemaker"),
            # Only this family's approved packages, in the function's own account and region.
            scope=PackageScope(
                group=settings.model_package_group,
                account=context.invoked_function_arn.split(":")[4],
                region=aws.region,
            ),
            endpoint=settings.endpoint_name,
            initial_challenger_weight=settings.initial_challenger_weight,
            s3=aws.client("s3"),
            audit_bucket=settings.audit_bucket,
            sns=aws.client("sns") if settings.topic_arn else None,
            topic_arn=settings.topic_arn,
            # None in AWS: no stack gives the function a tracking URI (README: MLflow).
            aliases=MlflowAliases.from_environment(os.environ),
        )  # DeploymentBusy raises: retried
    except (TrafficError, DeploymentError, EventRefused) as exc:
        refused = refusal(exc)
        logger.warning("refused", extra={"error": refused["error"]})
        return refused
    if outcome.notice_error:
        # Deployed and audited, not announced: fail this invocation so that Lambda retries it;
        # the retry finds the request completed and only sends the notice.
        raise NoticeNotSent(
            f"{outcome.record.action} on {settings.endpoint_name} deployed and audited "
            f"({outcome.record.audit_uri}); {outcome.notice_error}: retrying to send it"
        )
    if outcome.duplicate:
        return {"ok": True, "duplicate": True, "request_id": outcome.record.request_id}
    logger.info("deployment", extra={"record": outcome.record.__dict__})
    return {"ok": True, **outcome.record.__dict__}
