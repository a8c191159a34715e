"""Capture files read column-wise: a window's table from file bytes, by mlops.core.capture's
rules, at several times the reference reader's speed and on every core.

The reference reader (``capture.parse_file``, then ``variant_check.table_from_records``) builds
Python objects for every record. This one runs Rust regexes and casts (polars) over the lines
of a batch of files at once (``read_files``: polars' per-call costs are per batch, not per
file); they release the GIL, so batches are read in parallel threads.

It vouches for a line only when the line is, character for character, the layout SageMaker
writes (``TEMPLATES``): fixed keys in a fixed order, strings of printable ASCII, with no escape
but ``\\"``, ``\\n``, ``\\r`` and ``\\t`` in data and none elsewhere. Such a line is strict JSON
with exactly those fields, so its values are the same whichever JSON reader reads it. Every
other non-blank line goes to the reference parser with its line number, and is read, counted
and described exactly as there. Payloads likewise: the fast path takes one CSV row of plain
numbers, or ``{"instances": [[...]]}`` of plain JSON numbers, answered with one
``{"predictions": [{"score": .., "label": ..}]}``, and checks every value is finite
(mlops.core.capture_payloads); any other record goes through ``variant_check``'s own record
parser.

The result is the reference reader's, file by file, record for record and value for value,
malformed accounting included: tests/unit/test_capture_reader.py checks it on generated files,
alone and in batches.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from mlops.core import capture_payloads
from mlops.core.capture import (
    EXAMPLES_PER_KIND,
    JSON_WHITESPACE,
    UTF8_BOM,
    CaptureRecord,
    Malformed,
    MalformedRecord,
    UnreadableFile,
    _inference_time,
    file_content,
    parse_file,
    parse_line,
)
from mlops.core.variant_check import CaptureTable, RecordRows, assemble_table, record_rows

# JSON strings as SageMaker writes them: printable ASCII; in data, no escape but \", \n, \r and
# \t (no \\: so each escape reads alone, and four plain replacements unescape it all). ASCII
# classes, and no CR before the LF, make the regex a quarter faster; a line outside them (text
# that is not ASCII, a CRLF file) goes to the reference parser, and is read exactly as ever.
_TEXT = r"[ !#-\[\]-~]*"
_DATA = r'(?:[ !#-\[\]-~]|\\["nrt])*'
_ESCAPES = (('\\"', '"'), ("\\n", "\n"), ("\\r", "\r"), ("\\t", "\t"))


def _template(inference_id: str) -> str:
    # One template per place of inferenceId, not one with optional parts: a regex with
    # captures that can tell at every character which way it goes runs several times faster.
    before, after = (f'"inferenceId":"{_TEXT}",', "") if inference_id == "before" else ("", "")
    if inference_id == "after":
        after = f',"inferenceId":"{_TEXT}"'
    return (
        r'^\{"captureData":\{"endpointInput":\{'
        rf'"observedContentType":"(?P<in_type>{_TEXT})","mode":"INPUT",'
        rf'"data":"(?P<in_data>{_DATA})","encoding":"(?P<in_encoding>CSV|JSON|BASE64)"\}},'
        r'"endpointOutput":\{'
        rf'"observedContentType":"(?P<out_type>{_TEXT})","mode":"OUTPUT",'
        rf'"data":"(?P<out_data>{_DATA})","encoding":"(?P<out_encoding>CSV|JSON|BASE64)"\}}\}},'
        rf'"eventMetadata":\{{"eventId":"(?P<event_id>{_TEXT})",{before}'
        rf'"inferenceTime":"(?P<time>{_TEXT})"{after}\}},"eventVersion":"0"\}}$'
    )


TEMPLATES = tuple(_template(place) for place in ("none", "after", "before"))
CANONICAL_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


@dataclass
class FileRead:
    """One capture file's records within a window, as the reference reader gives them."""

    table: CaptureTable | None = None  # None: unreadable
    problems: Malformed = field(default_factory=Malformed)  # lines that are not capture records
    unreadable: str | None = None  # why the file could not be read at all
    first: datetime | None = None  # the earliest and latest inference times kept
    last: datetime | None = None


