"""`mlops aws`: the AWS account a deploy goes to. `preflight` checks it is ready (before
`make deploy`); `retained` lists what a `cdk destroy` kept (after `make destroy`)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlops.cli.common import PROJECT_ROOT, LazyModule, State, Target, checked, console
from mlops.cli.output import JsonOption, print_json

if TYPE_CHECKING:
    from mlops.adapters import preflight as facts
    from mlops.adapters import target as aws_target
    from mlops.adapters.preflight import DockerStatus
    from mlops.core import config as platform_config
    from mlops.core import preflight as verdicts
    from mlops.core.config import PlatformConfig
    from mlops.core.preflight import Check
    from mlops.usecases import preflight as workflows
else:
    facts = LazyModule("mlops.adapters.preflight")
    aws_target = LazyModule("mlops.adapters.target")
    platform_config = LazyModule("mlops.core.config")
    verdicts = LazyModule("mlops.core.preflight")
    workflows = LazyModule("mlops.usecases.preflight")

app = typer.Typer(help="The AWS account a deploy goes to.", no_args_is_help=True)


def _qualifier(value: str) -> str | None:
    # The bootstrap template's Qualifier parameter: AllowedPattern [A-Za-z0-9_-]{1,10}
    if re.fullmatch(r"[A-Za-z0-9_-]{1,10}", value):
        return None
    return f"must be 1-10 letters, digits, '_' or '-' (as cdk bootstrap takes), got {value!r}"


def _folder_if_any(value: str) -> str | None:
    if not value.strip():
        return "the path is empty"
    path = Path(value)
    return (
        f"{value} is a file, not a cdk.out folder" if path.exists() and not path.is_dir() else None
    )


# Named here (tests replace them here); their module is imported when a command runs.
def docker_status() -> DockerStatus:
    return facts.docker_status()


def profile_region(profile: str | None) -> str | None:
    return facts.profile_region(profile)


def deploy_config(ctx: typer.Context, state: State) -> PlatformConfig:
    """The config with the region `cdk deploy` goes to. Like the CDK CLI: -c region (or
    cdk.json), else AWS_REGION / AWS_DEFAULT_REGION, else the profile's region; the other
    commands stop before the profile."""
    overrides = ctx.find_root().params.get("context") or []
    cdk_json = PROJECT_ROOT / "cdk.json"
    named = any(o.partition("=")[0].strip() == "region" for o in overrides) or (
        cdk_json.exists() and "region" in platform_config.read_cdk_json_context(cdk_json)
    )
    if named or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        return state.config
    region = profile_region(state.profile)
    if not region or region == state.config.region:
        return state.config
    return platform_config.PlatformConfig.model_validate(
        {**state.config.model_dump(exclude_none=True), "region": region}
    )


def _table(checks: list[Check]) -> Table:
    status = verdicts.Status
    styles = {status.OK: "green", status.WARN: "yellow", status.FAIL: "bold red", status.NA: "dim"}
    table = Table()
    for column in ("check", "status", "found", "what to do"):
        table.add_column(column, overflow="fold")
    for check in checks:
        style = styles[check.status]
        table.add_row(
            escape(check.name),
            f"[{style}]{check.status}[/{style}]",
            escape(check.detail),
            escape(check.action),
        )
    return table


@app.command("preflight")
def preflight(
    ctx: typer.Context,
    qualifier: Annotated[
        str | None,
        typer.Option(
            help="CDK bootstrap qualifier (default: cdk.out's templates', else hnb659fds)",
            callback=checked(_qualifier),
        ),
    ] = None,
    cdk_out: Annotated[
        str,
        typer.Option(
            help="synthesized templates to read the required bootstrap version from",
            callback=checked(_folder_if_any),
        ),
    ] = str(PROJECT_ROOT / "cdk.out"),
    as_json: JsonOption = False,
) -> None:
    """Before a deploy: is the account and region ready? Exits 1 when a check fails.

    Read-only checks of credentials, CDK bootstrap, Docker, Lambda concurrency, SageMaker
    quotas and instance types in the region, the scikit-learn image, and leftovers of a
    previous destroy; each with what to do about it.
    """
    state: State = ctx.obj
    docker = docker_status()
    if state.target_kind is Target.aws:
        config = deploy_config(ctx, state)
        target = aws_target.AwsTarget(region=config.region, profile=state.profile)
        checks = workflows.aws_preflight(
            facts.PreflightClients.for_target(target),
            config,
            docker=docker,
            cdk_out=Path(cdk_out),
            qualifier=qualifier,
        )
        where = target.describe()
    else:
        config = state.config
        checks = workflows.embedded_preflight(config, docker=docker)
        where = "the embedded default"
    if as_json:
        document = {
            "target": state.target_kind.value,
            "region": config.region,
            "stage": config.stage,
            "failed": verdicts.failed(checks),
            "checks": [check.as_dict() for check in checks],
        }
        print_json(document)
    else:
        console.print(f"[bold]preflight[/bold] for {config.prefix} on {where}")
        console.print(_table(checks))
        counts = {s: sum(c.status is s for c in checks) for s in verdicts.Status}
        console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if verdicts.failed(checks):
        raise typer.Exit(1)


@app.command("retained")
def retained(ctx: typer.Context) -> None:
    """After a destroy: what is still deployed, and what RETAIN kept.

    Read-only: the platform's stacks still deployed, and every resource the deleted ones kept
    (keys, buckets, the package group, MLflow, log groups), with how to remove each.
    """
    state: State = ctx.obj
    if state.target_kind is not Target.aws:
        console.print("nothing to list: the embedded default is not deployed with CloudFormation")
        return
    config = deploy_config(ctx, state)
    target = aws_target.AwsTarget(region=config.region, profile=state.profile)
    found = workflows.after_destroy(facts.PreflightClients.for_target(target), config)
    for name, stack in found.deployed.items():
        protection = (
            "; termination protection is on: to delete it too, aws cloudformation "
            f"update-termination-protection --no-enable-termination-protection --stack-name {name}"
            if stack.protected
            else ""
        )
        console.print(f"[yellow]{name}[/yellow] is still deployed ({stack.status}){protection}")
    if not found.retained:
        console.print(f"no resources kept by deleted {config.prefix} stacks in {config.region}")
        return
    table = Table(title=f"kept by deleted {config.prefix} stacks in {config.region} (RETAIN)")
    for column in ("stack", "deleted", "type", "name", "how to remove it"):
        table.add_column(column, overflow="fold")
    for resource in found.retained:
        table.add_row(
            resource.stack,
            resource.deleted,
            resource.resource_type,
            escape(resource.name),
            escape(verdicts.removal(resource)),
        )
    console.print(table)
    console.print(
        "Delete the buckets and log groups before the KMS keys that encrypt them; a KMS key "
        "is deleted after its waiting period, and whatever it encrypted is lost with it."
    )
