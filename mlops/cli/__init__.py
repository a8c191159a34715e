"""`mlops`: everything an operator does, against the embedded default or a real account.

    mlops local up|down|status            the embedded default (AWS emulator + local MLflow)
    mlops pipeline run-local [...]        run the training pipeline's steps on this machine
    mlops pipeline start [...]            start the deployed SageMaker Pipeline and follow it
    mlops registry list|show|approve      the model registry
    mlops serving deploy|promote          which packages serve as champion and challenger
    mlops traffic shift|rollback|rollout-step
    mlops drift check|scheduled           drift checks over data capture

`--target local` (the default) talks to the emulator; `--target aws` to your AWS profile.
Context overrides work as with `cdk synth`: `-c stage=prod -c region=eu-west-1`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from mlops.adapters.registry import APPROVAL_STATUSES, PackageLineage, set_approval
from mlops.adapters.resources import PlatformResources, ResourcesNotFound
from mlops.adapters.target import AwsTarget
from mlops.core import names
from mlops.core.config import ConfigError, PlatformConfig, read_cdk_json_context
from mlops.local.emulator import (
    EmbeddedError,
    Home,
    bootstrap,
    running_emulator,
    start_emulator,
    stop_emulator,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

app = typer.Typer(
    help=__doc__.split("\n\n")[0] if __doc__ else None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(
    help="The embedded default: AWS emulator and local MLflow.", no_args_is_help=True
)
pipeline_app = typer.Typer(help="The training pipeline.", no_args_is_help=True)
endpoint_app = typer.Typer(help="The serving endpoint: status.", no_args_is_help=True)
serving_app = typer.Typer(
    help="Which approved packages serve as champion and challenger.", no_args_is_help=True
)
traffic_app = typer.Typer(
    help="Traffic between the champion and challenger: shift, rollback, rollout steps.",
    no_args_is_help=True,
)
data_app = typer.Typer(help="Training data in the datasets bucket.", no_args_is_help=True)
registry_app = typer.Typer(
    help="The model registry (SageMaker model package group).", no_args_is_help=True
)
app.add_typer(local_app, name="local")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(registry_app, name="registry")
app.add_typer(data_app, name="data")
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(serving_app, name="serving")
app.add_typer(traffic_app, name="traffic")
drift_app = typer.Typer(
    help="Drift checks over endpoint data capture (data, prediction and concept drift).",
    no_args_is_help=True,
)
app.add_typer(drift_app, name="drift")


class Target(StrEnum):
    local = "local"
    aws = "aws"


@dataclass
class State:
    config: PlatformConfig
    target_kind: Target
    home: Home
    endpoint_url: str | None
    profile: str | None

    def target(self, *, start: bool = False) -> AwsTarget:
        """The AWS target; on the embedded default, start the emulator if asked to."""
        if self.target_kind is Target.aws:
            return AwsTarget(region=self.config.region, profile=self.profile)
        if self.endpoint_url:
            return AwsTarget(region=self.config.region, endpoint_url=self.endpoint_url)
        emulator = running_emulator(self.home)
        if emulator is None:
            if not start:
                fail("the embedded default is not running: start it with `mlops local up`")
            emulator = start_emulator(self.home)
            target = AwsTarget(region=self.config.region, endpoint_url=emulator.endpoint_url)
            bootstrap(target, self.config)
            console.print(f"[dim]started the embedded default at {emulator.endpoint_url}[/dim]")
            return target
        return AwsTarget(region=self.config.region, endpoint_url=emulator.endpoint_url)

    def resources(self, target: AwsTarget) -> PlatformResources:
        if target.is_emulator:
            bootstrap(target, self.config)  # idempotent: the emulator may have been restarted
        return PlatformResources.resolve(target, self.config)


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/bold red] {message}")
    raise typer.Exit(code)


def _parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"{what} must look like key=value, got {pair!r}", code=2)
        parsed[key.strip()] = value.strip()
    return parsed


@app.callback()
def main_options(
    ctx: typer.Context,
    target: Annotated[
        Target,
        typer.Option(
            "--target",
            "-t",
            envvar="MLOPS_TARGET",
            help="local: the embedded default; aws: your AWS profile",
        ),
    ] = Target.local,
    context: Annotated[
        list[str] | None,
        typer.Option("--context", "-c", help="override a cdk.json context value: key=value"),
    ] = None,
    profile: Annotated[
        str | None, typer.Option(envvar="AWS_PROFILE", help="AWS profile (--target aws)")
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            envvar="MLOPS_ENDPOINT_URL",
            help="an already running AWS emulator to use (--target local)",
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(envvar="MLOPS_HOME", help="where the embedded default keeps its state"),
    ] = None,
) -> None:
    """Operate the MLOps platform: the embedded default or a real AWS account."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "botocore", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    cdk_json = PROJECT_ROOT / "cdk.json"
    try:
        values = read_cdk_json_context(cdk_json) if cdk_json.exists() else {}
        values |= _parse_pairs(context or [], "-c")
        config = PlatformConfig.from_context(
            values,
            default_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        )
    except ConfigError as exc:
        fail(str(exc), code=2)
    ctx.obj = State(
        config=config,
        target_kind=target,
        home=Home(home.resolve()) if home else Home.default(),
        endpoint_url=endpoint_url,
        profile=profile,
    )


# -- local ------------------------------------------------------------------------------------


