"""Traffic Lambda: shift, roll back, or step a gated rollout of its endpoint's variants.

Triggers:
- one of the challenger's gate alarms going to ALARM (EventBridge "CloudWatch Alarm State
  Change"): roll back;
- a direct invocation (console test event, CLI, schedule), for example
  {"action": "rollback", "reason": "p99 latency doubled", "requested_by": "jane@example.com"}
  {"action": "shift", "challenger": 0.25, "reason": "...", "requested_by": "..."}
  {"action": "rollout-step", "reason": "scheduled", "requested_by": "schedule"}
  ("endpoint" may be given; it must be the function's own).

No concurrency is reserved by default (a new account has none to spare:
`function_reserved_concurrency`); decisions on one endpoint are not yet serialized across
callers (open issue: a lease per endpoint).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.events import (
    ALARM_STATE_CHANGE,
    AlarmStateChange,
    EventRefused,
    detail_type,
    parse_event,
)
from mlops.adapters.endpoints import EndpointNotFound
from mlops.adapters.target import AwsTarget
from mlops.core.functions import TrafficSettings
from mlops.core.traffic import TrafficError
from mlops.usecases.apply_traffic import TrafficRequest, traffic_controller

logger = Logger(service=TrafficSettings.service)
metrics = Metrics(namespace="MLOps/Traffic", service=TrafficSettings.service)


def request_from_event(
    event: object, context: LambdaContext, settings: TrafficSettings
) -> TrafficRequest:
    """The traffic request an event asks for; EventRefused or TrafficError if none."""
    if detail_type(event) == ALARM_STATE_CHANGE:
        alarm = parse_event(event, AlarmStateChange).detail
        if alarm.alarm_name not in settings.gate_alarms:
            raise TrafficError(
                f"alarm {alarm.alarm_name!r} is not one of {settings.endpoint_name}'s "
                f"challenger alarms ({', '.join(settings.gate_alarms)})"
            )
        if alarm.state.value != "ALARM":
            raise TrafficError(
                f"alarm {alarm.alarm_name} is {alarm.state.value}: nothing to roll back"
            )
        return TrafficRequest.parse(
            {
                "action": "rollback",
                "endpoint": settings.endpoint_name,
                "reason": f"alarm {alarm.alarm_name} is ALARM: {alarm.state.reason}"[:1000],
                "requested_by": f"cloudwatch-alarm:{alarm.alarm_name}",
                "request_id": str(event["id"]) if isinstance(event, dict) else "",
            }
        )
    if not isinstance(event, dict):
        raise EventRefused(
            f"expected an alarm event or a JSON object such as "
            f'{{"action": "rollback", "reason": "..."}}, got {type(event).__name__}'
        )
    request = TrafficRequest.parse(
        {"endpoint": settings.endpoint_name, "request_id": context.aws_request_id, **event}
    )
    if request.endpoint != settings.endpoint_name:
        raise TrafficError(
            f"this function controls endpoint {settings.endpoint_name}, not {request.endpoint}"
        )
    return request


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = TrafficSettings.from_environment(os.environ)
    try:
        request = request_from_event(event, context, settings)
        outcome = traffic_controller(settings, AwsTarget.lambda_runtime()).apply(request)
    except (TrafficError, EventRefused, EndpointNotFound) as exc:
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
