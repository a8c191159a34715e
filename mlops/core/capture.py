"""SageMaker endpoint data capture: the JSON Lines records, their S3 keys, and parsing them back.

Pure: no AWS here. The layout is AWS's (Model Monitor "Capture data" documentation):

  s3://<bucket>/<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl

  {"captureData": {"endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                                      "data": "...", "encoding": "CSV"},
                   "endpointOutput": {"observedContentType": "application/json",
                                      "mode": "OUTPUT", "data": "...", "encoding": "JSON"}},
   "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-11-26T14:00:00Z"},
   "eventVersion": "0"}

``encoding`` is CSV or JSON when the endpoint's CaptureContentTypeHeader lists the observed
content type, BASE64 otherwise.

Reading rules: all of them, here and nowhere else (a faster reader must follow them exactly).

1. Files. A capture file's name ends in ``.jsonl`` or ``.jsonl.gz`` (case as written); any other
   file under a capture location is skipped and named (S3 "folder" keys ending in / are not
   files). A file given by its own name is read whatever its name. It is gunzipped when its
   name ends in ``.gz`` or its bytes start with gzip's magic 1f 8b (every member); one that does
   not decompress (not gzip, truncated, bad CRC) is a malformed file, named with the reason,
   and none of its records is read. An empty file holds no records.
2. Bytes. UTF-8; one byte-order mark (EF BB BF) at the start of the file is skipped.
3. Lines. Split on LF (0x0A) only: CR, VT, FF, 0x1C-0x1E, NEL (U+0085), U+2028 and U+2029
   never end a line. A CR before LF is JSON whitespace (CRLF files read as LF files). A line
   of JSON whitespace only (space, tab, CR) or nothing is skipped, not counted. Lines are
   numbered from 1, counting every LF, skipped lines included.
4. A line that is not valid UTF-8 is malformed ("invalid UTF-8"): never decoded with
   replacement characters into a record that looks valid.
5. A line is one JSON value (orjson: RFC 8259 strictly: no NaN or Infinity, no number beyond
   the double range, no lone surrogate escape, nothing after the value but whitespace; of
   duplicate keys the last wins): "not JSON"; a value that is not an object: "not an object".
6. ``captureData`` and ``eventMetadata`` are objects ("missing captureData", "missing
   eventMetadata"); ``captureData.endpointInput`` exists ("missing endpointInput");
   ``endpointOutput`` is optional (absent or null: no output). Each section is an object
   ("bad section") whose ``data`` is a string ("missing data") and whose ``encoding`` is
   exactly CSV, JSON or BASE64 ("bad encoding"); BASE64 data is strict base64, no whitespace
   ("bad base64").
7. ``eventMetadata.inferenceTime`` is an RFC 3339 date-time ("bad time"; the rules at
   ``_inference_time``), read as a UTC instant. ``eventId`` is read as text ("" if absent),
   ``inferenceId`` as given.

A malformed line is counted by kind (the quoted names above) with the first few examples of
each kind, as "file:line: reason"; it is never fatal.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import gc
import gzip
import json
import re
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

CSV_TYPES = ("text/csv",)
JSON_TYPES = ("application/json",)

CAPTURE_SUFFIXES = (".jsonl", ".jsonl.gz")
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
JSON_WHITESPACE = " \t\r"  # and LF, which never reaches a line
EXAMPLES_PER_KIND = 3

# The kinds of malformed line (rules 4-7 above).
INVALID_UTF8 = "invalid UTF-8"
NOT_JSON = "not JSON"
NOT_OBJECT = "not an object"
NO_CAPTURE_DATA = "missing captureData"
NO_METADATA = "missing eventMetadata"
NO_INPUT = "missing endpointInput"
BAD_SECTION = "bad section"
NO_DATA = "missing data"
BAD_ENCODING = "bad encoding"
BAD_BASE64 = "bad base64"
BAD_TIME = "bad time"


@dataclass(frozen=True)
class CapturedPayload:
    content_type: str
    mode: str  # INPUT | OUTPUT
    data: str  # decoded text (binary payloads: their bytes decoded as UTF-8 with replacement)
    encoding: str  # the encoding it was stored with
    binary: bytes | None = None  # a BASE64 payload's bytes (kept apart: not always UTF-8)

    @property
    def raw(self) -> bytes:
        """The payload's bytes (computed for text: a million records hold no second copy)."""
        return self.binary if self.binary is not None else self.data.encode()


