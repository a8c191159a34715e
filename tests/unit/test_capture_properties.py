"""Properties of the capture reader: whatever SageMaker can write is read back exactly, and
junk among good lines costs exactly the junk, counted by kind.

Records are written two ways: with the project's own encoder (encode_record), and by hand as
a dict through json.dumps (any key order, ASCII or not, either separators), so the reader is
not only checked against its own writer. Files come plain or gzipped, LF or CRLF, with or
without a byte-order mark and blank lines. The format's rules: mlops/core/capture.py.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops.core import capture
from mlops.core.capture import CaptureRecord, encode_record, encoding_for
from mlops.core.variant_check import table_from_records
from pipeline_steps.schema import FEATURE_NAMES

PROPERTY = settings(max_examples=30, deadline=None, database=None)
SOURCE = "s3://b/capture/ep/v/2026/11/26/14/f.jsonl"
NO_LF = st.characters(exclude_characters="\n")  # surrogates are excluded by default


def read(body: bytes, name: str) -> capture.ParseResult:
    """The reader under test: one capture file's bytes."""
    return capture.parse_file(body, source=name)


# -- values and payloads ----------------------------------------------------------------------
# Finite floats of every magnitude (subnormals, -0.0, 1.7e308) and integers beyond 2**53.
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
)


def number_text(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Payload:
    content_type: str
    body: bytes
    values: list[float]
    csv: bool


@st.composite
def payloads(draw: st.DrawFn) -> Payload:
    values = draw(st.lists(NUMBERS, min_size=1, max_size=9))
    if draw(st.booleans()):
        ending = draw(st.sampled_from(["", "\n", "\r\n"]))
        text = ",".join(number_text(v) for v in values) + ending
        return Payload("text/csv", text.encode(), values, csv=True)
    text = json.dumps({"instances": [values]}, separators=draw(st.sampled_from(SEPARATORS)))
    return Payload("application/json", text.encode(), values, csv=False)


SEPARATORS = [(",", ":"), (", ", ": ")]


def assert_values(text: str, payload: Payload) -> None:
    """The payload's numbers, read back from the record's text, are the numbers written."""
    if payload.csv:
        tokens = text.rstrip("\r\n").split(",")
        assert tokens == [number_text(v) for v in payload.values]
        for token, value in zip(tokens, payload.values, strict=True):
            read_back = float(token) if isinstance(value, float) else int(token)
            assert read_back == value
            assert math.copysign(1, read_back) == math.copysign(1, value)  # -0.0 stays -0.0
    else:
        read_back = json.loads(text)["instances"][0]
        assert [number_text(v) for v in read_back] == [number_text(v) for v in payload.values]


# -- times --------------------------------------------------------------------------------------
INSTANTS = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 30)).map(
    lambda naive: naive.replace(microsecond=0, tzinfo=UTC)
)
OFFSET_MINUTES = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)


@st.composite
def rfc3339_times(draw: st.DrawFn) -> tuple[str, datetime]:
    """(an RFC 3339 date-time, the UTC instant it names)."""
    instant = draw(INSTANTS)
    digits = draw(st.text("0123456789", max_size=12))
    offset = draw(OFFSET_MINUTES)
    wall = instant + timedelta(minutes=offset)
    if offset == 0:
        zone = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"]))
    else:
        hours, minutes = divmod(abs(offset), 60)
        zone = f"{'+' if offset > 0 else '-'}{hours:02d}:{minutes:02d}"
    text = (
        f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d}{draw(st.sampled_from('Tt'))}"
        f"{wall.hour:02d}:{wall.minute:02d}:{wall.second:02d}"
        + (f".{digits}" if digits else "")
        + zone
    )
    micro = int(digits[:6].ljust(6, "0")) if digits else 0
    return text, instant.replace(microsecond=micro)


# -- records, written two ways ----------------------------------------------------------------
@dataclass(frozen=True)
class Written:
    line: str
    event_id: str
    instant: datetime
    inference_id: str | None
    input: Payload
    input_encoding: str
    output: Payload | None
    output_encoding: str | None


EVENT_IDS = st.text(min_size=1, max_size=24)  # any text: LF, U+2028, NEL included


