"""`mlops serving`: which approved packages serve as champion and challenger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from mlops.cli.common import (
    LazyModule,
    ReasonOption,
    State,
    checked,
    fail,
    package_version,
)
from mlops.cli.output import JsonOption, Report

if TYPE_CHECKING:
    from mlops.adapters import registry, stack_deployment
    from mlops.adapters.target import AwsTarget
    from mlops.core import approval, names, traffic
    from mlops.local import deployment as emulator_deployment
    from mlops.usecases import approve
    from mlops.usecases.approve import Deployment
else:
    registry = LazyModule("mlops.adapters.registry")
    stack_deployment = LazyModule("mlops.adapters.stack_deployment")
    approval = LazyModule("mlops.core.approval")
    names = LazyModule("mlops.core.names")
    traffic = LazyModule("mlops.core.traffic")
    emulator_deployment = LazyModule("mlops.local.deployment")
    approve = LazyModule("mlops.usecases.approve")

app = typer.Typer(
    help="Which approved packages serve as champion and challenger.", no_args_is_help=True
)


def deployment(state: State, target: AwsTarget) -> Deployment:
    """Where serving changes go: the emulator's endpoint, or the serving stack's parameters."""
    if target.is_emulator:
        return emulator_deployment.EmulatorDeployment(
            sagemaker=target.client("sagemaker"),
            config=state.config,
            resources=state.resources(target),
            cloudwatch=target.client("cloudwatch"),
            events=target.client("events"),
            ssm=target.client("ssm"),
        )
    return stack_deployment.StackDeployment(
        cloudformation=target.client("cloudformation"),
        ssm=target.client("ssm"),
        stack_name=names.serving_stack(state.config),
        weight_parameters=names.weight_parameters(state.config),
    )


def package(state: State, target: AwsTarget, version: str) -> str:
    """The ARN of the package an operator named by version number or ARN."""
    try:
        return registry.package_arn(
            target.client("sts"),
            version,
            region=state.config.region,
            group=state.config.model_package_group_name,
        )
    except ValueError as exc:
        fail(str(exc), code=2)


def apply_serving(
    state: State,
    target: AwsTarget,
    action: Literal["deploy", "promote"],
    package: str | None,
    reason: str,
    report: Report,
) -> None:
    resources = state.resources(target)
    try:
        outcome = approve.change_serving(
            approve.ServingRequest(
                action=action, requested_by=target.caller(), reason=reason, package_arn=package
            ),
            deployment=deployment(state, target),
            registry=target.client("sagemaker"),
            scope=approval.PackageScope(
                group=state.config.model_package_group_name,
                account=target.client("sts").get_caller_identity()["Account"],
                region=target.region,
            ),
            endpoint=state.config.endpoint_name,
            initial_challenger_weight=state.config.challenger_initial_weight,
            s3=target.client("s3"),
            audit_bucket=resources.reports_bucket,
            aliases=state.mlflow_aliases(target),
        )
    except (
        traffic.TrafficError,
        stack_deployment.DeploymentError,
        stack_deployment.DeploymentBusy,
    ) as exc:
        fail(str(exc))
    entry = outcome.record
    report.add(**vars(entry), duplicate=outcome.duplicate)
    report.line(f"{action}: {entry.summary}")
    report.line(f"  champion:   {entry.after.get('champion') or '-'}")
    report.line(f"  challenger: {entry.after.get('challenger') or '-'}")
    report.line(f"  weights:    {', '.join(f'{k} {v:g}' for k, v in entry.weights.items())}")
    if not target.is_emulator and entry.changed:
        report.line(
            f"  serving stack update started ({entry.stack_status}); follow it in CloudFormation"
        )
    report.line(f"  audit: {entry.audit_uri}")
    if outcome.aliases_error:
        report.add(mlflow_aliases_error=outcome.aliases_error)
        report.line(f"  [yellow]{outcome.aliases_error}[/yellow]")


@app.command("deploy")
def serving_deploy(
    ctx: typer.Context,
    version: Annotated[
        str,
        typer.Argument(
            help="an approved package: version number or ARN", callback=checked(package_version)
        ),
    ],
    reason: ReasonOption = "deploy an approved package",
    as_json: JsonOption = False,
) -> None:
    """Serve an approved package: the challenger, or the champion if there is none yet."""
    state: State = ctx.obj
    target = state.target()
    report = Report(as_json)
    apply_serving(state, target, "deploy", package(state, target, version), reason, report)
    report.emit()


@app.command("promote")
def serving_promote(ctx: typer.Context, reason: ReasonOption, as_json: JsonOption = False) -> None:
    """The challenger becomes the champion and takes all traffic."""
    state: State = ctx.obj
    report = Report(as_json)
    apply_serving(state, state.target(), "promote", None, reason, report)
    report.emit()
