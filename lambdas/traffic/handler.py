"""Traffic Lambda: shift, roll back, or step a gated rollout of an endpoint's variants.

Triggers:
- a challenger alarm going to ALARM (EventBridge "CloudWatch Alarm State Change"): roll back;
- a direct invocation (console test event, CLI, schedule), for example
  {"action": "rollback", "endpoint": "mlops-dev", "reason": "p99 latency doubled",
   "requested_by": "jane@example.com"}
  {"action": "shift", "endpoint": "mlops-dev", "challenger": 0.25, "reason": "...", "requested_by": "..."}
  {"action": "rollout-step", "endpoint": "mlops-dev", "reason": "scheduled", "requested_by": "schedule"}

Runs with reserved concurrency 1: two decisions never race on one endpoint.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from mlops.endpoints import EndpointNotFound
from mlops.traffic import TrafficError, challenger_gate_alarms, endpoint_of_challenger_alarm
from mlops.traffic_control import TrafficController, TrafficRequest

logger = Logger(service="traffic")
metrics = Metrics(namespace="MLOps/Traffic", service="traffic")


class Settings(BaseModel):
    """The function's environment, validated on every invocation (it is cheap)."""

    model_config = ConfigDict(extra="ignore")

    audit_bucket: str = Field(min_length=3, alias="AUDIT_BUCKET")
    topic_arn: str | None = Field(default=None, alias="TOPIC_ARN")
    rollout_steps: str = Field(default="0.1,0.25,0.5", alias="ROLLOUT_STEPS")
    # "/mlops/dev/serving/": the weights in force are kept at <prefix><variant>-weight.
    weight_parameter_prefix: str | None = Field(default=None, alias="WEIGHT_PARAMETER_PREFIX")
    # The challenger's drift alarm holds a rollout step too (when drift rolls it back).
    gate_on_drift: bool = Field(default=False, alias="GATE_ON_DRIFT")

    @classmethod
    def from_environment(cls) -> Settings:
        return cls.model_validate(dict(os.environ))

    def steps(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.rollout_steps.split(",") if s.strip())


def request_from_event(event: dict[str, Any], context: LambdaContext) -> TrafficRequest:
    if event.get("detail-type") == "CloudWatch Alarm State Change":
        detail = event.get("detail", {})
        alarm = detail.get("alarmName", "")
        state = detail.get("state", {})
        if state.get("value") != "ALARM":
            raise TrafficError(f"alarm {alarm} is {state.get('value')}: nothing to roll back")
        return TrafficRequest(
            action="rollback",
            endpoint=endpoint_of_challenger_alarm(alarm),
            reason=f"alarm {alarm} is ALARM: {state.get('reason', 'no reason given')}"[:1000],
            requested_by=f"cloudwatch-alarm:{alarm}",
            request_id=str(event.get("id") or context.aws_request_id),
        )
    payload = {"request_id": context.aws_request_id, **event}
    return TrafficRequest.parse(payload)


def controller(settings: Settings) -> TrafficController:
    return TrafficController(
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        sns=boto3.client("sns") if settings.topic_arn else None,
        topic_arn=settings.topic_arn,
        cloudwatch=boto3.client("cloudwatch"),
        audit_bucket=settings.audit_bucket,
        challenger_alarms=lambda endpoint: challenger_gate_alarms(
            endpoint, drift=settings.gate_on_drift
        ),
        rollout_steps=settings.steps(),
        ssm=boto3.client("ssm") if settings.weight_parameter_prefix else None,
        weight_parameter=(
            (lambda variant: f"{settings.weight_parameter_prefix}{variant}-weight")
            if settings.weight_parameter_prefix
            else None
        ),
    )


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = request_from_event(event, context)
        outcome = controller(Settings.from_environment()).apply(request)
    except (TrafficError, EndpointNotFound) as exc:
        # Bad input is answered, not retried: a retry would fail the same way. A busy or
        # failing endpoint raises instead, and the invocation is retried.
        logger.warning("refused", extra={"error": str(exc)})
        return {"ok": False, "error": str(exc)}
    logger.info("traffic decision", extra={"outcome": outcome.__dict__})
    metrics.add_dimension(name="endpoint", value=outcome.endpoint)
    metrics.add_metric(name="TrafficChanges", unit=MetricUnit.Count, value=int(outcome.changed))
    if outcome.seconds_to_request is not None:
        metrics.add_metric(
            name="SecondsToRequest", unit=MetricUnit.Seconds, value=outcome.seconds_to_request
        )
    return {"ok": True, **outcome.__dict__}
