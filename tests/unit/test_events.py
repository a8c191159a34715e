"""The functions' events: AWS's shapes parse; anything else is refused with what was expected."""

from __future__ import annotations

from typing import Any

import pytest

from lambdas.events import (
    AlarmStateChange,
    CheckRequest,
    EventRefused,
    ModelPackageStateChange,
    ScheduledEvent,
    detail_type,
    parse_event,
)

ENVELOPE: dict[str, Any] = {
    "version": "0",
    "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
    "account": "123456789012",
    "time": "2026-11-30T10:00:00Z",
    "region": "us-east-1",
    "resources": [],
}
# Shapes from AWS's documentation of each event (EventBridge user guide, SageMaker and
# CloudWatch event references), trimmed to what the platform reads plus a few extra fields.
ALARM: dict[str, Any] = {
    **ENVELOPE,
    "source": "aws.cloudwatch",
    "detail-type": "CloudWatch Alarm State Change",
    "detail": {
        "alarmName": "mlops-dev-visits-challenger-5xx",
        "state": {
            "value": "ALARM",
            "reason": "Threshold Crossed: 2 out of the last 3 datapoints were >= 5.0",
            "timestamp": "2026-11-30T10:00:00.000+0000",
        },
        "previousState": {"value": "OK", "reason": "..."},
        "configuration": {"metrics": []},
    },
}
APPROVAL: dict[str, Any] = {
    **ENVELOPE,
    "source": "aws.sagemaker",
    "detail-type": "SageMaker Model Package State Change",
    "detail": {
        "ModelPackageGroupName": "mlops-dev-visits",
        "ModelPackageVersion": 3,
        "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/3",
        "ModelApprovalStatus": "Approved",
        "CreationTime": 1764496800000,
    },
}
SCHEDULE: dict[str, Any] = {
    **ENVELOPE,
    "source": "aws.events",
    "detail-type": "Scheduled Event",
    "detail": {},
}


def test_aws_shapes_parse() -> None:
    alarm = parse_event(ALARM, AlarmStateChange)
    assert (alarm.detail.alarm_name, alarm.detail.state.value) == (
        "mlops-dev-visits-challenger-5xx",
        "ALARM",
    )
    approval = parse_event(APPROVAL, ModelPackageStateChange)
    assert approval.detail.model_package_arn.endswith("/3")
    scheduled = parse_event(SCHEDULE, ScheduledEvent)
    assert scheduled.time.isoformat() == "2026-11-30T10:00:00+00:00"
    assert detail_type(ALARM) == "CloudWatch Alarm State Change"


@pytest.mark.parametrize(
    ("event", "model", "message"),
    [
        (None, AlarmStateChange, "expected a JSON object as the event, got NoneType"),
        ([ALARM], AlarmStateChange, "expected a JSON object as the event, got list"),
        ("ALARM", AlarmStateChange, "got str"),
        ({**ALARM, "detail": None}, AlarmStateChange, "detail: Input should be"),
        ({**ALARM, "detail": {**ALARM["detail"], "state": "ALARM"}}, AlarmStateChange, "detail.state"),
        ({**ALARM, "detail": {"state": {"value": "ALARM"}}}, AlarmStateChange, "detail.alarmName"),
        ({**ALARM, "detail-type": "Scheduled Event"}, AlarmStateChange, "detail-type"),
        ({**ALARM, "time": "yesterday"}, AlarmStateChange, "time"),
        ({**APPROVAL, "detail": {"ModelApprovalStatus": "Approved"}}, ModelPackageStateChange,
         "detail.ModelPackageArn"),
        ({**APPROVAL, "detail": []}, ModelPackageStateChange, "detail"),
        ({k: v for k, v in SCHEDULE.items() if k != "id"}, ScheduledEvent, "id"),
        ({"action": "check", "id": ""}, CheckRequest, "id"),
        ({"action": "check", "time": "now"}, CheckRequest, "time"),
    ],
)  # fmt: skip
def test_other_shapes_are_refused_with_what_is_wrong(
    event: Any, model: type[Any], message: str
) -> None:
    with pytest.raises(EventRefused) as refused:
        parse_event(event, model)
    assert message in str(refused.value)


@pytest.mark.parametrize("event", [None, [], "x", 3, {"detail-type": 7}, {}])
def test_detail_type_of_anything(event: Any) -> None:
    assert detail_type(event) is None
