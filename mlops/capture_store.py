"""Read an endpoint variant's captured records for a time window from S3 (or the emulator).

Capture files sit under hour prefixes (``.../<variant>/yyyy/mm/dd/hh/``), so a window lists
only the hours it spans; records are then kept by their own inference time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops import s3io
from mlops.capture import CaptureRecord, parse_lines


@dataclass
class CaptureWindow:
    records: list[CaptureRecord] = field(default_factory=list)
    files: int = 0
    malformed: int = 0
    errors: list[str] = field(default_factory=list)


def hour_prefixes(
    base: str, endpoint: str, variant: str, start: datetime, end: datetime
) -> list[str]:
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while hour < end:
        prefixes.append(
            "/".join(p for p in (base.strip("/"), endpoint, variant, f"{hour:%Y/%m/%d/%H}/") if p)
        )
        hour += timedelta(hours=1)
    return prefixes


def read_window(
    s3: Any,
    capture_uri: str,
    endpoint: str,
    variant: str,
    start: datetime,
    end: datetime,
    *,
    keep_errors: int = 20,
) -> CaptureWindow:
    """Records with start <= inference time < end; malformed lines counted, never fatal."""
    if end <= start:
        raise ValueError(
            f"empty window: end {end.isoformat()} is not after start {start.isoformat()}"
        )
    bucket, base = s3io.split_uri(capture_uri)
    window = CaptureWindow()
    for prefix in hour_prefixes(base, endpoint, variant, start, end):
        for key in s3io.list_keys(s3, bucket, prefix):
            if not key.endswith(".jsonl"):
                continue
            body = (
                s3.get_object(Bucket=bucket, Key=key)["Body"]
                .read()
                .decode("utf-8", errors="replace")
            )
            parsed = parse_lines(body.splitlines(), source=key, keep_errors=keep_errors)
            window.files += 1
            window.malformed += parsed.malformed
            window.errors.extend(parsed.errors[: max(0, keep_errors - len(window.errors))])
            window.records.extend(r for r in parsed.records if start <= r.inference_time < end)
    return window
