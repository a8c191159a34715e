"""Capture records: written in SageMaker's layout and parsed back, in all three encodings."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from mlops.core import capture

WHEN = datetime(2026, 11, 26, 14, 5, 9, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("content_type", "body", "encoding"),
    [
        ("text/csv", b"1,2,3", "CSV"),
        ("application/json", b'{"instances": [[1, 2, 3]]}', "JSON"),
        ("application/x-npy", b"\x93NUMPY binary", "BASE64"),
    ],
)
def test_round_trip_in_each_encoding(content_type: str, body: bytes, encoding: str) -> None:
    line = capture.encode_record(
        request=body,
        request_type=content_type,
        response=b'{"predictions": []}',
        response_type="application/json",
        inference_time=WHEN,
        event_id="e-1",
        inference_id="i-1",
    )
    document = json.loads(line)
    assert document["eventVersion"] == "0"
    assert document["eventMetadata"] == {
        "eventId": "e-1",
        "inferenceTime": "2026-11-26T14:05:09Z",
        "inferenceId": "i-1",
    }
    assert document["captureData"]["endpointInput"]["encoding"] == encoding
    assert document["captureData"]["endpointInput"]["mode"] == "INPUT"
    record = capture.parse_line(line)
    assert record.event_id == "e-1"
    assert record.inference_time == WHEN.replace(microsecond=0)
    assert record.input.encoding == encoding
    assert record.input.content_type == content_type
    if encoding == "BASE64":
        # Stored as base64 of the raw bytes; parsed back to the same bytes.
        assert document["captureData"]["endpointInput"]["data"] == base64.b64encode(body).decode()
        assert record.input.raw == body
    else:
        assert record.input.data == body.decode()
    assert record.output is not None
    assert record.output.data == '{"predictions": []}'


def test_base64_payload_is_decoded() -> None:
    raw = {
        "captureData": {
            "endpointInput": {"observedContentType": "text/plain", "mode": "INPUT",
                              "data": base64.b64encode(b"4.6,1,6.9").decode(), "encoding": "BASE64"},
            "endpointOutput": {"observedContentType": "text/plain", "mode": "OUTPUT",
                               "data": base64.b64encode(b"0.71").decode(), "encoding": "BASE64"},
        },
        "eventMetadata": {"eventId": "x", "inferenceTime": "2022-02-14T20:51:12Z"},
        "eventVersion": "0",
    }  # fmt: skip
    record = capture.parse_line(json.dumps(raw))
    assert record.input.data == "4.6,1,6.9"
    assert record.output is not None
    assert record.output.data == "0.71"


def test_object_key_scheme() -> None:
    key = capture.object_key("capture", "mlops-dev-visits", "challenger", WHEN, unique="u-1")
    assert key == "capture/mlops-dev-visits/challenger/2026/11/26/14/05-09-123-u-1.jsonl"


def test_malformed_lines_are_counted_and_described() -> None:
    good = capture.encode_record(
        request=b"1,2",
        request_type="text/csv",
        response=b"0.5",
        response_type="text/csv",
        inference_time=WHEN,
    )
    lines = [
        good,
        "not json",
        "[1, 2]",
        '{"captureData": {}, "eventMetadata": {}}',
        json.dumps({**json.loads(good), "eventMetadata": {"inferenceTime": "yesterday"}}),
        json.dumps({"captureData": {"endpointInput": {"data": "!!", "encoding": "BASE64"}},
                    "eventMetadata": {"inferenceTime": "2026-01-01T00:00:00Z"}}),
        "",
        good,
    ]  # fmt: skip
    result = capture.parse_lines(lines, source="f.jsonl")
    assert len(result.records) == 2
    assert result.malformed == 5
    assert result.errors[0].startswith("f.jsonl:2: not JSON")
    assert "f.jsonl:3: not a JSON object" in result.errors
    assert "f.jsonl:4: captureData.endpointInput missing" in result.errors
    assert result.errors[3].startswith(
        "f.jsonl:5: eventMetadata.inferenceTime 'yesterday' is not an RFC 3339 time"
    )
    assert result.errors[4].startswith("f.jsonl:6: endpointInput.data is not valid base64")
    assert result.malformed_by_kind == {
        "not JSON": 1,
        "not an object": 1,
        "missing endpointInput": 1,
        "bad time": 1,
        "bad base64": 1,
    }