@st.composite
def by_the_encoder(draw: st.DrawFn) -> Written:
    """encode_record: CSV, JSON or BASE64 (of CSV, of JSON) as the capture header decides."""
    request, response = draw(payloads()), draw(payloads())
    csv_types = draw(st.sampled_from([("text/csv",), ()]))
    json_types = draw(st.sampled_from([("application/json",), ()]))
    zone = timezone(timedelta(minutes=draw(OFFSET_MINUTES)))
    when = draw(INSTANTS).replace(microsecond=draw(st.integers(0, 999_999)))
    event_id, inference_id = draw(EVENT_IDS), draw(st.none() | EVENT_IDS)
    line = encode_record(
        request=request.body, request_type=request.content_type, response=response.body,
        response_type=response.content_type, inference_time=when.astimezone(zone),
        event_id=event_id, inference_id=inference_id, csv_types=csv_types,
        json_types=json_types,
    )  # fmt: skip
    return Written(
        line, event_id, when.replace(microsecond=0), inference_id,  # the encoder writes seconds
        request, encoding_for(request.content_type, csv_types, json_types),
        response, encoding_for(response.content_type, csv_types, json_types),
    )  # fmt: skip


def _ordered(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    return {key: document[key] for key in draw(st.permutations(list(document)))}


def _section(draw: st.DrawFn, payload: Payload, mode: str, encoding: str) -> dict[str, Any]:
    data = (
        base64.b64encode(payload.body).decode() if encoding == "BASE64" else payload.body.decode()
    )
    section = {
        "observedContentType": payload.content_type,
        "mode": mode,
        "data": data,
        "encoding": encoding,
    }
    return _ordered(draw, section)


@st.composite
def by_hand(draw: st.DrawFn) -> Written:
    """A record dict built here and written with json.dumps: RFC 3339 times with offsets and
    fractions, payloads in any encoding, the output section present, null or absent."""
    time, instant = draw(rfc3339_times())
    request = draw(payloads())
    response = draw(st.none() | payloads())
    encodings = st.sampled_from(["CSV", "JSON", "BASE64"])
    input_encoding, output_encoding = draw(encodings), draw(encodings)
    event_id, inference_id = draw(EVENT_IDS), draw(st.none() | EVENT_IDS)
    metadata: dict[str, Any] = {"eventId": event_id, "inferenceTime": time}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    sections: dict[str, Any] = {"endpointInput": _section(draw, request, "INPUT", input_encoding)}
    if response is not None:
        sections["endpointOutput"] = _section(draw, response, "OUTPUT", output_encoding)
    elif draw(st.booleans()):
        sections["endpointOutput"] = None
    document = {
        "captureData": _ordered(draw, sections),
        "eventMetadata": _ordered(draw, metadata),
        "eventVersion": "0",
    }
    line = json.dumps(
        _ordered(draw, document),
        ensure_ascii=draw(st.booleans()),  # False: U+2028, NEL... unescaped in the line
        separators=draw(st.sampled_from(SEPARATORS)),
    )
    return Written(
        line, event_id, instant, inference_id, request, input_encoding, response,
        output_encoding if response is not None else None,
    )  # fmt: skip


def assert_read_back(record: CaptureRecord, written: Written) -> None:
    assert record.event_id == written.event_id
    assert record.inference_time == written.instant  # the same instant ...
    assert record.inference_time.utcoffset() == timedelta(0)  # ... in UTC
    assert record.inference_id == written.inference_id
    assert record.input.encoding == written.input_encoding
    assert record.input.content_type == written.input.content_type
    assert record.input.mode == "INPUT"
    assert record.input.raw == written.input.body
    assert_values(record.input.data, written.input)
    if written.output is None:
        assert record.output is None
        return
    assert record.output is not None
    assert record.output.encoding == written.output_encoding
    assert record.output.mode == "OUTPUT"
    assert record.output.raw == written.output.body
    assert_values(record.output.data, written.output)


# -- files --------------------------------------------------------------------------------------
BLANKS = st.sampled_from(["", " ", "\t", "\r", " \t\r "])


@st.composite
def files(draw: st.DrawFn, lines: list[bytes]) -> tuple[bytes, str, list[int]]:
    """(a file's bytes, its name, the line number of each of ``lines`` in it): LF or CRLF, a
    byte-order mark or not, blank lines anywhere, plain or gzipped (named .gz or not)."""
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    out: list[bytes] = []
    numbers: list[int] = []
    for line in lines:
        out += [b.encode() for b in draw(st.lists(BLANKS, max_size=2))]
        out.append(line)
        numbers.append(len(out))
    body = end.join(out) + (end if draw(st.booleans()) else b"")
    if draw(st.booleans()):
        body = capture.UTF8_BOM + body
    name = SOURCE
    if draw(st.booleans()):
        body = gzip.compress(body)
        name += draw(st.sampled_from([".gz", ""]))  # by name, or by the gzip magic alone
    return body, name, numbers


@PROPERTY
@given(data=st.data(), written=st.lists(by_the_encoder() | by_hand(), max_size=6))
def test_every_record_is_read_back_exactly(data: st.DataObject, written: list[Written]) -> None:
    body, name, numbers = data.draw(files([w.line.encode() for w in written]))
    result = read(body, name)
    assert (result.malformed, result.malformed_by_kind, result.unreadable) == (0, {}, None)
    assert len(result.records) == len(written)
    assert result.lines == numbers
    for record, expected in zip(result.records, written, strict=True):
        assert_read_back(record, expected)


# -- junk among good lines --------------------------------------------------------------------
def _good_document(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(draw(by_the_encoder()).line)
    return document


def _dumps(document: Any) -> bytes:
    return json.dumps(document).encode()  # ASCII: every byte below 0x80


_DELETE: Any = object()  # a key to remove


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[part]
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return document


NOT_OBJECTS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.lists(st.integers())
)
SECTIONS = st.sampled_from(["captureData.endpointInput", "captureData.endpointOutput"])


@st.composite
def junk(draw: st.DrawFn, kind: str) -> bytes:  # noqa: PLR0911 - one branch per kind
    """A line that is malformed in exactly the way ``kind`` names."""
    document = _good_document(draw)
    if kind == "invalid UTF-8":
        line = _dumps(document)
        at = draw(st.integers(0, len(line)))
        bad = draw(
            st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80"])
        )
        return line[:at] + bad + line[at:]
    if kind == "not JSON":
        return draw(
            st.one_of(
                st.text(NO_LF).map(lambda t: ("#" + t).encode()),
                st.integers(1, len(_dumps(document)) - 1).map(lambda n: _dumps(document)[:n]),
                st.sampled_from(["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "x"]).map(
                    lambda sep: _dumps(document) + sep.encode() + _dumps(document)
                ),
            )
        )
    if kind == "not an object":
        return _dumps(draw(NOT_OBJECTS))
    if kind == "missing captureData":
        return _dumps(_set(document, "captureData", draw(st.just(_DELETE) | NOT_OBJECTS)))
    if kind == "missing eventMetadata":
        return _dumps(_set(document, "eventMetadata", draw(st.just(_DELETE) | NOT_OBJECTS)))
    if kind == "missing endpointInput":
        return _dumps(_set(document, "captureData.endpointInput", _DELETE))
    section = draw(SECTIONS)
    if kind == "bad section":
        value = draw(NOT_OBJECTS.filter(lambda v: v is not None or section.endswith("Input")))
        return _dumps(_set(document, section, value))
    if kind == "missing data":
        value = draw(st.just(_DELETE) | NOT_OBJECTS.filter(lambda v: not isinstance(v, str)))
        return _dumps(_set(document, section + ".data", value))
    if kind == "bad encoding":
        value = draw(
            st.just(_DELETE)
            | NOT_OBJECTS.filter(lambda v: v not in ("CSV", "JSON", "BASE64"))
            | st.sampled_from(["csv", "json", "base64", "Base64", " CSV", "UTF-8"])
        )
        return _dumps(_set(document, section + ".encoding", value))
    if kind == "bad base64":
        valid = base64.b64encode(draw(st.binary(max_size=12))).decode()
        data = valid + draw(st.sampled_from(["!", "-", "_", " ", "\n", "é", "*", "A", "AB"]))
        _set(document, section + ".encoding", "BASE64")
        return _dumps(_set(document, section + ".data", data))
    assert kind == "bad time"
    time = document["eventMetadata"]["inferenceTime"]
    value = draw(
        st.sampled_from(
            [
                time[:-1],  # no offset
                time.replace("T", " "),
                time[:10],
                time[:-4] + "60Z",  # second 60, not at 23:59 UTC (the hour is drawn below)
                time[:5] + "13" + time[7:],
                time + "Z",
                None,
                1764165600,  # seconds since 1970: a time, but not a string
                "yesterday",
            ]
        )
    )
    if value == time[:-4] + "60Z" and time[11:16] == "23:59":
        value = time[:10]  # 23:59:60 UTC may be a leap second: take another bad time
    return _dumps(_set(document, "eventMetadata.inferenceTime", value))


KINDS = [
    "invalid UTF-8",
    "not JSON",
    "not an object",
    "missing captureData",
    "missing eventMetadata",
    "missing endpointInput",
    "bad section",
    "missing data",
    "bad encoding",
    "bad base64",
    "bad time",
]


@st.composite
def mixed_lines(draw: st.DrawFn) -> list[tuple[str | None, bytes]]:
    """(kind or None for a good record, the line), in a random order."""
    good = [(None, draw(by_the_encoder()).line.encode()) for _ in range(draw(st.integers(0, 6)))]
    # A few kinds, each often several times: more than the examples kept of a kind.
    some = sorted(draw(st.sets(st.sampled_from(KINDS), min_size=1, max_size=4)))
    kinds = draw(st.lists(st.sampled_from(some), max_size=14))
    lines = good + [(kind, draw(junk(kind))) for kind in kinds]
    return draw(st.permutations(lines))


@PROPERTY
@given(data=st.data(), lines=mixed_lines())
def test_junk_costs_exactly_the_junk_counted_by_kind(
    data: st.DataObject, lines: list[tuple[str | None, bytes]]
) -> None:
    body, name, numbers = data.draw(files([line for _, line in lines]))
    result = read(body, name)
    good = [line for kind, line in lines if kind is None]
    assert [json.loads(line)["eventMetadata"]["eventId"] for line in good] == [
        r.event_id for r in result.records
    ]
    expected = Counter(kind for kind, _ in lines if kind is not None)
    assert result.malformed_by_kind == dict(expected)
    assert result.malformed == sum(expected.values())
    # The first three of each kind, with their file and line, kinds in order of appearance.
    first: dict[str, list[int]] = {}
    for (kind, _), number in zip(lines, numbers, strict=True):
        if kind is not None and len(first.setdefault(kind, [])) < capture.EXAMPLES_PER_KIND:
            first[kind].append(number)
    where = [e.split(": ", 1)[0] for e in result.errors]
    assert where == [f"{name}:{n}" for numbers_ in first.values() for n in numbers_]
    assert list(result.malformed_by_kind) == list(first)


# -- payloads into the drift check's table ------------------------------------------------------
FEATURE_ROWS = st.lists(NUMBERS.filter(lambda v: math.isfinite(float(v))), min_size=9, max_size=9)
# Non-finite spellings: in CSV, what float() reads; in JSON, what json.loads reads.
CSV_NON_FINITE = st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e999", "-1e400"])
JSON_NON_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])


