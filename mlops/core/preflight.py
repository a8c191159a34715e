"""Preflight decisions: is this account and region ready for `cdk deploy`?

Each function takes plain facts (what the adapter read from AWS, or this machine) and returns
``Check``s: a name, a status, what was found, and the one thing to do about it. Nothing here
reads AWS, files or the environment; ``mlops.usecases.preflight`` gathers the facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from mlops.core import names
from mlops.core.config import PlatformConfig


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    NA = "n/a"  # the check does not apply here, or could not be made: never a pass


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    action: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def failed(checks: Iterable[Check]) -> bool:
    return any(check.status is Status.FAIL for check in checks)


# --- CDK bootstrap ---------------------------------------------------------------------------

DEFAULT_QUALIFIER = "hnb659fds"  # the CDK's default bootstrap qualifier
# What the templates of the pinned aws-cdk-lib require (their CheckBootstrapVersion rule
# refuses versions 1-5); used when there is no cdk.out/ to read the rule from.
DEFAULT_BOOTSTRAP_VERSION = 6
DEFAULT_BOOTSTRAP_SOURCE = (
    "the CheckBootstrapVersion rule of the pinned aws-cdk-lib's templates (no cdk.out/ to read "
    "it from: `make synth` writes one)"
)


def bootstrap_parameter(qualifier: str) -> str:
    return f"/cdk-bootstrap/{qualifier}/version"


def required_bootstrap_version(template: Mapping[str, Any]) -> int | None:
    """The bootstrap version a synthesized template requires: CDK writes a rule that refuses
    every version below it, ``Fn::Not [Fn::Contains [["1", ..., "5"], Ref BootstrapVersion]]``."""
    rule = template.get("Rules", {}).get("CheckBootstrapVersion", {})
    refused: list[int] = []
    for assertion in rule.get("Assertions", []):
        for negated in assertion.get("Assert", {}).get("Fn::Not", []):
            values = negated.get("Fn::Contains", [[]])[0] if isinstance(negated, dict) else []
            refused += [int(v) for v in values if str(v).isdigit()]
    return max(refused) + 1 if refused else None


def template_qualifier(template: Mapping[str, Any]) -> str | None:
    """The qualifier a template reads its bootstrap version with (its SSM parameter name)."""
    default = template.get("Parameters", {}).get("BootstrapVersion", {}).get("Default", "")
    match = re.fullmatch(r"/cdk-bootstrap/([^/]+)/version", str(default))
    return match.group(1) if match else None


def check_bootstrap(
    version: str | None, *, required: int, source: str, qualifier: str, region: str
) -> Check:
    """``version``: the value of the bootstrap SSM parameter, None when it does not exist."""
    parameter = bootstrap_parameter(qualifier)
    qualifier_option = "" if qualifier == DEFAULT_QUALIFIER else f" --qualifier {qualifier}"
    action = f"run `make bootstrap` (npx cdk bootstrap{qualifier_option}) for {region}"
    if version is None:
        return Check(
            "cdk bootstrap",
            Status.FAIL,
            f"{parameter} does not exist in {region}: the account/region is not bootstrapped",
            action,
        )
    if not version.isdigit():
        return Check(
            "cdk bootstrap", Status.FAIL, f"{parameter} is {version!r}, not a number", action
        )
    if int(version) < required:
        return Check(
            "cdk bootstrap",
            Status.FAIL,
            f"bootstrap version {version} in {region}; the templates require >= {required} "
            f"(from {source})",
            f"{action}: it upgrades the bootstrap stack in place",
        )
    return Check(
        "cdk bootstrap",
        Status.OK,
        f"bootstrap version {version} in {region} (>= {required}, from {source})",
    )


# --- this machine ----------------------------------------------------------------------------


def check_docker(binary: str, *, found: bool, error: str | None, needed: bool) -> Check:
    """``found``: the CLI is on PATH; ``error``: why ``<binary> info`` failed, None if it ran.
    Needed only to deploy: ``cdk deploy`` builds the three Lambda images with it."""
    purpose = "`cdk deploy` builds the Lambda images with it"
    bad = Status.FAIL if needed else Status.WARN
    if not found:
        return Check(
            "docker",
            bad,
            f"`{binary}` is not on PATH; {purpose}",
            "install Docker (or set CDK_DOCKER to a compatible CLI such as finch or podman)",
        )
    if error is not None:
        return Check(
            "docker",
            bad,
            f"`{binary} info` failed: {error}",
            "start the Docker daemon (Docker Desktop, `sudo systemctl start docker`) and retry",
        )
    return Check("docker", Status.OK, f"`{binary} info` succeeds; {purpose}")


# --- Lambda concurrency ----------------------------------------------------------------------

MIN_UNRESERVED_CONCURRENCY = 100  # AWS keeps at least this many executions unreserved
PLATFORM_FUNCTIONS = 3  # traffic, deploy, drift: each reserves function_reserved_concurrency
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # Service Quotas: Lambda "Concurrent executions"
LAMBDA_DEFAULT_LIMIT = 1000  # the documented default; new accounts often start far lower


def check_lambda_concurrency(
    *, limit: int, unreserved: int, reservation: int, already_reserved: int = 0
) -> Check:
    """``limit``/``unreserved``: GetAccountSettings' AccountLimit; ``reservation``: what each
    platform function reserves (function_reserved_concurrency); ``already_reserved``: what
    the platform's functions reserve today (a redeploy replaces, not adds to, it)."""
    increase = (
        "request an increase: aws service-quotas request-service-quota-increase --service-code "
        f"lambda --quota-code {LAMBDA_CONCURRENCY_QUOTA} --desired-value {LAMBDA_DEFAULT_LIMIT}"
    )
    total = reservation * PLATFORM_FUNCTIONS
    left = unreserved + already_reserved - total
    if reservation and left < MIN_UNRESERVED_CONCURRENCY:
        return Check(
            "lambda concurrency",
            Status.FAIL,
            f"account limit {limit}, {unreserved} unreserved: reserving {reservation} for each "
            f"of {PLATFORM_FUNCTIONS} functions would leave {left}, and AWS requires "
            f">= {MIN_UNRESERVED_CONCURRENCY} unreserved",
            f"-c function_reserved_concurrency=0 (no reservation), or {increase}",
        )
    if limit < MIN_UNRESERVED_CONCURRENCY:
        return Check(
            "lambda concurrency",
            Status.WARN,
            f"account limit {limit} concurrent executions, shared by every function in the "
            f"region: the platform's functions may throttle",
            increase,
        )
    reserved = f", {total} reserved for the platform's functions" if reservation else ""
    return Check(
        "lambda concurrency",
        Status.OK,
        f"account limit {limit}, {left} unreserved after deploy{reserved}",
    )


