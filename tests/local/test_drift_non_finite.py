"""The scheduled drift check (the drift Lambda's ``check``) on moto with non-finite scores and a
notice that cannot be published: drift is found over the finite rows, the metrics are JSON
CloudWatch takes, and the window of a variant whose notice failed is checked again next run."""

from __future__ import annotations

import functools
import io
import json
from contextlib import redirect_stdout
from datetime import datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

import lambdas.drift.handler as drift_handler
from mlops.core.specs import DRIFT_NAMESPACE
from mlops.local.aws_services import ingest_emf
from mlops.local.replay import requests
from mlops.usecases.check_drift import DriftCheckFailed, DriftMonitor
from tests.local import test_drift_monitor
from tests.local.test_drift_monitor import (
    NOW,
    REGION,
    REPORTS,
    SETTINGS,
    FakeRenderer,
    World,
)

world = test_drift_monitor.world  # the fixture: moto, two variants serving registered packages


class FlakySns:
    """SNS whose first ``failures`` publishes fail as a throttled call would."""

    def __init__(self, failures: int) -> None:
        self.client = boto3.client("sns", region_name=REGION)
        self.failures = failures
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        if self.failures > 0:
            self.failures -= 1
            raise ClientError(
                {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "Publish"
            )
        self.published.append(kwargs)
        return dict(self.client.publish(**kwargs))


class Target:
    """The Lambda's AwsTarget, on moto, with the flaky SNS."""

    def __init__(self, sns: FlakySns) -> None:
        self.sns = sns

    def client(self, name: str) -> Any:
        return self.sns if name == "sns" else boto3.client(name, region_name=REGION)  # type: ignore[call-overload]


def run(settings: Any, run_id: str, now: Any) -> tuple[dict[str, Any] | Exception, list[str]]:
    out = io.StringIO()
    with redirect_stdout(out):
        try:
            result: dict[str, Any] | Exception = drift_handler.check(settings, run_id, now)
        except DriftCheckFailed as exc:
            result = exc
    return result, [line for line in out.getvalue().splitlines() if '"_aws"' in line]


def test_inf_scores_and_a_failed_notice_leave_the_window_for_the_next_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="alerts")["TopicArn"]
    settings = SETTINGS.model_copy(update={"topic_arn": topic})
    sns = FlakySns(failures=1)
    monkeypatch.setattr(drift_handler, "_aws", lambda: Target(sns))
    monkeypatch.setattr(
        drift_handler, "DriftMonitor", functools.partial(DriftMonitor, render_html=FakeRenderer())
    )
    # The case: strong prediction drift (features like the reference) plus two inf
    # scores, one request a row. The champion is like its reference.
    rng = np.random.default_rng(3)
    drifted = [*rng.uniform(0.85, 1.0, 300), float("inf"), float("inf")]
    world.put_capture(
        "challenger", requests(302, seed=5), at=NOW - timedelta(minutes=50), scores=drifted,
        batch=1,
    )  # fmt: skip
    world.put_capture("champion", requests(300, seed=6), at=NOW - timedelta(minutes=50))

    failed, lines = run(settings, "run-1", NOW)
    assert isinstance(failed, DriftCheckFailed)
    assert "challenger: ClientError" in str(failed)
    assert [o.variant for o in failed.outcomes] == ["champion"]
    # The challenger's result was written (once): drift over the finite rows, the two inf
    # scores counted as malformed records. It is JSON, and so are the metrics.
    (key,) = [
        k
        for k in world.keys(REPORTS, f"drift/{SETTINGS.endpoint_name}/challenger/")
        if k.endswith(".json") and "state" not in k
    ]
    assert key.endswith("-run-1.json")
    result = json.loads(
        world.text(REPORTS, key), parse_constant=lambda c: pytest.fail(f"{c} in the result")
    )
    assert (result["status"], result["rows"], result["malformed"]) == ("drift", 300, 2)
    assert result["prediction"]["drifted"] is True
    for line in lines:
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in an EMF record"))
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    assert ingest_emf(cloudwatch, lines) > 0
    # The notice failed: the challenger's window did not move (it is anchored at its start, so
    # the next run's first window does not slide past these rows); the champion's did.
    assert checked_until(world, "challenger") == NOW - SETTINGS.first_window
    assert checked_until(world, "champion") == NOW
    assert sns.published == []

    # The next run checks the challenger's rows again, and this time the notice goes out.
    later = NOW + timedelta(minutes=30)
    again, lines = run(settings, "run-2", later)
    assert isinstance(again, dict), again
    by_variant = {v["variant"]: v for v in again["variants"]}
    assert by_variant["challenger"]["status"] == "drift"
    assert (by_variant["challenger"]["rows"], by_variant["challenger"]["malformed"]) == (300, 2)
    assert again["notified"] == ["challenger"]
    assert len(sns.published) == 1
    assert "challenger" in sns.published[0]["Subject"]
    assert checked_until(world, "challenger") == later
    assert ingest_emf(cloudwatch, lines) > 0
    scores = cloudwatch.get_metric_statistics(
        Namespace=DRIFT_NAMESPACE, MetricName="PredictionDriftScore",
        Dimensions=[{"Name": "EndpointName", "Value": SETTINGS.endpoint_name},
                    {"Name": "VariantName", "Value": "challenger"}],
        StartTime=NOW - timedelta(hours=2), EndTime=later + timedelta(hours=1),
        Period=3600, Statistics=["Maximum"],
    )["Datapoints"]  # fmt: skip
    assert scores
    assert scores[0]["Maximum"] >= SETTINGS.thresholds.distance_threshold


def checked_until(world: World, variant: str) -> datetime | None:
    """How far the variant's saved state says it is checked (None: never)."""
    key = f"drift/{SETTINGS.endpoint_name}/{variant}/state.json"
    if key not in world.keys(REPORTS, key):
        return None
    return datetime.fromisoformat(json.loads(world.text(REPORTS, key))["checked_until"])
