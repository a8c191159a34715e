"""`mlops pipeline`: the training pipeline, run here or started in SageMaker."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.cli.common import (
    LazyModule,
    State,
    checked,
    console,
    fail,
    input_file,
    number,
    parse_pairs,
    s3_uri,
)
from pipeline_steps.hyperparameters import DEFAULTS, Hyperparameters

if TYPE_CHECKING:
    from mlops.adapters import executions, registry
    from mlops.local import emulator as embedded
    from mlops.local import pipeline as local_pipeline
else:
    executions = LazyModule("mlops.adapters.executions")
    registry = LazyModule("mlops.adapters.registry")
    # The pipeline's steps import pandas and scikit-learn.
    local_pipeline = LazyModule("mlops.local.pipeline")
    embedded = LazyModule("mlops.local.emulator")

app = typer.Typer(help="The training pipeline.", no_args_is_help=True)


def _algorithm(value: str) -> str | None:
    try:
        Hyperparameters(algorithm=value)  # type: ignore[arg-type]
    except ValueError as exc:  # its own message: "algorithm must be one of ..."
        return str(exc)
    return None


def _approval_status(value: str) -> str | None:
    choices = registry.APPROVAL_STATUSES
    return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"


_STATUS_STYLE = {"Executing": "cyan", "Succeeded": "green", "Failed": "red", "Stopped": "yellow"}


def _print_step(step: str, status: str, detail: str) -> None:
    style = _STATUS_STYLE.get(status, "white")
    suffix = f"  [dim]{detail}[/dim]" if detail else ""
    console.print(f"  {step:<12} [{style}]{status:<10}[/{style}]{suffix}")


@app.command("run-local")
def pipeline_run_local(
    ctx: typer.Context,
    algorithm: Annotated[
        str,
        typer.Option(help="logistic or gradient_boosting", callback=checked(_algorithm)),
    ] = DEFAULTS.algorithm,
    seed: Annotated[
        int,
        typer.Option(
            help="seed for the split and the model", callback=checked(number(0, 2**32 - 1))
        ),
    ] = DEFAULTS.seed,
    max_iter: Annotated[
        int, typer.Option(help="iterations (both algorithms)", callback=checked(number(1)))
    ] = DEFAULTS.max_iter,
    learning_rate: Annotated[
        float,
        typer.Option(
            help="gradient_boosting learning rate", callback=checked(number(0, above=True))
        ),
    ] = DEFAULTS.learning_rate,
    c: Annotated[
        float,
        typer.Option(
            "--c",
            help="logistic inverse regularization strength",
            callback=checked(number(0, above=True)),
        ),
    ] = DEFAULTS.c,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="minimum test AUC to register (default: model_metric_threshold)",
            callback=checked(number(0, 1)),
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="a local CSV to train on (uploaded first)", callback=checked(input_file)),
    ] = None,
    input_uri: Annotated[
        str | None,
        typer.Option(help="an S3 prefix of CSV files to train on", callback=checked(s3_uri)),
    ] = None,
    approval_status: Annotated[
        str,
        typer.Option(
            help="registration status: PendingManualApproval, Approved or Rejected",
            callback=checked(_approval_status),
        ),
    ] = "PendingManualApproval",
) -> None:
    """Run preprocess -> train -> evaluate -> check -> register here, with the pipeline's code."""
    state: State = ctx.obj
    if data is not None and input_uri is not None:
        fail("give --data or --input-uri, not both", code=2)
    options = local_pipeline.RunOptions(
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
    importlib.import_module("mlflow")  # it configures its loggers on import: quiet them after
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    tracking = state.mlflow_tracking_uri(target)
    if target.is_emulator:
        state.home.mlflow_dir.mkdir(parents=True, exist_ok=True)
    runner = local_pipeline.LocalPipelineRunner(
        target=target,
        resources=resources,
        config=state.config,
        mlflow_tracking_uri=tracking,
        mlflow_artifact_root=embedded.mlflow_artifact_root(resources)
        if target.is_emulator
        else None,
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


@app.command("start")
def pipeline_start(
    ctx: typer.Context,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="pipeline parameter Name=Value (repeatable)"),
    ] = None,
    wait: Annotated[bool, typer.Option(help="follow the execution until it ends")] = True,
    poll_seconds: Annotated[
        float,
        typer.Option(min=1.0, help="seconds between status checks", callback=checked(number(1))),
    ] = 15.0,
    timeout_minutes: Annotated[
        float | None,
        typer.Option(
            help="stop following after this long", callback=checked(number(0, above=True))
        ),
    ] = None,
) -> None:
    """Start an execution of the deployed SageMaker Pipeline, print each step, and the package."""
    state: State = ctx.obj
    parameters = parse_pairs(param or [], "--param")  # before the target: bad input, no work
    target = state.target()
    sagemaker = target.client("sagemaker")
    name = state.config.pipeline_name
    try:
        arn = executions.start_execution(sagemaker, name, parameters)
        console.print(f"started [bold]{name}[/bold]: {arn}")
        if not wait:
            return
        outcome = executions.follow_execution(
            sagemaker,
            arn,
            poll_seconds=poll_seconds,
            timeout_seconds=None if timeout_minutes is None else timeout_minutes * 60,
            on_step=lambda step: _print_step(step.name, step.status, step.failure_reason or ""),
        )
    except executions.ExecutionError as exc:
        fail(str(exc))
    console.print(f"execution [bold]{outcome.status}[/bold]")
    if outcome.model_package_arn:
        console.print(f"[green]registered[/green] {outcome.model_package_arn}")
    if outcome.status != "Succeeded":
        fail(outcome.failure_reason or f"the execution ended {outcome.status}")
