"""Storing datasets in the datasets bucket so that ``dvc pull`` finds them: each file under the
key the pipeline reads and, by its md5, in DVC's remote layout (mlops.core.dvc_layout).

Every object is written whole or not at all (an S3 PUT, or a multipart upload, appears only
once complete), and an object in the DVC layout is only ever the bytes its key names: they
are hashed as they are copied to a private snapshot, and the snapshot is what is uploaded.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.adapters import s3io
from mlops.core import dvc_layout
from pipeline_steps.hashing import dvc_digest, dvc_dir_listing, file_md5

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# User metadata on each named copy: its md5, so that a folder's listing needs no download.
MD5_METADATA = "dvc-md5"


class DatasetChanged(RuntimeError):
    """The file changed between being read for its pointer and being uploaded."""


@dataclass(frozen=True)
class StoredFile:
    md5: str
    size: int
    uri: str  # the named copy the pipeline reads
    remote_uri: str  # the same bytes in the DVC remote
    already_in_remote: bool


def store_file(
    s3: S3Client,
    source: Path,
    bucket: str,
    key: str,
    *,
    expected_md5: str | None = None,
    **extra: Any,
) -> StoredFile:
    """Upload ``source`` to ``key`` and to the DVC remote; ``extra`` are the objects' ExtraArgs
    (the platform's KMS key). Content already in the remote is not uploaded again.
    ``expected_md5``: the md5 a pointer was written for; DatasetChanged if the bytes differ."""
    with tempfile.TemporaryDirectory(prefix="mlops-dataset-") as scratch:
        snapshot = Path(scratch) / source.name
        digest = hashlib.md5(usedforsecurity=False)
        with source.open("rb") as reader, snapshot.open("wb") as writer:
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                writer.write(chunk)
        md5 = digest.hexdigest()
        if expected_md5 is not None and md5 != expected_md5:
            raise DatasetChanged(
                f"{source} changed while it was uploaded (md5 {expected_md5}, now {md5}): "
                "nothing was stored; upload it again once it is written"
            )
        remote_key = dvc_layout.object_key(md5)
        present = s3io.exists(s3, bucket, remote_key)
        if not present:
            s3io.upload_file(s3, snapshot, f"s3://{bucket}/{remote_key}", **extra)
        metadata = {**extra.get("Metadata", {}), MD5_METADATA: md5}
        uri = s3io.upload_file(
            s3, snapshot, f"s3://{bucket}/{key}", **{**extra, "Metadata": metadata}
        )
        return StoredFile(
            md5=md5,
            size=snapshot.stat().st_size,
            uri=uri,
            remote_uri=f"s3://{bucket}/{remote_key}",
            already_in_remote=present,
        )


def store_folder_listing(s3: S3Client, bucket: str, prefix: str, **extra: Any) -> str:
    """Make the CSV files under ``prefix`` (what the pipeline's preprocess step reads from that
    folder, or the one object it names, as s3io.download_prefix reads them) fetchable as one DVC folder: each file in the remote, and their listing as its
    ``.dir`` object. Returns the folder's DVC md5 (a lone file's own md5), the one the
    pipeline records in the model's lineage. Files stored by other tools are read and hashed."""
    key = prefix.strip("/")
    if key and not prefix.endswith("/") and s3io.list_keys(s3, bucket, key)[:1] == [key]:
        base, keys = key.rsplit("/", 1)[0] + "/" if "/" in key else "", [key]  # one object
    else:
        base = key + "/" if key else ""
        keys = s3io.list_keys(s3, bucket, base)
    md5s: dict[str, str] = {}
    for key in keys:
        if not key.endswith(".csv"):
            continue
        metadata = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})
        md5 = metadata.get(MD5_METADATA)
        if md5 is None or not s3io.exists(s3, bucket, dvc_layout.object_key(md5)):
            md5 = _copy_into_remote(s3, bucket, key, **extra)
        md5s[key[len(base) :]] = md5
    if not md5s:
        raise FileNotFoundError(f"no .csv file under s3://{bucket}/{base}")
    folder = dvc_digest(md5s)
    if folder.endswith(".dir"):
        listing_key = dvc_layout.object_key(folder)
        if not s3io.exists(s3, bucket, listing_key):
            s3.put_object(Bucket=bucket, Key=listing_key, Body=dvc_dir_listing(md5s), **extra)
    return folder


def _copy_into_remote(s3: S3Client, bucket: str, key: str, **extra: Any) -> str:
    with tempfile.TemporaryDirectory(prefix="mlops-dataset-") as scratch:
        local = Path(scratch) / "object"
        s3.download_file(bucket, key, str(local))
        md5 = file_md5(local)
        remote_key = dvc_layout.object_key(md5)
        if not s3io.exists(s3, bucket, remote_key):
            s3io.upload_file(s3, local, f"s3://{bucket}/{remote_key}", **extra)
        return md5


def fetchable(s3: S3Client, bucket: str, digest: str) -> bool:
    """Whether the DVC remote holds the dataset ``digest`` (a folder: its listing)."""
    return s3io.exists(s3, bucket, dvc_layout.object_key(digest))
