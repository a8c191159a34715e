"""Traffic Lambda: shift, roll back, or step a gated rollout of its endpoint's variants.

Triggers:
- one of the challenger's gate alarms going to ALARM (EventBridge "CloudWatch Alarm State
  Change"): roll back;
- a direct invocation (console test event, CLI, schedule), for example
  {"action": "rollback", "reason": "p99 latency doubled", "requested_by": "jane@example.com"}
  {"action": "shift", "challenger": 0.25, "reason": "...", "requested_by": "..."}
  {"action": "rollout-step", "reason": "scheduled", "requested_by": "schedule"}
  ("endpoint" may be given; it must be the function's own).

Any other event - not an object, a field missing or of the wrong type or range, a share or
weights that no endpoint could take - is answered {"ok": false, "error": "<one line naming the
field>"} before any AWS call, and never raised (a retry would fail the same way; raising only
retries it into the dead-letter queue). AWS failing raises, and the invocation is retried.

Decisions on one endpoint are one at a time across every caller (this function, the deploy
function, the CLI): the controller holds the endpoint's lease (mlops.core.lease), so no
reserved concurrency is needed (and none is reserved by default: a new account has none to
spare, `function_reserved_concurrency`). A redelivered event (same event id, or the same
Lambda request id on a retry) returns its recorded outcome and changes nothing.
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
    NoticeNotSent,
    one_line,
    parse_event,
    refusal,
)
from mlops.adapters.endpoints import EndpointNotFound
from mlops.adapters.mlflow_aliases import MlflowAliases
from mlops.adapters.target import AwsTarget
from mlops.core.functions import TrafficSettings
from mlops.core.traffic import TrafficError
from mlops.usecases.apply_traffic import TrafficRequest, refuse_early, traffic_controller

logger = Logger(service=TrafficSettings.service)
metrics = Metrics(namespace="MLOps/Traffic", service=TrafficSettings.service)


def request_from_event(
    event: object, context: LambdaContext, settings: TrafficSettings
) -> TrafficRequest:
    """The traffic request an event asks for; EventRefused or TrafficError if none."""
    if isinstance(event, dict) and "detail-type" in event:
        if event["detail-type"] != ALARM_STATE_CHANGE:
            raise EventRefused(
                f"detail-type: expected {ALARM_STATE_CHANGE!r} (or a direct request such as "
                f'{{"action": "rollback", ...}}), got {one_line(repr(event["detail-type"]))}'
            )
        alarm_event = parse_event(event, AlarmStateChange)
        alarm = alarm_event.detail
        if alarm.alarm_name not in settings.gate_alarms:
            raise TrafficError(
                f"detail.alarmName: alarm {alarm.alarm_name!r} is not one of "
                f"{settings.endpoint_name}'s challenger alarms ({', '.join(settings.gate_alarms)})"
            )
        if alarm.state.value != "ALARM":
            raise TrafficError(
                f"detail.state.value: alarm {alarm.alarm_name} is {alarm.state.value}: "
                "nothing to roll back"
            )
        return TrafficRequest.parse(
            {
                "action": "rollback",
                "endpoint": settings.endpoint_name,
                "reason": f"alarm {alarm.alarm_name} is ALARM: {alarm.state.reason}"[:1000],
                "requested_by": f"cloudwatch-alarm:{alarm.alarm_name}"[:256],
                "request_id": alarm_event.id,
            }
        )
    if not isinstance(event, dict):
        raise EventRefused(
            f"expected an alarm event or a JSON object such as "
            f'{{"action": "rollback", "reason": "..."}}, got {type(event).__name__}'
        )
    if "action" not in event:
        raise EventRefused(
            "expected an alarm event (a detail-type) or a request such as "
            '{"action": "rollback", "reason": "..."}: the event has neither detail-type nor action'
        )
    request = TrafficRequest.parse(
        {"endpoint": settings.endpoint_name, "request_id": context.aws_request_id, **event}
    )
    if request.endpoint != settings.endpoint_name:
        raise TrafficError(
            f"this function controls endpoint {settings.endpoint_name}, not {request.endpoint}"
        )
    refuse_early(request)  # before any AWS call
    return request


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = TrafficSettings.from_environment(os.environ)
    try:
        request = request_from_event(event, context, settings)
        outcome = traffic_controller(
            settings,
            AwsTarget.lambda_runtime(),
            # None in AWS: no stack gives the function a tracking URI (README: MLflow).
            aliases=MlflowAliases.from_environment(os.environ),
        ).apply(request)
    except (TrafficError, EventRefused, EndpointNotFound) as exc:
        # Bad input is answered, not retried: a retry would fail the same way. A busy or
        # failing endpoint raises instead, and the invocation is retried.
        refused = refusal(exc)
        logger.warning("refused", extra={"error": refused["error"]})
        return refused
    logger.info("traffic decision", extra={"outcome": outcome.__dict__})
    if outcome.notice_error:
        # Applied and audited, but not announced: fail this invocation so that Lambda retries
        # it; the retry finds the request completed and only sends the notice.
        raise NoticeNotSent(
            f"{outcome.action} on {outcome.endpoint} applied and audited ({outcome.audit_uri}); "
            f"{outcome.notice_error}: retrying to send it"
        )
    metrics.add_dimension(name="endpoint", value=outcome.endpoint)
    metrics.add_metric(name="TrafficChanges", unit=MetricUnit.Count, value=int(outcome.changed))
    if outcome.seconds_to_request is not None:
        metrics.add_metric(
            name="SecondsToRequest", unit=MetricUnit.Seconds, value=outcome.seconds_to_request
        )
    return {"ok": True, **outcome.__dict__}