# --- SageMaker quotas and instance types -----------------------------------------------------


@dataclass(frozen=True)
class Quota:
    code: str
    value: float


@dataclass(frozen=True)
class QuotaNeed:
    """What the configuration asks of one SageMaker instance quota."""

    instance_type: str
    usage: str  # "endpoint", "training job", "processing job"
    minimum: int  # below this, the deploy or the first pipeline run fails
    wanted: int  # below this, ``beyond`` fails (a warning: the platform deploys and runs)
    keys: tuple[str, ...]  # the config keys that chose the type
    beyond: str = "autoscaling to endpoint_max_instances"  # what needs more than the minimum
    lower: str = "endpoint_max_instances"  # the key that would need less

    @property
    def quota_name(self) -> str:
        return f"{self.instance_type} for {self.usage} usage"


def quota_needs(config: PlatformConfig) -> list[QuotaNeed]:
    """Both variants run endpoint_min_instances each (up to endpoint_max_instances): on one
    quota when they share an instance type. A pipeline run takes one training and one
    processing instance at a time. A drift check of a window above drift_job_threshold_mb
    runs as a Processing job on up to drift_job_instance_count instances: without them that
    check fails, nothing else does (a warning); on the pipeline's quota when the types match,
    as both can run at once."""
    endpoint: dict[str, list[str]] = {}
    for key in ("champion_instance_type", "challenger_instance_type"):
        endpoint.setdefault(getattr(config, key), []).append(key)
    needs = [
        QuotaNeed(
            instance_type,
            "endpoint",
            config.endpoint_min_instances * len(keys),
            config.endpoint_max_instances * len(keys),
            tuple(keys),
        )
        for instance_type, keys in endpoint.items()
    ]
    needs.append(
        QuotaNeed(config.training_instance_type, "training job", 1, 1, ("training_instance_type",))
    )
    processing = QuotaNeed(
        config.processing_instance_type, "processing job", 1, 1, ("processing_instance_type",)
    )
    drift = QuotaNeed(
        config.drift_job_instance_type,
        "processing job",
        0,
        config.drift_job_instance_count,
        ("drift_job_instance_type",),
        beyond="a drift check run as a Processing job (drift_job_instance_count)",
        lower="drift_job_instance_count",
    )
    if drift.instance_type != processing.instance_type:
        return [*needs, processing, drift]
    shared = QuotaNeed(
        processing.instance_type,
        "processing job",
        processing.minimum,
        processing.wanted + drift.wanted,
        (*processing.keys, *drift.keys),
        beyond=f"a pipeline run's processing step and {drift.beyond} at once",
        lower=drift.lower,
    )
    return [*needs, shared]


