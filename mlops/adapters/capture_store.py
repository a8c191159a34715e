"""Read an endpoint variant's captured records for a time window from S3 (or the emulator).

Capture files sit under hour prefixes (``.../<variant>/yyyy/mm/dd/hh/``), so a window lists
only the hours it spans; records are then kept by their own inference time. Files are read by
the rules in mlops.core.capture (``.jsonl`` and ``.jsonl.gz``; others named as skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mlops.adapters import s3io
from mlops.core.capture import (
    EXAMPLES_PER_KIND,
    HasMalformed,
    Malformed,
    gc_paused,
    is_capture_file,
    parse_file,
)
from mlops.core.variant_check import CaptureTable, concat_tables, table_from_records

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass
class CaptureWindow(HasMalformed):
    """A window's captured rows, parsed file by file: a million records are never all held as
    objects at once, only as columns."""

    chunks: list[CaptureTable] = field(default_factory=list)
    files: int = 0  # capture files read
    problems: Malformed = field(default_factory=Malformed)  # lines that are not capture records
    malformed_files: list[str] = field(default_factory=list)  # "name: reason": none of it read
    skipped_files: list[str] = field(default_factory=list)  # files that are not capture files
    first: datetime | None = None  # the earliest and latest inference times kept
    last: datetime | None = None
    keep_errors: int = EXAMPLES_PER_KIND  # examples kept of each kind of malformed record

    def add_file(
        self, name: str, body: bytes, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        """One capture file's records with start <= inference time < end (either end open)."""
        parsed = parse_file(body, source=name, keep_errors=self.keep_errors)
        if parsed.unreadable is not None:
            self.malformed_files.append(f"{name}: {parsed.unreadable}")
            return
        records, lines = parsed.records, parsed.lines
        if start is not None or end is not None:
            kept = [
                i
                for i, r in enumerate(records)
                if (start is None or r.inference_time >= start)
                and (end is None or r.inference_time < end)
            ]
            records, lines = [records[i] for i in kept], [lines[i] for i in kept]
        if records:
            times = [r.inference_time for r in records]
            self.first = min(times) if self.first is None else min(self.first, *times)
            self.last = max(times) if self.last is None else max(self.last, *times)
        self.files += 1
        self.problems.update(parsed.problems)
        with gc_paused():
            self.chunks.append(
                table_from_records(records, keep_errors=self.keep_errors, source=name, lines=lines)
            )

    def table(self) -> CaptureTable:
        return concat_tables(self.chunks, keep_errors=self.keep_errors)


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
    keep_errors: int = EXAMPLES_PER_KIND,
) -> CaptureWindow:
    """Records with start <= inference time < end; malformed lines counted by kind, never
    fatal; files under the hours that are not capture files named as skipped."""
    if end <= start:
        raise ValueError(
            f"empty window: end {end.isoformat()} is not after start {start.isoformat()}"
        )
    bucket, base = s3io.split_uri(capture_uri)
    window = CaptureWindow(keep_errors=keep_errors)
    # One hour folder more on each side: a file can be written (and named) a little after the
    # hour of the records in it. Records are kept by their own inference time.
    slack = timedelta(hours=1)
    for prefix in hour_prefixes(base, endpoint, variant, start - slack, end + slack):
        for key in s3io.list_keys(s3, bucket, prefix):
            if key.endswith("/"):  # a "folder" made in the console: not a file
                continue
            if not is_capture_file(key):
                window.skipped_files.append(key)
                continue
            window.add_file(key, s3.get_object(Bucket=bucket, Key=key)["Body"].read(), start, end)
    return window