def _in_window(when: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or when >= start) and (end is None or when < end)


def _reference(
    body: bytes, source: str, start: datetime | None, end: datetime | None, keep: int
) -> FileRead:
    """The whole file by the reference reader (a file that is not all UTF-8: rare)."""
    parsed = parse_file(body, source=source, keep_errors=keep)
    if parsed.unreadable is not None:
        return FileRead(unreadable=parsed.unreadable)
    kept = [
        (record, line)
        for record, line in zip(parsed.records, parsed.lines, strict=True)
        if _in_window(record.inference_time, start, end)
    ]
    rows = record_rows([r for r, _ in kept], range(len(kept)), source, [n for _, n in kept])
    times = [r.inference_time for r, _ in kept]
    return FileRead(
        table=assemble_table([rows], records=len(kept), keep_errors=keep),
        problems=parsed.problems,
        first=min(times, default=None),
        last=max(times, default=None),
    )


def _times(texts: pl.Series) -> dict[str, datetime | None]:
    """Each distinct time text read once (records of one second share it); None: not RFC 3339."""
    read: dict[str, datetime | None] = {}
    for text in texts.unique().to_list():
        try:
            read[text] = _inference_time(text)
        except MalformedRecord:
            read[text] = None  # the reference parser names it, with the line
    return read


def _base64_decoded(frame: pl.DataFrame, side: str) -> pl.Series:
    """``side``'s text, its BASE64 sections decoded as the reference decodes them (strict
    base64, then UTF-8 with replacement); null where a section is not strict base64."""
    name, base64_rows = f"{side}_text", pl.col(f"{side}_encoding") == "BASE64"
    # Canonical padding only: then Python's decoder and polars' agree; other cases below.
    raw = frame.select(
        pl.when(base64_rows & pl.col(name).str.contains(CANONICAL_BASE64))
        .then(pl.col(name).str.decode("base64", strict=False))
        .alias(name)
    ).to_series()
    try:
        decoded = raw.cast(pl.String)
    except pl.exceptions.ComputeError:  # invalid UTF-8 somewhere: decoded with replacement
        decoded = pl.Series(
            name, [None if b is None else b.decode("utf-8", "replace") for b in raw.to_list()]
        )
    texts = frame[name]
    merged = frame.select(pl.when(base64_rows).then(decoded).otherwise(pl.col(name))).to_series()
    slow = (frame[f"{side}_encoding"] == "BASE64") & decoded.is_null()
    if not slow.any():
        return merged
    texts_out: list[str | None] = merged.to_list()
    for index in np.flatnonzero(slow.to_numpy()).tolist():
        try:
            texts_out[index] = base64.b64decode(texts[index], validate=True).decode(
                "utf-8", errors="replace"
            )
        except (binascii.Error, ValueError):
            texts_out[index] = None  # the reference parser names it
    return pl.Series(name, texts_out, dtype=pl.String)


def _decoded(frame: pl.DataFrame) -> pl.DataFrame:
    """in_text and out_text: each section's data as the reference decodes it; null where a
    BASE64 section is not strict base64 (the reference parser names it)."""
    sides = ("in", "out")
    present = frame.select(
        *(
            pl.col(f"{side}_data").str.contains(escape, literal=True).any().alias(f"{side}{escape}")
            for side in sides
            for escape, _ in _ESCAPES
        ),
        *((pl.col(f"{side}_encoding") == "BASE64").any().alias(side) for side in sides),
    ).row(0, named=True)
    texts: dict[str, pl.Expr] = {}
    for side in sides:
        text = pl.col(f"{side}_data")
        for escape, character in _ESCAPES:  # each replaced only where present
            if present[f"{side}{escape}"]:
                text = text.str.replace_all(escape, character, literal=True)
        texts[f"{side}_text"] = text
    frame = frame.with_columns(**texts)
    for side in (side for side in sides if present[side]):
        frame = frame.with_columns(_base64_decoded(frame, side))
    return frame


