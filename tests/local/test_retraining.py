"""Retraining on champion drift, on the emulator: one start per alarm episode, none within the
cooldown, every decision audited once; and the drift Lambda's alarm path that calls it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.drift import handler as drift
from mlops.core.config import PlatformConfig
from mlops.core.functions import DriftSettings, SettingsError
from mlops.local.aws_services import FakeContext
from mlops.usecases.retrain import AUDIT_PREFIX, retrain_on_drift

REGION = "us-east-1"
BUCKET = "mlops-dev-reports"
PIPELINE = "mlops-dev-training"
ENDPOINT = "mlops-dev-visits"
START = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
COOLDOWN = timedelta(hours=24)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_pipeline(
            PipelineName=PIPELINE,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
            RoleArn="arn:aws:iam::123456789012:role/pipeline",
            ClientRequestToken="create-pipeline-token-0000000000",
        )
        yield sagemaker, s3


def executions(sagemaker: Any) -> list[dict[str, Any]]:
    summaries: list[dict[str, Any]] = sagemaker.list_pipeline_executions(PipelineName=PIPELINE)[
        "PipelineExecutionSummaries"
    ]
    return summaries


def audit(s3: Any, event_id: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=BUCKET, Key=f"{AUDIT_PREFIX}/{ENDPOINT}/{event_id}.json")["Body"]
    document: dict[str, Any] = json.loads(body.read())
    return document


def decide(sagemaker: Any, s3: Any, event_id: str, now: datetime) -> Any:
    return retrain_on_drift(
        sagemaker=sagemaker,
        s3=s3,
        bucket=BUCKET,
        pipeline=PIPELINE,
        endpoint=ENDPOINT,
        event_id=event_id,
        reason="alarm champion-drift: Threshold Crossed",
        now=now,
        cooldown=COOLDOWN,
    )


def test_one_start_per_episode_and_cooldown(aws: tuple[Any, Any]) -> None:
    sagemaker, s3 = aws

    first = decide(sagemaker, s3, "event-1", START)
    assert first.started is True
    assert first.execution_arn is not None
    assert first.execution_arn.startswith(f"arn:aws:sagemaker:{REGION}:")
    assert f"pipeline/{PIPELINE}/execution/" in first.execution_arn
    assert first.audit_uri == f"s3://{BUCKET}/{AUDIT_PREFIX}/{ENDPOINT}/event-1.json"
    assert first.decided_at == "2026-11-26T14:00:00Z"
    record = audit(s3, "event-1")
    assert record["started"] is True
    assert record["execution_arn"] == first.execution_arn
    assert record["event_id"] == "event-1"
    assert record["pipeline"] == PIPELINE
    assert [e["PipelineExecutionArn"] for e in executions(sagemaker)] == [first.execution_arn]

    # The same event, redelivered (even much later): nothing new, the audit record unchanged.
    again = decide(sagemaker, s3, "event-1", START + timedelta(days=3))
    assert again.started is False
    assert "handled before" in again.reason
    assert again.execution_arn is None
    assert len(executions(sagemaker)) == 1
    assert audit(s3, "event-1") == record

    # Another episode within the cooldown: refused, and the refusal is audited.
    flap = decide(sagemaker, s3, "event-2", START + timedelta(hours=2))
    assert flap.started is False
    assert "cooldown" in flap.reason
    assert first.execution_arn in flap.reason
    assert len(executions(sagemaker)) == 1
    refused = audit(s3, "event-2")
    assert refused["started"] is False
    assert "cooldown" in refused["reason"]

    # Just before the cooldown ends: still refused.
    edge = decide(sagemaker, s3, "event-3", START + COOLDOWN - timedelta(seconds=1))
    assert edge.started is False
    assert len(executions(sagemaker)) == 1

    # After the cooldown: a second execution.
    later = decide(sagemaker, s3, "event-4", START + COOLDOWN + timedelta(minutes=5))
    assert later.started is True
    assert later.execution_arn not in (None, first.execution_arn)
    arns = {e["PipelineExecutionArn"] for e in executions(sagemaker)}
    assert arns == {first.execution_arn, later.execution_arn}

    # The cooldown now runs from the second start.
    after = decide(sagemaker, s3, "event-5", START + COOLDOWN + timedelta(hours=1))
    assert after.started is False
    assert later.execution_arn is not None
    assert later.execution_arn in after.reason
    assert len(executions(sagemaker)) == 2


def test_execution_description_carries_the_reason(aws: tuple[Any, Any]) -> None:
    sagemaker, s3 = aws
    decision = decide(sagemaker, s3, "event-1", START)
    described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=decision.execution_arn)
    assert described["PipelineExecutionDescription"].startswith("Retraining: alarm champion-drift")
    assert described["PipelineExecutionDisplayName"] == "drift-20261126-140000"


# --- the drift Lambda's alarm path ----------------------------------------------------------


def alarm_event(
    event_id: str, *, variant: str = "champion", state: str = "ALARM", when: datetime = START
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{ENDPOINT}-{variant}-drift"],
        "detail": {
            "alarmName": f"{ENDPOINT}-{variant}-drift",
            "state": {"value": state, "reason": "Threshold Crossed: 1 datapoint(s)"},
            "previousState": {"value": "OK"},
        },
    }


@pytest.fixture
def drift_env(aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    # The function's environment as the serving stack writes it (its contract).
    settings = DriftSettings.for_platform(
        PlatformConfig(retrain_on_champion_drift=True),
        reports_bucket=BUCKET,
        capture_bucket="x",
        topic_arn=None,
    )
    assert (settings.endpoint_name, settings.pipeline_name) == (ENDPOINT, PIPELINE)
    for key, value in settings.environment().items():
        monkeypatch.setenv(key, value)
    return aws


def invoke(event: Any) -> dict[str, Any]:
    result: dict[str, Any] = drift.handler(event, FakeContext(function_name="mlops-dev-drift"))  # type: ignore[arg-type]
    return result


def test_handler_starts_retraining_on_champion_drift(drift_env: tuple[Any, Any]) -> None:
    sagemaker, s3 = drift_env
    result = invoke(alarm_event("eb-event-1"))
    assert result["ok"] is True
    assert result["started"] is True
    assert result["endpoint"] == ENDPOINT
    assert result["pipeline"] == PIPELINE
    assert result["event_id"] == "eb-event-1"
    assert result["decided_at"] == "2026-11-26T14:00:00Z"
    assert result["reason"].startswith(f"alarm {ENDPOINT}-champion-drift: Threshold Crossed")
    assert [e["PipelineExecutionArn"] for e in executions(sagemaker)] == [result["execution_arn"]]
    assert audit(s3, "eb-event-1")["execution_arn"] == result["execution_arn"]

    redelivered = invoke(alarm_event("eb-event-1"))
    assert (redelivered["ok"], redelivered["started"]) == (True, False)
    assert "handled before" in redelivered["reason"]
    within = invoke(alarm_event("eb-event-2", when=START + timedelta(hours=1)))
    assert within["started"] is False
    assert "cooldown" in within["reason"]
    assert len(executions(sagemaker)) == 1


def test_handler_cooldown_hours_come_from_the_environment(
    drift_env: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker, _ = drift_env
    monkeypatch.setenv("RETRAIN_COOLDOWN_HOURS", "2")
    assert invoke(alarm_event("a"))["started"] is True
    assert invoke(alarm_event("b", when=START + timedelta(hours=1)))["started"] is False
    assert invoke(alarm_event("c", when=START + timedelta(hours=3)))["started"] is True
    assert len(executions(sagemaker)) == 2


def test_handler_does_nothing_when_retraining_is_off(
    drift_env: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker, s3 = drift_env
    monkeypatch.setenv("RETRAIN_ON_CHAMPION_DRIFT", "false")
    result = invoke(alarm_event("eb-event-1"))
    assert result["ok"] is False
    assert "off" in result["error"]
    assert executions(sagemaker) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=AUDIT_PREFIX)


def test_handler_without_a_pipeline_fails_loudly(
    drift_env: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker, _ = drift_env
    monkeypatch.setenv("PIPELINE_NAME", "")  # empty values count as unset
    with pytest.raises(SettingsError, match="PIPELINE_NAME"):
        invoke(alarm_event("eb-event-1"))
    assert executions(sagemaker) == []


@pytest.mark.parametrize(
    "event",
    [
        alarm_event("eb-challenger", variant="challenger"),
        alarm_event("eb-ok", state="OK"),
        {
            **alarm_event("eb-other-endpoint"),
            "detail": {
                "alarmName": "other-endpoint-champion-drift",
                "state": {"value": "ALARM", "reason": "x"},
            },
        },
        {
            **alarm_event("eb-5xx"),
            "detail": {"alarmName": f"{ENDPOINT}-champion-5xx", "state": {"value": "ALARM"}},
        },
    ],
    ids=["challenger", "state-ok", "other-endpoint", "not-a-drift-alarm"],
)
def test_handler_refuses_other_alarms(drift_env: tuple[Any, Any], event: dict[str, Any]) -> None:
    sagemaker, s3 = drift_env
    result = invoke(event)
    assert result["ok"] is False
    assert "is not a champion drift alarm in ALARM" in result["error"]
    assert event["detail"]["alarmName"] in result["error"]
    assert executions(sagemaker) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=AUDIT_PREFIX)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (None, 'expected a "Scheduled Event"'),
        ([alarm_event("eb-1")], 'expected a "Scheduled Event"'),
        ({**alarm_event("eb-1"), "detail": None}, "malformed AlarmStateChange event: detail"),
        ({**alarm_event("eb-1"), "detail": {"alarmName": "x", "state": "ALARM"}}, "detail.state"),
        ({"action": "check", "time": "soon"}, "malformed CheckRequest event: time"),
        ({"action": "retrain"}, "malformed CheckRequest event: action"),
    ],
)
def test_handler_refuses_what_it_cannot_read(
    drift_env: tuple[Any, Any], event: Any, expected: str
) -> None:
    sagemaker, _ = drift_env
    result = invoke(event)
    assert result["ok"] is False
    assert expected in result["error"]
    assert executions(sagemaker) == []