@st.composite
def scored_requests(draw: st.DrawFn) -> tuple[str, str, str | None]:
    """(CSV request, JSON response, the kind of malformed record it is, or None)."""
    row = [number_text(v) for v in draw(FEATURE_ROWS)]
    score = repr(draw(st.floats(0, 1)))
    kind = draw(st.sampled_from([None, None, None, "non-finite value", "bad input"]))
    if kind == "non-finite value":
        if draw(st.booleans()):
            score = draw(JSON_NON_FINITE)
        else:
            row[draw(st.integers(0, 8))] = draw(CSV_NON_FINITE)
    elif kind == "bad input":
        row = row[: draw(st.integers(1, 8))]
    return ",".join(row), '{"predictions": [{"score": ' + score + ', "label": 0}]}', kind


@PROPERTY
@given(requests=st.lists(scored_requests(), max_size=12))
def test_payload_values_reach_the_table_exactly(
    requests: list[tuple[str, str, str | None]],
) -> None:
    lines = [
        encode_record(
            request=row.encode(),
            request_type="text/csv",
            response=response.encode(),
            response_type="application/json",
            inference_time=datetime(2026, 11, 26, tzinfo=UTC),
            event_id=f"e{i}",
        )
        for i, (row, response, _) in enumerate(requests)
    ]
    parsed = read(("\n".join(lines)).encode(), SOURCE)
    table = table_from_records(parsed.records, source=SOURCE, lines=parsed.lines)
    good = [(i, row, response) for i, (row, response, kind) in enumerate(requests) if not kind]
    assert list(table.event_ids) == [f"e{i}" for i, _, _ in good]
    matrix = np.array([[float(v) for v in row.split(",")] for _, row, _ in good]).reshape(-1, 9)
    for j, name in enumerate(FEATURE_NAMES):
        assert table.features[name].tolist() == matrix[:, j].tolist()
    assert table.scores.tolist() == [
        json.loads(response)["predictions"][0]["score"] for _, _, response in good
    ]
    expected = Counter(kind for _, _, kind in requests if kind)
    assert table.malformed_by_kind == dict(expected)
    assert all(e.startswith(f"{SOURCE}:") for e in table.errors)
