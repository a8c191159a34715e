"""`mlops registry`: the model registry (SageMaker model package group)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlops.cli.common import LazyModule, State, VersionArgument, console
from mlops.cli.serving import apply_serving, package

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from mlops.adapters import registry
    from mlops.usecases import approve
else:
    registry = LazyModule("mlops.adapters.registry")
    approve = LazyModule("mlops.usecases.approve")

app = typer.Typer(help="The model registry (SageMaker model package group).", no_args_is_help=True)


def _auc(s3: S3Client, evaluation_uri: str | None) -> str:
    if not evaluation_uri:
        return "-"
    auc = registry.evaluation_auc(s3, evaluation_uri)
    return "?" if auc is None else f"{auc:.4f}"


@app.command("list")
def registry_list(ctx: typer.Context) -> None:
    """Every model package of the model family, newest first."""
    state: State = ctx.obj
    target = state.target()
    resources = state.resources(target)
    sagemaker, s3 = target.client("sagemaker"), target.client("s3")
    table = Table(title=resources.model_package_group)
    for column in ("version", "status", "created", "AUC", "MLflow run", "dataset"):
        table.add_column(column)
    for summary in registry.list_packages(sagemaker, resources.model_package_group):
        described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        lineage = registry.PackageLineage.from_description(described)
        table.add_row(
            str(lineage.version),
            lineage.approval_status,
            f"{summary['CreationTime']:%Y-%m-%d %H:%M}",
            _auc(s3, lineage.evaluation_uri),
            (lineage.mlflow_run_id or "-")[:12],
            (lineage.dataset_sha256 or "-")[:12],
        )
    console.print(table)


@app.command("show")
def registry_show(ctx: typer.Context, version: VersionArgument) -> None:
    """One package's lineage: its MLflow run, data version, code version and files."""
    state: State = ctx.obj
    target = state.target()
    described = target.client("sagemaker").describe_model_package(
        ModelPackageName=package(state, target, version)
    )
    lineage = registry.PackageLineage.from_description(described)
    for name, value in vars(lineage).items():
        console.print(f"{name:>20}: {value}")


@app.command("approve")
def registry_approve(
    ctx: typer.Context,
    version: VersionArgument,
    reject: Annotated[bool, typer.Option(help="reject instead of approve")] = False,
    reason: Annotated[str, typer.Option(help="why: kept on the package")] = "",
) -> None:
    """Approve (or reject) a model package: approval is what deploys it."""
    state: State = ctx.obj
    target = state.target()
    arn = package(state, target, version)
    status = "Rejected" if reject else "Approved"
    aliases_error = approve.approve_package(
        target.client("sagemaker"), arn, status, reason, aliases=state.mlflow_aliases(target)
    )
    console.print(f"{arn}: [bold]{status}[/bold]")
    if aliases_error:
        console.print(f"  [yellow]{aliases_error}[/yellow]")
    if status == "Approved" and target.is_emulator:
        # In AWS the approval event runs the deploy Lambda; the emulator emits no events.
        apply_serving(state, target, "deploy", arn, f"approved: {reason or 'no reason given'}")
