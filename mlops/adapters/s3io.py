"""Moving folders between S3 and local disk, as SageMaker does around a job."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client


def split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def exists(s3: S3Client, bucket: str, key: str) -> bool:
    """Whether ``key`` exists, by listing its own prefix (a prefix-scoped ListBucket suffices;
    HeadObject or GetObject on a missing key answer 403 without a bucket-wide one)."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(item["Key"] == key for item in listed.get("Contents", []))


def read(s3: S3Client, bucket: str, key: str) -> bytes:
    """An object's bytes."""
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def list_keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return sorted(keys)


def download_prefix(
    s3: S3Client, uri: str, into: Path, *, transfer: TransferConfig | None = None
) -> list[Path]:
    """Download one object (``uri`` names it exactly) or every object under the folder ``uri``.

    A URI that is not an object is a folder: ``s3://b/raw`` reads ``raw/...``, never
    ``raw-old/...``. Folder markers (keys ending in "/") are skipped, and no key may write
    outside ``into``. ``transfer`` is boto3's transfer config for each object (e.g.
    ``use_threads=False``: every call on this thread, where ``observe_calls`` sees it).
    """
    bucket, key = split_uri(uri)
    if key and not key.endswith("/") and list_keys(s3, bucket, key)[:1] == [key]:
        keys, base = [key], key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    else:
        base = key if not key or key.endswith("/") else key + "/"
        keys = [k for k in list_keys(s3, bucket, base) if not k.endswith("/")]
    if not keys:
        raise FileNotFoundError(f"nothing in S3 under {uri}")
    root = into.resolve()
    files = []
    for name in keys:
        target = (root / name[len(base) :]).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"refusing s3://{bucket}/{name}: it would be written outside {into}")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, name, str(target), Config=transfer)
        files.append(target)
    return files


def upload_tree(
    s3: S3Client, folder: Path, uri: str, transfer: TransferConfig | None = None, /, **extra: Any
) -> list[str]:
    """Upload every file under ``folder`` below ``uri``; return the object URIs. ``extra`` are
    the objects' ExtraArgs; ``transfer`` (positional: ``extra`` takes any name) as for
    ``download_prefix``."""
    bucket, prefix = split_uri(uri)
    uploaded = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = "/".join(
            part for part in (prefix.rstrip("/"), path.relative_to(folder).as_posix()) if part
        )
        s3.upload_file(str(path), bucket, key, ExtraArgs=extra or None, Config=transfer)
        uploaded.append(f"s3://{bucket}/{key}")
    return uploaded


def upload_file(
    s3: S3Client, path: Path, uri: str, transfer: TransferConfig | None = None, /, **extra: Any
) -> str:
    bucket, key = split_uri(uri)
    s3.upload_file(str(path), bucket, key, ExtraArgs=extra or None, Config=transfer)
    return uri
