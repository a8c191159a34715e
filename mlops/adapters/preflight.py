"""The facts a preflight needs, read from AWS (one boto3 client per service), from cdk.out/
and from this machine. Each reader returns plain values; ``mlops.core.preflight`` decides.

Every AWS call here is a read: Get*, Describe*, List*.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import boto3
from botocore.exceptions import ClientError, ProfileNotFound

from mlops.adapters.images import SKLEARN_VERSION, sklearn_image_uri
from mlops.core.preflight import (
    Quota,
    RetainedResource,
    required_bootstrap_version,
    template_qualifier,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

    from mlops.adapters.target import AwsTarget


class ServiceQuotasApi(Protocol):
    """The Service Quotas calls the preflight makes (no boto3-stubs extra for the service)."""

    def list_service_quotas(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def list_aws_default_service_quotas(self, **kwargs: Any) -> Mapping[str, Any]: ...


class LogsApi(Protocol):
    """The CloudWatch Logs call the preflight makes (no boto3-stubs extra for the service)."""

    def describe_log_groups(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class PreflightClients:
    sts: STSClient
    ssm: SSMClient
    lambda_: LambdaClient
    sagemaker: SageMakerClient
    cloudformation: CloudFormationClient
    quotas: ServiceQuotasApi
    logs: LogsApi

    @classmethod
    def for_target(cls, target: AwsTarget) -> PreflightClients:
        return cls(
            sts=target.client("sts"),
            ssm=target.client("ssm"),
            lambda_=target.client("lambda"),
            sagemaker=target.client("sagemaker"),
            cloudformation=target.client("cloudformation"),
            quotas=cast("ServiceQuotasApi", target.client("service-quotas")),
            logs=cast("LogsApi", target.client("logs")),
        )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# --- CDK bootstrap ---------------------------------------------------------------------------


def bootstrap_version(ssm: SSMClient, parameter: str) -> str | None:
    """The bootstrap stack's version (its SSM parameter), None when it does not exist."""
    try:
        return ssm.get_parameter(Name=parameter)["Parameter"].get("Value")
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            return None
        raise


@dataclass(frozen=True)
class TemplateRequirement:
    version: int
    source: str  # the template it was read from
    qualifier: str | None


def template_requirement(cdk_out: Path) -> TemplateRequirement | None:
    """The highest bootstrap version the synthesized templates in ``cdk_out`` require."""
    found: TemplateRequirement | None = None
    for path in sorted(cdk_out.glob("*.template.json")):
        try:
            template = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        version = required_bootstrap_version(template)
        if version is not None and (found is None or version > found.version):
            found = TemplateRequirement(version, str(path), template_qualifier(template))
    return found


# --- this machine ----------------------------------------------------------------------------

Runner = Callable[..., subprocess.CompletedProcess[str]]
DOCKER_TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class DockerStatus:
    binary: str
    found: bool
    error: str | None  # why `<binary> info` failed; None when it succeeded


