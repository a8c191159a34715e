"""`mlops aws preflight`: the pure checks, the fact readers against botocore's Stubber (the
requests as AWS would receive them, the answers in AWS's own shapes), the whole preflight on
a fresh account and a ready one, and the command. No network: every client is stubbed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from mlops.adapters import preflight as facts
from mlops.cli import app
from mlops.cli import aws as command
from mlops.core import names
from mlops.core.config import PlatformConfig
from mlops.core.preflight import (
    DEFAULT_BOOTSTRAP_VERSION,
    JOB_LOG_GROUPS,
    LAMBDA_CONCURRENCY_QUOTA,
    Check,
    Leftovers,
    Quota,
    RetainedResource,
    Status,
    check_bootstrap,
    check_docker,
    check_instance_types,
    check_lambda_concurrency,
    check_leftovers,
    check_quotas,
    failed,
    quota_needs,
    removal,
    required_bootstrap_version,
    template_qualifier,
)
from mlops.usecases.preflight import FUNCTION_OUTPUTS, aws_preflight, embedded_preflight

CONFIG = PlatformConfig()
ACCOUNT = "111122223333"
# What aws-cdk-lib writes into every template it synthesizes (DefaultStackSynthesizer).
SYNTHESIZED = {
    "Parameters": {
        "BootstrapVersion": {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/cdk-bootstrap/hnb659fds/version",
        }
    },
    "Rules": {
        "CheckBootstrapVersion": {
            "Assertions": [
                {
                    "Assert": {
                        "Fn::Not": [
                            {
                                "Fn::Contains": [
                                    ["1", "2", "3", "4", "5"],
                                    {"Ref": "BootstrapVersion"},
                                ]
                            }
                        ]
                    },
                    "AssertDescription": "CDK bootstrap stack version 6 required.",
                }
            ]
        }
    },
}
DOCKER_OK = facts.DockerStatus("docker", found=True, error=None)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


# --- the pure checks -------------------------------------------------------------------------


def test_the_required_bootstrap_version_is_read_from_cdks_rule() -> None:
    assert required_bootstrap_version(SYNTHESIZED) == 6
    assert template_qualifier(SYNTHESIZED) == "hnb659fds"
    assert required_bootstrap_version({"Resources": {}}) is None
    assert template_qualifier({}) is None


def test_bootstrap_missing_fails_and_says_make_bootstrap() -> None:
    check = check_bootstrap(None, required=6, source="x", qualifier="hnb659fds", region="eu-west-1")
    assert check.status is Status.FAIL
    assert "/cdk-bootstrap/hnb659fds/version does not exist in eu-west-1" in check.detail
    assert "make bootstrap" in check.action
    assert "--qualifier" not in check.action


def test_an_old_bootstrap_fails_and_a_current_one_passes() -> None:
    old = check_bootstrap("5", required=6, source="t.json", qualifier="custom1", region="us-east-1")
    assert old.status is Status.FAIL
    assert "bootstrap version 5" in old.detail
    assert ">= 6" in old.detail
    assert "t.json" in old.detail
    assert "make bootstrap" in old.action
    assert "--qualifier custom1" in old.action
    assert (
        check_bootstrap("6", required=6, source="t", qualifier="q", region="r").status is Status.OK
    )
    assert (
        check_bootstrap("30", required=6, source="t", qualifier="q", region="r").status is Status.OK
    )
    assert (
        check_bootstrap("x", required=6, source="t", qualifier="q", region="r").status
        is Status.FAIL
    )


def test_docker_is_a_failure_only_where_a_deploy_needs_it() -> None:
    missing = check_docker("docker", found=False, error=None, needed=True)
    assert missing.status is Status.FAIL
    assert "not on PATH" in missing.detail
    assert "install Docker" in missing.action
    assert check_docker("docker", found=False, error=None, needed=False).status is Status.WARN
    down = check_docker("finch", found=True, error="Cannot connect", needed=True)
    assert down.status is Status.FAIL
    assert "`finch info` failed: Cannot connect" in down.detail
    assert check_docker("docker", found=True, error=None, needed=True).status is Status.OK


@pytest.mark.parametrize(
    ("limit", "unreserved", "reservation", "already", "status"),
    [
        (10, 10, 1, 0, Status.FAIL),  # a new account: 10 - 3 < 100
        (10, 10, 0, 0, Status.WARN),  # no reservation, but everything shares 10
        (1000, 1000, 1, 0, Status.OK),
        (1000, 1000, 0, 0, Status.OK),
        (1000, 102, 1, 0, Status.FAIL),  # 99 would be left
        (1000, 102, 1, 3, Status.OK),  # a redeploy: the functions reserve those 3 already
        (150, 150, 20, 0, Status.FAIL),
    ],
)
def test_lambda_concurrency(
    limit: int, unreserved: int, reservation: int, already: int, status: Status
) -> None:
    check = check_lambda_concurrency(
        limit=limit, unreserved=unreserved, reservation=reservation, already_reserved=already
    )
    assert check.status is status
    if status is Status.FAIL:
        assert "function_reserved_concurrency=0" in check.action
    if status is not Status.OK:
        assert LAMBDA_CONCURRENCY_QUOTA in check.action


def test_quota_needs_count_both_variants_on_one_type() -> None:
    same = quota_needs(
        CONFIG.model_copy(update={"endpoint_min_instances": 1, "endpoint_max_instances": 4})
    )
    assert [(n.quota_name, n.minimum, n.wanted) for n in same] == [
        ("ml.m5.large for endpoint usage", 2, 8),
        ("ml.m5.large for training job usage", 1, 1),
        ("ml.m5.large for processing job usage", 1, 1),
        ("ml.m5.xlarge for processing job usage", 0, 2),  # drift_job_instance_type x count
    ]
    split = quota_needs(CONFIG.model_copy(update={"challenger_instance_type": "ml.c5.xlarge"}))
    assert [(n.quota_name, n.minimum, n.wanted, n.keys) for n in split[:2]] == [
        ("ml.m5.large for endpoint usage", 1, 4, ("champion_instance_type",)),
        ("ml.c5.xlarge for endpoint usage", 1, 4, ("challenger_instance_type",)),
    ]


def quotas(
    endpoint: float, training: float = 1, processing: float = 1, drift: float = 2
) -> dict[str, Quota]:
    return {
        "ml.m5.large for endpoint usage": Quota("L-2F737F8D", endpoint),
        "ml.m5.large for training job usage": Quota("L-D2B2D1B2", training),
        "ml.m5.large for processing job usage": Quota("L-69B3E1C5", processing),
        "ml.m5.xlarge for processing job usage": Quota("L-DRIFTJOB", drift),
    }


def test_a_zero_endpoint_quota_fails_with_the_request_to_raise_it() -> None:
    checks = by_name(check_quotas(quota_needs(CONFIG), quotas(endpoint=0, training=0)))
    endpoint = checks["quota: ml.m5.large for endpoint usage"]
    assert endpoint.status is Status.FAIL
    assert "quota 0 (L-2F737F8D)" in endpoint.detail
    assert endpoint.action == (
        "request an increase: aws service-quotas request-service-quota-increase "
        "--service-code sagemaker --quota-code L-2F737F8D --desired-value 8"
    )
    assert checks["quota: ml.m5.large for training job usage"].status is Status.FAIL
    assert (
        "--quota-code L-D2B2D1B2 --desired-value 1"
        in checks["quota: ml.m5.large for training job usage"].action
    )
    assert checks["quota: ml.m5.large for processing job usage"].status is Status.OK


def test_an_endpoint_quota_below_autoscaling_is_a_warning() -> None:
    low = by_name(check_quotas(quota_needs(CONFIG), quotas(endpoint=2)))
    assert low["quota: ml.m5.large for endpoint usage"].status is Status.WARN
    assert "--desired-value 8" in low["quota: ml.m5.large for endpoint usage"].action
    assert not failed(low.values())
    enough = check_quotas(quota_needs(CONFIG), quotas(endpoint=8))
    assert all(check.status is Status.OK for check in enough)


def test_a_drift_job_quota_below_its_instances_is_a_warning() -> None:
    """Many accounts start at 0: only a window above drift_job_threshold_mb would fail."""
    drift = "quota: ml.m5.xlarge for processing job usage"
    zero = by_name(check_quotas(quota_needs(CONFIG), quotas(endpoint=8, drift=0)))
    assert zero[drift].status is Status.WARN
    assert zero[drift].detail == (
        "quota 0 (L-DRIFTJOB): a drift check run as a Processing job "
        "(drift_job_instance_count) needs 2"
    )
    assert zero[drift].action == (
        "request an increase: aws service-quotas request-service-quota-increase "
        "--service-code sagemaker --quota-code L-DRIFTJOB --desired-value 2 "
        "(or lower drift_job_instance_count)"
    )
    assert [c.name for c in zero.values() if c.status is not Status.OK] == [drift]
    assert by_name(check_quotas(quota_needs(CONFIG), quotas(endpoint=8)))[drift].status is (
        Status.OK
    )


def test_a_drift_job_on_the_pipelines_processing_type_shares_its_quota() -> None:
    config = CONFIG.model_copy(
        update={"drift_job_instance_type": "ml.m5.large", "drift_job_instance_count": 3}
    )
    (processing,) = [n for n in quota_needs(config) if n.usage == "processing job"]
    assert (processing.quota_name, processing.minimum, processing.wanted, processing.keys) == (
        "ml.m5.large for processing job usage", 1, 4,
        ("processing_instance_type", "drift_job_instance_type"),
    )  # fmt: skip
    name = "quota: ml.m5.large for processing job usage"
    one = by_name(check_quotas(quota_needs(config), quotas(endpoint=8, processing=1)))[name]
    assert one.status is Status.WARN
    assert "enough for 1, but a pipeline run's processing step and a drift check" in one.detail
    assert "--desired-value 4 (or lower drift_job_instance_count)" in one.action
    none = by_name(check_quotas(quota_needs(config), quotas(endpoint=8, processing=0)))[name]
    assert none.status is Status.FAIL
    assert "--desired-value 4" in none.action


def test_a_type_without_a_quota_in_the_region_is_not_offered_there() -> None:
    config = CONFIG.model_copy(update={"challenger_instance_type": "ml.inf2.xlarge"})
    needs = quota_needs(config)
    check = check_instance_types("eu-south-2", needs, quotas(endpoint=4))
    assert check.status is Status.FAIL
    assert "not offered in eu-south-2: ml.inf2.xlarge for endpoints" in check.detail
    assert "-c challenger_instance_type=..." in check.action
    quota = by_name(check_quotas(needs, quotas(endpoint=4)))[
        "quota: ml.inf2.xlarge for endpoint usage"
    ]
    assert quota.status is Status.NA  # failed once, by the instance types check
    assert check_instance_types("us-east-1", quota_needs(CONFIG), quotas(1)).status is Status.OK


def leftovers(
    *, registry: str | None = None, pipeline: str | None = None, group: bool = False,
    server: bool = False, logs: tuple[str, ...] = (),
) -> Leftovers:  # fmt: skip
    return Leftovers(
        stacks={names.registry_stack(CONFIG): registry, names.pipeline_stack(CONFIG): pipeline},
        package_group=group,
        mlflow_server=server,
        log_groups=frozenset(logs),
    )


def test_leftovers_of_a_destroy_block_a_redeploy() -> None:
    mlflow = CONFIG.model_copy(update={"enable_mlflow_server": True})
    checks = by_name(
        check_leftovers(mlflow, leftovers(group=True, server=True, logs=JOB_LOG_GROUPS))
    )
    group = checks["leftover: package group"]
    assert group.status is Status.FAIL
    assert "mlops-dev-visits exists" in group.detail
    assert "cdk import" in group.action
    assert "delete-model-package-group" in group.action
    server = checks["leftover: mlflow server"]
    assert server.status is Status.FAIL
    assert "cdk import" in server.action
    logs = checks["leftover: job log groups"]
    assert logs.status is Status.FAIL
    assert "-c create_job_log_groups=false" in logs.action
    assert "delete-log-group --log-group-name /aws/sagemaker/TrainingJobs" in logs.action


def test_leftovers_are_expected_while_their_stacks_are_deployed() -> None:
    mlflow = CONFIG.model_copy(update={"enable_mlflow_server": True})
    found = leftovers(
        registry="UPDATE_COMPLETE", pipeline="CREATE_COMPLETE", group=True, server=True,
        logs=JOB_LOG_GROUPS,
    )  # fmt: skip
    assert {c.status for c in check_leftovers(mlflow, found)} == {Status.OK}
    # A first create that rolled back holds nothing: what it retained still blocks.
    rolled_back = leftovers(registry="ROLLBACK_COMPLETE", group=True)
    assert (
        by_name(check_leftovers(CONFIG, rolled_back))["leftover: package group"].status
        is Status.FAIL
    )


def test_job_log_groups_not_created_by_the_platform_are_no_obstacle() -> None:
    config = CONFIG.model_copy(update={"create_job_log_groups": False})
    check = by_name(check_leftovers(config, leftovers(logs=JOB_LOG_GROUPS)))[
        "leftover: job log groups"
    ]
    assert check.status is Status.OK
    # A retained MLflow server the config no longer asks for blocks nothing, but it costs.
    server = by_name(check_leftovers(CONFIG, leftovers(server=True)))["leftover: mlflow server"]
    assert server.status is Status.WARN
    assert "delete-mlflow-tracking-server" in server.action


# --- the fact readers, against stubbed clients -----------------------------------------------


# One session for the module: it caches the service models its clients load.
SESSION = boto3.Session(
    region_name="us-east-1",
    aws_access_key_id="stub",
    aws_secret_access_key="stub",  # noqa: S106 - never sent: every client is stubbed
)


def client(service: str) -> Any:
    return SESSION.client(service)  # type: ignore[call-overload]


@pytest.fixture
def stubbed() -> Iterator[dict[str, Stubber]]:
    """A stubbed client per service; every queued answer must have been asked for."""
    services = ("sts", "ssm", "lambda", "sagemaker", "cloudformation", "service-quotas", "logs")
    stubbers = {service: Stubber(client(service)) for service in services}
    for stubber in stubbers.values():
        stubber.activate()
    yield stubbers
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def api(stubber: Stubber) -> Any:
    """A stubbed client, as the typed client a reader takes."""
    return stubber.client


def clients(stubbed: dict[str, Stubber]) -> facts.PreflightClients:
    c: dict[str, Any] = {service: stubber.client for service, stubber in stubbed.items()}
    return facts.PreflightClients(
        sts=c["sts"], ssm=c["ssm"], lambda_=c["lambda"], sagemaker=c["sagemaker"],
        cloudformation=c["cloudformation"], quotas=c["service-quotas"], logs=c["logs"],
    )  # fmt: skip


def answer_bootstrap(ssm: Stubber, version: str | None, qualifier: str = "hnb659fds") -> None:
    name = f"/cdk-bootstrap/{qualifier}/version"
    if version is None:
        ssm.add_client_error(
            "get_parameter", service_error_code="ParameterNotFound", http_status_code=400,
            expected_params={"Name": name},
        )  # fmt: skip
    else:
        ssm.add_response(
            "get_parameter",
            {"Parameter": {"Name": name, "Type": "String", "Value": version}},
            {"Name": name},
        )


def answer_concurrency(lambda_: Stubber, limit: int, unreserved: int) -> None:
    lambda_.add_response(
        "get_account_settings",
        {
            "AccountLimit": {
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": unreserved,
            }
        },
        {},
    )


def quota_page(entries: dict[str, tuple[str, float]], token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "Quotas": [
            {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": code, "Value": value}
            for name, (code, value) in entries.items()
        ]
    }
    if token:
        page["NextToken"] = token
    return page


def answer_quotas(
    service_quotas: Stubber,
    applied: dict[str, tuple[str, float]],
    defaults: dict[str, tuple[str, float]] | None = None,
) -> None:
    """Defaults on one page; the applied values on two, as ListServiceQuotas pages them."""
    first = {"ServiceCode": "sagemaker", "MaxResults": 100}
    service_quotas.add_response(
        "list_aws_default_service_quotas", quota_page(defaults or {}), first
    )
    items = list(applied.items())
    service_quotas.add_response("list_service_quotas", quota_page(dict(items[:1]), "page2"), first)
    service_quotas.add_response(
        "list_service_quotas", quota_page(dict(items[1:])), {**first, "NextToken": "page2"}
    )


def sagemaker_quotas(
    endpoint: float, training: float = 1, processing: float = 1, drift: float = 2
) -> dict[str, tuple[str, float]]:
    return {
        name: (q.code, q.value) for name, q in quotas(endpoint, training, processing, drift).items()
    }


def answer_stack(
    cloudformation: Stubber, name: str, status: str | None, outputs: dict[str, str] | None = None
) -> None:
    if status is None:
        cloudformation.add_client_error(
            "describe_stacks", service_error_code="ValidationError",
            service_message=f"Stack with id {name} does not exist", http_status_code=400,
            expected_params={"StackName": name},
        )  # fmt: skip
        return
    stack = {
        "StackName": name,
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        "StackStatus": status,
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()],
    }
    cloudformation.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": name})


def answer_leftovers(
    stubbed: dict[str, Stubber], *, stacks: str | None, group: bool, server: bool, logs: bool
) -> None:
    for name in (names.registry_stack(CONFIG), names.pipeline_stack(CONFIG)):
        answer_stack(stubbed["cloudformation"], name, stacks)
    sagemaker = stubbed["sagemaker"]
    group_name = CONFIG.model_package_group_name
    if group:
        sagemaker.add_response(
            "describe_model_package_group",
            {
                "ModelPackageGroupName": group_name,
                "ModelPackageGroupArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/{group_name}",
                "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                "CreatedBy": {},
                "ModelPackageGroupStatus": "Completed",
            },
            {"ModelPackageGroupName": group_name},
        )
    else:
        sagemaker.add_client_error(
            "describe_model_package_group", service_error_code="ValidationException",
            service_message=f"ModelPackageGroup {group_name} does not exist.",
            http_status_code=400, expected_params={"ModelPackageGroupName": group_name},
        )  # fmt: skip
    server_name = CONFIG.mlflow_tracking_server_name
    if server:
        sagemaker.add_response(
            "describe_mlflow_tracking_server",
            {"TrackingServerName": server_name, "TrackingServerStatus": "Created"},
            {"TrackingServerName": server_name},
        )
    else:
        sagemaker.add_client_error(
            "describe_mlflow_tracking_server", service_error_code="ResourceNotFound",
            http_status_code=400, expected_params={"TrackingServerName": server_name},
        )  # fmt: skip
    for name in JOB_LOG_GROUPS:
        # A prefix query: a longer name that merely starts with it is not the group.
        found = [{"logGroupName": name}] if logs else [{"logGroupName": f"{name}-other"}]
        stubbed["logs"].add_response(
            "describe_log_groups", {"logGroups": found}, {"logGroupNamePrefix": name, "limit": 50}
        )


def test_reading_the_bootstrap_version(stubbed: dict[str, Stubber]) -> None:
    answer_bootstrap(stubbed["ssm"], None)
    answer_bootstrap(stubbed["ssm"], "5")
    ssm = api(stubbed["ssm"])
    assert facts.bootstrap_version(ssm, "/cdk-bootstrap/hnb659fds/version") is None
    assert facts.bootstrap_version(ssm, "/cdk-bootstrap/hnb659fds/version") == "5"


def test_reading_quotas_pages_and_puts_applied_values_over_defaults(
    stubbed: dict[str, Stubber],
) -> None:
    answer_quotas(
        stubbed["service-quotas"],
        applied=sagemaker_quotas(endpoint=0),
        defaults={
            "ml.m5.large for endpoint usage": ("L-2F737F8D", 4),
            "ml.g5.xlarge for endpoint usage": ("L-1", 0),
        },
    )
    found = facts.sagemaker_quotas(api(stubbed["service-quotas"]))
    assert found["ml.m5.large for endpoint usage"] == Quota("L-2F737F8D", 0)  # applied wins
    assert found["ml.m5.large for processing job usage"] == Quota("L-69B3E1C5", 1)  # page 2
    assert found["ml.g5.xlarge for endpoint usage"] == Quota("L-1", 0)  # a default only


def test_reading_what_the_platform_functions_reserve(stubbed: dict[str, Stubber]) -> None:
    lambda_ = stubbed["lambda"]
    lambda_.add_response(
        "get_function_concurrency", {"ReservedConcurrentExecutions": 2}, {"FunctionName": "a"}
    )
    lambda_.add_response("get_function_concurrency", {}, {"FunctionName": "b"})
    lambda_.add_client_error(
        "get_function_concurrency", service_error_code="ResourceNotFoundException",
        http_status_code=404, expected_params={"FunctionName": "c"},
    )  # fmt: skip
    assert facts.reserved_concurrency(api(lambda_), ["a", "b", "c"]) == 2


def test_the_required_version_comes_from_cdk_out(tmp_path: Path) -> None:
    assert facts.template_requirement(tmp_path) is None
    (tmp_path / "a.template.json").write_text(json.dumps(SYNTHESIZED))
    (tmp_path / "broken.template.json").write_text("{")
    newer = json.loads(json.dumps(SYNTHESIZED).replace('"5"]', '"5", "6", "7"]'))
    newer["Parameters"]["BootstrapVersion"]["Default"] = "/cdk-bootstrap/team1/version"
    (tmp_path / "b.template.json").write_text(json.dumps(newer))
    found = facts.template_requirement(tmp_path)
    assert found == facts.TemplateRequirement(8, str(tmp_path / "b.template.json"), "team1")


def test_docker_probe_without_docker_with_a_stopped_daemon_and_with_one_running() -> None:
    def never(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise AssertionError("not run without a binary")

    missing = facts.docker_status(binary="docker", which=lambda _: None, run=never)
    assert missing == facts.DockerStatus("docker", found=False, error=None)

    def stopped(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert argv[:2] == ["/usr/bin/docker", "info"]
        assert kwargs["timeout"] == facts.DOCKER_TIMEOUT_SECONDS
        return subprocess.CompletedProcess(
            argv, 1, "", "Client: ...\nCannot connect to the Docker daemon\n"
        )

    down = facts.docker_status(binary="docker", which=lambda _: "/usr/bin/docker", run=stopped)
    assert down == facts.DockerStatus(
        "docker", found=True, error="Cannot connect to the Docker daemon"
    )

    def hangs(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    slow = facts.docker_status(binary="docker", which=lambda _: "/d", run=hangs, timeout=2)
    assert slow.error == "no answer within 2 s"

    def running(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, "27.3.1\n", "")

    assert facts.docker_status(binary="docker", which=lambda _: "/d", run=running).error is None


def test_the_scikit_learn_image_is_looked_up_per_region() -> None:
    uris, error = facts.sklearn_images("eu-west-1")
    assert error is None
    assert uris["inference"].endswith(
        ".dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    )
    uris, error = facts.sklearn_images("xx-nowhere-1")
    assert uris == {}
    assert error is not None
    assert "xx-nowhere-1" in error


# --- the whole preflight ---------------------------------------------------------------------


def identity(sts: Stubber) -> None:
    sts.add_response(
        "get_caller_identity",
        {"UserId": "AIDA", "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/me"},
        {},
    )


def test_a_fresh_account_fails_with_what_to_do(stubbed: dict[str, Stubber], tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"function_reserved_concurrency": 1})
    identity(stubbed["sts"])
    answer_bootstrap(stubbed["ssm"], None)
    answer_concurrency(stubbed["lambda"], limit=10, unreserved=10)
    answer_stack(stubbed["cloudformation"], names.serving_stack(config), None)
    answer_quotas(stubbed["service-quotas"], sagemaker_quotas(endpoint=0, drift=0))
    answer_leftovers(stubbed, stacks=None, group=True, server=False, logs=True)

    checks = aws_preflight(clients(stubbed), config, docker=DOCKER_OK, cdk_out=tmp_path)

    found = by_name(checks)
    assert failed(checks)
    assert found["credentials"].status is Status.OK
    assert found["cdk bootstrap"].status is Status.FAIL
    assert "make bootstrap" in found["cdk bootstrap"].action
    assert f"(>= {DEFAULT_BOOTSTRAP_VERSION}" not in found["cdk bootstrap"].detail
    assert found["lambda concurrency"].status is Status.FAIL
    assert "leave 7" in found["lambda concurrency"].detail
    endpoint = found["quota: ml.m5.large for endpoint usage"]
    assert endpoint.status is Status.FAIL
    assert "--quota-code L-2F737F8D" in endpoint.action
    drift = found["quota: ml.m5.xlarge for processing job usage"]  # drift jobs: a warning
    assert drift.status is Status.WARN
    assert "--quota-code L-DRIFTJOB --desired-value 2" in drift.action
    assert found["instance types"].status is Status.OK
    assert found["leftover: package group"].status is Status.FAIL
    assert found["leftover: mlflow server"].status is Status.OK
    assert found["leftover: job log groups"].status is Status.FAIL
    assert found["docker"].status is Status.OK
    assert found["scikit-learn image"].status is Status.OK


def test_a_ready_account_passes(stubbed: dict[str, Stubber], tmp_path: Path) -> None:
    (tmp_path / "x.template.json").write_text(json.dumps(SYNTHESIZED))
    config = CONFIG.model_copy(update={"function_reserved_concurrency": 1, "account": ACCOUNT})
    identity(stubbed["sts"])
    answer_bootstrap(stubbed["ssm"], "30")
    answer_concurrency(stubbed["lambda"], limit=1000, unreserved=997)
    functions = {key: f"fn-{key}" for key in FUNCTION_OUTPUTS}
    answer_stack(
        stubbed["cloudformation"], names.serving_stack(config), "UPDATE_COMPLETE", functions
    )
    for name in functions.values():  # deployed already, each reserving 1
        stubbed["lambda"].add_response(
            "get_function_concurrency", {"ReservedConcurrentExecutions": 1}, {"FunctionName": name}
        )
    answer_quotas(stubbed["service-quotas"], sagemaker_quotas(endpoint=8))
    answer_leftovers(stubbed, stacks="UPDATE_COMPLETE", group=True, server=False, logs=True)

    checks = aws_preflight(clients(stubbed), config, docker=DOCKER_OK, cdk_out=tmp_path)

    assert {c.name: c.status for c in checks if c.status is not Status.OK} == {}
    found = by_name(checks)
    assert "x.template.json" in found["cdk bootstrap"].detail
    assert "1000, 997 unreserved after deploy" in found["lambda concurrency"].detail


def test_an_old_bootstrap_and_an_unreadable_quota_list(
    stubbed: dict[str, Stubber], tmp_path: Path
) -> None:
    identity(stubbed["sts"])
    answer_bootstrap(stubbed["ssm"], "5")
    answer_concurrency(stubbed["lambda"], limit=1000, unreserved=1000)
    answer_stack(stubbed["cloudformation"], names.serving_stack(CONFIG), None)
    stubbed["service-quotas"].add_client_error(
        "list_aws_default_service_quotas", service_error_code="AccessDeniedException",
        service_message="not authorized", http_status_code=400,
    )  # fmt: skip
    answer_leftovers(stubbed, stacks=None, group=False, server=False, logs=False)

    found = by_name(aws_preflight(clients(stubbed), CONFIG, docker=DOCKER_OK, cdk_out=tmp_path))

    assert found["cdk bootstrap"].status is Status.FAIL
    assert "bootstrap version 5" in found["cdk bootstrap"].detail
    for name in ("instance types", "quotas"):  # not known: a warning, never a pass
        assert found[name].status is Status.WARN
        assert "ListAWSDefaultServiceQuotas: AccessDeniedException" in found[name].detail
    assert found["lambda concurrency"].status is Status.OK
    for name in ("leftover: package group", "leftover: mlflow server", "leftover: job log groups"):
        assert found[name].status is Status.OK, found[name]


def test_without_credentials_the_account_checks_say_so(
    stubbed: dict[str, Stubber], tmp_path: Path
) -> None:
    stubbed["sts"].add_client_error(
        "get_caller_identity", service_error_code="ExpiredToken", http_status_code=403
    )
    missing = facts.DockerStatus("docker", found=False, error=None)
    checks = aws_preflight(clients(stubbed), CONFIG, docker=missing, cdk_out=tmp_path)
    found = by_name(checks)
    assert found["credentials"].status is Status.FAIL
    assert found["docker"].status is Status.FAIL
    assert found["cdk bootstrap"].status is Status.NA


def test_the_embedded_default_says_what_does_not_apply() -> None:
    missing = facts.DockerStatus("docker", found=False, error=None)
    found = by_name(embedded_preflight(CONFIG, docker=missing))
    assert found["docker"].status is Status.WARN  # nothing is deployed from here
    assert found["scikit-learn image"].status is Status.OK
    for name in ("cdk bootstrap", "lambda concurrency", "quotas", "instance types", "leftovers"):
        assert found[name].status is Status.NA
        assert "--target aws" in found[name].detail
    assert "Service Quotas" in found["quotas"].detail


# --- the command -----------------------------------------------------------------------------


def test_the_command_prints_the_checks_and_exits_1_on_a_failure(
    stubbed: dict[str, Stubber], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facts.PreflightClients, "for_target", lambda target: clients(stubbed))
    monkeypatch.setattr(command, "docker_status", lambda: DOCKER_OK)
    monkeypatch.setattr(command, "profile_region", lambda profile: "eu-west-1")  # -c wins
    identity(stubbed["sts"])
    answer_bootstrap(stubbed["ssm"], None)
    answer_concurrency(stubbed["lambda"], limit=10, unreserved=10)
    answer_stack(stubbed["cloudformation"], "mlops-dev-serving", None)
    answer_quotas(stubbed["service-quotas"], sagemaker_quotas(endpoint=8))
    answer_leftovers(stubbed, stacks=None, group=False, server=False, logs=False)

    args = ["--target", "aws", "-c", "region=us-east-1", "-c", "function_reserved_concurrency=1"]
    result = CliRunner().invoke(
        app,
        [*args, "aws", "preflight", "--json", "--cdk-out", str(tmp_path)],
        env={"COLUMNS": "200"},
    )

    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["failed"] is True
    assert document["target"] == "aws"
    assert document["region"] == "us-east-1"
    statuses = {c["name"]: c["status"] for c in document["checks"]}
    assert statuses["cdk bootstrap"] == "fail"
    assert statuses["lambda concurrency"] == "fail"
    assert statuses["quota: ml.m5.large for endpoint usage"] == "ok"


def test_the_command_on_the_embedded_default_passes_with_a_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(command, "docker_status", lambda: DOCKER_OK)
    result = CliRunner().invoke(
        app,
        ["--target", "local", "-c", "region=us-east-1", "aws", "preflight"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "lambda concurrency" in result.stdout
    assert "n/a" in result.stdout
    assert "2 ok, 6 n/a" in result.stdout


# --- after a destroy: what RETAIN kept -------------------------------------------------------


def test_each_retained_resource_has_a_way_to_remove_it() -> None:
    def kept(kind: str, physical_id: str) -> RetainedResource:
        return RetainedResource(
            "mlops-dev-registry", "2026-01-01T00:00:00+00:00", kind, physical_id
        )

    group = kept(
        "AWS::SageMaker::ModelPackageGroup",
        f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/mlops-dev-visits",
    )
    assert group.name == "mlops-dev-visits"
    assert removal(group).endswith(
        "aws sagemaker delete-model-package-group --model-package-group-name mlops-dev-visits"
    )
    assert "delete-bucket --bucket b-1" in removal(kept("AWS::S3::Bucket", "b-1"))
    assert "Empty" in removal(kept("AWS::S3::Bucket", "b-1"))
    assert "schedule-key-deletion --key-id k-1" in removal(kept("AWS::KMS::Key", "k-1"))
    log_group = kept("AWS::Logs::LogGroup", "/aws/sagemaker/TrainingJobs")
    assert (
        removal(log_group)
        == "aws logs delete-log-group --log-group-name /aws/sagemaker/TrainingJobs"
    )
    assert "console" in removal(kept("AWS::SNS::Topic", "arn:aws:sns:us-east-1:1:t"))


def answer_deleted_stacks(cloudformation: Stubber) -> None:
    """Two deletions of the registry stack (newest first in the answer: the older one second),
    and an unrelated deleted stack."""
    when = datetime(2026, 3, 1, tzinfo=UTC)
    summaries = [
        {"StackId": "id-old", "StackName": "mlops-dev-registry", "CreationTime": when,
         "DeletionTime": datetime(2026, 3, 2, tzinfo=UTC), "StackStatus": "DELETE_COMPLETE"},
        {"StackId": "id-other", "StackName": "someone-else", "CreationTime": when,
         "DeletionTime": when, "StackStatus": "DELETE_COMPLETE"},
    ]  # fmt: skip
    newest = {**summaries[0], "StackId": "id-new", "DeletionTime": datetime(2026, 4, 1, tzinfo=UTC)}
    filters = {"StackStatusFilter": ["DELETE_COMPLETE"]}
    cloudformation.add_response(
        "list_stacks", {"StackSummaries": summaries, "NextToken": "t"}, filters
    )
    cloudformation.add_response(
        "list_stacks", {"StackSummaries": [newest]}, {**filters, "NextToken": "t"}
    )

    def resource(kind: str, physical: str, status: str) -> dict[str, Any]:
        return {"LogicalResourceId": physical.title(), "PhysicalResourceId": physical,
                "ResourceType": kind, "ResourceStatus": status, "LastUpdatedTimestamp": when}  # fmt: skip

    group_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/mlops-dev-visits"
    cloudformation.add_response(
        "list_stack_resources",
        {"StackResourceSummaries": [
            resource("AWS::SageMaker::ModelPackageGroup", group_arn, "DELETE_SKIPPED"),
            resource("AWS::SSM::Parameter", "weight", "DELETE_COMPLETE"),
        ]},
        {"StackName": "id-new"},
    )  # fmt: skip
    cloudformation.add_response(
        "list_stack_resources",
        {"StackResourceSummaries": [resource("AWS::IAM::Role", "old-role", "DELETE_SKIPPED")]},
        {"StackName": "id-old"},
    )


def test_retained_resources_come_from_cloudformations_record_of_deleted_stacks(
    stubbed: dict[str, Stubber],
) -> None:
    answer_deleted_stacks(stubbed["cloudformation"])
    found = facts.retained_resources(api(stubbed["cloudformation"]), ["mlops-dev-registry"])
    assert [(r.deleted, r.resource_type, r.name) for r in found] == [
        ("2026-04-01T00:00:00+00:00", "AWS::SageMaker::ModelPackageGroup", "mlops-dev-visits"),
        ("2026-03-02T00:00:00+00:00", "AWS::IAM::Role", "old-role"),
    ]


def test_the_retained_command_lists_stacks_left_and_what_deleted_ones_kept(
    stubbed: dict[str, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facts.PreflightClients, "for_target", lambda target: clients(stubbed))
    monkeypatch.setattr(command, "profile_region", lambda profile: "eu-west-1")
    cloudformation = stubbed["cloudformation"]
    stack = {"StackName": "mlops-dev-storage", "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
             "StackStatus": "CREATE_COMPLETE", "EnableTerminationProtection": True}  # fmt: skip
    cloudformation.add_response(
        "describe_stacks", {"Stacks": [stack]}, {"StackName": "mlops-dev-storage"}
    )
    for name in ("mlops-dev-registry", "mlops-dev-pipeline", "mlops-dev-serving"):
        answer_stack(cloudformation, name, None)
    answer_deleted_stacks(cloudformation)

    result = CliRunner().invoke(
        app, ["--target", "aws", "aws", "retained"],
        env={"COLUMNS": "400", "AWS_REGION": None, "AWS_DEFAULT_REGION": None},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "mlops-dev-storage is still deployed (CREATE_COMPLETE)" in out
    assert "--no-enable-termination-protection --stack-name mlops-dev-storage" in out
    assert "kept by deleted mlops-dev stacks in eu-west-1" in out  # the profile's region
    assert "delete-model-package-group --model-package-group-name mlops-dev-visits" in out
    assert "aws iam delete-role --role-name old-role" in out