@local_app.command("up")
def local_up(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="port for the emulator (default: a free one)")
    ] = None,
) -> None:
    """Start the AWS emulator in the background and create the platform's resources in it."""
    state: State = ctx.obj
    emulator = start_emulator(state.home, port)
    target = AwsTarget(region=state.config.region, endpoint_url=emulator.endpoint_url)
    resources = bootstrap(target, state.config)
    console.print(
        f"[green]embedded default running[/green] at {emulator.endpoint_url} (pid {emulator.pid})"
    )
    console.print(
        f"  buckets: {', '.join(resources.bucket(r) for r in ('datasets', 'artifacts', 'capture', 'reports'))}"
    )
    console.print(f"  model package group: {resources.model_package_group}")
    console.print(f"  state and MLflow store: {state.home.root}")


@local_app.command("down")
def local_down(ctx: typer.Context) -> None:
    """Stop the AWS emulator (its buckets and registry are in memory and are forgotten)."""
    state: State = ctx.obj
    if stop_emulator(state.home):
        console.print("stopped the embedded default's emulator")
    else:
        console.print("the embedded default was not running")


@local_app.command("status")
def local_status(ctx: typer.Context) -> None:
    """Is the emulator running, and where is everything."""
    state: State = ctx.obj
    emulator = running_emulator(state.home)
    if emulator is None:
        console.print("emulator: [yellow]not running[/yellow] (`mlops local up`)")
    else:
        console.print(
            f"emulator: [green]running[/green] at {emulator.endpoint_url} (pid {emulator.pid})"
        )
    console.print(f"home: {state.home.root}")
    console.print(f"MLflow: {state.home.mlflow_tracking_uri}")
    console.print(
        f"  UI: mlflow ui --backend-store-uri {state.home.mlflow_tracking_uri} "
        f"--default-artifact-root {state.home.mlflow_artifact_root}"
    )


# -- pipeline ---------------------------------------------------------------------------------


_STATUS_STYLE = {"Executing": "cyan", "Succeeded": "green", "Failed": "red", "Stopped": "yellow"}


def _print_step(step: str, status: str, detail: str) -> None:
    style = _STATUS_STYLE.get(status, "white")
    suffix = f"  [dim]{detail}[/dim]" if detail else ""
    console.print(f"  {step:<12} [{style}]{status:<10}[/{style}]{suffix}")


@pipeline_app.command("run-local")
def pipeline_run_local(
    ctx: typer.Context,
    algorithm: Annotated[str, typer.Option(help="logistic or gradient_boosting")] = "logistic",
    seed: Annotated[int, typer.Option(help="seed for the split and the model")] = 42,
    max_iter: Annotated[int, typer.Option(help="iterations (both algorithms)")] = 200,
    learning_rate: Annotated[float, typer.Option(help="gradient_boosting learning rate")] = 0.1,
    c: Annotated[float, typer.Option("--c", help="logistic inverse regularization strength")] = 1.0,
    threshold: Annotated[
        float | None,
        typer.Option(help="minimum test AUC to register (default: model_metric_threshold)"),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="a local CSV to train on (uploaded first)")
    ] = None,
    input_uri: Annotated[
        str | None, typer.Option(help="an S3 prefix of CSV files to train on")
    ] = None,
    approval_status: Annotated[
        str, typer.Option(help="registration status: PendingManualApproval, Approved or Rejected")
    ] = "PendingManualApproval",
) -> None:
    """Run preprocess -> train -> evaluate -> check -> register here, with the pipeline's code."""
    from mlops.local.pipeline import LocalPipelineRunner, RunOptions  # noqa: PLC0415 - heavy

    state: State = ctx.obj
    if approval_status not in APPROVAL_STATUSES:
        fail(f"--approval-status must be one of {', '.join(APPROVAL_STATUSES)}", code=2)
    if data is not None and input_uri is not None:
        fail("give --data or --input-uri, not both", code=2)
    options = RunOptions(
        algorithm=algorithm,
        seed=seed,
        max_iter=max_iter,
        learning_rate=learning_rate,
        c=c,
        metric_threshold=threshold,
        input_uri=input_uri,
        data_file=data,
        approval_status=approval_status,
    )
    try:
        options.hyperparameters()
    except ValueError as exc:
        fail(str(exc), code=2)
    target = state.target(start=True)
    resources = state.resources(target)
    import mlflow  # noqa: PLC0415, F401 - configures its loggers on import; quiet them after

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    tracking = (
        state.home.mlflow_tracking_uri
        if target.is_emulator
        else os.environ.get("MLFLOW_TRACKING_URI")
    )
    if target.is_emulator:
        state.home.mlflow_dir.mkdir(parents=True, exist_ok=True)
    runner = LocalPipelineRunner(
        target=target,
        resources=resources,
        config=state.config,
        mlflow_tracking_uri=tracking,
        mlflow_artifact_root=state.home.mlflow_artifact_root if target.is_emulator else None,
        progress=_print_step,
    )
    console.print(f"[bold]{resources.pipeline_name}[/bold] on {target.describe()}")
    result = runner.run(options)
    console.print(f"  execution: {result.execution_id}")
    console.print(f"  input:     {result.input_uri}")
    if result.metrics:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()))
        console.print(f"  test metrics: {shown}")
    console.print(
        f"  lineage:   dataset {(result.dataset_sha256 or '-')[:16]}  code {(result.code_version or '-')[:16]}  model {(result.model_sha256 or '-')[:16]}"
    )
    if result.mlflow_run_id:
        console.print(f"  MLflow run: {result.mlflow_run_id} ({tracking})")
    if not result.registered:
        fail(f"not registered: {result.reason}")
    console.print(f"[green]registered[/green] {result.model_package_arn}")


