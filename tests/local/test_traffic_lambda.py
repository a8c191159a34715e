"""The traffic Lambda's handler, in-process on the emulator: console events, alarm events."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.events import NoticeNotSent
from lambdas.traffic import handler as traffic
from mlops.adapters import endpoints
from mlops.core.config import PlatformConfig
from mlops.core.functions import TrafficSettings
from tests.local.test_traffic_control import ENDPOINT, REGION, make_endpoint
from tests.support.faults import Faults, faulty_clients

CONSOLE_TEST_EVENT = {
    "action": "rollback",
    "endpoint": ENDPOINT,
    "reason": "challenger p99 latency doubled after the 14:00 deploy",
    "requested_by": "oncall@example.com",
}


@dataclass
class FakeContext:
    aws_request_id: str = "lambda-request-1"
    function_name: str = "traffic"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:traffic"


def function_environment(monkeypatch: pytest.MonkeyPatch, **config: Any) -> None:
    """The function's environment as the serving stack writes it (its contract)."""
    settings = TrafficSettings.for_platform(
        PlatformConfig.from_context(config),
        audit_bucket="mlops-dev-reports",
        topic_arn=None,
        endpoint=ENDPOINT,
    )
    for key, value in settings.environment().items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    function_environment(monkeypatch)
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="mlops-dev-reports")
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        make_endpoint(sagemaker, {"champion": 0.75, "challenger": 0.25})
        yield sagemaker


def alarm_event(state: str, alarm: str = f"{ENDPOINT}-challenger-5xx") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "5f2a-event-id",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-11-26T14:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{alarm}"],
        "detail": {
            "alarmName": alarm,
            "state": {"value": state, "reason": "Threshold Crossed: 3 datapoints >= 1"},
            "previousState": {"value": "OK"},
        },
    }


def test_console_test_event_rolls_back(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = traffic.handler(CONSOLE_TEST_EVENT, FakeContext())
    assert result["ok"] is True
    assert result["weights_after"] == {"champion": 1.0, "challenger": 0.0}
    assert result["request_id"] == "lambda-request-1"
    assert endpoints.describe(aws, ENDPOINT).weights == {"champion": 1.0, "challenger": 0.0}
    logged = capsys.readouterr().out
    assert '"SecondsToRequest"' in logged  # EMF metric emitted


def test_challenger_alarm_triggers_rollback(aws: Any) -> None:
    result = traffic.handler(alarm_event("ALARM"), FakeContext())
    assert result["ok"] is True
    assert result["requested_by"] == f"cloudwatch-alarm:{ENDPOINT}-challenger-5xx"
    assert result["request_id"] == "5f2a-event-id"
    assert result["weights_after"] == {"champion": 1.0, "challenger": 0.0}
    s3 = boto3.client("s3", region_name=REGION)
    record = json.loads(
        s3.get_object(
            Bucket="mlops-dev-reports", Key=f"audit/traffic/{ENDPOINT}/5f2a-event-id.json"
        )["Body"].read()
    )
    assert record["reason"].startswith(f"alarm {ENDPOINT}-challenger-5xx is ALARM")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (alarm_event("OK"), "is OK: nothing to roll back"),
        (alarm_event("ALARM", alarm=f"{ENDPOINT}-champion-5xx"), "is not one of"),
        ({**CONSOLE_TEST_EVENT, "action": "shift", "weights": {"champion": -1}}, "must be >= 0"),
        (
            {**CONSOLE_TEST_EVENT, "endpoint": "missing"},
            f"controls endpoint {ENDPOINT}, not missing",
        ),
        # Not the expected shape: answered with what was expected, never an AttributeError
        # that Lambda would retry into the dead-letter queue.
        (None, "expected an alarm event or a JSON object"),
        ([CONSOLE_TEST_EVENT], "expected an alarm event or a JSON object"),
        ("rollback", "expected an alarm event or a JSON object"),
        ({**alarm_event("ALARM"), "detail": None}, "malformed AlarmStateChange event: detail"),
        (
            {
                **alarm_event("ALARM"),
                "detail": {"alarmName": f"{ENDPOINT}-challenger-5xx", "state": "ALARM"},
            },
            "malformed AlarmStateChange event: detail.state",
        ),
        ({**alarm_event("ALARM"), "detail": []}, "malformed AlarmStateChange event: detail"),
        (
            {k: v for k, v in alarm_event("ALARM").items() if k != "time"},
            "malformed AlarmStateChange event: time",
        ),
        ({**CONSOLE_TEST_EVENT, "action": "dance"}, "invalid traffic request: action"),
    ],
)
def test_refusals_are_answered_not_retried(aws: Any, event: Any, message: str) -> None:
    result = traffic.handler(event, FakeContext())
    assert result["ok"] is False
    assert message in result["error"]
    assert endpoints.describe(aws, ENDPOINT).weights == {"champion": 0.75, "challenger": 0.25}


def test_missing_configuration_fails_loudly(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDIT_BUCKET")
    with pytest.raises(Exception, match="AUDIT_BUCKET"):
        traffic.handler(CONSOLE_TEST_EVENT, FakeContext())


def test_challenger_drift_holds_the_rollout_when_it_rolls_back(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    drift = f"{ENDPOINT}-challenger-drift"
    cloudwatch.put_metric_alarm(
        AlarmName=drift, Namespace="MLOps/Drift", MetricName="DriftDetected",
        Statistic="Maximum", Period=3600, EvaluationPeriods=2, Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName=drift, StateValue="ALARM", StateReason="drift found")
    step = {"action": "rollout-step", "endpoint": ENDPOINT, "reason": "next step",
            "requested_by": "schedule"}  # fmt: skip
    # Drift not wired to roll back: it does not hold the rollout either.
    function_environment(monkeypatch, auto_rollback_on_challenger_drift=False)
    advanced = traffic.handler(step, FakeContext(aws_request_id="step-1"))
    assert advanced["weights_after"] == {"champion": 0.5, "challenger": 0.5}
    # Wired (the default stack): a drifting challenger is rolled back, not advanced.
    function_environment(monkeypatch, auto_rollback_on_challenger_drift=True)
    held = traffic.handler(step, FakeContext(aws_request_id="step-2"))
    assert held["weights_after"] == {"champion": 1.0, "challenger": 0.0}
    assert drift in held["decision"]


def test_a_notice_that_fails_is_sent_by_the_retry_which_changes_nothing(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="alerts")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    boto3.client("sns", region_name=REGION).subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"]
    )
    monkeypatch.setenv("TOPIC_ARN", topic)
    assert TrafficSettings.from_environment(os.environ).topic_arn == topic
    failing = Faults().fail("sns", "Publish", "InternalError")
    with faulty_clients(failing), pytest.raises(NoticeNotSent, match="applied and audited"):
        traffic.handler(alarm_event("ALARM"), FakeContext())
    assert endpoints.describe(aws, ENDPOINT).weights == {"champion": 1.0, "challenger": 0.0}
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    retried = traffic.handler(alarm_event("ALARM"), FakeContext())  # Lambda's retry
    assert retried["ok"] is True
    assert retried["duplicate"] is True
    assert retried["changed"] is False
    (notice,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert "rollback" in notice["Body"]
    again = traffic.handler(alarm_event("ALARM"), FakeContext())  # announced: not again
    assert again["duplicate"] is True
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
