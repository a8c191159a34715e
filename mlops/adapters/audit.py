"""Audit records and claims in S3: written with a condition on what is there (atomic in S3).

Reads never ask S3 whether a key is missing: without ``s3:ListBucket`` (which the functions do
not get) S3 answers a missing key with 403, not 404. A write with ``If-None-Match: *`` says it
instead: it succeeds on a missing key and fails with ``PreconditionFailed`` on an existing one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# S3's answers to a write whose condition does not hold (409: another conditional write on the
# key is in flight; NoSuchKey: If-Match on a key that is gone).
CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"})


def create(
    s3: S3Client,
    bucket: str,
    key: str,
    body: str,
    content_type: str = "application/json",
    *,
    if_match: str | None = None,
) -> str | None:
    """Write ``body`` at ``key`` if nothing is there (or, with ``if_match``, over exactly that
    version); the new ETag, or None if the condition did not hold."""
    try:
        put = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body.encode(),
            ContentType=content_type,
            **({"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}),  # type: ignore[arg-type]
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] in CONDITION_FAILED:
            return None
        raise
    return put["ETag"]


def write_once(
    s3: S3Client, bucket: str, key: str, body: str, content_type: str = "application/json"
) -> bool:
    """Write ``body`` at ``key`` unless something is there already; False if it was."""
    return create(s3, bucket, key, body, content_type) is not None


def read(s3: S3Client, bucket: str, key: str) -> tuple[str, str]:
    """The text and ETag of an object known to exist."""
    got = s3.get_object(Bucket=bucket, Key=key)
    return got["Body"].read().decode(), got["ETag"]
