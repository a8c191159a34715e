"""AWS's own published data-capture and ground-truth records, parsed with mlops.core.capture.

Every constant below is copied verbatim from an AWS-owned source (named in the comment
above it). Changes, where there are any, are described in that comment: joining the docs'
display line-wrapping, or removing a ``#`` annotation that makes the block invalid JSON.
Published examples left out:
  - SageMaker-ModelMonitoring_outputs.ipynb prints a 4th record cut off at 2000 characters
    (``"eventId":"7dd7b9``), so it is not valid JSON.
  - No AWS-published capture record with ``"encoding": "BASE64"`` or with
    ``eventMetadata.inferenceId`` was found in the docs, aws/amazon-sagemaker-examples or
    aws/sagemaker-python-sdk. The notebooks that invoke with ``InferenceId=`` ship with
    their outputs cleared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from mlops.core.capture import CaptureRecord, parse_line, parse_lines

# --- Capture records ----------------------------------------------------------------------

# SageMaker Developer Guide, "Capture data from real-time endpoint" (model-monitor-data-capture-endpoint):
#   https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html
#   awsdocs/amazon-sagemaker-developer-guide doc_source/model-monitor-data-capture-endpoint.md
#   @ bc8778108d6e9150751a9292f107d93f628bef5b
# "The following is a response sample taken from a real-time endpoint that we invoked using
# csv/text data". Verbatim, including the page's line-wrapping inside each record. Each
# record is still valid JSON on its own, but one JSON Lines record spans 4 text lines.
DOCS_ENDPOINT_JSONL_AS_PRINTED = r"""{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT",
"data":"69,0,153.7,109,194.0,105,256.1,114,14.1,6,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,1,0\n",
"encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.0254181120544672","encoding":"CSV"}},
"eventMetadata":{"eventId":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","inferenceTime":"2022-02-14T17:25:49Z"},"eventVersion":"0"}
{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT",
"data":"94,23,197.1,125,214.5,136,282.2,103,9.5,5,4,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,1,0,1,0,1\n",
"encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.07675473392009735","encoding":"CSV"}},
"eventMetadata":{"eventId":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","inferenceTime":"2022-02-14T17:25:49Z"},"eventVersion":"0"}
"""

# Same page and commit: the record printed with json.dumps(..., indent=2). The page annotates
# one field with `# data MIME type`, which is not JSON; that annotation is removed here and
# nothing else is changed.
DOCS_ENDPOINT_PRETTY = r"""{
  "captureData": {
    "endpointInput": {
      "observedContentType": "text/csv",
      "mode": "INPUT",
      "data": "50,0,188.9,94,203.9,104,151.8,124,11.6,8,3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,1,1,0,1,0\n",
      "encoding": "CSV"
    },
    "endpointOutput": {
      "observedContentType": "text/csv; charset=character-encoding",
      "mode": "OUTPUT",
      "data": "0.023190177977085114",
      "encoding": "CSV"
    }
  },
  "eventMetadata": {
    "eventId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "inferenceTime": "2022-02-14T17:25:06Z"
  },
  "eventVersion": "0"
}"""

# SageMaker Developer Guide, "Preprocessing and Postprocessing" (model-monitor-pre-and-post-processing),
# the inference_record structure shown in the preprocessing-script docstring:
#   https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-pre-and-post-processing.html
#   awsdocs/amazon-sagemaker-developer-guide doc_source/model-monitor-pre-and-post-processing.md
#   @ 29cffb0106a1f65827a05f6fe9a9e307a57618d7
DOCS_PREPROCESSING_PRETTY = r"""{
  "captureData": {
    "endpointInput": {
      "observedContentType": "text/csv",
      "mode": "INPUT",
      "data": "132,25,113.2,96,269.9,107,,0,0,0,0,0,0,1,0,1,0,0,1",
      "encoding": "CSV"
    },
    "endpointOutput": {
      "observedContentType": "text/csv; charset=utf-8",
      "mode": "OUTPUT",
      "data": "0.01076381653547287",
      "encoding": "CSV"
    }
  },
  "eventMetadata": {
    "eventId": "feca1ab1-8025-47e3-8f6a-99e3fdd7b8d9",
    "inferenceTime": "2019-11-20T23:33:12Z"
  },
  "eventVersion": "0"
}"""

# aws/amazon-sagemaker-examples sagemaker_model_monitor/introduction/SageMaker-ModelMonitoring_outputs.ipynb
#   @ 68fa23f95f750a1b0f92b260489daa404ff5e007, "View captured data", output of
#   print(capture_file[:2000]) for the capture file
#   .../AllTraffic/2022/04/18/00/21-48-903-028573f5-3215-431a-b3b8-a200be4d2d9a.jsonl
# The first three lines (the fourth is cut off by the [:2000] slice and is left out).
EXAMPLES_NOTEBOOK_CSV_JSONL = r"""{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"132,10,182.9,54,292.4,68,142.3,116,11.5,4,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,0,1","encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.036397725343704224","encoding":"CSV"}},"eventMetadata":{"eventId":"f04a8538-696c-4648-8064-8b680b2e3318","inferenceTime":"2022-04-18T00:21:48Z"},"eventVersion":"0"}
{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"130,0,263.7,113,186.5,103,195.3,99,18.3,6,1,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,1,0","encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.3791300654411316","encoding":"CSV"}},"eventMetadata":{"eventId":"4f301857-49c9-44d1-b275-ba0ab7767033","inferenceTime":"2022-04-18T00:21:49Z"},"eventVersion":"0"}
{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"85,0,210.3,66,195.8,76,221.6,82,11.2,7,1,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,1,0","encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.017852725461125374","encoding":"CSV"}},"eventMetadata":{"eventId":"9827355a-ac22-40f4-9748-539e03db6c2a","inferenceTime":"2022-04-18T00:21:50Z"},"eventVersion":"0"}
"""

# aws/sagemaker-python-sdk legacy/tests/data/monitor/captured-data.jsonl
#   @ 6a4e16583938ad8ac8707e4558463d069702569b (the SDK's own Model Monitor test fixture)
SDK_FIXTURE_JSON_JSONL = r"""{"captureData":{"endpointInput":{"observedContentType":"application/json","mode":"INPUT","data":"{\"instances\": [1.0, 2.0, 5.0]}","encoding":"JSON"},"endpointOutput":{"observedContentType":"application/json","mode":"OUTPUT","data":"{\n    \"predictions\": [3.5, 4.0, 5.5\n    ]\n}","encoding":"JSON"}},"eventMetadata":{"eventId":"12b73486-e916-45de-9d82-7fa23d4a39a6","inferenceTime":"2019-11-24T07:30:50Z"},"eventVersion":"0"}
{"captureData":{"endpointInput":{"observedContentType":"application/json","mode":"INPUT","data":"{\"instances\": [1.0, 2.0, 5.0]}","encoding":"JSON"},"endpointOutput":{"observedContentType":"application/json","mode":"OUTPUT","data":"{\n    \"predictions\": [3.5, 4.0, 5.5\n    ]\n}","encoding":"JSON"}},"eventMetadata":{"eventId":"f9305ead-ba10-401d-953c-8bfb981da274","inferenceTime":"2019-11-24T07:31:30Z"},"eventVersion":"0"}
"""

# aws/amazon-sagemaker-examples
#   sagemaker_model_monitor/fairness_and_explainability_jsonlines/SageMaker-Monitoring-Bias-Drift-for-Endpoint.ipynb
#   @ 7b7418b8478c40c091f91d0335376bfbab1972dd, "View captured data", output of print(captured_data)
#   (endpoint deployed with json_content_types=["application/jsonlines"]).
EXAMPLES_NOTEBOOK_JSONLINES_JSONL = r"""{"captureData":{"endpointInput":{"observedContentType":"application/jsonlines","mode":"INPUT","data":"{\"features\":[28,2,133937,9,13,2,0,0,4,1,15024,0,55,37]}","encoding":"JSON"},"endpointOutput":{"observedContentType":"application/jsonlines","mode":"OUTPUT","data":"{\"predicted_label\":1,\"score\":0.989977359771728}\n","encoding":"JSON"}},"eventMetadata":{"eventId":"50ef5ec7-4d6b-4606-b13d-803c7416f853","inferenceTime":"2023-01-19T05:28:32Z"},"eventVersion":"0"}
{"captureData":{"endpointInput":{"observedContentType":"application/jsonlines","mode":"INPUT","data":"{\"features\":[28,2,133937,9,13,2,0,0,4,1,15024,0,55,37]}\n{\"features\":[43,2,72338,12,14,2,12,0,1,1,0,0,40,37]}","encoding":"JSON"},"endpointOutput":{"observedContentType":"application/jsonlines","mode":"OUTPUT","data":"{\"predicted_label\":1,\"score\":0.989977359771728}\n{\"predicted_label\":1,\"score\":0.504138827323913}\n","encoding":"JSON"}},"eventMetadata":{"eventId":"74e40c99-2d94-4a6d-a21e-f0222769012e","inferenceTime":"2023-01-19T05:28:32Z"},"eventVersion":"0"}

