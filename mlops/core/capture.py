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
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import gc
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

CSV_TYPES = ("text/csv",)
JSON_TYPES = ("application/json",)


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
    """One capture line, as SageMaker writes it."""
    metadata: dict[str, str] = {
        "eventId": event_id or str(uuid.uuid4()),
        "inferenceTime": inference_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
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


def _decode(section: Any, mode: str) -> CapturedPayload:
    if not isinstance(section, dict):
        raise ValueError(f"{mode} is not an object")
    encoding = section.get("encoding")
    data = section.get("data")
    if not isinstance(data, str):
        raise ValueError(f"{mode}.data is missing or not a string")
    if encoding == "BASE64":
        try:
            raw = base64.b64decode(data, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{mode}.data is not valid base64: {exc}") from None
        text = raw.decode("utf-8", errors="replace")
    elif encoding in ("CSV", "JSON"):
        text, raw = data, None
    else:
        raise ValueError(f"{mode}.encoding {encoding!r} is not CSV, JSON or BASE64")
    return CapturedPayload(
        content_type=str(section.get("observedContentType", "")),
        mode=str(section.get("mode", "")),
        data=text,
        encoding=encoding,
        binary=raw,
    )


_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@functools.lru_cache(maxsize=4096)
def _inference_time(text: str) -> datetime:
    # Records of one second share the text: parse it once (strptime costs ~15 s per 1M).
    if not _TIME.fullmatch(text):
        raise ValueError(f"eventMetadata.inferenceTime {text!r} is not a UTC time")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(
            f"eventMetadata.inferenceTime {text!r} is not a UTC time ({exc})"
        ) from None


def parse_line(line: str) -> CaptureRecord:
    """One capture line; ValueError (with the reason) if it is not a capture record."""
    try:
        document = orjson.loads(line)  # ~3x the standard library's speed on capture lines
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    capture = document.get("captureData")
    metadata = document.get("eventMetadata")
    if not isinstance(capture, dict) or not isinstance(metadata, dict):
        raise ValueError("captureData or eventMetadata missing")
    if "endpointInput" not in capture:
        raise ValueError("captureData.endpointInput missing")
    when = _inference_time(str(metadata.get("inferenceTime")))
    output = capture.get("endpointOutput")
    return CaptureRecord(
        event_id=str(metadata.get("eventId", "")),
        inference_time=when,
        input=_decode(capture["endpointInput"], "endpointInput"),
        output=_decode(output, "endpointOutput") if output is not None else None,
        inference_id=metadata.get("inferenceId"),
    )


@dataclass
class ParseResult:
    records: list[CaptureRecord] = field(default_factory=list)
    malformed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for the report


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


def parse_lines(lines: Iterable[str], *, source: str = "", keep_errors: int = 20) -> ParseResult:
    """Parse capture lines; malformed lines are counted and described, never fatal."""
    with gc_paused():
        return _parse_lines(lines, source=source, keep_errors=keep_errors)


def _parse_lines(lines: Iterable[str], *, source: str, keep_errors: int) -> ParseResult:
    result = ParseResult()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            result.records.append(parse_line(line))
        except ValueError as exc:
            result.malformed += 1
            if len(result.errors) < keep_errors:
                result.errors.append(f"{source}:{number}: {exc}")
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
        if not line.strip():
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
