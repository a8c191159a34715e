"""`mlops pipeline`: the training pipeline, run here or started in SageMaker."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.cli.common import (
    LazyModule,
    State,
    checked,
    fail,
    input_file,
    number,
    parse_pairs,
    s3_uri,
)
from mlops.cli.output import JsonOption, Report, progress
from pipeline_steps.hyperparameters import DEFAULTS

if TYPE_CHECKING:
    from mlops.adapters import executions
    from mlops.local import emulator as embedded
    from mlops.local import pipeline as local_pipeline
else:
    executions = LazyModule("mlops.adapters.executions")
    # The pipeline's steps import pandas and scikit-learn.
    local_pipeline = LazyModule("mlops.local.pipeline")
    embedded = LazyModule("mlops.local.emulator")

app = typer.Typer(help="The training pipeline.", no_args_is_help=True)


class Algorithm(StrEnum):
    """pipeline_steps.hyperparameters.ALGORITHMS, as choices (tests/unit/test_cli_output.py)."""

    logistic = "logistic"
    gradient_boosting = "gradient_boosting"


class ApprovalStatus(StrEnum):
    """mlops.adapters.registry.APPROVAL_STATUSES, as choices."""

    PendingManualApproval = "PendingManualApproval"
    Approved = "Approved"
    Rejected = "Rejected"


DEFAULT_ALGORITHM = Algorithm(DEFAULTS.algorithm)
_STATUS_STYLE = {"Executing": "cyan", "Succeeded": "green", "Failed": "red", "Stopped": "yellow"}


def _print_step(report: Report, step: str, status: str, detail: str) -> None:
    style = _STATUS_STYLE.get(status, "white")
    suffix = f"  [dim]{detail}[/dim]" if detail else ""
    report.line(f"  {step:<12} [{style}]{status:<10}[/{style}]{suffix}")


@app.command("run-local")
def pipeline_run_local(
    ctx: typer.Context,
    algorithm: Annotated[Algorithm, typer.Option(help="the model's algorithm")] = DEFAULT_ALGORITHM,
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
        ApprovalStatus, typer.Option(help="the package's status when registered")
    ] = ApprovalStatus.PendingManualApproval,
    as_json: JsonOption = False,
) -> None:
    """Run preprocess -> train -> evaluate -> check -> register here, with the pipeline's code."""
    state: State = ctx.obj
    if data is not None and input_uri is not None:
        fail("give --data or --input-uri, not both", code=2)
    options = local_pipeline.RunOptions(
        algorithm=algorithm.value,
        seed=seed,
        max_iter=max_iter,
        learning_rate=learning_rate,
        c=c,
        metric_threshold=threshold,
        input_uri=input_uri,
        data_file=data,
        approval_status=approval_status.value,
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
    report = Report(as_json)
    steps = local_pipeline.STEP_NAMES
    report.line(f"[bold]{resources.pipeline_name}[/bold] on {target.describe()}")
    with progress("training pipeline", total=len(steps), unit="steps") as step_done:

        def on_step(step: str, status: str, detail: str) -> None:
            _print_step(report, step, status, detail)
            if status != "Executing":
                step_done(1)

        runner = local_pipeline.LocalPipelineRunner(
            target=target,
            resources=resources,
            config=state.config,
            mlflow_tracking_uri=tracking,
            mlflow_artifact_root=(
                embedded.mlflow_artifact_root(resources) if target.is_emulator else None
            ),
            progress=on_step,
        )
        # With --json, stdout holds the document only: MLflow prints run links to stdout when
        # it tracks to a server, and the steps' libraries may print too.
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            result = runner.run(options)
    report.add(**vars(result), mlflow_tracking_uri=tracking)
    report.line(f"  execution: {result.execution_id}")
    report.line(f"  input:     {result.input_uri}")
    if result.metrics:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()))
        report.line(f"  test metrics: {shown}")
    report.line(
        f"  lineage:   dataset {(result.dataset_sha256 or '-')[:16]}  code {(result.code_version or '-')[:16]}  model {(result.model_sha256 or '-')[:16]}"
    )
    if result.mlflow_run_id:
        report.line(f"  MLflow run: {result.mlflow_run_id} ({tracking})")
    report.emit()  # registered or not: the run's result, for a script to read
    if not result.registered:
        fail(f"not registered: {result.reason}")
    report.line(f"[green]registered[/green] {result.model_package_arn}")


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
    as_json: JsonOption = False,
) -> None:
    """Start an execution of the deployed SageMaker Pipeline, print each step, and the package."""
    state: State = ctx.obj
    parameters = parse_pairs(param or [], "--param")  # before the target: bad input, no work
    target = state.target()
    sagemaker = target.client("sagemaker")
    name = state.config.pipeline_name
    report = Report(as_json)
    try:
        arn = executions.start_execution(sagemaker, name, parameters)
        report.add(pipeline=name, execution_arn=arn, parameters=parameters)
        report.line(f"started [bold]{name}[/bold]: {arn}")
        if not wait:
            report.emit()
            return
        outcome = executions.follow_execution(
            sagemaker,
            arn,
            poll_seconds=poll_seconds,
            timeout_seconds=None if timeout_minutes is None else timeout_minutes * 60,
            on_step=lambda step: _print_step(
                report, step.name, step.status, step.failure_reason or ""
            ),
        )
    except executions.ExecutionError as exc:
        fail(str(exc))
    report.add(
        status=outcome.status,
        failure_reason=outcome.failure_reason,
        steps=outcome.steps,
        model_package_arn=outcome.model_package_arn,
    )
    report.line(f"execution [bold]{outcome.status}[/bold]")
    if outcome.model_package_arn:
        report.line(f"[green]registered[/green] {outcome.model_package_arn}")
    report.emit()
    if outcome.status != "Succeeded":
        fail(outcome.failure_reason or f"the execution ended {outcome.status}")