def _increase(code: str, value: int) -> str:
    return (
        "request an increase: aws service-quotas request-service-quota-increase "
        f"--service-code sagemaker --quota-code {code} --desired-value {value}"
    )


def check_quotas(needs: Sequence[QuotaNeed], quotas: Mapping[str, Quota]) -> list[Check]:
    """``quotas``: the region's SageMaker quotas by name (applied values over defaults)."""
    checks = []
    for need in needs:
        name = f"quota: {need.quota_name}"
        quota = quotas.get(need.quota_name)
        if quota is None:
            checks.append(
                Check(name, Status.NA, "no such quota in the region: see 'instance types'")
            )
            continue
        have = int(quota.value)
        uses = f"{' + '.join(need.keys)} need"
        if have < need.minimum:
            checks.append(
                Check(
                    name,
                    Status.FAIL,
                    f"quota {have} ({quota.code}); {uses} {need.minimum}",
                    _increase(quota.code, need.wanted),
                )
            )
        elif have < need.wanted:
            enough = f"enough for {need.minimum}, but " if need.minimum else ""
            checks.append(
                Check(
                    name,
                    Status.WARN,
                    f"quota {have} ({quota.code}): {enough}{need.beyond} needs {need.wanted}",
                    f"{_increase(quota.code, need.wanted)} (or lower {need.lower})",
                )
            )
        else:
            note = (
                " (shared with other endpoints in the account)" if need.usage == "endpoint" else ""
            )
            checks.append(Check(name, Status.OK, f"quota {have} >= {need.wanted} needed{note}"))
    return checks


def check_instance_types(
    region: str, needs: Sequence[QuotaNeed], quotas: Mapping[str, Quota]
) -> Check:
    """An instance type with no quota for its use in the region is not offered there."""
    missing = [need for need in needs if need.quota_name not in quotas]
    if missing:
        keys = ", ".join(f"-c {key}=..." for need in missing for key in need.keys)
        return Check(
            "instance types",
            Status.FAIL,
            f"not offered in {region}: "
            + "; ".join(f"{need.instance_type} for {need.usage}s" for need in missing),
            f"choose types the region offers ({keys}) or another region (-c region=...)",
        )
    types = sorted({need.instance_type for need in needs})
    return Check("instance types", Status.OK, f"{', '.join(types)} offered in {region}")


