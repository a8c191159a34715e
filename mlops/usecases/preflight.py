"""Before `cdk deploy`: what the deployment needs from the account, the region and this machine.

Gathers the facts (``mlops.adapters.preflight``), lets the core decide each check
(``mlops.core.preflight``) and returns the checks in a fixed order. A fact that cannot be read
(no permission, no network) makes its checks a warning that says which call failed: never a
pass. Against the embedded default, the checks that need a real account say they do not apply.

After `cdk destroy`, ``after_destroy`` lists what the deleted stacks kept (RETAIN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from mlops.adapters import preflight as facts
from mlops.core import names
from mlops.core.config import PlatformConfig
from mlops.core.preflight import (
    DEFAULT_BOOTSTRAP_SOURCE,
    DEFAULT_BOOTSTRAP_VERSION,
    DEFAULT_QUALIFIER,
    JOB_LOG_GROUPS,
    Check,
    Leftovers,
    RetainedResource,
    Status,
    bootstrap_parameter,
    check_bootstrap,
    check_credentials,
    check_docker,
    check_image,
    check_instance_types,
    check_lambda_concurrency,
    check_leftovers,
    check_quotas,
    deployed,
    not_applicable,
    quota_needs,
)

# The serving stack's outputs that name its functions (stacks/serving/stack.py).
FUNCTION_OUTPUTS = ("TrafficFunctionName", "DeployFunctionName", "DriftFunctionName")
ON_AWS = "run with --target aws"


def _guarded(names_: tuple[str, ...], gather: Callable[[], list[Check]]) -> list[Check]:
    """The checks ``gather`` makes, or one warning per check when a fact cannot be read."""
    try:
        return gather()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        detail = (
            f"could not check: {exc.operation_name}: {error.get('Code')} {error.get('Message', '')}"
        )
        action = f"allow {exc.operation_name} for the deploying identity, then run it again"
    except BotoCoreError as exc:
        detail, action = f"could not check: {exc}", "check the network and credentials"
    return [Check(name, Status.WARN, detail.strip(), action) for name in names_]


def _bootstrap(
    clients: facts.PreflightClients, config: PlatformConfig, qualifier: str | None, cdk_out: Path
) -> list[Check]:
    requirement = facts.template_requirement(cdk_out)
    if requirement is None:
        required, source = DEFAULT_BOOTSTRAP_VERSION, DEFAULT_BOOTSTRAP_SOURCE
    else:
        required, source = requirement.version, requirement.source
    qualifier = qualifier or (requirement and requirement.qualifier) or DEFAULT_QUALIFIER
    version = facts.bootstrap_version(clients.ssm, bootstrap_parameter(qualifier))
    return [
        check_bootstrap(
            version, required=required, source=source, qualifier=qualifier, region=config.region
        )
    ]


def _concurrency(clients: facts.PreflightClients, config: PlatformConfig) -> list[Check]:
    limit, unreserved = facts.account_concurrency(clients.lambda_)
    serving = facts.stack_facts(clients.cloudformation, names.serving_stack(config))
    functions = [serving.outputs[key] for key in FUNCTION_OUTPUTS if key in serving.outputs]
    already = (
        facts.reserved_concurrency(clients.lambda_, functions) if deployed(serving.status) else 0
    )
    return [
        check_lambda_concurrency(
            limit=limit,
            unreserved=unreserved,
            reservation=config.function_reserved_concurrency,
            already_reserved=already,
        )
    ]


def _sagemaker(clients: facts.PreflightClients, config: PlatformConfig) -> list[Check]:
    quotas = facts.sagemaker_quotas(clients.quotas)
    needs = quota_needs(config)
    return [check_instance_types(config.region, needs, quotas), *check_quotas(needs, quotas)]


def _leftovers(clients: facts.PreflightClients, config: PlatformConfig) -> list[Check]:
    stacks = [names.registry_stack(config), names.pipeline_stack(config)]
    found = Leftovers(
        stacks={name: facts.stack_facts(clients.cloudformation, name).status for name in stacks},
        package_group=facts.package_group_exists(
            clients.sagemaker, config.model_package_group_name
        ),
        mlflow_server=facts.mlflow_server_exists(
            clients.sagemaker, config.mlflow_tracking_server_name
        ),
        log_groups=facts.existing_log_groups(clients.logs, JOB_LOG_GROUPS),
    )
    return check_leftovers(config, found)


def _image(config: PlatformConfig) -> Check:
    uris, error = facts.sklearn_images(config.region)
    return check_image(config.region, facts.SKLEARN_VERSION, uris, error)


QUOTA_CHECKS = ("instance types", "quotas")
LEFTOVER_CHECKS = ("leftover: package group", "leftover: mlflow server", "leftover: job log groups")


def aws_preflight(
    clients: facts.PreflightClients,
    config: PlatformConfig,
    *,
    docker: facts.DockerStatus,
    cdk_out: Path,
    qualifier: str | None = None,
) -> list[Check]:
    """Every check against a real account (read-only calls)."""
    try:
        identity = clients.sts.get_caller_identity()
        credentials = check_credentials(
            account=identity.get("Account"),
            arn=identity.get("Arn"),
            error=None,
            configured_account=config.account,
        )
    except (ClientError, BotoCoreError) as exc:
        credentials = check_credentials(
            account=None, arn=None, error=str(exc), configured_account=config.account
        )
    local = [
        check_docker(docker.binary, found=docker.found, error=docker.error, needed=True),
        _image(config),
    ]
    if credentials.status is Status.FAIL:
        skipped = ("cdk bootstrap", "lambda concurrency", *QUOTA_CHECKS, *LEFTOVER_CHECKS)
        reason = "needs working credentials for the account (see 'credentials')"
        return [credentials, *local, *not_applicable(dict.fromkeys(skipped, reason))]
    return [
        credentials,
        *_guarded(("cdk bootstrap",), lambda: _bootstrap(clients, config, qualifier, cdk_out)),
        *local,
        *_guarded(("lambda concurrency",), lambda: _concurrency(clients, config)),
        *_guarded(QUOTA_CHECKS, lambda: _sagemaker(clients, config)),
        *_guarded(LEFTOVER_CHECKS, lambda: _leftovers(clients, config)),
    ]


def embedded_preflight(config: PlatformConfig, *, docker: facts.DockerStatus) -> list[Check]:
    """The embedded default: what can be checked on this machine; the rest does not apply
    (the emulator has no bootstrap, quotas or account limits to read, and faking them would
    only make a pass that means nothing)."""
    return [
        check_docker(docker.binary, found=docker.found, error=docker.error, needed=False),
        _image(config),
        *not_applicable(
            {
                "credentials": f"the embedded default needs none; {ON_AWS}",
                "cdk bootstrap": f"the embedded default is not deployed by CloudFormation; {ON_AWS}",
                "lambda concurrency": f"the emulator has no account concurrency limits; {ON_AWS}",
                "instance types": f"the emulator has no Service Quotas data; {ON_AWS}",
                "quotas": f"the emulator has no Service Quotas data; {ON_AWS}",
                "leftovers": f"`cdk destroy` leaves nothing on the emulator; {ON_AWS}",
            }
        ),
    ]


@dataclass(frozen=True)
class AfterDestroy:
    """The platform's stacks still deployed, and what the deleted ones kept (RETAIN)."""

    deployed: dict[str, facts.StackFacts]
    retained: list[RetainedResource]


def after_destroy(clients: facts.PreflightClients, config: PlatformConfig) -> AfterDestroy:
    stacks = [
        names.storage_stack(config),
        names.registry_stack(config),
        names.pipeline_stack(config),
        names.serving_stack(config),
    ]
    found = {name: facts.stack_facts(clients.cloudformation, name) for name in stacks}
    return AfterDestroy(
        deployed={name: f for name, f in found.items() if f.status is not None},
        retained=facts.retained_resources(clients.cloudformation, stacks),
    )
