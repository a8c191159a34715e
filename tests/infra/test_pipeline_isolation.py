"""The pipeline's jobs: network isolation, traffic encryption, the VPC option, job log groups."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from constructs import IConstruct

import stacks.pipeline
from mlops.core.config import PlatformConfig, read_cdk_json_context
from stacks.compliance import acknowledge
from stacks.pipeline import JOB_LOG_GROUPS, JobLogGroups
from stacks.pipeline_definition import JOB_STEPS, build_definition, needs_network
from stacks.platform import Platform
from tests.conftest import ROOT
from tests.infra.conftest import BuildFn
from tests.infra.test_compliance import PACKS, findings
from tests.infra.test_pipeline_definition import SPEC, steps
from tests.infra.test_pipeline_stack import as_list, pipeline, statements

SUBNETS = ("subnet-0123456789abcdef0", "subnet-0fedcba9876543210")
GROUPS = ("sg-0123456789abcdef0",)
MLFLOW_ARN = (
    "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:mlflow-tracking-server/x"
)
# Which jobs run isolated: the tracked training job is the only one that needs the network.
ISOLATED = {
    "untracked": {"Preprocess": True, "Train": True, "Evaluate": True},
    "tracked": {"Preprocess": True, "Train": False, "Evaluate": True},
}
VPC_CONTEXT = {
    "vpc_subnet_ids": ",".join(SUBNETS),
    "vpc_security_group_ids": ",".join(GROUPS),
    "enable_mlflow_server": True,
    "create_job_log_groups": False,
}
EC2_PREFIX = "arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>"


def network(job: dict[str, Any]) -> dict[str, Any]:
    """A job step's network settings, the same shape for processing and training."""
    arguments = job["Arguments"]
    if job["Type"] == "Processing":
        config: dict[str, Any] = arguments["NetworkConfig"]
        return config
    return {
        key: arguments[key]
        for key in ("EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "VpcConfig")
        if key in arguments
    }


def jobs(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = steps(definition)
    return {name: network(found[name]) for name in JOB_STEPS}


def deployed(template: Template) -> dict[str, Any]:
    body = pipeline(template)["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def resolve(value: Any) -> str:
    """A Fn::Join of pseudo parameters and strings, as cdk-nag writes it."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    separator, parts = value["Fn::Join"]
    return str(separator.join(resolve(part) for part in parts))


@pytest.fixture(scope="module")
def tracked() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(
        build_definition(replace(SPEC, mlflow_tracking_server_arn=MLFLOW_ARN))
    )
    return parsed


@pytest.fixture(scope="module")
def in_vpc() -> dict[str, Any]:
    spec = replace(
        SPEC, mlflow_tracking_server_arn=MLFLOW_ARN, subnets=SUBNETS, security_group_ids=GROUPS
    )
    parsed: dict[str, Any] = json.loads(build_definition(spec))
    return parsed


@pytest.fixture(scope="module")
def untracked() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(build_definition(SPEC))
    return parsed


Pairs = set[tuple[str, str]]


@pytest.fixture(scope="module")
def vpc_build(build: BuildFn) -> tuple[Platform, Pairs, Pairs]:
    """The platform in a VPC; with the (path, rule) pairs the pipeline stack acknowledges and
    those cdk-nag finds in it when they are not applied. They are applied afterwards."""
    recorded: list[tuple[IConstruct, str, str]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            stacks.pipeline,
            "acknowledge",
            lambda scope, rule, reason: recorded.append((scope, rule, reason)),
        )
        app, platform = build(**VPC_CONTEXT)
    stack = platform.pipeline.node.path
    found = {
        (path or "", rule)
        for pack in PACKS
        for rule, paths in findings(app, pack)
        for path in paths
        if (path or "").startswith(stack + "/")
    }
    for scope, rule, reason in recorded:
        acknowledge(scope, rule, reason)
    return platform, {(scope.node.path, rule) for scope, rule, _ in recorded}, found


@pytest.fixture(scope="module")
def vpc_template(vpc_build: tuple[Platform, Pairs, Pairs]) -> Template:
    return Template.from_stack(vpc_build[0].pipeline)


# Isolation, decided per step.


@pytest.mark.parametrize("mode", sorted(ISOLATED))
def test_jobs_are_isolated_unless_they_need_the_network(
    mode: str, tracked: dict[str, Any], untracked: dict[str, Any]
) -> None:
    definition = tracked if mode == "tracked" else untracked
    isolation = {name: job["EnableNetworkIsolation"] for name, job in jobs(definition).items()}
    assert isolation == ISOLATED[mode]
    spec = replace(SPEC, mlflow_tracking_server_arn=MLFLOW_ARN if mode == "tracked" else None)
    assert {name: not needs_network(name, spec) for name in JOB_STEPS} == ISOLATED[mode]


@pytest.mark.parametrize(
    ("fixture", "mode"),
    [("pipeline_template", "untracked"), ("mlflow_pipeline_template", "tracked")],
)
def test_deployed_definition_isolates_the_same_jobs(
    request: pytest.FixtureRequest, fixture: str, mode: str
) -> None:
    # The definition inside the synthesized stack, for the default context and with MLflow.
    definition = deployed(request.getfixturevalue(fixture))
    isolation = {name: job["EnableNetworkIsolation"] for name, job in jobs(definition).items()}
    assert isolation == ISOLATED[mode]


def test_only_job_steps_have_a_network_setting() -> None:
    with pytest.raises(ValueError, match="not a job step"):
        needs_network("Register", SPEC)


def test_isolated_jobs_download_nothing_themselves(
    tracked: dict[str, Any], untracked: dict[str, Any]
) -> None:
    # An isolated container has no credentials and no route to S3: every S3 object it uses
    # must come in as an input or channel that SageMaker downloads, never as an s3:// URI
    # handed to the container (the training toolkit would fetch sagemaker_submit_directory).
    for definition in (tracked, untracked):
        found = steps(definition)
        for name in JOB_STEPS:
            arguments = found[name]["Arguments"]
            handed = {
                **arguments.get("HyperParameters", {}),
                **arguments.get("Environment", {}),
                **{
                    str(i): a
                    for i, a in enumerate(
                        arguments.get("AppSpecification", {}).get("ContainerArguments", [])
                    )
                },
            }
            s3 = {k: v for k, v in handed.items() if isinstance(v, str) and "s3://" in v}
            assert s3 == {}, f"{name} hands its container S3 URIs: {s3}"


def test_training_code_arrives_as_a_channel(untracked: dict[str, Any]) -> None:
    train = steps(untracked)["Train"]["Arguments"]
    (code,) = [c for c in train["InputDataConfig"] if c["ChannelName"] == "code"]
    assert code["DataSource"]["S3DataSource"]["S3Uri"] == "s3://${CodeBucket}/${SourceArchiveKey}"
    # SageMaker names the downloaded file after the object key's last part.
    assert train["HyperParameters"]["sagemaker_submit_directory"] == (
        "/opt/ml/input/data/code/${SourceArchiveKey}"
    )


def test_traffic_between_instances_is_encrypted(
    tracked: dict[str, Any], untracked: dict[str, Any]
) -> None:
    for definition in (tracked, untracked):
        for name, job in jobs(definition).items():
            assert job["EnableInterContainerTrafficEncryption"] is True, name


# The VPC option.


def test_no_vpc_unless_configured(
    untracked: dict[str, Any], tracked: dict[str, Any], pipeline_template: Template
) -> None:
    for definition in (untracked, tracked, deployed(pipeline_template)):
        for name, job in jobs(definition).items():
            assert "VpcConfig" not in job, name
    actions = {a for s in statements(pipeline_template) for a in as_list(s["Action"])}
    assert not {a for a in actions if a.startswith("ec2:")}


def test_every_job_runs_in_the_configured_vpc(
    in_vpc: dict[str, Any], vpc_template: Template
) -> None:
    for definition in (in_vpc, deployed(vpc_template)):
        for name, job in jobs(definition).items():
            assert job["VpcConfig"] == {
                "Subnets": list(SUBNETS),
                "SecurityGroupIds": list(GROUPS),
            }, name
        assert jobs(definition)["Train"]["EnableNetworkIsolation"] is False  # tracked
        assert jobs(definition)["Preprocess"]["EnableNetworkIsolation"] is True


def test_half_a_vpc_is_refused() -> None:
    with pytest.raises(ValueError, match="together"):
        build_definition(replace(SPEC, subnets=SUBNETS))


def test_vpc_permissions_are_scoped_to_the_configured_network(vpc_template: Template) -> None:
    ec2 = [
        s
        for s in statements(vpc_template)
        if any(a.startswith("ec2:") for a in as_list(s["Action"]))
    ]
    by_actions = {
        tuple(sorted(as_list(s["Action"]))): (
            sorted(resolve(r) for r in as_list(s["Resource"])),
            s.get("Condition"),
        )
        for s in ec2
    }
    subnets = [f"{EC2_PREFIX}:subnet/{s}" for s in SUBNETS]
    groups = [f"{EC2_PREFIX}:security-group/{g}" for g in GROUPS]
    assert by_actions[
        (
            "ec2:DescribeDhcpOptions",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSubnets",
            "ec2:DescribeVpcs",
        )
    ] == (["*"], None)
    assert by_actions[("ec2:CreateNetworkInterface",)] == (sorted(subnets + groups), None)
    resources, condition = by_actions[
        (
            "ec2:CreateNetworkInterface",
            "ec2:CreateNetworkInterfacePermission",
            "ec2:DeleteNetworkInterface",
            "ec2:DeleteNetworkInterfacePermission",
        )
    ]
    assert resources == [f"{EC2_PREFIX}:network-interface/*"]
    assert condition is not None
    assert [resolve(arn) for arn in condition["ArnEquals"]["ec2:Subnet"]] == subnets
    assert len(ec2) == 3


def test_vpc_findings_are_all_acknowledged_and_every_acknowledgement_is_needed(
    vpc_build: tuple[Platform, Pairs, Pairs],
) -> None:
    _, recorded, found = vpc_build

    def covers(scope: str, path: str) -> bool:
        return path == scope or path.startswith(scope + "/")

    assert any("network-interface/*" in rule for _, rule in found)
    for scope, rule in recorded:
        assert any(r == rule and covers(scope, p) for p, r in found), f"{rule} is not needed"
    for path, rule in found:
        assert any(r == rule and covers(s, path) for s, r in recorded), f"{rule} at {path}"


# Job log groups.


def log_groups(template: Template) -> dict[str, Any]:
    return {
        r["Properties"]["LogGroupName"]: r
        for r in template.find_resources("AWS::Logs::LogGroup").values()
    }


def logs_statement(template: Template) -> dict[str, Any]:
    (found,) = [
        s for s in statements(template) if any(a.startswith("logs:") for a in as_list(s["Action"]))
    ]
    return found


def test_job_log_groups_are_encrypted_retained_and_waited_for(pipeline_template: Template) -> None:
    groups = log_groups(pipeline_template)
    assert sorted(groups) == sorted(JOB_LOG_GROUPS.values())
    ((key_id, key),) = pipeline_template.find_resources("AWS::KMS::Key").items()
    assert key["Properties"]["EnableKeyRotation"] is True
    for group in groups.values():
        assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        assert group["Properties"]["RetentionInDays"] == 90  # cdk.json's log_retention_days
        assert group["DeletionPolicy"] == group["UpdateReplacePolicy"] == "Retain"
    assert key["DeletionPolicy"] == "Retain"  # the retained groups still need it
    # No execution can start before the groups exist.
    ((_, resource),) = pipeline_template.find_resources("AWS::SageMaker::Pipeline").items()
    group_ids = set(pipeline_template.find_resources("AWS::Logs::LogGroup"))
    assert group_ids <= set(resource["DependsOn"])


def test_only_cloudwatch_logs_uses_the_key_and_only_for_the_job_log_groups(
    pipeline_template: Template,
) -> None:
    (key,) = pipeline_template.find_resources("AWS::KMS::Key").values()
    (service,) = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" in s["Principal"]
    ]
    assert resolve(service["Principal"]["Service"]) == "logs.<AWS::Region>.amazonaws.com"
    context = service["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    prefix = "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
    assert sorted(resolve(arn) for arn in context) == sorted(
        prefix + name for name in JOB_LOG_GROUPS.values()
    )


def test_retention_follows_the_config() -> None:
    context = {**read_cdk_json_context(ROOT / "cdk.json"), "log_retention_days": 365}
    config = PlatformConfig.from_context(context)
    stack = cdk.Stack(cdk.App(), "Logs", env=cdk.Environment(account="1" * 12, region="us-east-1"))
    JobLogGroups(stack, "JobLogs", config=config)
    retention = {
        r["Properties"]["RetentionInDays"]
        for r in Template.from_stack(stack).find_resources("AWS::Logs::LogGroup").values()
    }
    assert retention == {365}


def test_role_writes_only_to_the_job_log_groups(
    pipeline_template: Template, vpc_template: Template
) -> None:
    prefix = "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
    for template in (pipeline_template, vpc_template):
        statement = logs_statement(template)
        assert sorted(resolve(r) for r in statement["Resource"]) == sorted(
            f"{prefix}{name}:*" for name in JOB_LOG_GROUPS.values()
        )
    # The stack creates the groups: the jobs only add streams to them.
    assert "logs:CreateLogGroup" not in logs_statement(pipeline_template)["Action"]
    # Another stage (or SageMaker) owns them: the first job may have to create them.
    assert "logs:CreateLogGroup" in logs_statement(vpc_template)["Action"]


def test_without_job_log_groups_nothing_is_created(vpc_template: Template) -> None:
    assert log_groups(vpc_template) == {}
    assert vpc_template.find_resources("AWS::KMS::Key") == {}


def test_job_log_logical_ids_are_pinned(pipeline_template: Template) -> None:
    # Stateful and retained: a changed logical ID would orphan them and then fail the deploy
    # on the existing names (see tests/infra/test_logical_ids.py).
    resources = pipeline_template.to_json()["Resources"]
    assert {
        logical_id: r["Type"]
        for logical_id, r in resources.items()
        if r["Type"] in ("AWS::KMS::Key", "AWS::Logs::LogGroup")
    } == {
        "TrainingJobLogsKey86A1F94B": "AWS::KMS::Key",
        "TrainingJobLogsProcessingJobs54819581": "AWS::Logs::LogGroup",
        "TrainingJobLogsTrainingJobs7F904E3C": "AWS::Logs::LogGroup",
    }