def check_image(region: str, version: str, uris: Mapping[str, str], error: str | None) -> Check:
    """``uris``: scope -> image URI found for the region; ``error``: why none was."""
    if error is not None:
        return Check(
            "scikit-learn image",
            Status.FAIL,
            f"no SageMaker scikit-learn {version} image in {region}: {error}",
            "deploy to a region that has it, e.g. -c region=us-east-1",
        )
    return Check(
        "scikit-learn image",
        Status.OK,
        f"scikit-learn {version} in {region}: {uris.get('inference', '-')}",
    )


# --- leftovers of a previous `cdk destroy` ---------------------------------------------------

# A stack in these states holds no resources (a failed first create rolled back, a change set
# never executed): what its RETAIN resources left behind still blocks a new create.
_ABSENT_STATES = frozenset({"DELETE_COMPLETE", "ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"})
JOB_LOG_GROUPS = ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs")
REDEPLOY = "README: 'Redeploying after a destroy'"


def deployed(status: str | None) -> bool:
    return status is not None and status not in _ABSENT_STATES


@dataclass(frozen=True)
class Leftovers:
    """What exists in the account under the platform's fixed names."""

    stacks: Mapping[str, str | None]  # stack name -> status, None when it does not exist
    package_group: bool
    mlflow_server: bool
    log_groups: frozenset[str]


def check_leftovers(config: PlatformConfig, found: Leftovers) -> list[Check]:
    registry = names.registry_stack(config)
    pipeline = names.pipeline_stack(config)
    registry_up = deployed(found.stacks.get(registry))
    pipeline_up = deployed(found.stacks.get(pipeline))
    group = config.model_package_group_name
    server = config.mlflow_tracking_server_name
    checks = []

    if not found.package_group:
        checks.append(Check("leftover: package group", Status.OK, f"{group} does not exist yet"))
    elif registry_up:
        checks.append(Check("leftover: package group", Status.OK, f"{group} belongs to {registry}"))
    else:
        checks.append(
            Check(
                "leftover: package group",
                Status.FAIL,
                f"{group} exists but {registry} is not deployed: kept (RETAIN) by a previous "
                "destroy, and CloudFormation cannot create it again",
                f"adopt it with `cdk import` ({REDEPLOY}), or delete it (and its packages): aws "
                f"sagemaker delete-model-package-group --model-package-group-name {group}",
            )
        )

    delete_server = (
        f"aws sagemaker delete-mlflow-tracking-server --tracking-server-name {server} "
        "(deletes its run history)"
    )
    if not found.mlflow_server:
        checks.append(Check("leftover: mlflow server", Status.OK, f"{server} does not exist"))
    elif not config.enable_mlflow_server:
        checks.append(
            Check(
                "leftover: mlflow server",
                Status.WARN,
                f"{server} exists though enable_mlflow_server is false: it is billed per hour "
                "while it runs",
                f"keep it, or {delete_server}",
            )
        )
    elif registry_up:
        checks.append(
            Check("leftover: mlflow server", Status.OK, f"{server} belongs to {registry}")
        )
    else:
        checks.append(
            Check(
                "leftover: mlflow server",
                Status.FAIL,
                f"{server} exists but {registry} is not deployed: kept (RETAIN) by a previous "
                "destroy, and CloudFormation cannot create it again",
                f"adopt it with `cdk import` ({REDEPLOY}), or {delete_server}",
            )
        )

    existing = sorted(found.log_groups & set(JOB_LOG_GROUPS))
    if not config.create_job_log_groups:
        checks.append(
            Check(
                "leftover: job log groups",
                Status.OK,
                "create_job_log_groups is false: SageMaker's own log groups are used",
            )
        )
    elif not existing:
        checks.append(
            Check(
                "leftover: job log groups", Status.OK, f"{', '.join(JOB_LOG_GROUPS)} do not exist"
            )
        )
    elif pipeline_up:
        checks.append(
            Check(
                "leftover: job log groups", Status.OK, f"{', '.join(existing)} belong to {pipeline}"
            )
        )
    else:
        deletes = "; ".join(f"aws logs delete-log-group --log-group-name {g}" for g in existing)
        checks.append(
            Check(
                "leftover: job log groups",
                Status.FAIL,
                f"{', '.join(existing)} exist but {pipeline} is not deployed (kept by a previous "
                "destroy, created by SageMaker's first job, or another stage's): the pipeline "
                "stack cannot create them",
                f"-c create_job_log_groups=false (use them as they are), or delete them: {deletes}",
            )
        )
    return checks