@pipeline_app.command("start")
def pipeline_start(
    ctx: typer.Context,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="pipeline parameter Name=Value (repeatable)"),
    ] = None,
    wait: Annotated[bool, typer.Option(help="follow the execution until it ends")] = True,
    poll_seconds: Annotated[
        float, typer.Option(min=1.0, help="seconds between status checks")
    ] = 15.0,
    timeout_minutes: Annotated[
        float | None, typer.Option(help="stop following after this long")
    ] = None,
) -> None:
    """Start an execution of the deployed SageMaker Pipeline, print each step, and the package."""
    from mlops.adapters.executions import ExecutionError, follow_execution, start_execution  # noqa: PLC0415

    state: State = ctx.obj
    target = state.target()
    parameters = _parse_pairs(param or [], "--param")
    sagemaker = target.client("sagemaker")
    name = state.config.pipeline_name
    try:
        arn = start_execution(sagemaker, name, parameters)
        console.print(f"started [bold]{name}[/bold]: {arn}")
        if not wait:
            return
        outcome = follow_execution(
            sagemaker,
            arn,
            poll_seconds=poll_seconds,
            timeout_seconds=None if timeout_minutes is None else timeout_minutes * 60,
            on_step=lambda step: _print_step(step.name, step.status, step.failure_reason or ""),
        )
    except ExecutionError as exc:
        fail(str(exc))
    console.print(f"execution [bold]{outcome.status}[/bold]")
    if outcome.model_package_arn:
        console.print(f"[green]registered[/green] {outcome.model_package_arn}")
    if outcome.status != "Succeeded":
        fail(outcome.failure_reason or f"the execution ended {outcome.status}")


# -- endpoint and traffic -----------------------------------------------------------------------


EndpointOption = Annotated[
    str | None,
    typer.Option("--endpoint", "-e", help="endpoint name (default: <prefix>-<model_family>)"),
]


@endpoint_app.command("status")
def endpoint_status(ctx: typer.Context, endpoint: EndpointOption = None) -> None:
    """The endpoint, its variants, their weights, instances and models, and their alarms."""
    from mlops.adapters import endpoints  # noqa: PLC0415
    from mlops.core.traffic import normalized  # noqa: PLC0415

    def watched(endpoint: str, variant: str) -> list[str]:
        return [*names.variant_alarms(endpoint, variant), names.drift_alarm(endpoint, variant)]

    state: State = ctx.obj
    target = state.target()
    name = endpoint or state.config.endpoint_name
    sagemaker = target.client("sagemaker")
    try:
        current = endpoints.describe(sagemaker, name)
    except endpoints.EndpointNotFound as exc:
        fail(str(exc))
    config = sagemaker.describe_endpoint_config(EndpointConfigName=current.config_name)
    models = {v["VariantName"]: v.get("ModelName", "-") for v in config["ProductionVariants"]}
    shares = normalized(current.weights)
    alarm_names = [a for v in current.variant_names for a in watched(name, v)]
    alarms = {
        a["AlarmName"]: a["StateValue"]
        for a in target.client("cloudwatch")
        .describe_alarms(AlarmNames=alarm_names)
        .get("MetricAlarms", [])
    }
    console.print(f"[bold]{name}[/bold]: {current.status} (config {current.config_name})")
    table = Table()
    for column in ("variant", "weight", "traffic", "instances", "model", "alarms"):
        table.add_column(column)
    for variant in current.variants:
        states = [
            f"{a.rsplit('-', 1)[1]} {alarms.get(a, 'none')}" for a in watched(name, variant.name)
        ]
        table.add_row(
            variant.name,
            f"{variant.weight:g}",
            f"{shares[variant.name]:.0%}",
            str(variant.instances if variant.instances is not None else "-"),
            models.get(variant.name, "-"),
            ", ".join(states),
        )
    console.print(table)


def _operator(target: AwsTarget) -> str:
    try:
        return str(target.client("sts").get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError):
        return os.environ.get("USER", "unknown")


def _alerts_topic(state: State, target: AwsTarget) -> str | None:
    """The serving stack's alerts topic in AWS (none on the embedded default)."""
    if target.is_emulator:
        return None
    try:
        stack = target.client("cloudformation").describe_stacks(
            StackName=names.serving_stack(state.config)
        )
    except ClientError:
        return None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0].get("Outputs", [])}
    return outputs.get("AlertsTopicArn")


