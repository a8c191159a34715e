"""Every AWS call each platform function makes, recorded through botocore's hooks with its
parameters while the functions run on the embedded default, is allowed by that function's role
as the synthesized serving template states it (resolved with the twin's physical names), judged
by the policy evaluator. And minimal: each granted action no call needs is listed with its
reason, and dropping any statement a call needs makes a call fail."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_cdk.assertions import Template
from botocore.stub import Stubber

from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core import names, specs
from mlops.core.capture import encode_record, object_key
from mlops.core.functions import DeploySettings, TrafficSettings
from mlops.local.aws_services import create_alarms, invoke_function, scheduled_drift_check
from mlops.local.emulator import bootstrap
from mlops.local.iam.enforce import PROCESSING, TwinIam, simulator
from mlops.local.iam.simulator import Decision, Identity
from mlops.local.replay import requests, send
from mlops.usecases import check_drift
from pipeline_steps.schema import FEATURE_NAMES
from tests.local.test_drift_monitor import FakeRenderer
from tests.local.test_drift_scheduled import CONFIG, serving
from tests.support.iam_template import (
    Resolution,
    exports_of,
    resolve,
    role_policies,
    roles_assumed_by,
)

__all__ = ["serving"]  # the fixture: two trained, approved packages behind a local endpoint

# Granted actions that no call in these runs makes, each with its reason. A new grant that no
# call needs fails the test until its reason is written here (or the grant goes).
NOT_CALLED = {
    (f, a): reason
    for f in ("traffic", "deploy", "drift")
    for a, reason in {
        "sqs:SendMessage": "Lambda sends an event that failed every retry to the dead-letter "
        "queue with the function's role.",
        "logs:CreateLogStream": "The Lambda runtime writes the function's logs.",
        "logs:PutLogEvents": "The Lambda runtime writes the function's logs.",
    }.items()
}
# What SageMaker does with the drift jobs' role and the twin's job runner does not need to.
JOB_LOGS = "The processing containers' log driver writes /aws/sagemaker/ProcessingJobs with the role; local instances log to the runner."
NOT_CALLED |= {
    ("drift-processing", "kms:CreateGrant"): "SageMaker takes a grant on the data key for each "
    "instance's encrypted volume; local instances use no volume.",
    ("drift-processing", "ecr:GetAuthorizationToken"): "SageMaker pulls the drift image; the "
    "local instances run this checkout.",
    ("drift-processing", "ecr:BatchCheckLayerAvailability"): "SageMaker pulls the drift image.",
    ("drift-processing", "ecr:GetDownloadUrlForLayer"): "SageMaker pulls the drift image.",
    ("drift-processing", "ecr:BatchGetImage"): "SageMaker pulls the drift image.",
    ("drift-processing", "logs:CreateLogStream"): JOB_LOGS,
    ("drift-processing", "logs:PutLogEvents"): JOB_LOGS,
    ("drift-processing", "logs:DescribeLogStreams"): JOB_LOGS,
    ("drift-processing", "cloudwatch:PutMetricData"): "SageMaker publishes the instances' "
    "metrics under /aws/sagemaker/ProcessingJobs; local instances publish none.",
}
# A drift check runs as a Processing job above this: 10 kB, any window of real traffic.
JOBS = CONFIG.model_copy(update={"drift_job_threshold_mb": 0.01})


def role_of(template: Mapping[str, Any], handler: str) -> str:
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"]["ImageConfig"][
            "Command"
        ] == [handler]:
            return str(resource["Properties"]["Role"]["Fn::GetAtt"][0])
    raise AssertionError(f"no function runs {handler}")


@pytest.fixture
def resources(emulator: AwsTarget) -> PlatformResources:
    """The twin's buckets, key and registry: what ``serving`` serves from (bootstrap is
    idempotent), without its two trainings and endpoint for a test that only reads roles."""
    return bootstrap(emulator, CONFIG)


@pytest.fixture
def aws_roles(
    emulator: AwsTarget,
    resources: PlatformResources,
    storage_template: Template,
    serving_template: Template,
) -> tuple[TwinIam, dict[str, Identity], str]:
    """The template's roles, resolved with the twin's buckets, key and topic."""
    storage = storage_template.to_json()
    bucket_ids = {
        output["Export"]["Name"].removeprefix(f"{CONFIG.prefix}-").removesuffix("-bucket-name"): (
            output["Value"]["Ref"]
        )
        for output in storage["Outputs"].values()
        if output.get("Export", {}).get("Name", "").endswith("-bucket-name")
    }
    key_id = next(lid for lid, r in storage["Resources"].items() if r["Type"] == "AWS::KMS::Key")
    exports = exports_of(
        storage,
        Resolution(
            names={lid: resources.bucket(role) for role, lid in bucket_ids.items()},
            attributes={f"{key_id}.Arn": resources.key_arn or ""},
        ),
    )
    template = serving_template.to_json()
    topic_id = next(
        lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"
    )
    resolution = Resolution(
        stack_name=names.serving_stack(CONFIG),
        exports=exports,
        names={topic_id: f"{CONFIG.prefix}-alerts"},
    )
    topic = emulator.client("sns").create_topic(Name=f"{CONFIG.prefix}-alerts")["TopicArn"]
    assert topic == resolve(template, {"Ref": topic_id}, resolution)
    roles = role_policies(template, resolution)
    identities: dict[str, Identity] = {
        function: Identity(
            roles[role_of(template, handler)].arn, roles[role_of(template, handler)].policies
        )
        for function, handler in specs.HANDLERS.items()
    }
    # The drift checks' Processing job role: what the twin's job runner does with it.
    (processing,) = [
        r for r in roles_assumed_by(template, "sagemaker.amazonaws.com", resolution)
        if template["Resources"][r]["Properties"].get("RoleName")
        == names.drift_processing_role(CONFIG)
    ]  # fmt: skip
    identities[PROCESSING] = Identity(
        roles[processing].arn, roles[processing].policies, session_name="SageMaker"
    )
    (cfn_role,) = roles_assumed_by(template, "cloudformation.amazonaws.com", resolution)
    ops_key = next(lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::KMS::Key")
    iam = TwinIam(
        config=CONFIG,
        region=emulator.region,
        resources=resources,
        topic_arn=topic,
        identities=identities,  # type: ignore[arg-type]  # keyed by the handlers' names
        ops_key=resolve(template, {"Fn::GetAtt": [ops_key, "Arn"]}, resolution),
        cloudformation_role_arn=roles[cfn_role].arn,
    )
    return iam, identities, topic


def approval_event(arn: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "approval-recorded-1",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-11-30T10:00:00Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": CONFIG.model_package_group_name,
            "ModelPackageArn": arn,
            "ModelApprovalStatus": "Approved",
        },
    }


def put_capture(
    emulator: AwsTarget, resources: PlatformResources, variant: str, *, at: datetime
) -> None:
    """A capture file of 200 one-row requests at ``at``, as SageMaker writes them."""
    rows = requests(200, seed=3)[list(FEATURE_NAMES)].to_numpy(float)
    lines = [
        encode_record(
            request=",".join(f"{v:g}" for v in row).encode(), request_type="text/csv",
            response=b'{"predictions": [{"score": 0.5, "label": 1}]}',
            response_type="application/json", inference_time=at,
        )
        for row in rows
    ]  # fmt: skip
    emulator.client("s3").put_object(
        Bucket=resources.capture_bucket,
        Key=object_key("capture", CONFIG.endpoint_name, variant, at),
        Body=("\n".join(lines) + "\n").encode(),
    )


def run_every_function(
    emulator: AwsTarget,
    serving: tuple[PlatformResources, Any],
    iam: TwinIam,
    topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What each function does in a day of the platform: rollout steps and a shift (traffic),
    a scheduled check that finds challenger drift and rolls back (drift, traffic), a scheduled
    check with nothing new, and the deployment of an approved package (deploy)."""
    resources, (server, runtime) = serving
    common: dict[str, Any] = {
        "target": emulator, "config": CONFIG, "resources": resources, "topic_arn": topic, "iam": iam,
    }  # fmt: skip
    create_alarms(emulator.client("cloudwatch"), specs.variant_alarms(CONFIG))
    traffic = TrafficSettings.for_platform(
        CONFIG, audit_bucket=resources.reports_bucket, topic_arn=topic
    )
    for event in (
        {"action": "rollout-step", "reason": "recorded", "requested_by": "test"},
        {"action": "shift", "challenger": 0.3, "reason": "recorded", "requested_by": "t"},
    ):
        outcome, _ = invoke_function(specs.TRAFFIC, {**event, "endpoint": CONFIG.endpoint_name},
                                     settings=traffic, **common)  # fmt: skip
        assert outcome["ok"], outcome

    send(runtime, CONFIG.endpoint_name, requests(300, seed=1), target_variant="champion")
    send(
        runtime,
        CONFIG.endpoint_name,
        requests(300, seed=2, drifted=True),
        target_variant="challenger",
    )
    server.endpoints.capture.flush()
    now = datetime.now(UTC)
    for minutes in (1, 2):
        run = scheduled_drift_check(emulator, CONFIG, resources, now=now + timedelta(minutes=minutes),
                                    topic_arn=topic, iam=iam)  # fmt: skip
        assert run.result["ok"], run.result
    assert [target for target, _ in run.actions] == []
    # More capture than one function checks: the champion's next window goes to a Processing
    # job, run by the twin with the jobs' role; its end event reaches the drift function.
    put_capture(emulator, resources, "champion", at=now + timedelta(minutes=2, seconds=10))
    run = scheduled_drift_check(emulator, JOBS, resources, now=now + timedelta(minutes=3),
                                topic_arn=topic, iam=iam)  # fmt: skip
    # (Both variants: the window's listing counts the files of its hours, read or not.)
    assert {job.status for job in run.jobs} == {"Completed"}, [j.logs for j in run.jobs]
    assert all(result["ok"] for _, result in run.job_results), run.job_results

    # The deploy function against the serving stack (CloudFormation stubbed: the emulator does
    # not run stacks); every other call goes to the emulator.
    packages = emulator.client("sagemaker").list_model_packages(
        ModelPackageGroupName=CONFIG.model_package_group_name
    )["ModelPackageSummaryList"]
    champion, challenger = sorted(p["ModelPackageArn"] for p in packages)
    cloudformation = AwsTarget(region=emulator.region).client("cloudformation")
    stack = {"Stacks": [{
        "StackName": names.serving_stack(CONFIG), "StackStatus": "UPDATE_COMPLETE",
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        "Parameters": [
            {"ParameterKey": "ChampionModelPackageArn", "ParameterValue": champion},
            {"ParameterKey": "ChallengerModelPackageArn", "ParameterValue": ""},
            {"ParameterKey": "BootstrapVersion", "ParameterValue": "/cdk-bootstrap/hnb659fds/version"},
        ],
    }]}  # fmt: skip
    real_client = AwsTarget.client
    monkeypatch.setattr(
        AwsTarget,
        "client",
        lambda self, name, **kw: (
            cloudformation if name == "cloudformation" else real_client(self, name, **kw)
        ),
    )
    deploy = DeploySettings.for_platform(
        CONFIG, audit_bucket=resources.reports_bucket, topic_arn=topic,
        cloudformation_role_arn=iam.cloudformation_role_arn,
    )  # fmt: skip
    with Stubber(cloudformation) as stubber:
        stubber.add_response("describe_stacks", stack)
        stubber.add_response("describe_stacks", stack)
        stubber.add_response("update_stack", {"StackId": "id"})
        outcome, _ = invoke_function(
            specs.DEPLOY, approval_event(challenger), settings=deploy, **common
        )
        stubber.assert_no_pending_responses()
    assert outcome["ok"], outcome