# --- where the checks cannot be made ---------------------------------------------------------


def not_applicable(names_and_reasons: Mapping[str, str]) -> list[Check]:
    return [Check(name, Status.NA, reason) for name, reason in names_and_reasons.items()]


def check_credentials(
    *, account: str | None, arn: str | None, error: str | None, configured_account: str | None
) -> Check:
    if error is not None or account is None:
        return Check(
            "credentials",
            Status.FAIL,
            f"no usable AWS credentials: {error}",
            "set AWS_PROFILE (or --profile), or run `aws sso login` / `aws configure`",
        )
    if configured_account and configured_account != account:
        return Check(
            "credentials",
            Status.FAIL,
            f"credentials are for account {account}, the config names {configured_account}",
            f"use a profile for {configured_account}, or -c account={account}",
        )
    return Check("credentials", Status.OK, f"account {account} as {arn}")


# --- what a `cdk destroy` kept (RETAIN) ------------------------------------------------------


@dataclass(frozen=True)
class RetainedResource:
    """A resource CloudFormation skipped when it deleted a stack (DELETE_SKIPPED: RETAIN)."""

    stack: str
    deleted: str  # when the stack was deleted (ISO 8601)
    resource_type: str
    physical_id: str

    @property
    def name(self) -> str:
        """The resource's name: SageMaker resources are recorded by ARN."""
        if self.physical_id.startswith("arn:") and "/" in self.physical_id:
            return self.physical_id.rsplit("/", 1)[1]
        return self.physical_id


def removal(resource: RetainedResource) -> str:
    """How to remove a retained resource with the AWS CLI (read the warnings first)."""
    name = resource.name
    commands = {
        "AWS::S3::Bucket": (
            f"empty it, every version included (S3 console: Empty), then: aws s3api "
            f"delete-bucket --bucket {name}"
        ),
        "AWS::S3::BucketPolicy": "goes with its bucket",
        "AWS::KMS::Key": (
            f"last, once nothing it encrypted is kept: aws kms schedule-key-deletion --key-id "
            f"{name} --pending-window-in-days 30"
        ),
        "AWS::KMS::Alias": f"aws kms delete-alias --alias-name {name}",
        "AWS::SageMaker::ModelPackageGroup": (
            f"delete its packages (aws sagemaker list-model-packages --model-package-group-name "
            f"{name}; aws sagemaker delete-model-package --model-package-name <arn>), then: aws "
            f"sagemaker delete-model-package-group --model-package-group-name {name}"
        ),
        "AWS::SageMaker::MlflowTrackingServer": (
            f"aws sagemaker delete-mlflow-tracking-server --tracking-server-name {name} "
            "(deletes its run history)"
        ),
        "AWS::IAM::Role": (
            f"detach its policies (aws iam list-attached-role-policies --role-name {name}), "
            f"then: aws iam delete-role --role-name {name}"
        ),
        "AWS::IAM::ManagedPolicy": (
            f"detach it from its roles, then: aws iam delete-policy --policy-arn {resource.physical_id}"
        ),
        "AWS::Logs::LogGroup": f"aws logs delete-log-group --log-group-name {name}",
    }
    return commands.get(
        resource.resource_type,
        f"no CLI recipe here: find {resource.resource_type} {name} in the console",
    )
