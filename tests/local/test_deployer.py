"""Deploy on approval in AWS: stack parameters and SSM weights (CloudFormation stubbed: the
emulator does not run the serving stack; SSM and S3 on moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from lambdas.deploy import handler as deploy_lambda
from mlops.adapters.stack_deployment import DeploymentBusy, StackDeployment
from mlops.adapters.target import AwsTarget
from mlops.core import names
from mlops.core.approval import ServingState, on_approval, on_promote
from mlops.core.config import PlatformConfig
from mlops.core.functions import DeploySettings

STACK = "mlops-dev-serving"
P1 = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/1"
P2 = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/2"
ROLE = "arn:aws:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-us-east-1"


def stack(
    champion: str = "", challenger: str = "", status: str = "UPDATE_COMPLETE"
) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": STACK,
                "StackStatus": status,
                "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                "Parameters": [
                    {"ParameterKey": "ChampionModelPackageArn", "ParameterValue": champion},
                    {"ParameterKey": "ChallengerModelPackageArn", "ParameterValue": challenger},
                    {
                        "ParameterKey": "BootstrapVersion",
                        "ParameterValue": "/cdk-bootstrap/hnb659fds/version",
                    },
                ],
            }
        ]
    }


def update(champion: str, challenger: str) -> dict[str, Any]:
    return {
        "StackName": STACK,
        "UsePreviousTemplate": True,
        "Parameters": [
            {"ParameterKey": "ChampionModelPackageArn", "ParameterValue": champion},
            {"ParameterKey": "ChallengerModelPackageArn", "ParameterValue": challenger},
            {"ParameterKey": "BootstrapVersion", "UsePreviousValue": True},
        ],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        "RoleARN": ROLE,
    }


@dataclass
class Clients:
    cloudformation: Any
    stubber: Stubber
    ssm: Any
    s3: Any

    def weight(self, variant: str) -> str:
        return str(
            self.ssm.get_parameter(Name=f"/mlops/dev/serving/{variant}-weight")["Parameter"][
                "Value"
            ]
        )


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="mlops-dev-reports")
        with Stubber(cloudformation) as stubber:
            yield Clients(cloudformation, stubber, boto3.client("ssm", region_name="us-east-1"), s3)
            stubber.assert_no_pending_responses()


def deployment(clients: Clients) -> StackDeployment:
    return StackDeployment(
        cloudformation=clients.cloudformation,
        ssm=clients.ssm,
        stack_name=names.serving_stack(PlatformConfig()),
        weight_parameters=names.weight_parameters(PlatformConfig()),
        role_arn=ROLE,
    )


def test_first_approval_becomes_the_champion(clients: Clients) -> None:
    clients.stubber.add_response("describe_stacks", stack(), {"StackName": STACK})
    current = deployment(clients).current()
    assert current == ServingState()
    clients.stubber.add_response("describe_stacks", stack(), {"StackName": STACK})
    clients.stubber.add_response("update_stack", {"StackId": "id"}, update(P1, ""))
    status = deployment(clients).deploy(on_approval(current, P1, initial_challenger_weight=0.1))
    assert status == "UPDATE_IN_PROGRESS"
    assert (clients.weight("champion"), clients.weight("challenger")) == ("1", "0")


def test_next_approval_becomes_the_challenger_at_the_starting_weight(clients: Clients) -> None:
    change = on_approval(ServingState(champion=P1), P2, initial_challenger_weight=0.1)
    clients.stubber.add_response("describe_stacks", stack(champion=P1), {"StackName": STACK})
    clients.stubber.add_response("update_stack", {"StackId": "id"}, update(P1, P2))
    deployment(clients).deploy(change)
    # Written before the update: the new endpoint config reads them.
    assert (clients.weight("champion"), clients.weight("challenger")) == ("0.9", "0.1")


def test_promotion(clients: Clients) -> None:
    change = on_promote(ServingState(champion=P1, challenger=P2))
    clients.stubber.add_response(
        "describe_stacks", stack(champion=P1, challenger=P2), {"StackName": STACK}
    )
    clients.stubber.add_response("update_stack", {"StackId": "id"}, update(P2, P2))
    deployment(clients).deploy(change)
    assert (clients.weight("champion"), clients.weight("challenger")) == ("1", "0")


def test_a_busy_stack_is_retried_later(clients: Clients) -> None:
    change = on_approval(ServingState(champion=P1), P2, initial_challenger_weight=0.1)
    clients.stubber.add_response(
        "describe_stacks", stack(champion=P1, status="UPDATE_IN_PROGRESS"), {"StackName": STACK}
    )
    with pytest.raises(DeploymentBusy, match="is UPDATE_IN_PROGRESS"):
        deployment(clients).deploy(change)
    clients.stubber.add_response("describe_stacks", stack(champion=P1), {"StackName": STACK})
    clients.stubber.add_client_error(
        "update_stack",
        service_error_code="ValidationError",
        service_message=f"Stack:{STACK} is in UPDATE_IN_PROGRESS state and can not be updated.",
    )
    with pytest.raises(DeploymentBusy):
        deployment(clients).deploy(change)


def test_nothing_to_update_is_not_an_error(clients: Clients) -> None:
    change = on_approval(ServingState(champion=P1), P2, initial_challenger_weight=0.1)
    clients.stubber.add_response(
        "describe_stacks", stack(champion=P1, challenger=P2), {"StackName": STACK}
    )
    clients.stubber.add_client_error(
        "update_stack",
        service_error_code="ValidationError",
        service_message="No updates are to be performed.",
    )
    clients.ssm.put_parameter(Name="/mlops/dev/serving/champion-weight", Value="1", Type="String")
    clients.ssm.put_parameter(Name="/mlops/dev/serving/challenger-weight", Value="0", Type="String")
    assert deployment(clients).deploy(change) == "UNCHANGED"
    # Nothing was started, so the weights in force are put back.
    assert (clients.weight("champion"), clients.weight("challenger")) == ("1", "0")


@dataclass
class FakeContext:
    aws_request_id: str = "lambda-1"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-deploy"


def register(statuses: tuple[str, ...], group: str = "mlops-dev-visits") -> list[str]:
    """Packages 1..n of ``group`` in the emulated registry, with these approval statuses."""
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    spec: Any = {
        "Containers": [{"Image": "sklearn"}],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
    }
    return [
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus=status,  # type: ignore[arg-type]  # tests pass any status
            InferenceSpecification=spec,
        )["ModelPackageArn"]
        for status in statuses
    ]


def approval_event(
    arn: str, status: str = "Approved", group: str = "mlops-dev-visits"
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "approval-event-1",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-11-30T10:00:00Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageArn": arn,
            "ModelApprovalStatus": status,
        },
    }


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = DeploySettings.for_platform(
        PlatformConfig(),
        audit_bucket="mlops-dev-reports",
        topic_arn=None,
        cloudformation_role_arn=ROLE,
    )
    for key, value in settings.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def test_handler_deploys_an_approved_package(
    clients: Clients, lambda_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert register(("Approved", "Approved")) == [P1, P2]
    clients.stubber.add_response("describe_stacks", stack(champion=P1), {"StackName": STACK})
    clients.stubber.add_response("describe_stacks", stack(champion=P1), {"StackName": STACK})
    clients.stubber.add_response("update_stack", {"StackId": "id"}, update(P1, P2))
    real_client = AwsTarget.client
    monkeypatch.setattr(
        AwsTarget,
        "client",
        lambda self, name, **kw: (
            clients.cloudformation if name == "cloudformation" else real_client(self, name, **kw)
        ),
    )
    result = deploy_lambda.handler(approval_event(P2), FakeContext())  # type: ignore[arg-type]
    assert result["ok"] is True
    assert result["after"] == {"champion": P1, "challenger": P2}
    assert result["stack_status"] == "UPDATE_IN_PROGRESS"
    record = json.loads(
        clients.s3.get_object(
            Bucket="mlops-dev-reports", Key="audit/serving/mlops-dev-visits/approval-event-1.json"
        )["Body"].read()
    )
    assert record["requested_by"] == "model-registry:approval"
    assert record["before"] == {"champion": P1, "challenger": None}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (approval_event(P2, status="Rejected"), "is Rejected"),
        (approval_event(P2, group="other"), "not mlops-dev-visits"),
        ({"action": "dance"}, "expected a model package approval event"),
        (None, "expected a model package approval event"),
        ([approval_event(P2)], "expected a model package approval event"),
        ({**approval_event(P2), "detail": None}, "malformed ModelPackageStateChange event: detail"),
        (
            {**approval_event(P2), "detail": {"ModelApprovalStatus": "Approved"}},
            "detail.ModelPackageArn",
        ),
        ({"action": "promote", "reason": 7}, "malformed PromoteRequest event: reason"),
    ],
)
def test_handler_ignores_what_it_should(
    clients: Clients, lambda_env: None, event: Any, expected: str
) -> None:
    result = deploy_lambda.handler(event, FakeContext())  # type: ignore[arg-type]
    assert expected in json.dumps(result)


@pytest.mark.parametrize(
    ("registered", "package", "expected"),
    [
        # The event says Approved; the registry, which is asked, does not.
        (("Approved", "PendingManualApproval"), P2, "is PendingManualApproval"),
        (("Approved",), P2, "not found"),
        (
            ("Approved", "Approved"),
            P2.replace("123456789012", "210987654321"),
            "belongs to account 210987654321",
        ),
        (("Approved", "Approved"), P2.replace("us-east-1", "eu-west-1"), "is in eu-west-1"),
    ],
)
def test_handler_deploys_only_what_the_registry_approves(
    clients: Clients,
    lambda_env: None,
    monkeypatch: pytest.MonkeyPatch,
    registered: tuple[str, ...],
    package: str,
    expected: str,
) -> None:
    register(registered)
    real_client = AwsTarget.client
    monkeypatch.setattr(
        AwsTarget,
        "client",
        lambda self, name, **kw: (
            clients.cloudformation if name == "cloudformation" else real_client(self, name, **kw)
        ),
    )
    result = deploy_lambda.handler(approval_event(package), FakeContext())  # type: ignore[arg-type]
    assert result["ok"] is False
    assert expected in result["error"]
    # Refused before anything changed: no stack call (the stubber has none queued), no weights.
    with pytest.raises(ClientError):
        clients.weight("challenger")


def test_a_weight_that_cannot_be_read_stops_the_deploy(clients: Clients) -> None:
    """AccessDenied on the weights in force is not 'no weights yet': nothing is written."""
    ssm = boto3.client("ssm", region_name="us-east-1")
    with Stubber(ssm) as denied:
        denied.add_client_error("get_parameter", "AccessDeniedException", http_status_code=400)
        clients.stubber.add_response("describe_stacks", stack(champion=P1), {"StackName": STACK})
        with pytest.raises(ClientError, match="AccessDenied"):
            StackDeployment(
                cloudformation=clients.cloudformation,
                ssm=ssm,
                stack_name=STACK,
                weight_parameters=names.weight_parameters(PlatformConfig()),
                role_arn=ROLE,
            ).deploy(on_approval(ServingState(champion=P1), P2, initial_challenger_weight=0.1))
        denied.assert_no_pending_responses()  # no put_parameter was attempted