"""


@dataclass(frozen=True)
class Expected:
    input_type: str
    input_data: str
    input_encoding: str
    output_type: str
    output_data: str
    output_encoding: str
    event_id: str
    inference_time: datetime
    inference_id: str | None = None


def _t(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


_CHURN_1 = "69,0,153.7,109,194.0,105,256.1,114,14.1,6,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,1,0\n"
_CHURN_2 = "94,23,197.1,125,214.5,136,282.2,103,9.5,5,4,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,1,0,1,0,1\n"
_CHURN_3 = "50,0,188.9,94,203.9,104,151.8,124,11.6,8,3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,1,1,0,1,0\n"

DOCS_ENDPOINT_EXPECTED = [
    Expected(
        "text/csv",
        _CHURN_1,
        "CSV",
        "text/csv; charset=utf-8",
        "0.0254181120544672",
        "CSV",
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        _t("2022-02-14T17:25:49Z"),
    ),
    Expected(
        "text/csv",
        _CHURN_2,
        "CSV",
        "text/csv; charset=utf-8",
        "0.07675473392009735",
        "CSV",
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        _t("2022-02-14T17:25:49Z"),
    ),
]

EXAMPLES_NOTEBOOK_CSV_EXPECTED = [
    Expected(
        "text/csv",
        "132,10,182.9,54,292.4,68,142.3,116,11.5,4,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,0,1",
        "CSV",
        "text/csv; charset=utf-8",
        "0.036397725343704224",
        "CSV",
        "f04a8538-696c-4648-8064-8b680b2e3318",
        _t("2022-04-18T00:21:48Z"),
    ),
    Expected(
        "text/csv",
        "130,0,263.7,113,186.5,103,195.3,99,18.3,6,1,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,1,0",
        "CSV",
        "text/csv; charset=utf-8",
        "0.3791300654411316",
        "CSV",
        "4f301857-49c9-44d1-b275-ba0ab7767033",
        _t("2022-04-18T00:21:49Z"),
    ),
    Expected(
        "text/csv",
        "85,0,210.3,66,195.8,76,221.6,82,11.2,7,1,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,1,0",
        "CSV",
        "text/csv; charset=utf-8",
        "0.017852725461125374",
        "CSV",
        "9827355a-ac22-40f4-9748-539e03db6c2a",
        _t("2022-04-18T00:21:50Z"),
    ),
]

_SDK_OUTPUT = '{\n    "predictions": [3.5, 4.0, 5.5\n    ]\n}'
SDK_FIXTURE_EXPECTED = [
    Expected(
        "application/json",
        '{"instances": [1.0, 2.0, 5.0]}',
        "JSON",
        "application/json",
        _SDK_OUTPUT,
        "JSON",
        "12b73486-e916-45de-9d82-7fa23d4a39a6",
        _t("2019-11-24T07:30:50Z"),
    ),
    Expected(
        "application/json",
        '{"instances": [1.0, 2.0, 5.0]}',
        "JSON",
        "application/json",
        _SDK_OUTPUT,
        "JSON",
        "f9305ead-ba10-401d-953c-8bfb981da274",
        _t("2019-11-24T07:31:30Z"),
    ),
]

_ADULT_1 = '{"features":[28,2,133937,9,13,2,0,0,4,1,15024,0,55,37]}'
_ADULT_2 = '{"features":[43,2,72338,12,14,2,12,0,1,1,0,0,40,37]}'
_SCORE_1 = '{"predicted_label":1,"score":0.989977359771728}\n'
_SCORE_2 = '{"predicted_label":1,"score":0.504138827323913}\n'
EXAMPLES_NOTEBOOK_JSONLINES_EXPECTED = [
    Expected(
        "application/jsonlines",
        _ADULT_1,
        "JSON",
        "application/jsonlines",
        _SCORE_1,
        "JSON",
        "50ef5ec7-4d6b-4606-b13d-803c7416f853",
        _t("2023-01-19T05:28:32Z"),
    ),
    Expected(
        "application/jsonlines",
        _ADULT_1 + "\n" + _ADULT_2,
        "JSON",
        "application/jsonlines",
        _SCORE_1 + _SCORE_2,
        "JSON",
        "74e40c99-2d94-4a6d-a21e-f0222769012e",
        _t("2023-01-19T05:28:32Z"),
    ),
]

SINGLE_RECORDS = {
    "docs-endpoint-pretty": (
        DOCS_ENDPOINT_PRETTY,
        Expected(
            "text/csv",
            _CHURN_3,
            "CSV",
            "text/csv; charset=character-encoding",
            "0.023190177977085114",
            "CSV",
            "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            _t("2022-02-14T17:25:06Z"),
        ),
    ),
    "docs-preprocessing-pretty": (
        DOCS_PREPROCESSING_PRETTY,
        Expected(
            "text/csv",
            "132,25,113.2,96,269.9,107,,0,0,0,0,0,0,1,0,1,0,0,1",
            "CSV",
            "text/csv; charset=utf-8",
            "0.01076381653547287",
            "CSV",
            "feca1ab1-8025-47e3-8f6a-99e3fdd7b8d9",
            _t("2019-11-20T23:33:12Z"),
        ),
    ),
}


def _docs_records_unwrapped() -> list[str]:
    """The docs' JSON Lines with the page's display wrapping undone: one record a line."""
    records: list[str] = []
    current = ""
    for line in DOCS_ENDPOINT_JSONL_AS_PRINTED.splitlines():
        current += line
        if line.endswith('"eventVersion":"0"}'):
            records.append(current)
            current = ""
    assert current == ""
    return records


JSONL_FILES = {
    "docs-endpoint": ("\n".join(_docs_records_unwrapped()) + "\n", DOCS_ENDPOINT_EXPECTED),
    "examples-notebook-csv": (EXAMPLES_NOTEBOOK_CSV_JSONL, EXAMPLES_NOTEBOOK_CSV_EXPECTED),
    "sdk-fixture-json": (SDK_FIXTURE_JSON_JSONL, SDK_FIXTURE_EXPECTED),
    "examples-notebook-jsonlines": (
        EXAMPLES_NOTEBOOK_JSONLINES_JSONL,
        EXAMPLES_NOTEBOOK_JSONLINES_EXPECTED,
    ),
}


def _assert_matches(record: CaptureRecord, expected: Expected) -> None:
    assert record.event_id == expected.event_id
    assert record.inference_time == expected.inference_time
    assert record.inference_time.tzinfo is UTC
    assert record.inference_id == expected.inference_id

    assert record.input.content_type == expected.input_type
    assert record.input.mode == "INPUT"
    assert record.input.encoding == expected.input_encoding
    assert record.input.data == expected.input_data
    assert record.input.raw == expected.input_data.encode()

    assert record.output is not None
    assert record.output.content_type == expected.output_type
    assert record.output.mode == "OUTPUT"
    assert record.output.encoding == expected.output_encoding
    assert record.output.data == expected.output_data
    assert record.output.raw == expected.output_data.encode()


@pytest.mark.parametrize("name", sorted(JSONL_FILES))
def test_published_jsonl_parses_record_by_record(name: str) -> None:
    text, expected = JSONL_FILES[name]
    result = parse_lines(text.splitlines(), source=name)
    assert result.malformed == 0, result.errors
    assert result.errors == []
    assert len(result.records) == len(expected)
    for record, want in zip(result.records, expected, strict=True):
        _assert_matches(record, want)


@pytest.mark.parametrize("name", sorted(JSONL_FILES))
def test_each_published_line_parses_alone(name: str) -> None:
    text, expected = JSONL_FILES[name]
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected, strict=True):
        _assert_matches(parse_line(line), want)


@pytest.mark.parametrize("name", sorted(SINGLE_RECORDS))
def test_published_pretty_printed_record_parses(name: str) -> None:
    text, expected = SINGLE_RECORDS[name]
    _assert_matches(parse_line(text), expected)


def test_docs_wrapped_records_each_parse_as_one_json_document() -> None:
    """The docs page wraps each record over 4 lines: each block is still one JSON value."""
    lines = DOCS_ENDPOINT_JSONL_AS_PRINTED.splitlines()
    assert len(lines) == 8
    blocks = ["\n".join(lines[0:4]), "\n".join(lines[4:8])]
    for block, want in zip(blocks, DOCS_ENDPOINT_EXPECTED, strict=True):
        _assert_matches(parse_line(block), want)


def test_docs_wrapped_text_read_as_jsonl_reports_every_fragment() -> None:
    """Read naively as JSON Lines, the page's wrapped text is fragments: counted, never fatal."""
    result = parse_lines(DOCS_ENDPOINT_JSONL_AS_PRINTED.splitlines(), source="docs")
    assert result.records == []
    assert result.malformed == 8
    assert all(error.startswith("docs:") and "not JSON" in error for error in result.errors)