def docker_status(
    *,
    binary: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
    run: Runner = subprocess.run,
    timeout: float = DOCKER_TIMEOUT_SECONDS,
) -> DockerStatus:
    """Whether `docker info` succeeds: the CLI is there and its daemon answers. CDK_DOCKER
    names another CLI (finch, podman), as the CDK CLI honours it."""
    binary = binary or os.environ.get("CDK_DOCKER") or "docker"
    path = which(binary)
    if path is None:
        return DockerStatus(binary, found=False, error=None)
    try:
        done = run(
            [path, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return DockerStatus(binary, found=True, error=f"no answer within {timeout:g} s")
    except OSError as exc:
        return DockerStatus(binary, found=True, error=str(exc))
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit code {done.returncode}"
        return DockerStatus(binary, found=True, error=reason)
    return DockerStatus(binary, found=True, error=None)


def sklearn_images(region: str) -> tuple[dict[str, str], str | None]:
    """The scikit-learn image URIs (training, inference) the pipeline uses in ``region``,
    from the SageMaker SDK's own table: what ``image_uris.retrieve`` reads, offline."""
    try:
        return {
            scope: sklearn_image_uri(region, scope) for scope in ("training", "inference")
        }, None
    except (ValueError, KeyError, RuntimeError) as exc:
        return {}, str(exc)


# --- Lambda ----------------------------------------------------------------------------------


def account_concurrency(lambda_: LambdaClient) -> tuple[int, int]:
    """(ConcurrentExecutions, UnreservedConcurrentExecutions) of the account in the region."""
    limit = lambda_.get_account_settings()["AccountLimit"]
    return int(limit.get("ConcurrentExecutions", 0)), int(
        limit.get("UnreservedConcurrentExecutions", 0)
    )


def reserved_concurrency(lambda_: LambdaClient, functions: Iterable[str]) -> int:
    """What ``functions`` reserve today (a function that no longer exists reserves nothing)."""
    total = 0
    for function in functions:
        try:
            reply = lambda_.get_function_concurrency(FunctionName=function)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                continue
            raise
        total += int(reply.get("ReservedConcurrentExecutions", 0))
    return total


# --- SageMaker -------------------------------------------------------------------------------


def _all_quotas(call: Callable[..., Mapping[str, Any]]) -> dict[str, Quota]:
    found: dict[str, Quota] = {}
    token: str | None = None
    while True:
        page = call(
            ServiceCode="sagemaker", MaxResults=100, **({"NextToken": token} if token else {})
        )
        for quota in page.get("Quotas", []):
            found[quota["QuotaName"]] = Quota(code=quota["QuotaCode"], value=float(quota["Value"]))
        token = page.get("NextToken")
        if not token:
            return found


def sagemaker_quotas(quotas: ServiceQuotasApi) -> dict[str, Quota]:
    """The region's SageMaker quotas by name: the account's applied values over the defaults
    (ListServiceQuotas leaves out a quota whose applied value it does not have)."""
    return _all_quotas(quotas.list_aws_default_service_quotas) | _all_quotas(
        quotas.list_service_quotas
    )


def package_group_exists(sagemaker: SageMakerClient, name: str) -> bool:
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=name)
    except ClientError as exc:
        # SageMaker answers a missing group with ValidationException ("does not exist").
        if error_code(exc) in ("ValidationException", "ResourceNotFound"):
            return False
        raise
    return True


def mlflow_server_exists(sagemaker: SageMakerClient, name: str) -> bool:
    try:
        sagemaker.describe_mlflow_tracking_server(TrackingServerName=name)
    except ClientError as exc:
        if error_code(exc) in ("ResourceNotFound", "ValidationException"):
            return False
        raise
    return True


# --- CloudFormation and CloudWatch Logs ------------------------------------------------------


@dataclass(frozen=True)
class StackFacts:
    status: str | None  # None: no such stack
    outputs: Mapping[str, str] = field(default_factory=dict)
    protected: bool = False  # termination protection


def stack_facts(cloudformation: CloudFormationClient, name: str) -> StackFacts:
    try:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        # "Stack with id <name> does not exist"
        if error_code(exc) == "ValidationError":
            return StackFacts(status=None)
        raise
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in stack.get("Outputs", [])
        if "OutputKey" in o and "OutputValue" in o
    }
    return StackFacts(
        status=stack["StackStatus"],
        outputs=outputs,
        protected=bool(stack.get("EnableTerminationProtection")),
    )


def retained_resources(
    cloudformation: CloudFormationClient, stack_names: Iterable[str]
) -> list[RetainedResource]:
    """What CloudFormation kept when it deleted these stacks (DELETE_SKIPPED: RETAIN), from
    its record of deleted stacks (kept 90 days), newest deletion first. A stack deployed and
    destroyed twice kept two sets: a bucket name is new on every deploy."""
    wanted = set(stack_names)
    deleted = []
    for page in cloudformation.get_paginator("list_stacks").paginate(
        StackStatusFilter=["DELETE_COMPLETE"]
    ):
        deleted += [s for s in page.get("StackSummaries", []) if s["StackName"] in wanted]
    deleted.sort(key=lambda s: s.get("DeletionTime") or s["CreationTime"], reverse=True)
    kept = []
    for stack in deleted:
        when = stack.get("DeletionTime") or stack["CreationTime"]
        for resources in cloudformation.get_paginator("list_stack_resources").paginate(
            StackName=stack["StackId"]
        ):
            kept += [
                RetainedResource(
                    stack=stack["StackName"],
                    deleted=when.isoformat(timespec="seconds"),
                    resource_type=resource["ResourceType"],
                    physical_id=resource.get("PhysicalResourceId", resource["LogicalResourceId"]),
                )
                for resource in resources.get("StackResourceSummaries", [])
                if resource["ResourceStatus"] == "DELETE_SKIPPED"
            ]
    return kept


def profile_region(profile: str | None) -> str | None:
    """The region the AWS profile names (~/.aws/config), as the CDK CLI would deploy to when
    neither -c region nor AWS_REGION says; None when there is none. Reads files only."""
    try:
        return boto3.Session(profile_name=profile).region_name
    except ProfileNotFound:
        return None


def existing_log_groups(logs: LogsApi, names: Iterable[str]) -> frozenset[str]:
    """Which of ``names`` exist (one prefix query each, exact matches kept)."""
    found = set()
    for name in names:
        groups = logs.describe_log_groups(logGroupNamePrefix=name, limit=50).get("logGroups", [])
        if any(group.get("logGroupName") == name for group in groups):
            found.add(name)
    return frozenset(found)


__all__ = [
    "SKLEARN_VERSION",
    "DockerStatus",
    "LogsApi",
    "PreflightClients",
    "ServiceQuotasApi",
    "StackFacts",
    "TemplateRequirement",
    "account_concurrency",
    "bootstrap_version",
    "docker_status",
    "existing_log_groups",
    "mlflow_server_exists",
    "package_group_exists",
    "profile_region",
    "reserved_concurrency",
    "retained_resources",
    "sagemaker_quotas",
    "sklearn_images",
    "stack_facts",
    "template_requirement",
]
