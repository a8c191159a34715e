"""Audit records in S3: written once, never overwritten (If-None-Match)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def write_once(
    s3: S3Client, bucket: str, key: str, body: str, content_type: str = "application/json"
) -> bool:
    """Write ``body`` at ``key`` unless something is there already; False if it was."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body.encode(),
            ContentType=content_type,
            IfNoneMatch="*",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True
