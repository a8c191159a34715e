"""Read an endpoint variant's captured records for a time window from S3 (or the emulator).

Capture files sit under hour prefixes (``.../<variant>/yyyy/mm/dd/hh/``), so a window lists
only the hours it spans; records are then kept by their own inference time. Files are read by
the rules in mlops.core.capture (``.jsonl`` and ``.jsonl.gz``; others named as skipped).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mlops.adapters import s3io
from mlops.core.capture import EXAMPLES_PER_KIND, HasMalformed, Malformed, is_capture_file
from mlops.core.capture_reader import FileRead, read_file, read_files
from mlops.core.variant_check import CaptureTable, concat_tables
from mlops.core.window_summary import SourceFile, WindowSummary, summarize

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
    # Every file added, read or not, in the order given: its position is its order in the window.
    reads: list[tuple[str, FileRead]] = field(default_factory=list)

    def add_file(
        self, name: str, body: bytes, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        """One capture file's records with start <= inference time < end (either end open)."""
        self.add(
            name, read_file(body, source=name, start=start, end=end, keep_errors=self.keep_errors)
        )

    def add_files(
        self,
        files: Iterable[tuple[str, Callable[[], bytes]]],
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Files given as (name, a function that fetches its bytes), fetched and read on every
        core at once, added in the order given. Each is fetched in a copy of the caller's
        context: what observes the caller's AWS calls (the embedded default's IAM) sees these
        too, though they are made on reading threads."""
        in_context = ((name, _in_copied_context(load)) for name, load in files)
        for name, read in read_files(
            in_context, start=start, end=end, keep_errors=self.keep_errors
        ):
            self.add(name, read)

    def add(self, name: str, read: FileRead) -> None:
        self.reads.append((name, read))
        if read.table is None:
            self.malformed_files.append(f"{name}: {read.unreadable}")
            return
        if read.first is not None and read.last is not None:
            self.first = read.first if self.first is None else min(self.first, read.first)
            self.last = read.last if self.last is None else max(self.last, read.last)
        self.files += 1
        self.problems.update(read.problems)
        self.chunks.append(read.table)

    def table(self) -> CaptureTable:
        return concat_tables(self.chunks, keep_errors=self.keep_errors)

    def summary(
        self, *, labels: Mapping[str, Sequence[float]] | None = None, sample_rows: int
    ) -> WindowSummary:
        """The window as one shard (mlops.core.window_summary): each file at its position."""
        return summarize(
            [(SourceFile(i, name), read) for i, (name, read) in enumerate(self.reads)],
            labels=labels,
            sample_rows=sample_rows,
            keep_errors=self.keep_errors,
        )


def _in_copied_context(load: Callable[[], bytes]) -> Callable[[], bytes]:
    context = contextvars.copy_context()  # one per file: a context runs in one thread at once
    return lambda: context.run(load)


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


@dataclass(frozen=True)
class WindowListing:
    """A window's files, as listed in S3: the capture files in the order they are read, with
    their sizes, and the files under its hours that are not capture files."""

    bucket: str
    prefix: str  # the variant's capture prefix: <base>/<endpoint>/<variant>/
    keys: tuple[str, ...]
    sizes: tuple[int, ...]
    skipped: tuple[str, ...]

    @property
    def bytes(self) -> int:
        return sum(self.sizes)


def list_window(
    s3: S3Client, capture_uri: str, endpoint: str, variant: str, start: datetime, end: datetime
) -> WindowListing:
    """The capture files a window reads: those under its hours, and one hour more on each side
    (a file can be written, and named, a little after the hour of its records; records are
    kept by their own inference time)."""
    if end <= start:
        raise ValueError(
            f"empty window: end {end.isoformat()} is not after start {start.isoformat()}"
        )
    bucket, base = s3io.split_uri(capture_uri)
    slack = timedelta(hours=1)
    keys: list[str] = []
    sizes: list[int] = []
    skipped: list[str] = []
    for prefix in hour_prefixes(base, endpoint, variant, start - slack, end + slack):
        listed: list[tuple[str, int]] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            listed += [(item["Key"], int(item.get("Size", 0))) for item in page.get("Contents", [])]
        for key, size in sorted(listed):
            if key.endswith("/"):  # a "folder" made in the console: not a file
                continue
            if not is_capture_file(key):
                skipped.append(key)
                continue
            keys.append(key)
            sizes.append(size)
    variant_prefix = "/".join(p for p in (base.strip("/"), endpoint, variant) if p) + "/"
    return WindowListing(bucket, variant_prefix, tuple(keys), tuple(sizes), tuple(skipped))


def read_window(
    s3: S3Client,
    capture_uri: str,
    endpoint: str,
    variant: str,
    start: datetime,
    end: datetime,
    *,
    keep_errors: int = EXAMPLES_PER_KIND,
    listing: WindowListing | None = None,
) -> CaptureWindow:
    """Records with start <= inference time < end; malformed lines counted by kind, never
    fatal; files under the hours that are not capture files named as skipped. ``listing``:
    the window's files, if listed already."""
    listing = listing or list_window(s3, capture_uri, endpoint, variant, start, end)
    window = CaptureWindow(keep_errors=keep_errors, skipped_files=list(listing.skipped))
    bucket = listing.bucket
    # Fetched in the reading threads: boto3 clients are safe to share between threads.
    window.add_files(
        ((key, functools.partial(s3io.read, s3, bucket, key)) for key in listing.keys),
        start,
        end,
    )
    return window
