"""Serving on the embedded default: deploy approved packages, invoke the local endpoint with
boto3's sagemaker-runtime client, read the capture files back, roll back."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from mlops.adapters import endpoints, s3io
from mlops.adapters.registry import set_approval
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core import capture
from mlops.core.approval import ServingState, on_approval, on_promote
from mlops.core.config import PlatformConfig
from mlops.core.traffic import TrafficError
from mlops.local.deployment import EmulatorDeployment
from mlops.local.emulator import bootstrap
from mlops.local.endpoint import LocalEndpoints, LocalEndpointServer
from mlops.local.pipeline import LocalPipelineRunner, RunOptions
from mlops.usecases.apply_traffic import TrafficController, TrafficRequest

CONFIG = PlatformConfig()
ROW = "4.61512,1,6.907755,0,0,13.73189,1,0,0"


@pytest.fixture
def deployed(emulator: AwsTarget) -> tuple[AwsTarget, PlatformResources, list[str]]:
    resources = bootstrap(emulator, CONFIG)
    runner = LocalPipelineRunner(
        target=emulator, resources=resources, config=CONFIG, mlflow_tracking_uri=None
    )
    arns = []
    for options in (RunOptions(), RunOptions(algorithm="gradient_boosting", max_iter=50)):
        result = runner.run(options)
        assert result.registered, result.reason
        set_approval(emulator.client("sagemaker"), result.model_package_arn or "", "Approved")
        arns.append(result.model_package_arn or "")
    deployment = EmulatorDeployment(
        sagemaker=emulator.client("sagemaker"), config=CONFIG, resources=resources
    )
    first = on_approval(deployment.current(), arns[0], initial_challenger_weight=0.25)
    deployment.deploy(first)
    second = on_approval(deployment.current(), arns[1], initial_challenger_weight=0.25)
    deployment.deploy(second)
    return emulator, resources, arns


@pytest.fixture
def refresh_seconds() -> float:
    """How long the endpoint keeps what it read of SageMaker: 0, a change takes effect on the
    next request (each request then reads the endpoint, its config, models and packages)."""
    return 0.0


@pytest.fixture
def server(
    deployed: tuple[AwsTarget, PlatformResources, list[str]],
    tmp_path: Path,
    refresh_seconds: float,
) -> Iterator[LocalEndpointServer]:
    target, _, _ = deployed
    local = LocalEndpoints(target, cache_dir=tmp_path, refresh_seconds=refresh_seconds, seed=7)
    started = LocalEndpointServer(local).start()
    yield started
    started.stop()


def runtime(server: LocalEndpointServer) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )


def test_serving_decisions() -> None:
    first = on_approval(ServingState(), "arn:p/1", initial_challenger_weight=0.1)
    assert first.state == ServingState(champion="arn:p/1")
    assert first.weights == {"champion": 1.0}
    second = on_approval(first.state, "arn:p/2", initial_challenger_weight=0.1)
    assert second.state == ServingState(champion="arn:p/1", challenger="arn:p/2")
    assert second.weights == {"champion": 0.9, "challenger": 0.1}
    again = on_approval(second.state, "arn:p/2", initial_challenger_weight=0.1)
    assert not again.changed
    # An edit to an older approved package re-fires the approval event: not redeployed.
    stale = on_approval(second.state, "arn:p/1", initial_challenger_weight=0.1)
    assert not stale.changed
    third = on_approval(
        ServingState(champion="arn:p/3", challenger="arn:p/4"),
        "arn:p/2",
        initial_challenger_weight=0.1,
    )
    assert not third.changed
    assert "older than the packages serving" in third.summary
    # Promotion keeps both variants (autoscaling is registered on the challenger's).
    promoted = on_promote(second.state)
    assert promoted.state == ServingState(champion="arn:p/2", challenger="arn:p/2")
    assert promoted.weights == {"champion": 1.0, "challenger": 0.0}
    with pytest.raises(TrafficError, match="no challenger to promote"):
        on_promote(promoted.state)
    with pytest.raises(TrafficError, match="no challenger to promote"):
        on_promote(first.state)
    after = on_approval(promoted.state, "arn:p/5", initial_challenger_weight=0.1)
    assert after.state == ServingState(champion="arn:p/2", challenger="arn:p/5")


def test_deployment_mirrors_the_serving_design(
    deployed: tuple[AwsTarget, PlatformResources, list[str]],
) -> None:
    target, resources, arns = deployed
    sagemaker = target.client("sagemaker")
    state = endpoints.describe(sagemaker, CONFIG.endpoint_name)
    assert state.weights == {"champion": 0.75, "challenger": 0.25}
    config = sagemaker.describe_endpoint_config(EndpointConfigName=state.config_name)
    assert config["KmsKeyId"] == resources.key_arn
    capture_config = config["DataCaptureConfig"]
    assert capture_config["DestinationS3Uri"] == f"s3://{resources.capture_bucket}/capture"
    assert capture_config["CaptureContentTypeHeader"] == {
        "CsvContentTypes": ["text/csv"],
        "JsonContentTypes": ["application/json"],
    }
    current = EmulatorDeployment(sagemaker=sagemaker, config=CONFIG, resources=resources).current()
    assert current == ServingState(champion=arns[0], challenger=arns[1])


# Nothing changes the endpoint during these 200 requests: read once, not six calls each (the
# same routes, and the same seeded draws); re-reading is the rollback test's point.
@pytest.mark.parametrize("refresh_seconds", [600.0], ids=["read-once"])
def test_invocations_route_by_weight_and_capture_round_trips(
    deployed: tuple[AwsTarget, PlatformResources, list[str]], server: LocalEndpointServer
) -> None:
    target, resources, _ = deployed
    client = runtime(server)
    seen: Counter[str] = Counter()
    sent = []
    for i in range(200):
        body = ROW if i % 2 else json.dumps({"instances": [[float(v) for v in ROW.split(",")]]})
        kind = "text/csv" if i % 2 else "application/json"
        response = client.invoke_endpoint(
            EndpointName=CONFIG.endpoint_name, Body=body, ContentType=kind, Accept="application/json",
            InferenceId=f"req-{i}",
        )  # fmt: skip
        seen[response["InvokedProductionVariant"]] += 1
        output = response["Body"].read().decode()
        assert json.loads(output)["predictions"][0]["label"] in (0, 1)
        sent.append((f"req-{i}", body, kind, output, response["InvokedProductionVariant"]))
    assert set(seen) == {"champion", "challenger"}
    assert 20 <= seen["challenger"] <= 80  # 25% of 200, with room for chance (seeded)

    server.endpoints.capture.flush()
    written = server.endpoints.capture.files_written  # every file, also those flushed by age
    assert written
    pattern = re.compile(
        rf"s3://{resources.capture_bucket}/capture/{CONFIG.endpoint_name}/(champion|challenger)/"
        r"\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl"
    )
    s3 = target.client("s3")
    records = {}
    for uri in written:
        assert pattern.fullmatch(uri), uri
        bucket, key = s3io.split_uri(uri)
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
        parsed = capture.parse_lines(lines, source=key)
        assert parsed.malformed == 0
        variant = key.split("/")[2]
        for record in parsed.records:
            records[record.inference_id] = (record, variant)
    assert len(records) == 200  # sampling 100%
    for inference_id, body, kind, output, variant in sent:
        record, stored_variant = records[inference_id]
        assert stored_variant == variant
        assert record.input.data == body
        assert record.input.encoding == ("CSV" if kind == "text/csv" else "JSON")
        assert record.output is not None
        assert record.output.data == output


def test_target_variant_is_honoured(server: LocalEndpointServer) -> None:
    client = runtime(server)
    for variant in ("champion", "challenger"):
        response = client.invoke_endpoint(
            EndpointName=CONFIG.endpoint_name,
            Body=ROW,
            ContentType="text/csv",
            TargetVariant=variant,
        )
        assert response["InvokedProductionVariant"] == variant


def test_errors_look_like_sagemakers(server: LocalEndpointServer) -> None:
    client = runtime(server)
    with pytest.raises(ClientError) as bad_input:
        client.invoke_endpoint(
            EndpointName=CONFIG.endpoint_name, Body="1,2,3", ContentType="text/csv"
        )
    assert bad_input.value.response["Error"]["Code"] == "ModelError"
    assert "expected 9 values" in str(bad_input.value)
    with pytest.raises(ClientError) as missing:
        client.invoke_endpoint(EndpointName="nope", Body=ROW, ContentType="text/csv")
    assert missing.value.response["Error"]["Code"] == "ValidationError"
    assert "Endpoint nope not found" in str(missing.value)


def test_rollback_takes_effect_on_the_next_request(
    deployed: tuple[AwsTarget, PlatformResources, list[str]], server: LocalEndpointServer
) -> None:
    target, resources, _ = deployed
    controller = TrafficController(
        sagemaker=target.client("sagemaker"),
        s3=target.client("s3"),
        audit_bucket=resources.reports_bucket,
    )
    outcome = controller.apply(
        TrafficRequest.parse(
            {
                "action": "rollback",
                "endpoint": CONFIG.endpoint_name,
                "reason": "drift",
                "requested_by": "test",
            }
        )
    )
    assert outcome.weights_after == {"champion": 1.0, "challenger": 0.0}
    client = runtime(server)
    variants = {
        client.invoke_endpoint(EndpointName=CONFIG.endpoint_name, Body=ROW, ContentType="text/csv")[
            "InvokedProductionVariant"
        ]
        for _ in range(30)
    }
    assert variants == {"champion"}
    bucket, key = s3io.split_uri(outcome.audit_uri or "")
    record = json.loads(target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert record["weights_after"] == {"champion": 1.0, "challenger": 0.0}


@pytest.mark.parametrize("refresh_seconds", [600.0], ids=["read-once"])
def test_refresh_reads_a_traffic_change_at_once_with_a_long_refresh(
    deployed: tuple[AwsTarget, PlatformResources, list[str]], server: LocalEndpointServer
) -> None:
    """How the demo serves: routes read once, and again right after each change it makes."""
    target, resources, _ = deployed
    client = runtime(server)
    client.invoke_endpoint(EndpointName=CONFIG.endpoint_name, Body=ROW, ContentType="text/csv")
    before = {v.name: v.weight for v in server.endpoints.route(CONFIG.endpoint_name).variants}
    assert before["challenger"] > 0
    controller = TrafficController(
        sagemaker=target.client("sagemaker"),
        s3=target.client("s3"),
        audit_bucket=resources.reports_bucket,
    )
    request = {"action": "rollback", "endpoint": CONFIG.endpoint_name, "reason": "drift",
               "requested_by": "test"}  # fmt: skip
    controller.apply(TrafficRequest.parse(request))
    # Within refresh_seconds, the endpoint still serves by what it read.
    kept = {v.name: v.weight for v in server.endpoints.route(CONFIG.endpoint_name).variants}
    assert kept == before
    server.endpoints.refresh(CONFIG.endpoint_name)
    variants = {
        client.invoke_endpoint(EndpointName=CONFIG.endpoint_name, Body=ROW, ContentType="text/csv")[
            "InvokedProductionVariant"
        ]
        for _ in range(30)
    }
    assert variants == {"champion"}
