"""`mlops data`: training data in the datasets bucket, versioned as DVC versions it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.cli.common import LazyModule, State, checked, console, fail, input_file

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from mlops.adapters import dvc_remote, local_files
    from mlops.adapters import target as aws_target
    from mlops.adapters.target import AwsTarget
    from mlops.core import dvc_layout
    from pipeline_steps import data, hashing, schema
else:
    dvc_remote = LazyModule("mlops.adapters.dvc_remote")
    local_files = LazyModule("mlops.adapters.local_files")
    aws_target = LazyModule("mlops.adapters.target")
    dvc_layout = LazyModule("mlops.core.dvc_layout")
    hashing = LazyModule("pipeline_steps.hashing")
    # The dataset and its schema are read with pandas.
    data = LazyModule("pipeline_steps.data")
    schema = LazyModule("pipeline_steps.schema")


def _key_prefix(value: str) -> str | None:
    if value != value.strip() or "//" in value.strip("/"):
        return f"{value!r} is not a key prefix such as raw/ (no blanks around it, no empty part)"
    return None


def _csv_name(value: Path | None) -> str | None:
    # The pipeline reads the *.csv files of its input folder: another name would be stored
    # and never trained on.
    if value is not None and value.suffix != ".csv":
        return f"{str(value)!r}: the pipeline reads only files named *.csv (rename it)"
    return None


app = typer.Typer(help="Training data in the datasets bucket.", no_args_is_help=True)


@app.command("upload")
def data_upload(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            help="a CSV file (default: the bundled randhie dataset)",
            callback=checked(input_file, _csv_name),
        ),
    ] = None,
    prefix: Annotated[
        str,
        typer.Option(
            help="key prefix in the datasets bucket ('': its top)", callback=checked(_key_prefix)
        ),
    ] = "raw/",
) -> None:
    """Validate a CSV, upload it where the pipeline reads by default and, by its md5, to the
    bucket's DVC remote; write FILE.dvc beside it (as `dvc add` does; `dvc pull` fetches it)."""
    state: State = ctx.obj
    source = path or data.bundled_dataset_path()
    if not source.is_file():
        fail(f"{source}: no such file", code=2)
    # The pointer beside the user's file; none inside the installed statsmodels package.
    pointer = source.with_name(source.name + ".dvc") if path is not None else None
    md5 = hashing.file_md5(source)
    pointer_text = dvc_layout.pointer_text(md5, source.name, source.stat().st_size)
    keep_pointer = pointer is not None and pointer.exists()
    if pointer is not None and keep_pointer:
        recorded = dvc_layout.pointer_md5(pointer.read_text(errors="replace"))
        if recorded != md5:  # written for other content: it is how that version is fetched
            fail(
                f"not uploaded: {pointer} records {f'md5 {recorded}' if recorded else 'no md5'}, "
                f"but {source.name} now has md5 {md5}. Move {pointer.name} aside (with it, "
                f"`dvc pull` still fetches the version it records) and upload again"
            )
    try:
        rows = len(schema.read_validated_csv(source))  # refuse bad data before it reaches S3
    except schema.DataValidationError as exc:
        fail(f"not uploaded: {exc}")
    target = state.target(start=True)
    resources = state.resources(target)
    bucket, s3 = resources.datasets_bucket, target.client("s3")
    folder = prefix.strip("/")
    extra = (
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": resources.key_arn}
        if resources.key_arn
        else {}
    )
    try:
        stored = dvc_remote.store_file(
            s3,
            source,
            bucket,
            "/".join(p for p in (folder, source.name) if p),
            expected_md5=md5,
            **extra,
        )
    except dvc_remote.DatasetChanged as exc:
        fail(str(exc))
    console.print(f"uploaded {rows} rows to {stored.uri}", soft_wrap=True, markup=False)
    state_word = "already there" if stored.already_in_remote else "stored"
    console.print(
        f"DVC remote {dvc_layout.remote_url(bucket)}: md5 {md5} {state_word}",
        soft_wrap=True,
        markup=False,
    )
    if pointer is not None and not keep_pointer:
        try:
            local_files.write_new(pointer, pointer_text)
        except FileExistsError:
            fail(
                f"{pointer} appeared while uploading: left as it is; compare it with {pointer_text!r}"
            )
        console.print(f"wrote {pointer}", soft_wrap=True, markup=False)
    elif pointer is not None:
        console.print(
            f"{pointer} already records md5 {md5}: left as it is", soft_wrap=True, markup=False
        )
    digest = dvc_remote.store_folder_listing(s3, bucket, folder, **extra)
    console.print(
        f"the pipeline's input s3://{bucket}/{folder + '/' if folder else ''} is DVC md5 {digest}",
        soft_wrap=True,
        markup=False,
    )


def dvc_fetch_commands(
    target: AwsTarget, s3: S3Client, bucket: str, digest: str | None
) -> tuple[list[str], str]:
    """The shell lines that fetch a model's training data with `dvc` (for `mlops registry
    show`), or none and why not."""
    if not digest:
        return [], "no DVC md5 in this package's lineage (registered before DVC versions)"
    try:
        dvc_layout.check_digest(digest)
    except ValueError as exc:
        return [], f"cannot fetch it: {exc}"
    if not dvc_remote.fetchable(s3, bucket, digest):
        return [], (
            f"md5 {digest} is not in the DVC remote {dvc_layout.remote_url(bucket)}: upload "
            "the data with `mlops data upload` to fetch it with dvc"
        )
    commands = dvc_layout.fetch_commands(
        digest=digest,
        bucket=bucket,
        endpoint_url=target.endpoint_url,
        # DVC needs some credentials for the emulator: its dummy key.
        access_key=aws_target.EMULATOR_ACCESS_KEY if target.is_emulator else None,
    )
    return commands, ""
