"""`mlops data`: training data in the datasets bucket."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.cli.common import LazyModule, State, checked, console, fail, input_file

if TYPE_CHECKING:
    from mlops.adapters import s3io
    from pipeline_steps import data, schema
else:
    s3io = LazyModule("mlops.adapters.s3io")
    # The dataset and its schema are read with pandas.
    data = LazyModule("pipeline_steps.data")
    schema = LazyModule("pipeline_steps.schema")


def _key_prefix(value: str) -> str | None:
    if value != value.strip() or "//" in value.strip("/"):
        return f"{value!r} is not a key prefix such as raw/ (no blanks around it, no empty part)"
    return None


app = typer.Typer(help="Training data in the datasets bucket.", no_args_is_help=True)


@app.command("upload")
def data_upload(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            help="a CSV file (default: the bundled randhie dataset)", callback=checked(input_file)
        ),
    ] = None,
    prefix: Annotated[
        str,
        typer.Option(
            help="key prefix in the datasets bucket ('': its top)", callback=checked(_key_prefix)
        ),
    ] = "raw/",
) -> None:
    """Validate a CSV against the schema and upload it where the pipeline reads by default."""
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
    key = "/".join(part for part in (prefix.strip("/"), source.name) if part)
    uri = f"s3://{resources.datasets_bucket}/{key}"
    extra = (
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": resources.key_arn}
        if resources.key_arn
        else {}
    )
    s3io.upload_file(target.client("s3"), source, uri, **extra)
    console.print(f"uploaded {rows} rows to {uri}")
