"""Read an endpoint variant's captured records for a time window from S3 (or the emulator).

Capture files sit under hour prefixes (``.../<variant>/yyyy/mm/dd/hh/``), so a window lists
only the hours it spans; records are then kept by their own inference time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mlops.adapters import s3io
from mlops.core.capture import CaptureRecord, ParseResult, gc_paused, parse_lines
from mlops.core.variant_check import CaptureTable, concat_tables, table_from_records

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass
class CaptureWindow:
    """A window's captured rows, parsed file by file: a million records are never all held as
    objects at once, only as columns."""

    chunks: list[CaptureTable] = field(default_factory=list)
    files: int = 0
    malformed: int = 0  # lines that were not capture records at all
    errors: list[str] = field(default_factory=list)
    first: datetime | None = None  # the earliest and latest inference times kept
    last: datetime | None = None

    def add(self, parsed: ParseResult, records: list[CaptureRecord], keep_errors: int) -> None:
        if records:
            times = [r.inference_time for r in records]
            self.first = min(times) if self.first is None else min(self.first, *times)
            self.last = max(times) if self.last is None else max(self.last, *times)
        self.files += 1
        self.malformed += parsed.malformed
        self.errors.extend(parsed.errors[: max(0, keep_errors - len(self.errors))])
        with gc_paused():
            self.chunks.append(table_from_records(records, keep_errors=keep_errors))

    def table(self) -> CaptureTable:
        return concat_tables(self.chunks)


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
    s3: S3Client,
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
    # One hour folder more on each side: a file can be written (and named) a little after the
    # hour of the records in it. Records are kept by their own inference time.
    slack = timedelta(hours=1)
    for prefix in hour_prefixes(base, endpoint, variant, start - slack, end + slack):
        for key in s3io.list_keys(s3, bucket, prefix):
            if not key.endswith(".jsonl"):
                continue
            body = (
                s3.get_object(Bucket=bucket, Key=key)["Body"]
                .read()
                .decode("utf-8", errors="replace")
            )
            parsed = parse_lines(body.splitlines(), source=key, keep_errors=keep_errors)
            inside = [r for r in parsed.records if start <= r.inference_time < end]
            window.add(parsed, inside, keep_errors)
    return window
