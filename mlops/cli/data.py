"""`mlops data`: training data in the datasets bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops.adapters import s3io
from mlops.cli.common import State, console, fail

app = typer.Typer(help="Training data in the datasets bucket.", no_args_is_help=True)


@app.command("upload")
def data_upload(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="a CSV file (default: the bundled randhie dataset)")
    ] = None,
    prefix: Annotated[str, typer.Option(help="key prefix in the datasets bucket")] = "raw/",
) -> None:
    """Validate a CSV against the schema and upload it where the pipeline reads by default."""
    # Deferred: the dataset and its schema are read with pandas.
    from pipeline_steps import data, schema  # noqa: PLC0415

    state: State = ctx.obj
    source = path or data.bundled_dataset_path()
    if not source.is_file():
        fail(f"{source}: no such file", code=2)
    try:
        rows = len(schema.read_validated_csv(source))  # refuse bad data before it reaches S3
    except schema.DataValidationError as exc:
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