def test_every_call_is_allowed_by_the_template_and_every_grant_is_needed(
    emulator: AwsTarget,
    serving: tuple[PlatformResources, Any],
    aws_roles: tuple[TwinIam, dict[str, Identity], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    iam, identities, topic = aws_roles
    # Evidently's page is a fake: rendering it makes no call (its PutObject still happens),
    # and the real page is tested where it is the point (test_drift_scheduled, the demo).
    renderer = FakeRenderer()
    monkeypatch.setattr(check_drift, "evidently_html", renderer)
    run_every_function(emulator, serving, iam, topic, monkeypatch)
    assert renderer.calls  # the drift reports were written

    denied = [f"{f} {op}: {d}" for f, op, d in iam.decisions if not d.allowed]
    assert not denied, "\n".join(denied)
    made = {f: {d.request for g, _, d in iam.decisions if g == f} for f in identities}
    assert all(made.values()), {f: len(r) for f, r in made.items()}
    drift_actions = {r.action for r in made["drift"]}
    assert {"sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
            "iam:PassRole"} <= drift_actions  # fmt: skip
    # The implied requests are judged too: KMS through S3 and SNS, CloudFormation's PassRole
    # and its read of the SSM-typed bootstrap parameter with the caller's credentials.
    deploy_actions = {r.action for r in made["deploy"]}
    assert {"iam:PassRole", "ssm:GetParameters", "kms:GenerateDataKey",
            "sagemaker:DescribeModelPackage", "cloudformation:UpdateStack"} <= deploy_actions  # fmt: skip

    # Minimal: what is granted and never asked for is explained, and nothing else is.
    unexplained = {}
    for function, identity in identities.items():
        granted = {
            action
            for document in identity.named_policies()
            for statement in document["policy"]["Statement"]
            for action in _as_list(statement["Action"])
        }
        for action in granted - {r.action for r in made[function]}:
            unexplained[(function, action)] = NOT_CALLED.get((function, action))
    assert {k for k, why in unexplained.items() if why is None} == set()
    assert set(unexplained) == set(NOT_CALLED), set(NOT_CALLED) - set(unexplained)

    # And every statement a call needs is load-bearing: without it, a call is refused.
    for function, identity in identities.items():
        for name, statement, without in _each_statement_removed(identity):
            needed = set(_as_list(statement["Action"])) & {r.action for r in made[function]}
            if not needed:
                continue
            decisions = simulator().evaluate_many(
                sorted(made[function], key=str), without, resource_policies=iam.key_policies()
            )
            refused: list[Decision] = [d for d in decisions if not d.allowed]
            assert refused, f"{function}: nothing needs {name} {statement.get('Sid')}"


def _each_statement_removed(identity: Identity) -> Iterator[tuple[str, dict[str, Any], Identity]]:
    documents = {d["name"]: d["policy"] for d in identity.named_policies()}
    for name, document in documents.items():
        statements = document["Statement"]
        for i, statement in enumerate(statements):
            reduced = {**document, "Statement": statements[:i] + statements[i + 1 :]}
            yield name, statement, Identity(identity.role_arn, {**documents, name: reduced})


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_recorded_calls_are_json(aws_roles: tuple[TwinIam, dict[str, Identity], str]) -> None:
    """The identities handed to the evaluator are plain JSON (no tokens left)."""
    _, identities, _ = aws_roles
    text = json.dumps([i.named_policies() for i in identities.values()])
    assert "Fn::" not in text
    assert '"Ref"' not in text