def test_csv_payload_keeps_the_trailing_newline_the_docs_show() -> None:
    """The docs' CSV input ends in an escaped newline; the decoded text keeps it."""
    record = parse_line(_docs_records_unwrapped()[0])
    assert record.input.data.endswith("\n")
    assert record.input.data.rstrip("\n").split(",")[:3] == ["69", "0", "153.7"]
    assert len(record.input.data.rstrip("\n").split(",")) == 69


def test_jsonlines_payload_decodes_to_one_json_document_per_line() -> None:
    records = parse_lines(EXAMPLES_NOTEBOOK_JSONLINES_JSONL.splitlines()).records
    batch = records[1]
    assert batch.output is not None
    features = [json.loads(line)["features"] for line in batch.input.data.splitlines()]
    scores = [json.loads(line)["score"] for line in batch.output.data.splitlines()]
    assert [row[0] for row in features] == [28, 43]
    assert scores == [0.989977359771728, 0.504138827323913]


# --- Ground-truth records -----------------------------------------------------------------

GROUND_TRUTH_EXAMPLES: dict[str, str] = {
    # SageMaker Developer Guide, "Ingest Ground Truth labels and merge them with predictions":
    #   https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-merge.html
    #   (text as in https://docs.amazonaws.cn/en_us/sagemaker/latest/dg/model-monitor-model-quality-merge.md).
    # An older revision (awsdocs/amazon-sagemaker-developer-guide
    # doc_source/model-monitor-model-quality-merge.md @ 939013b2b98741969278768b064db81e45e5dee0)
    # has the same record with a `# only CSV supported at launch, ...` annotation after
    # "encoding": "CSV", which is not JSON; the current page has no annotation.
    "docs-model-quality-merge": """{
  "groundTruthData": {
    "data": "1",
    "encoding": "CSV"
  },
  "eventMetadata": {
    "eventId": "aaaa-bbbb-cccc"
  },
  "eventVersion": "0"
}""",
    # aws/amazon-sagemaker-examples
    #   sagemaker_model_monitor/test_gt/01d3c1a8-aa99-4149-9d5e-78bea047a788.jsonl
    #   @ b89fd1153f20283b90ed5c4a7e0be084f77c3e26
    "examples-test-gt": '{"groundTruthData": {"data": "0", "encoding": "CSV"}, "eventMetadata": {"eventId": "01d3c1a8-aa99-4149-9d5e-78bea047a788"}, "eventVersion": "0"}',
}

GROUND_TRUTH_EXPECTED: dict[str, tuple[str, str, str]] = {
    "docs-model-quality-merge": ("1", "CSV", "aaaa-bbbb-cccc"),
    "examples-test-gt": ("0", "CSV", "01d3c1a8-aa99-4149-9d5e-78bea047a788"),
}


@pytest.mark.parametrize("name", sorted(GROUND_TRUTH_EXAMPLES))
def test_published_ground_truth_record_has_the_documented_keys(name: str) -> None:
    document = json.loads(GROUND_TRUTH_EXAMPLES[name])
    data, encoding, event_id = GROUND_TRUTH_EXPECTED[name]
    assert document["groundTruthData"]["data"] == data
    assert document["groundTruthData"]["encoding"] == encoding
    assert document["eventMetadata"]["eventId"] == event_id
    assert document["eventVersion"] == "0"