def _apply_traffic(state: State, endpoint: str | None, **request: Any) -> None:
    from mlops.adapters.endpoints import EndpointError  # noqa: PLC0415
    from mlops.core.functions import TrafficSettings  # noqa: PLC0415
    from mlops.core.traffic import TrafficError  # noqa: PLC0415
    from mlops.usecases.apply_traffic import TrafficRequest, traffic_controller  # noqa: PLC0415

    target = state.target()
    resources = state.resources(target)
    name = endpoint or state.config.endpoint_name
    settings = TrafficSettings.for_platform(
        state.config,
        audit_bucket=resources.reports_bucket,
        topic_arn=_alerts_topic(state, target),
        endpoint=name,
    )
    controller = traffic_controller(settings, target, send_instance_counts=target.is_emulator)
    try:
        outcome = controller.apply(
            TrafficRequest.parse({"endpoint": name, "requested_by": _operator(target), **request})
        )
    except (TrafficError, EndpointError) as exc:
        fail(str(exc))
    before = ", ".join(f"{k} {v:g}" for k, v in sorted(outcome.weights_before.items()))
    after = ", ".join(f"{k} {v:g}" for k, v in sorted(outcome.weights_after.items()))
    verb = "changed" if outcome.changed else "unchanged"
    console.print(f"{outcome.action} on [bold]{name}[/bold]: {verb}")
    console.print(f"  before: {before}")
    console.print(f"  after:  {after}")
    console.print(f"  {outcome.decision}")
    if outcome.seconds_to_request is not None:
        console.print(
            f"  new weights requested {outcome.seconds_to_request * 1000:.0f} ms after the trigger, "
            f"{sum(outcome.api_calls.values())} API calls"
        )
    console.print(f"  audit: {outcome.audit_uri}")


ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="why: kept in the audit record")]


@traffic_app.command("rollback")
def traffic_rollback(
    ctx: typer.Context, reason: ReasonOption, endpoint: EndpointOption = None
) -> None:
    """All traffic to the champion, now."""
    _apply_traffic(ctx.obj, endpoint, action="rollback", reason=reason)


@traffic_app.command("shift")
def traffic_shift(
    ctx: typer.Context,
    reason: ReasonOption,
    challenger: Annotated[
        float | None, typer.Option(help="the challenger's share of traffic, 0 to 1")
    ] = None,
    weight: Annotated[
        list[str] | None, typer.Option("--weight", "-w", help="variant=weight (repeatable)")
    ] = None,
    endpoint: EndpointOption = None,
) -> None:
    """Set the variants' weights: --challenger 0.25, or --weight champion=3 --weight challenger=1."""
    weights = _parse_pairs(weight or [], "--weight") if weight else None
    _apply_traffic(
        ctx.obj, endpoint, action="shift", reason=reason, challenger=challenger, weights=weights
    )


@traffic_app.command("rollout-step")
def traffic_rollout_step(
    ctx: typer.Context,
    reason: ReasonOption = "gated rollout step",
    endpoint: EndpointOption = None,
) -> None:
    """Raise the challenger to the next configured step if its alarms are OK; else roll back."""
    _apply_traffic(ctx.obj, endpoint, action="rollout-step", reason=reason)


# -- serving ------------------------------------------------------------------------------------


def _deployment(state: State, target: AwsTarget) -> Any:
    """Where serving changes go: the emulator's endpoint, or the serving stack's parameters."""
    from mlops.adapters.stack_deployment import StackDeployment  # noqa: PLC0415
    from mlops.local.deployment import EmulatorDeployment  # noqa: PLC0415

    if target.is_emulator:
        return EmulatorDeployment(
            sagemaker=target.client("sagemaker"),
            config=state.config,
            resources=state.resources(target),
            cloudwatch=target.client("cloudwatch"),
            events=target.client("events"),
        )
    return StackDeployment(
        cloudformation=target.client("cloudformation"),
        ssm=target.client("ssm"),
        stack_name=names.serving_stack(state.config),
        weight_parameters=names.weight_parameters(state.config),
    )


def _apply_serving(
    state: State, target: AwsTarget, action: str, package: str | None, reason: str
) -> None:
    from mlops.adapters.stack_deployment import DeploymentBusy, DeploymentError  # noqa: PLC0415
    from mlops.core.traffic import TrafficError  # noqa: PLC0415
    from mlops.usecases.approve import ServingRequest, change_serving  # noqa: PLC0415

    if action == "deploy":
        described = target.client("sagemaker").describe_model_package(ModelPackageName=package)
        if described.get("ModelApprovalStatus") != "Approved":
            fail(
                f"{package} is {described.get('ModelApprovalStatus')}: only approved packages serve"
            )
    resources = state.resources(target)
    try:
        outcome = change_serving(
            ServingRequest(
                action="promote" if action == "promote" else "deploy",
                requested_by=_operator(target),
                reason=reason,
                package_arn=package,
            ),
            deployment=_deployment(state, target),
            endpoint=state.config.endpoint_name,
            initial_challenger_weight=state.config.challenger_initial_weight,
            s3=target.client("s3"),
            audit_bucket=resources.reports_bucket,
        )
    except (TrafficError, DeploymentError, DeploymentBusy) as exc:
        fail(str(exc))
    entry = outcome.record
    console.print(f"{action}: {entry.summary}")
    console.print(f"  champion:   {entry.after.get('champion') or '-'}")
    console.print(f"  challenger: {entry.after.get('challenger') or '-'}")
    console.print(f"  weights:    {', '.join(f'{k} {v:g}' for k, v in entry.weights.items())}")
    if not target.is_emulator and entry.changed:
        console.print(
            f"  serving stack update started ({entry.stack_status}); follow it in CloudFormation"
        )
    console.print(f"  audit: {entry.audit_uri}")


@serving_app.command("deploy")
def serving_deploy(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="an approved package: version number or ARN")],
    reason: ReasonOption = "deploy an approved package",
) -> None:
    """Serve an approved package: the challenger, or the champion if there is none yet."""
    state: State = ctx.obj
    target = state.target()
    _apply_serving(state, target, "deploy", _package_arn(state, target, version), reason)


