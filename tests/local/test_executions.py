"""Starting and following executions of the deployed pipeline (botocore Stubber: the emulator
runs no steps, so the status sequence AWS returns is scripted here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from mlops.adapters.executions import ExecutionError, follow_execution, start_execution
from mlops.adapters.target import AwsTarget
from mlops.cli import app

ARN = "arn:aws:sagemaker:us-east-1:111122223333:pipeline/mlops-dev-training/execution/abc123"
PACKAGE = "arn:aws:sagemaker:us-east-1:111122223333:model-package/mlops-dev-visits/7"
DEFINITION = json.dumps(
    {
        "Parameters": [
            {"Name": "InputDataUri", "Type": "String", "DefaultValue": "s3://d/raw/"},
            {"Name": "Algorithm", "Type": "String", "DefaultValue": "logistic"},
            {"Name": "MetricThreshold", "Type": "Float", "DefaultValue": 0.6},
        ]
    }
)


@pytest.fixture
def sagemaker() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",  # noqa: S106
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def step(name: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "StepName": name,
        "StepStatus": status,
        "StartTime": datetime(2026, 1, 1, tzinfo=UTC),
        **extra,
    }


def expect_start(stubber: Stubber, parameters: list[dict[str, str]]) -> None:
    stubber.add_response(
        "describe_pipeline",
        {"PipelineName": "mlops-dev-training", "PipelineDefinition": DEFINITION},
        {"PipelineName": "mlops-dev-training"},
    )
    stubber.add_response(
        "start_pipeline_execution",
        {"PipelineExecutionArn": ARN},
        {"PipelineName": "mlops-dev-training", "PipelineParameters": parameters},
    )


def expect_poll(stubber: Stubber, status: str, steps: list[dict[str, Any]], **extra: Any) -> None:
    stubber.add_response(
        "describe_pipeline_execution",
        {"PipelineExecutionArn": ARN, "PipelineExecutionStatus": status, **extra},
        {"PipelineExecutionArn": ARN},
    )
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps},
        {"PipelineExecutionArn": ARN, "SortOrder": "Ascending"},
    )


def test_start_passes_parameters(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    expect_start(
        stubber,
        [
            {"Name": "Algorithm", "Value": "gradient_boosting"},
            {"Name": "MetricThreshold", "Value": "0.7"},
        ],
    )
    arn = start_execution(
        client, "mlops-dev-training", {"MetricThreshold": "0.7", "Algorithm": "gradient_boosting"}
    )
    assert arn == ARN


def test_unknown_parameter_is_refused_before_starting(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    stubber.add_response(
        "describe_pipeline",
        {"PipelineName": "mlops-dev-training", "PipelineDefinition": DEFINITION},
        {"PipelineName": "mlops-dev-training"},
    )
    with pytest.raises(
        ExecutionError,
        match=r"unknown pipeline parameter\(s\) Algoritm; mlops-dev-training takes: "
        r"Algorithm, InputDataUri, MetricThreshold",
    ):
        start_execution(client, "mlops-dev-training", {"Algoritm": "x"})


def test_follow_reports_each_change_and_the_package(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    expect_poll(stubber, "Executing", [step("Preprocess", "Executing")])
    expect_poll(stubber, "Executing", [step("Preprocess", "Executing")])  # no change: no report
    expect_poll(stubber, "Executing", [step("Preprocess", "Succeeded"), step("Train", "Executing")])
    expect_poll(
        stubber,
        "Succeeded",
        [
            step("Preprocess", "Succeeded"),
            step("Train", "Succeeded"),
            step("Evaluate", "Succeeded"),
            step("CheckMetric", "Succeeded"),
            step("Register", "Succeeded", Metadata={"RegisterModel": {"Arn": PACKAGE}}),
        ],
    )
    seen: list[tuple[str, str]] = []
    sleeps: list[float] = []
    outcome = follow_execution(
        client,
        ARN,
        poll_seconds=30,
        on_step=lambda s: seen.append((s.name, s.status)),
        sleep=sleeps.append,
    )
    assert outcome.status == "Succeeded"
    assert outcome.model_package_arn == PACKAGE
    assert seen == [
        ("Preprocess", "Executing"),
        ("Preprocess", "Succeeded"),
        ("Train", "Executing"),
        ("Train", "Succeeded"),
        ("Evaluate", "Succeeded"),
        ("CheckMetric", "Succeeded"),
        ("Register", "Succeeded"),
    ]
    assert sleeps == [30, 30, 30]


def test_follow_a_failed_execution(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    reason = "Model auc 0.55 is below the threshold 0.6 - not registered."
    expect_poll(
        stubber,
        "Failed",
        [
            step("CheckMetric", "Succeeded"),
            step("MetricBelowThreshold", "Failed", FailureReason=reason),
        ],
        FailureReason="Step failure: One or multiple steps failed.",
    )
    outcome = follow_execution(client, ARN, sleep=lambda _: None)
    assert outcome.status == "Failed"
    assert outcome.model_package_arn is None
    assert outcome.steps[-1].failure_reason == reason


def test_follow_gives_up_at_the_timeout(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    expect_poll(stubber, "Executing", [])
    expect_poll(stubber, "Executing", [])
    now = iter([0.0, 0.0, 100.0])
    with pytest.raises(ExecutionError, match="still Executing after 60 s; it goes on in SageMaker"):
        follow_execution(
            client, ARN, timeout_seconds=60, sleep=lambda _: None, clock=lambda: next(now)
        )


def test_steps_are_paged(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    stubber.add_response(
        "describe_pipeline_execution",
        {"PipelineExecutionArn": ARN, "PipelineExecutionStatus": "Succeeded"},
        {"PipelineExecutionArn": ARN},
    )
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": [step("Preprocess", "Succeeded")], "NextToken": "t"},
        {"PipelineExecutionArn": ARN, "SortOrder": "Ascending"},
    )
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": [step("Train", "Succeeded")]},
        {"PipelineExecutionArn": ARN, "SortOrder": "Ascending", "NextToken": "t"},
    )
    outcome = follow_execution(client, ARN, sleep=lambda _: None)
    assert [s.name for s in outcome.steps] == ["Preprocess", "Train"]


def test_cli_start_against_aws(
    sagemaker: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber = sagemaker
    expect_start(stubber, [{"Name": "Algorithm", "Value": "gradient_boosting"}])
    expect_poll(
        stubber,
        "Succeeded",
        [
            step("Train", "Succeeded"),
            step("Register", "Succeeded", Metadata={"RegisterModel": {"Arn": PACKAGE}}),
        ],
    )
    monkeypatch.setattr(AwsTarget, "client", lambda self, service, **_: client)
    result = CliRunner().invoke(
        app,
        [
            "--target",
            "aws",
            "pipeline",
            "start",
            "-p",
            "Algorithm=gradient_boosting",
            "--poll-seconds",
            "1",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert f"started mlops-dev-training: {ARN}" in result.output
    assert "Register     Succeeded" in result.output
    assert f"registered {PACKAGE}" in result.output


def test_cli_start_json(sagemaker: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch) -> None:
    client, stubber = sagemaker
    expect_start(stubber, [])
    expect_poll(
        stubber,
        "Succeeded",
        [step("Register", "Succeeded", Metadata={"RegisterModel": {"Arn": PACKAGE}})],
    )
    monkeypatch.setattr(AwsTarget, "client", lambda self, service, **_: client)
    result = CliRunner().invoke(
        app, ["pipeline", "start", "--poll-seconds", "1", "--json", "--target", "aws"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["execution_arn"] == ARN
    assert document["status"] == "Succeeded"
    assert document["model_package_arn"] == PACKAGE
    assert [s["name"] for s in document["steps"]] == ["Register"]
    assert f"started mlops-dev-training: {ARN}" in result.stderr
