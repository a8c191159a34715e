"""The traffic controller and Lambda handler on the emulator (moto), and the endpoint-update
edge cases moto cannot produce (botocore Stubber: Updating, in-progress, throttling)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mlops.adapters import endpoints
from mlops.core.traffic import TrafficError
from mlops.usecases.apply_traffic import TrafficController, TrafficRequest

ENDPOINT = "mlops-dev"
REGION = "us-east-1"


def make_endpoint(sagemaker: Any, weights: dict[str, float], name: str = ENDPOINT) -> None:
    for variant in weights:
        sagemaker.create_model(
            ModelName=f"{name}-{variant}",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/serving",
            PrimaryContainer={"Image": "image", "ModelDataUrl": f"s3://b/{variant}.tar.gz"},
        )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": f"{name}-{variant}",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
            for variant, weight in weights.items()
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


@dataclass
class World:
    sagemaker: Any
    s3: Any
    sns: Any
    sqs: Any
    queue_url: str
    topic_arn: str

    def controller(self, **kwargs: Any) -> TrafficController:
        return TrafficController(
            sagemaker=self.sagemaker,
            s3=self.s3,
            sns=self.sns,
            topic_arn=self.topic_arn,
            audit_bucket="mlops-dev-reports",
            sleep=lambda _: None,
            **kwargs,
        )

    def notifications(self) -> list[dict[str, Any]]:
        received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in received.get("Messages", [])]

    def audit_records(self) -> list[dict[str, Any]]:
        listed = self.s3.list_objects_v2(Bucket="mlops-dev-reports", Prefix="audit/traffic/")
        return [
            json.loads(self.s3.get_object(Bucket="mlops-dev-reports", Key=o["Key"])["Body"].read())
            for o in listed.get("Contents", [])
        ]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="mlops-dev-reports")
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        make_endpoint(sagemaker, {"champion": 0.9, "challenger": 0.1})
        yield World(sagemaker, s3, sns, sqs, queue, topic)


def request(action: str = "rollback", **extra: Any) -> TrafficRequest:
    return TrafficRequest.parse(
        {
            "action": action,
            "endpoint": ENDPOINT,
            "reason": "latency doubled",
            "requested_by": "oncall",
            **extra,
        }
    )


def test_rollback_sends_all_traffic_to_the_champion_and_audits(world: World) -> None:
    outcome = world.controller().apply(request(request_id="r1"))
    assert outcome.changed
    assert outcome.weights_before == {"champion": 0.9, "challenger": 0.1}
    assert outcome.weights_after == {"champion": 1.0, "challenger": 0.0}
    assert endpoints.describe(world.sagemaker, ENDPOINT).weights == {
        "champion": 1.0,
        "challenger": 0.0,
    }
    assert outcome.api_calls == {
        "GetObject": 1,  # the lease's ledger
        "DescribeEndpoint": 1,
        "UpdateEndpointWeightsAndCapacities": 1,
        "PutObject": 3,  # the ledger (taken), the claim, the audit record
    }
    (record,) = world.audit_records()
    assert record["requested_by"] == "oncall"
    assert record["reason"] == "latency doubled"
    assert record["weights_before"] == {"champion": 0.9, "challenger": 0.1}
    assert record["weights_after"] == {"champion": 1.0, "challenger": 0.0}
    assert record["audit_uri"] == "s3://mlops-dev-reports/audit/traffic/mlops-dev/r1.json"
    (notification,) = world.notifications()
    assert notification["action"] == "rollback"


def test_weights_in_force_are_kept_for_the_serving_stack(world: World) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    controller = world.controller(
        ssm=ssm, weight_parameter=lambda variant: f"/mlops/dev/serving/{variant}-weight"
    )
    outcome = controller.apply(request(request_id="r1"))
    assert ssm.get_parameter(Name="/mlops/dev/serving/champion-weight")["Parameter"]["Value"] == "1"
    assert (
        ssm.get_parameter(Name="/mlops/dev/serving/challenger-weight")["Parameter"]["Value"] == "0"
    )
    assert outcome.api_calls["PutParameter"] == 2


def test_a_failed_weights_write_is_repaired_by_the_next_run(world: World) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    name = "/mlops/dev/serving/{}-weight".format
    controller = world.controller(ssm=ssm, weight_parameter=name)
    controller.apply(request(request_id="r1"))
    ssm.put_parameter(Name=name("challenger"), Value="0.5", Type="String", Overwrite=True)  # stale
    again = controller.apply(request(request_id="r2"))
    assert not again.changed
    assert ssm.get_parameter(Name=name("challenger"))["Parameter"]["Value"] == "0"


def test_a_lost_notification_does_not_fail_the_decision(world: World) -> None:
    controller = world.controller()
    controller.topic_arn = "arn:aws:sns:us-east-1:123456789012:missing"
    outcome = controller.apply(request(request_id="r1"))
    assert outcome.changed
    assert len(world.audit_records()) == 1


def test_instance_counts_are_not_sent_to_aws(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "update_endpoint_weights_and_capacities",
        {"EndpointArn": "arn:aws:sagemaker:::endpoint/x"},
        UPDATE,
    )
    endpoints.update_weights(client, ENDPOINT, {"champion": 1.0, "challenger": 0.0}, instances=None)


def test_waits_no_longer_than_the_deadline(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    for _ in range(5):
        stubber.add_client_error(
            "update_endpoint_weights_and_capacities",
            service_error_code="ValidationException",
            service_message="Cannot update in-progress endpoint",
        )
    delays: list[float] = []
    with pytest.raises(endpoints.EndpointError, match=r"through 5 attempts and 15 s"):
        endpoints.update_weights(
            client, ENDPOINT, {"champion": 1.0, "challenger": 0.0}, max_wait=20, sleep=delays.append
        )
    assert delays == [1.0, 2.0, 4.0, 8.0]  # the next wait (16 s) would pass the 20 s deadline


def test_repeating_a_rollback_changes_nothing_and_records_the_decision(world: World) -> None:
    world.controller().apply(request(request_id="r1"))
    again = world.controller().apply(request(request_id="r2"))
    assert not again.changed
    # No update requested.
    assert again.api_calls == {"GetObject": 1, "DescribeEndpoint": 1, "PutObject": 3}
    assert len(world.audit_records()) == 2


def test_a_redelivered_request_is_recorded_once(world: World) -> None:
    first = world.controller().apply(request(request_id="evt-1"))
    second = world.controller().apply(request(request_id="evt-1"))
    assert first.changed
    assert not second.changed
    assert second.duplicate
    (record,) = world.audit_records()  # the first record, untouched
    assert record["changed"] is True
    assert len(world.notifications()) == 1


def test_shift_by_share_and_by_weights(world: World) -> None:
    outcome = world.controller().apply(request("shift", challenger=0.25))
    assert outcome.weights_after == {"champion": 0.75, "challenger": 0.25}
    outcome = world.controller().apply(request("shift", weights={"challenger": 1, "champion": 1}))
    assert outcome.weights_after == {"champion": 0.5, "challenger": 0.5}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "shift", "weights": {"canary": 1}}, "unknown variant.s. canary"),
        ({"action": "shift", "weights": {"champion": -1}}, "must be >= 0"),
        ({"action": "shift", "weights": {"champion": "NaN"}}, "must be finite"),
        ({"action": "shift", "weights": {"champion": 0, "challenger": 0}}, "all-zero"),
        ({"action": "shift"}, "shift needs weights or a challenger share"),
        ({"action": "shift", "challenger": 1.5}, "between 0 and 1"),
        ({"action": "promote"}, "run it through the serving deployment"),
    ],
)
def test_bad_requests_change_nothing(world: World, payload: dict[str, Any], message: str) -> None:
    with pytest.raises(TrafficError, match=message):
        world.controller().apply(request(**payload))
    assert endpoints.describe(world.sagemaker, ENDPOINT).weights == {
        "champion": 0.9,
        "challenger": 0.1,
    }
    assert world.audit_records() == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "reboot"}, "action: Input should be"),
        ({"endpoint": ""}, "endpoint: String should have at least 1 character"),
        ({"reason": ""}, "reason: String should have at least 3 characters"),
        ({"request_id": "../x"}, "request_id: Value error, may hold only letters"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_malformed_requests_are_explained(payload: dict[str, Any], message: str) -> None:
    base = {"action": "rollback", "endpoint": ENDPOINT, "reason": "why", "requested_by": "me"}
    with pytest.raises(TrafficError, match=message):
        TrafficRequest.parse({**base, **payload})


def test_unknown_endpoint(world: World) -> None:
    with pytest.raises(endpoints.EndpointError, match="endpoint 'nope' does not exist"):
        world.controller().apply(
            TrafficRequest.parse(
                {"action": "rollback", "endpoint": "nope", "reason": "why", "requested_by": "me"}
            )
        )


def test_gated_rollout_steps_then_rolls_back_on_alarm(world: World) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    alarm = "mlops-dev-challenger-5xx"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm, MetricName="Invocation5XXErrors", Namespace="AWS/SageMaker",
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
    )  # fmt: skip
    controller = world.controller(cloudwatch=cloudwatch, challenger_alarms=lambda endpoint: [alarm])
    assert controller.apply(request("rollout-step")).weights_after == {
        "champion": 0.75,
        "challenger": 0.25,
    }
    assert controller.apply(request("rollout-step")).weights_after == {
        "champion": 0.5,
        "challenger": 0.5,
    }
    done = controller.apply(request("rollout-step"))
    assert not done.changed
    assert done.decision.startswith("complete")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="errors")
    rolled = controller.apply(request("rollout-step"))
    assert rolled.weights_after == {"champion": 1.0, "challenger": 0.0}
    assert "mlops-dev-challenger-5xx" in rolled.decision


# -- endpoint updates under the conditions moto does not produce ----------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "sagemaker",
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",  # noqa: S106
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


UPDATE = {
    "EndpointName": ENDPOINT,
    "DesiredWeightsAndCapacities": [
        {"VariantName": "champion", "DesiredWeight": 1.0},
        {"VariantName": "challenger", "DesiredWeight": 0.0},
    ],
}


def test_waits_out_an_in_progress_update_with_backoff(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    for _ in range(2):
        stubber.add_client_error(
            "update_endpoint_weights_and_capacities",
            service_error_code="ValidationException",
            service_message="Cannot update in-progress endpoint",
            expected_params=UPDATE,
        )
    stubber.add_client_error(
        "update_endpoint_weights_and_capacities",
        service_error_code="ThrottlingException",
        expected_params=UPDATE,
    )
    stubber.add_response(
        "update_endpoint_weights_and_capacities",
        {"EndpointArn": "arn:aws:sagemaker:::endpoint/x"},
        UPDATE,
    )
    delays: list[float] = []
    calls = endpoints.CallLog()
    endpoints.update_weights(
        client, ENDPOINT, {"champion": 1.0, "challenger": 0.0}, calls=calls, sleep=delays.append
    )
    assert delays == [1.0, 2.0, 4.0]
    assert calls.calls == {"UpdateEndpointWeightsAndCapacities": 4}


def test_gives_up_after_bounded_attempts(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    for _ in range(4):
        stubber.add_client_error(
            "update_endpoint_weights_and_capacities",
            service_error_code="ValidationException",
            service_message="Cannot update in-progress endpoint",
        )
    delays: list[float] = []
    with pytest.raises(
        endpoints.EndpointError,
        match=r"stayed busy \(ValidationException\) through 4 attempts and 6 s",
    ):
        endpoints.update_weights(
            client,
            ENDPOINT,
            {"champion": 1.0, "challenger": 0.0},
            max_attempts=4,
            max_delay=3.0,
            sleep=delays.append,
        )
    assert delays == [1.0, 2.0, 3.0]


def test_other_errors_are_not_retried(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "update_endpoint_weights_and_capacities",
        service_error_code="ValidationException",
        service_message="Could not find variant canary",
    )
    with pytest.raises(Exception, match="Could not find variant canary"):
        endpoints.update_weights(
            client, ENDPOINT, {"champion": 1.0, "challenger": 0.0}, sleep=lambda _: None
        )


def test_waits_while_the_endpoint_is_updating(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    described = {
        "EndpointName": ENDPOINT,
        "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/mlops-dev",
        "EndpointConfigName": "c",
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        "LastModifiedTime": datetime(2026, 1, 1, tzinfo=UTC),
        "ProductionVariants": [{"VariantName": "champion", "CurrentWeight": 1.0}],
    }
    stubber.add_response(
        "describe_endpoint", {**described, "EndpointStatus": "Updating"}, {"EndpointName": ENDPOINT}
    )
    stubber.add_response(
        "describe_endpoint",
        {**described, "EndpointStatus": "InService"},
        {"EndpointName": ENDPOINT},
    )
    polls: list[float] = []
    state = endpoints.wait_until_in_service(client, ENDPOINT, poll=5, sleep=polls.append)
    assert state.status == "InService"
    assert polls == [5]


def test_the_endpoint_gets_shares_as_ssm_and_the_audit_do(world: World) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    name = "/mlops/dev/serving/{}-weight".format
    controller = world.controller(ssm=ssm, weight_parameter=name)
    outcome = controller.apply(request("shift", weights={"champion": 75, "challenger": 25}))
    in_force = endpoints.describe(world.sagemaker, ENDPOINT).weights
    assert in_force == {"champion": 0.75, "challenger": 0.25}  # not 75 and 25
    assert outcome.weights_after == in_force
    assert {v: float(ssm.get_parameter(Name=name(v))["Parameter"]["Value"]) for v in in_force} == (
        in_force
    )