@serving_app.command("promote")
def serving_promote(ctx: typer.Context, reason: ReasonOption) -> None:
    """The challenger becomes the champion and takes all traffic."""
    state: State = ctx.obj
    _apply_serving(state, state.target(), "promote", None, reason)


@local_app.command("serve")
def local_serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0: a free one)")] = 8080,
) -> None:
    """Serve the emulator's endpoints over the SageMaker runtime protocol, until Ctrl-C."""
    import time  # noqa: PLC0415

    from mlops.local.endpoint import LocalEndpoints, LocalEndpointServer  # noqa: PLC0415

    state: State = ctx.obj
    target = state.target()
    if not target.is_emulator:
        fail("local serve serves the embedded default's endpoints; use --target local", code=2)
    cache = state.home.root / "models"
    cache.mkdir(parents=True, exist_ok=True)
    server = LocalEndpointServer(LocalEndpoints(target, cache_dir=cache), port=port).start()
    console.print(
        f"serving [bold]{state.config.endpoint_name}[/bold] at {server.url} (Ctrl-C stops)"
    )
    console.print(
        f'  boto3.client("sagemaker-runtime", endpoint_url="{server.url}").invoke_endpoint('
        f'EndpointName="{state.config.endpoint_name}", ContentType="text/csv", Body="4.6,1,6.9,0,0,13.7,1,0,0")'
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        console.print(
            f"stopped; capture written: {len(server.endpoints.capture.files_written)} file(s)"
        )


# -- data -------------------------------------------------------------------------------------


@data_app.command("upload")
def data_upload(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="a CSV file (default: the bundled randhie dataset)")
    ] = None,
    prefix: Annotated[str, typer.Option(help="key prefix in the datasets bucket")] = "raw/",
) -> None:
    """Validate a CSV against the schema and upload it where the pipeline reads by default."""
    from mlops.adapters import s3io  # noqa: PLC0415
    from pipeline_steps.data import bundled_dataset_path  # noqa: PLC0415
    from pipeline_steps.schema import DataValidationError, read_validated_csv  # noqa: PLC0415

    state: State = ctx.obj
    source = path or bundled_dataset_path()
    if not source.is_file():
        fail(f"{source}: no such file", code=2)
    try:
        rows = len(read_validated_csv(source))  # refuse bad data before it reaches S3
    except DataValidationError as exc:
        fail(f"not uploaded: {exc}")
    target = state.target(start=True)
    resources = state.resources(target)
    uri = f"s3://{resources.datasets_bucket}/{prefix.strip('/')}/{source.name}"
    extra = (
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": resources.key_arn}
        if resources.key_arn
        else {}
    )
    s3io.upload_file(target.client("s3"), source, uri, **extra)
    console.print(f"uploaded {rows} rows to {uri}")


# -- registry ---------------------------------------------------------------------------------


def _packages(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    packages: list[dict[str, Any]] = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    ):
        packages += page["ModelPackageSummaryList"]
    return packages


def _package_arn(state: State, target: AwsTarget, version: str) -> str:
    if version.startswith("arn:"):
        return version
    if not version.isdigit():
        fail(f"a package is named by its version number or ARN, got {version!r}", code=2)
    account = target.client("sts").get_caller_identity()["Account"]
    partition = "aws-cn" if state.config.region.startswith("cn-") else "aws"
    return (
        f"arn:{partition}:sagemaker:{state.config.region}:{account}:model-package/"
        f"{state.config.model_package_group_name}/{int(version)}"
    )


@registry_app.command("list")
def registry_list(ctx: typer.Context) -> None:
    """Every model package of the model family, newest first."""
    state: State = ctx.obj
    target = state.target()
    resources = state.resources(target)
    sagemaker = target.client("sagemaker")
    table = Table(title=resources.model_package_group)
    for column in ("version", "status", "created", "AUC", "MLflow run", "dataset"):
        table.add_column(column)
    for summary in _packages(sagemaker, resources.model_package_group):
        described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        lineage = PackageLineage.from_description(described)
        table.add_row(
            str(lineage.version),
            lineage.approval_status,
            f"{summary['CreationTime']:%Y-%m-%d %H:%M}",
            _auc(target, lineage.evaluation_uri),
            (lineage.mlflow_run_id or "-")[:12],
            (lineage.dataset_sha256 or "-")[:12],
        )
    console.print(table)


def _auc(target: AwsTarget, evaluation_uri: str | None) -> str:
    import json  # noqa: PLC0415

    from mlops.adapters import s3io  # noqa: PLC0415

    if not evaluation_uri:
        return "-"
    try:
        bucket, key = s3io.split_uri(evaluation_uri)
        report = json.loads(target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        return f"{report['binary_classification_metrics']['auc']['value']:.4f}"
    except (ClientError, KeyError, ValueError):
        return "?"


@registry_app.command("show")
def registry_show(
    ctx: typer.Context, version: Annotated[str, typer.Argument(help="version number or ARN")]
) -> None:
    """One package's lineage: its MLflow run, data version, code version and files."""
    state: State = ctx.obj
    target = state.target()
    described = target.client("sagemaker").describe_model_package(
        ModelPackageName=_package_arn(state, target, version)
    )
    lineage = PackageLineage.from_description(described)
    for name, value in vars(lineage).items():
        console.print(f"{name:>20}: {value}")


@registry_app.command("approve")
def registry_approve(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="version number or ARN")],
    reject: Annotated[bool, typer.Option(help="reject instead of approve")] = False,
    reason: Annotated[str, typer.Option(help="why: kept on the package")] = "",
) -> None:
    """Approve (or reject) a model package: approval is what deploys it."""
    state: State = ctx.obj
    target = state.target()
    arn = _package_arn(state, target, version)
    status = "Rejected" if reject else "Approved"
    set_approval(target.client("sagemaker"), arn, status, reason)
    console.print(f"{arn}: [bold]{status}[/bold]")
    if status == "Approved" and target.is_emulator:
        # In AWS the approval event runs the deploy Lambda; the emulator emits no events.
        _apply_serving(state, target, "deploy", arn, f"approved: {reason or 'no reason given'}")