@dataclass(frozen=True)
class CaptureRecord:
    event_id: str
    inference_time: datetime
    input: CapturedPayload
    output: CapturedPayload | None
    inference_id: str | None = None


def encoding_for(content_type: str, csv_types: Sequence[str], json_types: Sequence[str]) -> str:
    base = content_type.split(";", maxsplit=1)[0].strip().lower()
    if base in csv_types:
        return "CSV"
    if base in json_types:
        return "JSON"
    return "BASE64"


def _encode(
    payload: bytes,
    content_type: str,
    mode: str,
    csv_types: Sequence[str],
    json_types: Sequence[str],
) -> dict[str, str]:
    encoding = encoding_for(content_type, csv_types, json_types)
    if encoding == "BASE64":
        data = base64.b64encode(payload).decode("ascii")
    else:
        data = payload.decode("utf-8")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def encode_record(
    *,
    request: bytes,
    request_type: str,
    response: bytes,
    response_type: str,
    inference_time: datetime,
    event_id: str | None = None,
    inference_id: str | None = None,
    csv_types: Sequence[str] = CSV_TYPES,
    json_types: Sequence[str] = JSON_TYPES,
) -> str:
    """One capture line, as SageMaker writes it (whole seconds, UTC)."""
    when = inference_time.astimezone(UTC)
    metadata: dict[str, str] = {
        "eventId": event_id or str(uuid.uuid4()),
        # The year in 4 digits (strftime's %Y writes year 999 as "999" here: not RFC 3339).
        "inferenceTime": f"{when.year:04d}-{when:%m-%dT%H:%M:%S}Z",
    }
    if inference_id:
        metadata["inferenceId"] = inference_id
    record = {
        "captureData": {
            "endpointInput": _encode(request, request_type, "INPUT", csv_types, json_types),
            "endpointOutput": _encode(response, response_type, "OUTPUT", csv_types, json_types),
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }
    return json.dumps(record, separators=(",", ":"))


def object_key(
    prefix: str, endpoint: str, variant: str, when: datetime, unique: str | None = None
) -> str:
    """The S3 key of one capture file, in SageMaker's scheme."""
    when = when.astimezone(UTC)
    name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{unique or uuid.uuid4()}.jsonl"
    parts = [prefix.strip("/"), endpoint, variant, f"{when:%Y/%m/%d/%H}", name]
    return "/".join(p for p in parts if p)


class MalformedRecord(ValueError):
    """A line that is not a capture record; ``kind`` names the rule it breaks."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _decode(section: Any, mode: str) -> CapturedPayload:
    if not isinstance(section, dict):
        raise MalformedRecord(BAD_SECTION, f"{mode} is not an object")
    encoding = section.get("encoding")
    data = section.get("data")
    if not isinstance(data, str):
        raise MalformedRecord(NO_DATA, f"{mode}.data is missing or not a string")
    if encoding == "BASE64":
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError as exc:  # binascii.Error, or a character beyond ASCII
            raise MalformedRecord(BAD_BASE64, f"{mode}.data is not valid base64: {exc}") from None
        text = raw.decode("utf-8", errors="replace")
    elif encoding in ("CSV", "JSON"):
        text, raw = data, None
    else:
        raise MalformedRecord(
            BAD_ENCODING, f"{mode}.encoding {encoding!r} is not CSV, JSON or BASE64"
        )
    return CapturedPayload(
        content_type=str(section.get("observedContentType", "")),
        mode=str(section.get("mode", "")),
        data=text,
        encoding=encoding,
        binary=raw,
    )


# RFC 3339 section 5.6 date-time. Digits are ASCII only ([0-9]: \d also takes other scripts').
# datetime.fromisoformat (3.11) is no judge: it takes what RFC 3339 refuses (a date alone, no
# offset, a space for T, "+02", "+0200", week dates, 20240101T000000Z) and refuses what it
# allows ("z", second 60).
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)


@functools.lru_cache(maxsize=4096)
def _inference_time(text: str) -> datetime:
    """An RFC 3339 date-time as a UTC datetime; MalformedRecord ("bad time") otherwise.

    T or t, Z or z; a numeric offset +hh:mm or -hh:mm (hours 00-23, minutes 00-59; -00:00 is
    UTC). Fractional seconds of any length, truncated to microseconds (never rounded: a time
    never moves into the next second). Second 60 is a leap second, accepted only where one can
    be, at 23:59:60 UTC, and read as 23:59:59.999999 (datetime has no second 60; the instant
    stays in its minute, after every other). Calendar dates only (February 30 is refused),
    years 0001-9999 and UTC instants within them (datetime's range).
    """
    # Records of one second share the text: parse it once (strptime costs ~15 s per 1M).
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise _bad_time(text, "expected YYYY-MM-DDTHH:MM:SS[.fraction] and Z or +hh:mm")
    date, hour, minute, second, fraction, zone, offset_hours, offset_minutes = match.groups()
    # Two ASCII digits each: compared as text, as numbers.
    if hour > "23" or minute > "59" or second > "60":
        raise _bad_time(text, "hour, minute or second out of range")
    if offset_hours is not None and (offset_hours > "23" or offset_minutes > "59"):
        raise _bad_time(text, "offset out of range")
    # The checked parts, in the one form fromisoformat reads exactly (6 fraction digits at most).
    iso = f"{date}T{hour}:{minute}:{'59' if second == '60' else second}"
    if fraction:
        iso += "." + fraction[:6].ljust(6, "0")
    try:
        offset = "+00:00" if offset_hours is None else zone  # Z or z: UTC
        when = datetime.fromisoformat(iso + offset).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # February 30; year 0; beyond year 9999 in UTC
        raise _bad_time(text, str(exc)) from None
    if second == "60":
        if (when.hour, when.minute) != (23, 59):
            raise _bad_time(text, "second 60 is a leap second, only at 23:59:60 UTC")
        when = when.replace(microsecond=999_999)
    return when


def _bad_time(text: str, why: str) -> MalformedRecord:
    return MalformedRecord(
        BAD_TIME, f"eventMetadata.inferenceTime {text!r} is not an RFC 3339 time ({why})"
    )


def parse_line(line: str | bytes) -> CaptureRecord:
    """One capture record; MalformedRecord (a ValueError: its kind and reason) if it is not."""
    try:
        document = orjson.loads(line)  # ~3x the standard library's speed on capture lines
    except orjson.JSONDecodeError as exc:
        raise MalformedRecord(NOT_JSON, f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedRecord(NOT_OBJECT, "not a JSON object")
    capture = document.get("captureData")
    metadata = document.get("eventMetadata")
    if not isinstance(capture, dict):
        raise MalformedRecord(NO_CAPTURE_DATA, "captureData is missing or not an object")
    if not isinstance(metadata, dict):
        raise MalformedRecord(NO_METADATA, "eventMetadata is missing or not an object")
    if "endpointInput" not in capture:
        raise MalformedRecord(NO_INPUT, "captureData.endpointInput missing")
    time = metadata.get("inferenceTime")
    if not isinstance(time, str):
        raise MalformedRecord(
            BAD_TIME, f"eventMetadata.inferenceTime is missing or not a string: {time!r}"
        )
    when = _inference_time(time)
    output = capture.get("endpointOutput")
    return CaptureRecord(
        event_id=str(metadata.get("eventId", "")),
        inference_time=when,
        input=_decode(capture["endpointInput"], "endpointInput"),
        output=_decode(output, "endpointOutput") if output is not None else None,
        inference_id=metadata.get("inferenceId"),
    )


@dataclass
class Malformed:
    """Malformed records: how many of each kind, and the first ``keep`` examples of each kind
    (so one frequent kind never hides the others)."""

    by_kind: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    keep: int = EXAMPLES_PER_KIND

    @property
    def count(self) -> int:
        return sum(self.by_kind.values())

    @property
    def errors(self) -> list[str]:
        """The examples, kind by kind, kinds in the order they were first seen."""
        return [example for kind in self.by_kind for example in self.examples.get(kind, ())]

    def add(self, kind: str, example: str) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        kept = self.examples.setdefault(kind, [])
        if len(kept) < self.keep:
            kept.append(example)

    def update(self, other: Malformed) -> None:
        for kind, count in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + count
            kept = self.examples.setdefault(kind, [])
            kept.extend(other.examples.get(kind, [])[: max(0, self.keep - len(kept))])

    @classmethod
    def merged(cls, *parts: Malformed, keep: int = EXAMPLES_PER_KIND) -> Malformed:
        whole = cls(keep=keep)
        for part in parts:
            whole.update(part)
        return whole


class HasMalformed:
    """What a result says of its ``problems``: the count, the counts by kind, the examples."""

    problems: Malformed

    @property
    def malformed(self) -> int:
        return self.problems.count

    @property
    def malformed_by_kind(self) -> dict[str, int]:
        return self.problems.by_kind

    @property
    def errors(self) -> list[str]:
        """The first examples of each kind, as "source:line: reason"."""
        return self.problems.errors


@dataclass
class ParseResult(HasMalformed):
    records: list[CaptureRecord] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # each record's line number
    problems: Malformed = field(default_factory=Malformed)
    unreadable: str | None = None  # why the file could not be read at all (rule 1)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: parsing makes many objects and no cycles (refcounts
    free them), and the collector's passes over them cost a quarter of a window's parse."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def is_capture_file(name: str) -> bool:
    """Rule 1: a capture file by its name."""
    return name.endswith(CAPTURE_SUFFIXES)


class UnreadableFile(ValueError):
    """A file whose bytes cannot be read at all (rule 1: a gzip that does not decompress)."""


def file_content(body: bytes, name: str) -> bytes:
    """Rule 1: a file's bytes, gunzipped when its name or its first bytes say gzip."""
    if name.endswith(".gz") or body.startswith(GZIP_MAGIC):
        try:
            return gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise UnreadableFile(f"not a readable gzip file: {exc}") from None
    return body


def split_lines(content: bytes) -> tuple[list[str], dict[int, str]]:
    """Rules 2-4: a file's lines, and why each line that is not UTF-8 cannot be read (by line
    number; such a line is given as "")."""
    if content.startswith(UTF8_BOM):
        content = content[len(UTF8_BOM) :]
    try:
        return content.decode("utf-8").split("\n"), {}  # LF is never inside a UTF-8 sequence
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    unreadable: dict[int, str] = {}
    for number, raw in enumerate(content.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append("")
            unreadable[number] = f"invalid UTF-8: {exc}"
    return lines, unreadable


def parse_file(body: bytes, *, source: str, keep_errors: int = EXAMPLES_PER_KIND) -> ParseResult:
    """A capture file's bytes (named ``source``) by every rule above."""
    try:
        content = file_content(body, source)
    except UnreadableFile as exc:
        return ParseResult(unreadable=str(exc))
    lines, unreadable = split_lines(content)
    with gc_paused():
        return _parse_lines(lines, source=source, keep_errors=keep_errors, unreadable=unreadable)


def parse_lines(
    lines: Iterable[str], *, source: str = "", keep_errors: int = EXAMPLES_PER_KIND
) -> ParseResult:
    """Parse capture lines (rules 3 and 5-7; split already); malformed lines are counted by
    kind, with the first ``keep_errors`` examples of each kind, never fatal."""
    with gc_paused():
        return _parse_lines(lines, source=source, keep_errors=keep_errors, unreadable={})


def _parse_lines(
    lines: Iterable[str], *, source: str, keep_errors: int, unreadable: Mapping[int, str]
) -> ParseResult:
    result = ParseResult(problems=Malformed(keep=keep_errors))
    records, numbers, problems = result.records, result.lines, result.problems
    for number, line in enumerate(lines, start=1):
        if not line.strip(JSON_WHITESPACE):
            if number in unreadable:  # given as "" by split_lines
                problems.add(INVALID_UTF8, f"{source}:{number}: {unreadable[number]}")
            continue
        try:
            records.append(parse_line(line))
        except MalformedRecord as exc:
            problems.add(exc.kind, f"{source}:{number}: {exc}")
            continue
        numbers.append(number)
    return result


# Ground-truth labels, in the layout Model Monitor's model-quality jobs read:
#   {"groundTruthData": {"data": "1", "encoding": "CSV"},
#    "eventMetadata": {"eventId": "<the capture record's eventId>"}, "eventVersion": "0"}
# A request that scored several rows carries one label per row, in order ("1\n0" or "[1, 0]").


@dataclass
class GroundTruth:
    labels: dict[str, list[float]] = field(default_factory=dict)
    malformed: int = 0
    errors: list[str] = field(default_factory=list)


def _label_values(section: Any) -> list[float]:
    if not isinstance(section, dict) or not isinstance(section.get("data"), str):
        raise ValueError("groundTruthData.data is missing or not a string")
    encoding, data = section.get("encoding", "CSV"), section["data"]
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"groundTruthData.data is not valid base64 text: {exc}") from None
        encoding = "CSV"
    if encoding == "JSON":
        value = json.loads(data)
        values = value if isinstance(value, list) else [value]
    elif encoding == "CSV":
        values = [v for v in data.replace(",", "\n").split() if v]
    else:
        raise ValueError(f"groundTruthData.encoding {encoding!r} is not CSV, JSON or BASE64")
    if any(isinstance(v, bool) for v in values):
        raise ValueError(f"labels must be 0 or 1, not true/false: {data!r}")
    labels = [float(v) for v in values]
    if not labels or any(v not in (0.0, 1.0) for v in labels):
        raise ValueError(f"labels must be 0 or 1, got {data!r}")
    return labels


def parse_ground_truth(
    lines: Iterable[str],
    *,
    source: str = "",
    keep_errors: int = 20,
    into: GroundTruth | None = None,
) -> GroundTruth:
    """Labels by event id; malformed lines counted and described, never fatal."""
    result = into or GroundTruth()
    for number, line in enumerate(lines, start=1):
        if not line.strip(JSON_WHITESPACE):
            continue
        try:
            document = json.loads(line)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            event_id = (document.get("eventMetadata") or {}).get("eventId")
            if not isinstance(event_id, str) or not event_id:
                raise ValueError("eventMetadata.eventId is missing")
            result.labels[event_id] = _label_values(document.get("groundTruthData"))
        except (ValueError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
            result.malformed += 1
            if len(result.errors) < keep_errors:
                result.errors.append(f"{source}:{number}: {exc}")
    return result


def read_ground_truth(
    body: bytes, *, source: str, into: GroundTruth, keep_errors: int = 20
) -> GroundTruth:
    """A ground-truth file's labels, its bytes read by the capture files' rules 1-4 (gzip, byte
    order mark, LF lines, strict UTF-8): a file or line that cannot be read is malformed."""
    try:
        content = file_content(body, source)
    except UnreadableFile as exc:
        unreadable = {0: str(exc)}
        lines: list[str] = []
    else:
        lines, unreadable = split_lines(content)
    for number, reason in unreadable.items():
        into.malformed += 1
        if len(into.errors) < keep_errors:
            into.errors.append(f"{source}:{number}: {reason}" if number else f"{source}: {reason}")
    return parse_ground_truth(lines, source=source, keep_errors=keep_errors, into=into)


def encode_ground_truth(event_id: str, labels: Sequence[int]) -> str:
    """One ground-truth line for a captured event."""
    data = "\n".join(str(int(v)) for v in labels)
    return json.dumps(
        {
            "groundTruthData": {"data": data, "encoding": "CSV"},
            "eventMetadata": {"eventId": event_id},
            "eventVersion": "0",
        },
        separators=(",", ":"),
    )
