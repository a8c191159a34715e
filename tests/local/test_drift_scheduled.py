"""The scheduled drift check on the embedded default, end to end: real traffic through the local
endpoint, the drift Lambda's handler on a schedule event, its report, metrics and notice, the
challenger's drift alarm, and the traffic Lambda's rollback it sets off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlops.adapters import endpoints, s3io
from mlops.adapters.registry import set_approval
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core.approval import on_approval
from mlops.core.config import PlatformConfig
from mlops.core.specs import DRIFT_NAMESPACE
from mlops.local.aws_services import scheduled_drift_check
from mlops.local.deployment import EmulatorDeployment
from mlops.local.emulator import bootstrap
from mlops.local.endpoint import LocalEndpoints, LocalEndpointServer
from mlops.local.pipeline import LocalPipelineRunner, RunOptions
from mlops.local.replay import requests, send

CONFIG = PlatformConfig(min_rows_for_drift=150, drift_report_sample_rows=2000)


@pytest.fixture
def serving(emulator: AwsTarget, tmp_path: Path) -> Iterator[tuple[PlatformResources, Any]]:
    resources = bootstrap(emulator, CONFIG)
    runner = LocalPipelineRunner(
        target=emulator, resources=resources, config=CONFIG, mlflow_tracking_uri=None
    )
    deployment = EmulatorDeployment(
        sagemaker=emulator.client("sagemaker"), config=CONFIG, resources=resources
    )
    for options in (RunOptions(), RunOptions(algorithm="gradient_boosting", max_iter=50)):
        result = runner.run(options)
        assert result.registered, result.reason
        arn = result.model_package_arn or ""
        set_approval(emulator.client("sagemaker"), arn, "Approved")
        deployment.deploy(on_approval(deployment.current(), arn, initial_challenger_weight=0.25))
    server = LocalEndpointServer(
        LocalEndpoints(emulator, cache_dir=tmp_path, refresh_seconds=0, seed=7)
    ).start()
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )
    yield resources, (server, runtime)
    server.stop()


def alerts(target: AwsTarget) -> tuple[str, str]:
    """A topic with a queue subscribed, to read what the drift check publishes."""
    sns, sqs = target.client("sns"), target.client("sqs")
    topic = sns.create_topic(Name="mlops-dev-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    return topic, queue


def test_challenger_drift_is_found_reported_and_rolled_back(
    emulator: AwsTarget, serving: tuple[PlatformResources, Any]
) -> None:
    resources, (server, runtime) = serving
    topic, queue = alerts(emulator)
    send(runtime, CONFIG.endpoint_name, requests(400, seed=11), target_variant="champion")
    send(
        runtime,
        CONFIG.endpoint_name,
        requests(400, seed=12, drifted=True),
        target_variant="challenger",
    )
    server.endpoints.capture.flush()

    run = scheduled_drift_check(
        emulator, CONFIG, resources, now=datetime.now(UTC) + timedelta(minutes=1), topic_arn=topic
    )

    variants = {v["variant"]: v for v in run.result["variants"]}
    assert variants["champion"]["status"] == "no-drift"
    assert variants["challenger"]["status"] == "drift"
    assert variants["champion"]["rows"] == variants["challenger"]["rows"] == 400
    assert variants["challenger"]["drift_share"] >= 0.5

    # The result and Evidently's report, under time-stamped keys in the reports bucket.
    s3 = emulator.client("s3")
    bucket, key = s3io.split_uri(variants["challenger"]["result"])
    result = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert result["status"] == "drift"
    assert result["model_package_arn"].endswith("/2")
    assert result["prediction"]["column"] == "prediction_score"
    bucket, key = s3io.split_uri(variants["challenger"]["report"])
    html = s3.get_object(Bucket=bucket, Key=key)
    assert html["ContentType"] == "text/html"
    page = html["Body"].read().decode()
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert all(column in page for column in ("disea", "lncoins", "prediction_score"))

    # Metrics went through EMF into CloudWatch; the challenger's drift alarm fired.
    assert run.datapoints > 0
    share = emulator.client("cloudwatch").get_metric_statistics(
        Namespace=DRIFT_NAMESPACE, MetricName="DriftShare",
        Dimensions=[{"Name": "EndpointName", "Value": CONFIG.endpoint_name},
                    {"Name": "VariantName", "Value": "challenger"}],
        StartTime=datetime.now(UTC) - timedelta(hours=1), EndTime=datetime.now(UTC) + timedelta(hours=1),
        Period=3600, Statistics=["Maximum"],
    )["Datapoints"]  # fmt: skip
    assert share
    assert share[0]["Maximum"] >= 0.5
    fired = [e["detail"]["alarmName"] for e in run.alarm_events]
    assert fired == [f"{CONFIG.endpoint_name}-challenger-drift"]

    # The notice links the report; the traffic Lambda rolled back to the champion.
    messages = emulator.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    body = json.loads(messages["Messages"][0]["Body"])
    assert "challenger" in body["Subject"]
    assert variants["challenger"]["report"] in body["Message"]
    ((target, outcome),) = run.actions
    assert target == "traffic"
    assert outcome["ok"]
    assert outcome["action"] == "rollback"
    state = endpoints.describe(emulator.client("sagemaker"), CONFIG.endpoint_name)
    assert state.weights == {"champion": 1.0, "challenger": 0.0}

    # The next tick checks only what came since: nothing, so "not enough data", no new alarm.
    again = scheduled_drift_check(
        emulator, CONFIG, resources, now=datetime.now(UTC) + timedelta(minutes=2), topic_arn=topic
    )
    assert {v["status"] for v in again.result["variants"]} == {"not-enough-data"}
    assert all(v["report"] is None for v in again.result["variants"])
    assert again.actions == []


def test_cli_checks_the_endpoint_and_runs_the_schedule(
    emulator: AwsTarget,
    serving: tuple[PlatformResources, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from mlops.cli import DRIFT_EXIT_CODE, app  # noqa: PLC0415
    from mlops.usecases import check_drift  # noqa: PLC0415
    from tests.local.test_drift_monitor import FakeRenderer  # noqa: PLC0415

    # Evidently's page is a fake here (four renders, most of this test's time): the CLI's
    # wiring is under test. The real page: the test above (the schedule's path), and
    # test_drift_cli (the CLI's on-demand path).
    renderer = FakeRenderer()
    monkeypatch.setattr(check_drift, "evidently_html", renderer)
    _, (server, runtime) = serving
    send(runtime, CONFIG.endpoint_name, requests(300, seed=21), target_variant="champion")
    send(
        runtime,
        CONFIG.endpoint_name,
        requests(300, seed=22, drifted=True),
        target_variant="challenger",
    )
    server.endpoints.capture.flush()
    env = {"MLOPS_ENDPOINT_URL": emulator.endpoint_url or "", "MLOPS_HOME": str(tmp_path / "home"),
           "COLUMNS": "250"}  # fmt: skip
    context = ["-c", "min_rows_for_drift=150", "-c", "drift_report_sample_rows=2000"]

    checked = CliRunner().invoke(app, [*context, "drift", "check", "--fail-on-drift"], env=env)
    assert checked.exit_code == DRIFT_EXIT_CODE, checked.output
    assert "champion" in checked.output
    assert "no-drift" in checked.output
    assert "report: s3://mlops-dev-reports/drift/mlops-dev-visits/challenger/" in checked.output

    scheduled = CliRunner().invoke(app, [*context, "drift", "scheduled"], env=env)
    assert scheduled.exit_code == 0, scheduled.output
    assert "alarm mlops-dev-visits-challenger-drift: OK -> ALARM" in scheduled.output
    assert "all traffic to the champion" in scheduled.output
    assert len(renderer.calls) == 4  # a page per variant, on demand and on the schedule
    state = endpoints.describe(emulator.client("sagemaker"), CONFIG.endpoint_name)
    assert state.weights == {"champion": 1.0, "challenger": 0.0}


def test_before_any_champion_the_schedule_has_nothing_to_check(emulator: AwsTarget) -> None:
    """The stack deploys before any package is approved: the hourly check must not fail
    (errors, dead letters, alarms every hour) while there is no endpoint."""
    config = CONFIG.model_copy(update={"model_family": "unserved"})
    resources = bootstrap(emulator, config)
    run = scheduled_drift_check(emulator, config, resources)
    assert run.result["ok"] is True
    assert "does not exist" in run.result["skipped"]
    assert run.result["variants"] == []
    assert run.datapoints == 0
    assert run.actions == []