# -- drift ------------------------------------------------------------------------------------------
DRIFT_EXIT_CODE = 3  # --fail-on-drift: distinct from errors (1) and usage errors (2)


def _when(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{what} must be an ISO time such as 2026-11-26T14:00Z, got {value!r}", code=2)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _duration(value: str) -> timedelta:
    match = re.fullmatch(r"(\d+)\s*([mhd])", value.strip())
    if not match or int(match.group(1)) == 0:
        fail(f"--last must look like 30m, 6h or 2d, got {value!r}", code=2)
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def _print_drift(outcomes: list[Any]) -> None:
    table = Table(title="drift check")
    for column in (
        "variant",
        "status",
        "rows",
        "malformed",
        "drift share",
        "drifted features",
        "prediction",
        "AUC (eval)",
    ):
        table.add_column(column)  # fmt: skip
    colour = {"drift": "bold red", "no-drift": "green", "not-enough-data": "yellow"}
    for o in outcomes:
        report = o.report
        data, prediction, quality = report.data, report.prediction, report.quality
        table.add_row(
            o.variant,
            f"[{colour[report.status]}]{report.status}[/]",
            f"{report.rows} (min {report.min_rows})",
            str(report.malformed),
            f"{data.drift_share:.2f}" if data else "-",
            ", ".join(c.column for c in data.columns if c.drifted) or "none" if data else "-",
            f"{prediction.score:.3f}{' drifted' if prediction.drifted else ''}"
            if prediction else "-",
            f"{quality.value:.3f} ({quality.baseline:.3f})"
            if quality and quality.value is not None else "-",
        )  # fmt: skip
    console.print(table)
    for o in outcomes:
        console.print(
            f"{o.variant}: window {o.window_start:%Y-%m-%d %H:%M:%S} - {o.window_end:%H:%M:%S} UTC"
        )
        console.print(f"  result: {o.json_uri}")
        if o.html_uri:
            console.print(f"  report: {o.html_uri}")
        for note in o.notes:
            console.print(f"  [dim]{note}[/dim]")
        for error in o.report.errors[:5]:
            console.print(f"  [yellow]malformed:[/yellow] {error}")


@dataclass
class _DriftRun:
    """`mlops drift check`: where the results go, and the two kinds of input."""

    endpoint_name: str
    thresholds: Any  # DriftThresholds
    html: bool
    settings: Any  # DriftSettings of the endpoint (endpoint checks only)
    target: AwsTarget | None
    output: str | None
    run_id: str
    start: datetime
    end: datetime

    @property
    def s3(self) -> Any:
        return self.target.client("s3") if self.target else None

    def sink(self, default: Any) -> Any:
        from mlops.adapters import s3io  # noqa: PLC0415
        from mlops.usecases.check_drift import LocalSink, S3Sink  # noqa: PLC0415

        if self.output and self.output.startswith("s3://"):
            bucket, prefix = s3io.split_uri(self.output)
            return S3Sink(self.s3, bucket, prefix)
        return LocalSink(Path(self.output)) if self.output else default

    def files(
        self, capture: str, reference: str, scores: str | None, variant: str,
        *, windowed: tuple[bool, bool],
    ) -> list[Any]:  # fmt: skip
        from mlops.adapters.evidently_report import evidently_html  # noqa: PLC0415
        from mlops.core.capture import GroundTruth  # noqa: PLC0415
        from mlops.usecases.check_drift import (  # noqa: PLC0415
            LocalSink,
            evaluate,
            load_capture,
            load_reference,
        )

        given = load_reference(reference, self.s3, scores_location=scores)
        since, until = windowed
        window = load_capture(capture, self.s3, start=self.start if since else None,
                              end=self.end if until else None)  # fmt: skip
        start, end = self.start, self.end
        if not since and window.first is not None:
            start = window.first  # the files' own span, not "the last hour"
        if not until and window.last is not None:
            end = window.last + timedelta(seconds=1)
        return [
            evaluate(
                self.endpoint_name, self.thresholds, given, window, GroundTruth(), variant=variant,
                weight=float("nan"), start=start, end=end, run_id=self.run_id,
                sink=self.sink(LocalSink(Path("drift-reports"))),
                render_html=evidently_html if self.html else None,
            )
        ]  # fmt: skip

    def endpoint(self, variants: list[str]) -> list[Any]:
        from mlops.usecases.check_drift import DriftMonitor  # noqa: PLC0415

        if self.target is None or self.settings is None:
            raise ValueError("checking an endpoint needs an AWS target")
        monitor = DriftMonitor(
            sagemaker=self.target.client("sagemaker"),
            s3=self.s3,
            settings=self.settings,
            html_report=self.html,
        )
        name = self.endpoint_name
        try:
            serving = monitor.serving()
        except ClientError as exc:
            fail(f"endpoint {name}: {exc.response['Error']['Message']}")
        unknown = set(variants) - set(serving)
        if unknown:
            fail(f"no variant {', '.join(sorted(unknown))} on {name} "
                 f"(it has {', '.join(sorted(serving))})", code=2)  # fmt: skip
        return [
            monitor.check_window(
                v, package, weight, start=self.start, end=self.end, run_id=self.run_id,
                sink=self.sink(monitor.sink()),
            )
            for v, (package, weight) in sorted(serving.items())
            if not variants or v in variants
        ]  # fmt: skip


@drift_app.command("check")
def drift_check(
    ctx: typer.Context,
    capture: Annotated[
        str | None,
        typer.Option(
            help="capture files: a folder or S3 prefix of .jsonl files "
            "(default: the endpoint's capture location)"
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            help="reference.csv, or the folder / S3 prefix holding it (default: the "
            "reference of the model package each variant serves)"
        ),
    ] = None,
    reference_scores: Annotated[
        str | None, typer.Option(help="the model's scores.csv, for prediction drift")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", "-v", help="variant(s) to check (default: every variant)"),
    ] = None,
    endpoint: EndpointOption = None,
    since: Annotated[str | None, typer.Option(help="window start, ISO time (UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="window end, ISO time (default: now)")] = None,
    last: Annotated[str, typer.Option(help="window length when --since is not given")] = "1h",
    output: Annotated[
        str | None,
        typer.Option(
            help="folder or S3 prefix for the JSON results and HTML reports "
            "(default: the reports bucket; ./drift-reports with --capture)"
        ),
    ] = None,
    html: Annotated[bool, typer.Option(help="render Evidently's HTML report")] = True,
    min_rows: Annotated[
        int | None, typer.Option(min=1, help="rows needed for a verdict (default: config)")
    ] = None,
    fail_on_drift: Annotated[
        bool, typer.Option(help=f"exit {DRIFT_EXIT_CODE} when any variant drifts (for CI)")
    ] = False,
) -> None:
    """Check captured requests for drift against the model's reference, and write the reports.

    Without --capture: the endpoint's variants, each against the reference of the model it serves, over the last hour (or --since/--until). With --capture: any capture files against --reference, for example a folder copied from S3.
    """
    from mlops.core.functions import DriftSettings, DriftThresholds  # noqa: PLC0415
    from mlops.usecases.check_drift import ReferenceDataError  # noqa: PLC0415

    state: State = ctx.obj
    config = state.config
    name = endpoint or config.endpoint_name
    if capture is None and (reference or reference_scores):
        fail("--reference and --reference-scores go with --capture; without it each variant "
             "is checked against the reference of the model it serves", code=2)  # fmt: skip
    if capture is not None and reference is None:
        fail("--capture needs --reference (the reference.csv to compare with)", code=2)
    if capture is not None and len(variant or []) > 1:
        fail("--capture files are one variant's: give at most one --variant", code=2)
    end = _when(until, "--until") or datetime.now(UTC)
    start = _when(since, "--since") or end - _duration(last)
    if end <= start:
        fail(f"the window is empty: --since {start.isoformat()} is not before "
             f"{end.isoformat()}", code=2)  # fmt: skip
    needs_aws = capture is None or any(
        loc and loc.startswith("s3://") for loc in (capture, reference, reference_scores, output)
    )
    target = state.target() if needs_aws else None
    resources = state.resources(target) if target and capture is None else None
    if min_rows is not None:
        config = config.model_copy(update={"min_rows_for_drift": min_rows})
    settings = (
        DriftSettings.for_platform(
            config,
            reports_bucket=resources.reports_bucket,
            capture_bucket=resources.capture_bucket,
            topic_arn=None,
        ).model_copy(update={"endpoint_name": name})
        if resources
        else None
    )
    run = _DriftRun(
        name, DriftThresholds.from_config(config), html, settings, target, output,
        f"cli-{uuid.uuid4().hex[:8]}", start, end,
    )  # fmt: skip
    try:
        if capture is not None:
            outcomes = run.files(
                capture, str(reference), reference_scores, (variant or ["capture"])[0],
                windowed=(since is not None, until is not None),
            )  # fmt: skip
        else:
            outcomes = run.endpoint(variant or [])
    except (ReferenceDataError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    _print_drift(outcomes)
    drifted = [o.variant for o in outcomes if o.drifted]
    if drifted and fail_on_drift:
        errors.print(f"[bold red]drift[/bold red] on {', '.join(drifted)}")
        raise typer.Exit(DRIFT_EXIT_CODE)


@drift_app.command("scheduled")
def drift_scheduled(ctx: typer.Context) -> None:
    """Run the scheduled drift check now, as its schedule does.

    Embedded default: the drift Lambda's handler on a schedule event, its metrics into the
    emulator, the drift alarms evaluated and their actions run (rollback, retraining).
    AWS: invokes the deployed drift function.
    """
    state: State = ctx.obj
    target = state.target()
    resources = state.resources(target)
    if target.is_emulator:
        from mlops.local.aws_services import scheduled_drift_check  # noqa: PLC0415

        run = scheduled_drift_check(target, state.config, resources)
        result = run.result
    else:
        stack = target.client("cloudformation").describe_stacks(
            StackName=names.serving_stack(state.config)
        )["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        # A run may take minutes: wait for it, and never invoke twice on a read timeout.
        client = target.client("lambda", read_timeout=910, retries={"max_attempts": 1})
        response = client.invoke(
            FunctionName=outputs["DriftFunctionName"], Payload=json.dumps({"action": "check"})
        )
        result = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            fail(f"the drift function failed: {result}")
        run = None
    if not result.get("ok"):
        fail(str(result.get("error")))
    table = Table(title=f"scheduled drift check {result['run_id']}")
    for column in ("variant", "status", "rows", "malformed", "drift share", "result"):
        table.add_column(column)
    for v in result["variants"]:
        share = "-" if v["drift_share"] is None else f"{v['drift_share']:.2f}"
        table.add_row(v["variant"], v["status"], str(v["rows"]), str(v["malformed"]), share,
                      v["result"])  # fmt: skip
    console.print(table)
    for v in result["variants"]:
        if v["report"]:
            console.print(f"{v['variant']} report: {v['report']}")
    if run is not None:
        for event in run.alarm_events:
            detail = event["detail"]
            console.print(f"alarm {detail['alarmName']}: {detail['previousState']['value']} -> "
                          f"{detail['state']['value']}")  # fmt: skip
        for route, outcome in run.actions:
            console.print(f"{route} function: {outcome.get('decision') or outcome}")


# -- the demo -----------------------------------------------------------------------------------------
@app.command("demo")
def demo(
    folder: Annotated[
        Path, typer.Option(help="everything the demo leaves goes here (cleared first)")
    ] = Path("demo-output"),
    normal_rows: Annotated[
        int, typer.Option(min=200, help="ordinary requests (rows), in each traffic phase")
    ] = 3000,
    drifted_rows: Annotated[
        int, typer.Option(min=200, help="rows from a shifted population, to the challenger")
    ] = 1500,
) -> None:
    """The whole lifecycle on the embedded default, narrated: train, register, approve, deploy,
    roll out, serve, drift, alarm, roll back. No AWS account; about 75 s on 2 cores."""
    from mlops.local.demo import Demo, DemoFailed, DemoOptions, Narrator  # noqa: PLC0415

    class RichNarrator(Narrator):
        def stage(self, number: int, total: int, title: str) -> None:
            console.print(f"\n[bold cyan][{number}/{total}][/bold cyan] [bold]{title}[/bold]")

        def say(self, text: str) -> None:
            console.print(f"      {text}")

    console.print("[bold]The MLOps platform's lifecycle on the embedded default[/bold] "
                  "(AWS emulator + local MLflow; the same code as in AWS)")  # fmt: skip
    options = DemoOptions(folder=folder, normal_rows=normal_rows, drifted_rows=drifted_rows)
    try:
        summary = Demo(options, RichNarrator()).run()
    except DemoFailed as exc:
        fail(f"the demo stopped: {exc} (nothing it started is left running)")
    except KeyboardInterrupt:
        errors.print(f"\ninterrupted: every process the demo started is stopped; {folder} kept")
        raise typer.Exit(130) from None
    table = Table(title="summary", show_header=True)
    table.add_column("variant")
    table.add_column("weight before rollback")
    table.add_column("weight after")
    table.add_column("baseline check")
    table.add_column("after the drift")
    for variant in ("champion", "challenger"):
        checks = [summary.checks[phase][variant] for phase in ("baseline", "drift")]
        table.add_row(
            variant,
            f"{summary.weights_before_rollback.get(variant, 0):g}",
            f"{summary.weights_after_rollback.get(variant, 0):g}",
            *(
                f"{c['status']}, share {c['drift_share']:.2f}" if c["drift_share"] is not None
                else c["status"]
                for c in checks
            ),
        )  # fmt: skip
    console.print()
    console.print(table)
    rollback = summary.rollback
    console.print(
        f"rollback: {rollback['decision']} - the controller requested the new weights "
        f"{rollback['controller_seconds'] * 1000:.0f} ms after it started "
        f"({rollback['api_calls']} API calls); alarm to weights requested "
        f"{rollback['alarm_to_rollback_seconds'] * 1000:.0f} ms here (in AWS add the alarm "
        "period, EventBridge and a cold start)"
    )
    console.print(f"models: v1 AUC {summary.auc['v1']:.4f}, v2 AUC {summary.auc['v2']:.4f}")
    console.print(f"drift report (open in a browser): {summary.report_html}")
    console.print(f"audit record of the rollback:     {summary.audit_record}")
    console.print(f"MLflow: {summary.mlflow_runs} runs in {summary.mlflow_tracking_uri}")
    console.print(
        f"  open the UI: .venv/bin/mlflow ui --backend-store-uri {summary.mlflow_tracking_uri}"
    )
    console.print(f"summary: {Path(summary.folder) / 'summary.json'}")
    console.print(f"[bold green]done in {summary.seconds:.0f} s[/bold green]; "
                  "every process the demo started is stopped")  # fmt: skip


def main() -> None:
    try:
        app()
    except (EmbeddedError, ResourcesNotFound) as exc:
        errors.print(f"[bold red]error:[/bold red] {exc}")
        sys.exit(1)
    except (ClientError, BotoCoreError) as exc:
        errors.print(f"[bold red]AWS error:[/bold red] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
