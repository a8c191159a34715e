"""`mlops registry`: the model registry (SageMaker model package group)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.cli.common import LazyModule, State, VersionArgument
from mlops.cli.data import dvc_fetch_commands
from mlops.cli.output import Column, JsonOption, Report
from mlops.cli.serving import apply_serving, package

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from mlops.adapters import registry
    from mlops.usecases import approve
else:
    registry = LazyModule("mlops.adapters.registry")
    approve = LazyModule("mlops.usecases.approve")

app = typer.Typer(help="The model registry (SageMaker model package group).", no_args_is_help=True)

SHORT_ID = 12  # characters of an MLflow run id or a dataset digest in the table, without --full


def _auc(s3: S3Client, evaluation_uri: str | None) -> float | None:
    return registry.evaluation_auc(s3, evaluation_uri) if evaluation_uri else None


def _columns(full: bool) -> list[Column]:
    def identifier(value: Any) -> str:
        return "-" if value is None else str(value) if full else str(value)[:SHORT_ID]

    return [
        Column("version", "version"),
        Column("approval_status", "status"),
        Column("created", "created", lambda t: f"{t:%Y-%m-%d %H:%M}"),
        Column("auc", "AUC", lambda auc: "-" if auc is None else f"{auc:.4f}"),
        Column("mlflow_run_id", "MLflow run", identifier),
        Column("dataset_sha256", "dataset", identifier),
        *([Column("model_package_arn", "ARN")] if full else []),
    ]


@app.command("list")
def registry_list(
    ctx: typer.Context,
    full: Annotated[
        bool, typer.Option(help=f"whole ids and ARNs (the table cuts ids to {SHORT_ID})")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Every model package of the model family, newest first."""
    state: State = ctx.obj
    target = state.target()
    resources = state.resources(target)
    sagemaker, s3 = target.client("sagemaker"), target.client("s3")
    rows = []
    for summary in registry.list_packages(sagemaker, resources.model_package_group):
        described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        lineage = registry.PackageLineage.from_description(described)
        rows.append(
            {
                "version": lineage.version,
                "approval_status": lineage.approval_status,
                "created": summary["CreationTime"],
                "auc": _auc(s3, lineage.evaluation_uri),
                "mlflow_run_id": lineage.mlflow_run_id,
                "dataset_sha256": lineage.dataset_sha256,
                "model_package_arn": lineage.model_package_arn,
            }
        )
    report = Report(as_json)
    report.add(model_package_group=resources.model_package_group)
    report.table("packages", rows, _columns(full), title=resources.model_package_group)
    report.emit()


@app.command("show")
def registry_show(
    ctx: typer.Context, version: VersionArgument, as_json: JsonOption = False
) -> None:
    """One package's lineage: its MLflow run, data version, code version and files, and the
    `dvc` commands that fetch its training data."""
    state: State = ctx.obj
    target = state.target()
    described = target.client("sagemaker").describe_model_package(
        ModelPackageName=package(state, target, version)
    )
    lineage = registry.PackageLineage.from_description(described)
    report = Report(as_json)
    report.add(**vars(lineage))
    for name, value in vars(lineage).items():
        report.line(f"{name:>20}: {value}")
    bucket = state.resources(target).datasets_bucket
    commands, why_not = dvc_fetch_commands(
        target, target.client("s3"), bucket, lineage.dataset_dvc_md5
    )
    report.add(dvc_fetch_commands=commands)  # [] when the data cannot be fetched with dvc
    report.line("\n# its training data, with dvc:")
    for line in commands or [f"# {why_not}"]:
        # Whole lines, as typed: to copy, or to pipe into a shell.
        report.console.print(line, soft_wrap=True, markup=False, highlight=False)
    report.emit()


@app.command("approve")
def registry_approve(
    ctx: typer.Context,
    version: VersionArgument,
    reject: Annotated[bool, typer.Option(help="reject instead of approve")] = False,
    reason: Annotated[str, typer.Option(help="why: kept on the package")] = "",
    as_json: JsonOption = False,
) -> None:
    """Approve (or reject) a model package: approval is what deploys it."""
    state: State = ctx.obj
    target = state.target()
    arn = package(state, target, version)
    status = "Rejected" if reject else "Approved"
    aliases_error = approve.approve_package(
        target.client("sagemaker"), arn, status, reason, aliases=state.mlflow_aliases(target)
    )
    report = Report(as_json)
    report.add(model_package_arn=arn, approval_status=status, serving=None)
    report.line(f"{arn}: [bold]{status}[/bold]")
    if aliases_error:
        report.add(mlflow_aliases_error=aliases_error)
        report.line(f"  [yellow]{aliases_error}[/yellow]")
    if status == "Approved" and target.is_emulator:
        # In AWS the approval event runs the deploy Lambda; the emulator emits no events.
        serving = Report(as_json)
        apply_serving(
            state, target, "deploy", arn, f"approved: {reason or 'no reason given'}", serving
        )
        report.add(serving=serving.data)
    report.emit()