def _matched(lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The lines that match a template, with their fields, in the order given; and the others
    (line, number, file)."""
    matched: list[pl.DataFrame] = []
    left = lines
    for template in TEMPLATES:
        found = left.with_columns(pl.col("line").str.extract_groups(template).alias("f")).unnest(
            "f"
        )
        if found["in_encoding"].null_count() == 0:
            matched.append(found)
            return _in_line_order(matched), left.clear()
        hit = pl.col("in_encoding").is_not_null()
        matched.append(found.filter(hit))
        left = left.filter(found["in_encoding"].is_null())
    return _in_line_order(matched), left


def _in_line_order(matched: list[pl.DataFrame]) -> pl.DataFrame:
    """The lines each template matched, back in the order given (positions follow from it)."""
    return matched[0] if len(matched) == 1 else pl.concat(matched).sort("row")


# What the fast path keeps of a line: where it stands (its number in its file, its file's index
# in the batch, its row in the batch) and what it says (the payloads' texts: capture_payloads).
COLUMNS = ("line", "number", "file", "row", "event_id", "time", "values", "score")


def read_file(
    body: bytes,
    *,
    source: str,
    start: datetime | None = None,
    end: datetime | None = None,
    keep_errors: int = EXAMPLES_PER_KIND,
) -> FileRead:
    """One capture file's records with start <= inference time < end (either end open)."""
    return _read_batch([(source, body)], start, end, keep_errors)[0]


def _lines(contents: list[bytes]) -> tuple[pl.DataFrame, list[int]]:
    """Every line of the files (UTF-8 all through) in one frame: line, its number in its file,
    its file's index, and its row; and the indexes of the files that are not UTF-8."""
    try:
        texts = pl.Series(contents, dtype=pl.Binary).cast(pl.String)
        not_utf8: list[int] = []
    except pl.exceptions.ComputeError:  # which files: each tried alone (rare)
        not_utf8 = [i for i, c in enumerate(contents) if not _is_utf8(c)]
        texts = pl.Series(
            [b"" if i in not_utf8 else c for i, c in enumerate(contents)], dtype=pl.Binary
        ).cast(pl.String)
    # Rules 2-3: lines split on LF only. What follows a file's last LF is blank, and is dropped
    # with it (numbers stay as they were); a blank line is no record and no problem either way.
    split = pl.DataFrame(
        {
            "file": np.arange(len(contents), dtype=np.uint32),
            "line": texts.str.strip_suffix("\n").str.split("\n"),
        }
    )
    counts = split["line"].list.len().to_numpy().astype(np.int64)
    starts = np.cumsum(counts) - counts
    rows = np.arange(int(counts.sum()), dtype=np.int64)
    return split.explode("line").with_columns(
        number=rows - np.repeat(starts, counts) + 1, row=rows
    ), not_utf8


def _is_utf8(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_batch(
    items: list[tuple[str, bytes]],
    start: datetime | None,
    end: datetime | None,
    keep: int,
) -> list[FileRead]:
    """Several files read together (per-call costs are per batch, not per file); each file's
    read exactly as it would be alone."""
    reads: dict[int, FileRead] = {}
    contents: list[bytes] = []
    for index, (source, body) in enumerate(items):
        try:
            content = file_content(body, source)
        except UnreadableFile as exc:
            reads[index] = FileRead(unreadable=str(exc))
            content = b""
        contents.append(content[len(UTF8_BOM) :] if content.startswith(UTF8_BOM) else content)
    lines, not_utf8 = _lines(contents)
    for index in not_utf8:  # a file that is not all UTF-8: the reference reader (rare)
        source, body = items[index]
        reads[index] = _reference(body, source, start, end, keep)
    fast, others, times = _fast_path(lines)
    # Every other line not blank goes to the reference parser, in line order, with its number.
    problems = {index: Malformed(keep=keep) for index in range(len(items))}
    slow: dict[int, list[tuple[int, CaptureRecord]]] = {}  # file: (number, record)
    for line, number, index in others.select("line", "number", "file").iter_rows():
        if not line.strip(JSON_WHITESPACE):
            continue
        try:
            record = parse_line(line)
        except MalformedRecord as exc:
            problems[index].add(exc.kind, f"{items[index][0]}:{number}: {exc}")
            continue
        if _in_window(record.inference_time, start, end):
            slow.setdefault(index, []).append((number, record))
    # The window over the fast path's records.
    inside = [t for t, w in times.items() if w is not None and _in_window(w, start, end)]
    if len(inside) < len(times):
        fast = fast.filter(pl.col("time").is_in(inside))
    batch = _Batch.of(fast, slow, len(items))
    # Of the records kept only: a line that took the reference parser may not be a record.
    kept_times: dict[int, list[datetime]] = {index: [] for index in range(len(items))}
    for index, text in fast.select("file", "time").unique().iter_rows():
        kept_times[index].append(times[text])  # type: ignore[arg-type]
    for index, records in slow.items():
        kept_times[index] += [record.inference_time for _, record in records]
    for index, (source, _) in enumerate(items):
        if index not in reads:
            reads[index] = FileRead(
                table=batch.table(index, source, slow.get(index, []), keep),
                problems=problems[index],
                first=min(kept_times[index], default=None),
                last=max(kept_times[index], default=None),
            )
    return [reads[index] for index in range(len(items))]


def _fast_path(
    lines: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, datetime | None]]:
    """The lines whose records the fast path reads, with COLUMNS, in line order; the others;
    and each distinct time text's time (None: not RFC 3339)."""
    frame, others = _matched(lines)
    frame = _decoded(frame)
    if frame["in_text"].null_count() or frame["out_text"].null_count():  # not strict base64
        decoded = pl.col("in_text").is_not_null() & pl.col("out_text").is_not_null()
        others = pl.concat([others, frame.filter(~decoded).select(others.columns)])
        frame = frame.filter(decoded)
    fast = capture_payloads.payloads(frame).select(COLUMNS)
    times = _times(fast["time"])
    good = [t for t, w in times.items() if w is not None]
    if len(good) < len(times):  # not RFC 3339: the reference parser names it
        good_time = pl.col("time").is_in(good)
        others = pl.concat([others, fast.filter(~good_time).select(others.columns)])
        fast = fast.filter(good_time)
    return fast, others.sort("row"), times


@dataclass
class _Batch:
    """The fast path's records of a batch of files, as arrays in line order."""

    fast: pl.DataFrame
    matrix: np.ndarray  # rows of values, scores, and whether both are finite numbers
    scores: np.ndarray
    ok: np.ndarray
    event_ids: np.ndarray
    numbers: np.ndarray  # each record's line number, and position among its file's records
    positions: np.ndarray
    bounds: np.ndarray  # file i's fast records: bounds[i]:bounds[i + 1]
    kept: np.ndarray  # (file, number) keys of every record kept, by either path, sorted
    file_starts: np.ndarray  # file i's keys: kept[file_starts[i]:file_starts[i + 1]]
    span: int

    @classmethod
    def of(
        cls, fast: pl.DataFrame, slow: dict[int, list[tuple[int, CaptureRecord]]], files: int
    ) -> _Batch:
        # Positions: each file's kept records in line order, whichever path read them.
        fast_files = fast["file"].to_numpy().astype(np.int64)
        numbers = fast["number"].to_numpy().astype(np.int64)
        span = int(max([numbers.max(initial=0), *(n for r in slow.values() for n, _ in r)])) + 1
        keys = fast_files * span + numbers  # in order: fast is in the order of its rows
        slow_keys = [i * span + n for i, records in slow.items() for n, _ in records]
        kept = np.sort(np.concatenate([keys, np.asarray(slow_keys, np.int64)])) if slow else keys
        file_starts = np.searchsorted(kept, np.arange(files + 1, dtype=np.int64) * span)
        matrix, scores, ok = capture_payloads.numbers(fast)
        return cls(
            fast=fast,
            matrix=matrix,
            scores=scores,
            ok=ok,
            event_ids=fast["event_id"].to_numpy().astype(object),
            numbers=numbers,
            positions=np.searchsorted(kept, keys) - file_starts[fast_files],
            bounds=np.searchsorted(fast_files, np.arange(files + 1)),
            kept=kept,
            file_starts=file_starts,
            span=span,
        )

    def table(
        self, index: int, source: str, slow: list[tuple[int, CaptureRecord]], keep: int
    ) -> CaptureTable:
        """File ``index``'s table: its fast records, and the rest by the record parser."""
        a, b = self.bounds[index], self.bounds[index + 1]
        left = np.flatnonzero(~self.ok[a:b]) + a
        taken = slice(a, b) if not len(left) else np.flatnonzero(self.ok[a:b]) + a
        bulk = RecordRows(
            [self.matrix[taken]],
            [self.scores[taken]],
            [self.event_ids[taken]],
            [self.positions[taken]],
        )
        # Records the fast payload path does not take: variant_check's record parser, as ever.
        rest = [
            (int(self.positions[i]), int(self.numbers[i]), parse_line(self.fast["line"][i]))
            for i in left.tolist()
        ]
        first = int(self.file_starts[index])
        rest += [
            (int(np.searchsorted(self.kept, index * self.span + n)) - first, n, record)
            for n, record in slow
        ]
        rest.sort(key=lambda item: item[0])
        rows = record_rows(
            [r for _, _, r in rest], [p for p, _, _ in rest], source, [n for _, n, _ in rest]
        )
        records = int(self.file_starts[index + 1]) - first
        return assemble_table([bulk, rows], records=records, keep_errors=keep)


# Files read at once: polars' per-call costs are per batch, so a batch of a few MB reads a line
# in about a third less time than a file of 1,000 lines alone; batches are no larger, to bound
# memory, and no fewer than the workers, to keep every core busy.
BATCH_FILES = 64
BATCH_BYTES = 8 << 20
# Files fetched at once, and how far ahead of the reading: an S3 GET waits tens of milliseconds
# on the network, not on a core, so many are in flight while the cores read what has arrived.
FETCHERS = 16
FETCH_AHEAD = 64


def read_files(
    files: Iterable[tuple[str, Callable[[], bytes]]],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    keep_errors: int = EXAMPLES_PER_KIND,
    workers: int | None = None,
) -> Iterator[tuple[str, FileRead]]:
    """(name, read) of each file, in the order given: files are fetched (``load``) in
    FETCHERS threads, and read in batches in ``workers`` threads (default: one per core)."""
    listed = list(files)
    count = workers or len(os.sched_getaffinity(0))
    # Every worker gets work, even in a window of few files.
    size = max(1, min(BATCH_FILES, -(-len(listed) // count)))

    def read(batch: list[tuple[str, bytes]]) -> list[tuple[str, FileRead]]:
        reads = _read_batch(batch, start, end, keep_errors)
        return list(zip((name for name, _ in batch), reads, strict=True))

    with (
        ThreadPoolExecutor(FETCHERS, thread_name_prefix="capture-fetch") as fetching,
        ThreadPoolExecutor(count, thread_name_prefix="capture") as reading,
    ):
        reads: deque[Future[list[tuple[str, FileRead]]]] = deque()
        for batch in _batches(_fetched(fetching, listed), size):
            reads.append(reading.submit(read, batch))
            while len(reads) > count:  # bounded: a batch waits while the cores are busy
                yield from reads.popleft().result()
        while reads:
            yield from reads.popleft().result()


def _fetched(
    pool: ThreadPoolExecutor, files: list[tuple[str, Callable[[], bytes]]]
) -> Iterator[tuple[str, bytes]]:
    """Each file's (name, bytes), in order, at most FETCH_AHEAD fetched ahead."""
    pending: deque[tuple[str, Future[bytes]]] = deque()
    for name, load in files:
        pending.append((name, pool.submit(load)))
        if len(pending) >= FETCH_AHEAD:
            name_, body = pending.popleft()
            yield name_, body.result()
    while pending:
        name_, body = pending.popleft()
        yield name_, body.result()


def _batches(files: Iterator[tuple[str, bytes]], size: int) -> Iterator[list[tuple[str, bytes]]]:
    """Runs of at most ``size`` files and BATCH_BYTES (or one file, if larger)."""
    batch: list[tuple[str, bytes]] = []
    held = 0
    for name, body in files:
        batch.append((name, body))
        held += len(body)
        if len(batch) >= size or held >= BATCH_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch
