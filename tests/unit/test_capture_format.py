"""The capture reader follows the format's rules (mlops/core/capture.py's docstring), not a
guess: JSON Lines split on LF only, UTF-8 read strictly, RFC 3339 times, gzip files, files
that are not capture named, and malformed records counted by kind with examples of each kind,
all the way into a drift check's JSON result.

Through the readers' stable entry points (parse_line, load_capture, read_window, evaluate,
DriftMonitor._labels), so each test fails on the reader that split on str.splitlines, decoded
with replacement characters, took "...Z" times only and kept 20 errors of whatever came first.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlops.adapters.capture_store import read_window
from mlops.core.capture import (
    GroundTruth,
    encode_ground_truth,
    encode_record,
    parse_line,
    parse_lines,
)
from mlops.core.config import PlatformConfig
from mlops.core.functions import DriftSettings, DriftThresholds
from mlops.usecases.check_drift import DriftMonitor, LocalSink, RunFacts, evaluate
from mlops.usecases.drift_inputs import Reference, load_capture
from pipeline_steps.data import synthetic_dataset
from pipeline_steps.schema import FEATURE_NAMES

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
ROW = "4.6,1,6.9,0,0,13.7,1,0,0"
SCORE = b'{"predictions": [{"score": 0.6, "label": 1}]}'


def good(event_id: str = "e", *, when: datetime = NOW, row: str = ROW) -> str:
    return encode_record(
        request=row.encode(), request_type="text/csv", response=SCORE,
        response_type="application/json", inference_time=when, event_id=event_id,
    )  # fmt: skip


def document(event_id: str = "e", time: Any = "2026-11-26T14:00:00Z") -> dict[str, Any]:
    """A capture record as a dict, for lines built by hand."""
    record: dict[str, Any] = json.loads(good(event_id))
    record["eventMetadata"]["inferenceTime"] = time
    return record


def write(folder: Path, name: str, body: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


# -- lines ------------------------------------------------------------------------------------
def test_lines_end_at_lf_only(tmp_path: Path) -> None:
    """U+2028, U+2029 and NEL are legal unescaped inside JSON strings: never line ends. VT, FF
    and 0x1C-0x1E are not JSON at all: a line holding one is one malformed line, not two
    records."""
    inside = "a\u2028b\u2029c\x85d"
    record = document("sep-" + inside)
    record["captureData"]["endpointOutput"]["observedContentType"] = "application/json; x=\u2028"
    lines = [
        json.dumps(record, ensure_ascii=False),  # the separators unescaped
        good("vt") + "\x0b" + good("ff"),  # two records joined by a VT: one bad line
        good("fs") + "\x1c" + good("gs"),
        "\x0c",  # a form feed alone is not blank: JSON whitespace is space, tab, CR, LF
        good("last"),
    ]
    write(tmp_path, "f.jsonl", ("\n".join(lines) + "\n").encode())
    window = load_capture(str(tmp_path))
    table = window.table()
    assert table.records == 2
    assert list(table.event_ids) == ["sep-" + inside, "last"]
    assert window.malformed == 3
    assert window.malformed_by_kind == {"not JSON": 3}
    assert [e.split(": ", 1)[0] for e in window.errors] == [
        f"{tmp_path}/f.jsonl:{n}" for n in (2, 3, 4)
    ]


def test_crlf_and_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    body = b"\xef\xbb\xbf" + b"\r\n".join(good(f"e{i}").encode() for i in range(3)) + b"\r\n"
    write(tmp_path, "bom.jsonl", body)
    write(tmp_path, "blank.jsonl", b"\r\n \t\r\n" + good("x").encode() + b"\r\n\r\n")
    window = load_capture(str(tmp_path))
    assert (window.table().records, window.malformed) == (4, 0)
    assert sorted(window.table().event_ids) == ["e0", "e1", "e2", "x"]


def test_a_byte_order_mark_is_skipped_at_the_start_of_a_file_only(tmp_path: Path) -> None:
    body = good("a").encode() + b"\n\xef\xbb\xbf" + good("b").encode() + b"\n"
    write(tmp_path, "f.jsonl", body)
    window = load_capture(str(tmp_path))
    assert list(window.table().event_ids) == ["a"]
    assert window.malformed_by_kind == {"not JSON": 1}


def test_invalid_utf8_is_a_malformed_line_never_a_replaced_record(tmp_path: Path) -> None:
    lines = [
        good("before").encode(),
        good("bad\x00id").encode().replace(b"\\u0000", b"\xff"),  # 0xFF: never UTF-8
        good("overlong").encode().replace(b"overlong", b"\xc0\xaf"),
        good("surrogate").encode().replace(b"surrogate", b"\xed\xa0\x80"),
        b"\xfe",
        good("after").encode(),
    ]
    write(tmp_path, "f.jsonl", b"\n".join(lines))
    window = load_capture(str(tmp_path))
    assert list(window.table().event_ids) == ["before", "after"]
    assert window.malformed == 4
    assert window.malformed_by_kind == {"invalid UTF-8": 4}
    first = window.errors[0]
    assert first.startswith(f"{tmp_path}/f.jsonl:2: invalid UTF-8: ")
    assert "can't decode byte 0xff" in first


# -- inferenceTime: RFC 3339 ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "instant"),
    [
        # RFC 3339 section 5.8's examples.
        ("1985-04-12T23:20:50.52Z", datetime(1985, 4, 12, 23, 20, 50, 520000, tzinfo=UTC)),
        ("1996-12-19T16:39:57-08:00", datetime(1996, 12, 20, 0, 39, 57, tzinfo=UTC)),
        ("1990-12-31T23:59:60Z", datetime(1990, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("1990-12-31T15:59:60-08:00", datetime(1990, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("1937-01-01T12:00:27.87+00:20", datetime(1937, 1, 1, 11, 40, 27, 870000, tzinfo=UTC)),
        # Lower case t and z (RFC 3339 5.6, note); -00:00 is UTC.
        ("2026-11-26t14:00:00z", NOW),
        ("2026-11-26T14:00:00-00:00", NOW),
        ("2026-11-26T19:30:00+05:30", NOW),
        ("2026-11-26T08:30:00.000-05:30", NOW),
        # Any number of fraction digits: truncated to microseconds, never rounded up.
        ("2026-11-26T14:00:00.123456789Z", NOW.replace(microsecond=123456)),
        ("2026-11-26T14:00:00.9999999Z", NOW.replace(microsecond=999999)),
        ("2026-11-26T14:00:00.1Z", NOW.replace(microsecond=100000)),
        # The extreme offsets, across a day, a year and February 29.
        ("2026-11-27T13:59:00+23:59", NOW),
        ("2023-12-31T00:01:00-23:59", datetime(2024, 1, 1, 0, 0, tzinfo=UTC)),
        ("2024-02-29T23:00:00-01:00", datetime(2024, 3, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00.5z", datetime(1, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_are_read_as_utc_instants(text: str, instant: datetime) -> None:
    record = parse_line(json.dumps(document(time=text)))
    assert record.inference_time == instant
    assert record.inference_time.tzinfo is UTC
    assert record.inference_time.utcoffset() is not None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-11-26T14:00:00", "expected"),  # no offset: a local time, not an instant
        ("2026-11-26 14:00:00Z", "expected"),  # a space (RFC 3339's note allows, its ABNF not)
        ("2026-11-26", "expected"),
        ("2026-11-26T14:00Z", "expected"),
        ("20261126T140000Z", "expected"),  # ISO 8601 basic format
        ("2026-W48-4T14:00:00Z", "expected"),  # ISO 8601 week date
        ("2026-11-26T14:00:00+02", "expected"),
        ("2026-11-26T14:00:00+0200", "expected"),
        ("2026-11-26T14:00:00,5Z", "expected"),  # a decimal comma
        ("2026-11-26T14:00:00.Z", "expected"),  # a point without digits
        ("2026-11-26T14:00:00Z ", "expected"),
        ("\uff12026-11-26T14:00:00Z", "expected"),  # a fullwidth digit
        ("٢٠٢٦-11-26T14:00:00Z", "expected"),  # Arabic-Indic digits
        ("2026-11-26T24:00:00Z", "out of range"),
        ("2026-11-26T14:60:00Z", "out of range"),
        ("2026-11-26T14:00:61Z", "out of range"),
        ("2026-11-26T14:00:00+24:00", "offset out of range"),
        ("2026-11-26T14:00:00+05:60", "offset out of range"),
        ("2026-02-29T14:00:00Z", "day is out of range"),
        ("2026-13-01T14:00:00Z", "month must be"),
        ("0000-01-01T00:00:00Z", "year 0 is out of range"),
        ("0001-01-01T00:00:00+00:01", "out of range"),  # before year 1 in UTC
        ("9999-12-31T23:59:59-00:01", "out of range"),  # after year 9999 in UTC
        ("2026-11-26T14:00:60Z", "leap second"),  # second 60 only at 23:59:60 UTC
        ("2026-12-31T23:59:60+01:00", "leap second"),
    ],
)
def test_times_rfc3339_refuses_are_bad_times_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match="is not an RFC 3339 time") as caught:
        parse_line(json.dumps(document(time=text)))
    assert caught.value.kind == "bad time"  # type: ignore[attr-defined]
    assert why in str(caught.value)


@pytest.mark.parametrize("value", [None, 1764165600, ["2026-11-26T14:00:00Z"], "None"])
def test_an_inference_time_that_is_not_a_string_is_a_bad_time(value: Any) -> None:
    record = document(time=value)
    with pytest.raises(ValueError, match=r"eventMetadata\.inferenceTime") as caught:
        parse_line(json.dumps(record))
    assert caught.value.kind == "bad time"  # type: ignore[attr-defined]


# -- the other kinds --------------------------------------------------------------------------
def _with(path: str, value: Any) -> str:
    record = document()
    *parents, last = path.split(".")
    node = record
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return json.dumps(record)


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("{", "not JSON"),
        ('{"a": NaN}', "not JSON"),
        ('{"a": 1e999}', "not JSON"),
        ('{"a": "\\ud800"}', "not JSON"),  # a lone surrogate
        ("[]", "not an object"),
        ('"text"', "not an object"),
        (_with("captureData", KeyError), "missing captureData"),
        (_with("captureData", []), "missing captureData"),
        (_with("eventMetadata", KeyError), "missing eventMetadata"),
        (_with("eventMetadata", "x"), "missing eventMetadata"),
        (_with("captureData.endpointInput", KeyError), "missing endpointInput"),
        (_with("captureData.endpointInput", None), "bad section"),
        (_with("captureData.endpointOutput", [1]), "bad section"),
        (_with("captureData.endpointInput.data", KeyError), "missing data"),
        (_with("captureData.endpointOutput.data", 1), "missing data"),
        (_with("captureData.endpointInput.encoding", "csv"), "bad encoding"),
        (_with("captureData.endpointInput.encoding", KeyError), "bad encoding"),
        (_with("captureData.endpointInput.encoding", "BASE64"), "bad base64"),  # "4.6,1,..."
        (_with("captureData.endpointInput", {"data": "é", "encoding": "BASE64"}), "bad base64"),
        (_with("captureData.endpointInput", {"data": "YQ=", "encoding": "BASE64"}), "bad base64"),
        (
            _with("captureData.endpointInput", {"data": "YQ==\n", "encoding": "BASE64"}),
            "bad base64",
        ),
    ],
)
def test_each_malformed_line_has_its_kind(line: str, kind: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        parse_line(line)
    assert caught.value.kind == kind  # type: ignore[attr-defined]


# -- files: gzip, and files that are not capture ----------------------------------------------
def test_gzip_files_are_read_corrupt_ones_named_others_skipped(tmp_path: Path) -> None:
    plain = (good("plain") + "\n").encode()
    zipped = gzip.compress((good("gz-1") + "\n" + good("gz-2") + "\n").encode())
    members = gzip.compress(good("m-1").encode() + b"\n") + gzip.compress(good("m-2").encode())
    root = tmp_path / "capture"
    write(root, "a/plain.jsonl", plain)
    write(root, "a/zipped.jsonl.gz", zipped)
    write(root, "a/members.jsonl.gz", members)  # two gzip members, one after the other
    write(root, "a/magic.jsonl", gzip.compress(plain.replace(b"plain", b"magic")))  # by magic
    write(root, "b/truncated.jsonl.gz", zipped[:-9])
    write(root, "b/not-gzip.jsonl.gz", plain)
    write(root, "b/bad-crc.jsonl.gz", zipped[:-8] + bytes(4) + zipped[-4:])
    write(root, "b/notes.txt", b"a note")
    write(root, "b/reference.csv", b"x\n1\n")
    window = load_capture(str(root))
    assert sorted(window.table().event_ids) == ["gz-1", "gz-2", "m-1", "m-2", "magic", "plain"]
    assert window.files == 4
    assert window.malformed == 0
    assert [f.split(": ", 1)[0] for f in window.malformed_files] == [
        f"{root}/b/bad-crc.jsonl.gz",
        f"{root}/b/not-gzip.jsonl.gz",
        f"{root}/b/truncated.jsonl.gz",
    ]
    assert "CRC check failed" in window.malformed_files[0]
    assert "Not a gzipped file" in window.malformed_files[1]
    assert "end-of-stream marker" in window.malformed_files[2]
    assert window.skipped_files == [f"{root}/b/notes.txt", f"{root}/b/reference.csv"]


def test_a_folder_of_corrupt_captures_is_not_an_empty_one(tmp_path: Path) -> None:
    write(tmp_path, "only.jsonl.gz", b"\x1f\x8b\x08garbage")
    window = load_capture(str(tmp_path))
    assert (window.files, len(window.malformed_files)) == (0, 1)
    write(tmp_path / "none", "readme.md", b"#")
    with pytest.raises(FileNotFoundError, match=r"no capture files.*readme\.md"):
        load_capture(str(tmp_path / "none"))


class FakeS3:
    """Just what the readers call: listing pages and GetObject, over a dict of keys."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_paginator(self, _: str) -> FakeS3:
        return self

    def paginate(self, *, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
        keys = sorted(k for k in self.objects if k.startswith(Prefix))
        return [{"Contents": [{"Key": k} for k in keys]}]

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": _Body(self.objects[Key])}


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


def test_an_s3_window_reads_gzip_and_names_what_it_does_not_read() -> None:
    hour = "capture/ep/champion/2026/11/26/13/"
    inside = datetime(2026, 11, 26, 13, 30, tzinfo=UTC)
    s3 = FakeS3(
        {
            hour: b"",  # a console "folder": not a file
            hour + "00-00-000-a.jsonl": (good("plain", when=inside) + "\n").encode(),
            hour + "00-00-000-b.jsonl.gz": gzip.compress(good("gz", when=inside).encode()),
            hour + "00-00-000-c.jsonl.gz": b"\x1f\x8b truncated",
            hour + "_SUCCESS": b"",
            hour + "00-00-000-d.jsonl.tmp": b"partial",
        }
    )
    window = read_window(
        s3,  # type: ignore[arg-type]
        "s3://b/capture", "ep", "champion", inside.replace(minute=0), inside.replace(minute=59),
    )  # fmt: skip
    assert sorted(window.table().event_ids) == ["gz", "plain"]
    assert window.files == 2
    assert [f.split(": ", 1)[0] for f in window.malformed_files] == [hour + "00-00-000-c.jsonl.gz"]
    assert window.skipped_files == [hour + "00-00-000-d.jsonl.tmp", hour + "_SUCCESS"]


def test_ground_truth_files_follow_the_same_rules() -> None:
    hour = "ground-truth/ep/2026/11/26/13/"
    labels = [encode_ground_truth(f"e{i}", [1]).encode() for i in range(3)]
    s3 = FakeS3(
        {
            hour + "a.jsonl": b"\xef\xbb\xbf" + b"\r\n".join(labels[:2]) + b"\r\n",
            hour + "b.jsonl.gz": gzip.compress(labels[2] + b"\n\xff\n"),
            hour + "c.jsonl.gz": b"\x1f\x8b nothing",
        }
    )
    settings = DriftSettings.for_platform(
        PlatformConfig(), reports_bucket="reports", capture_bucket="capture", topic_arn=None
    ).model_copy(update={"endpoint_name": "ep", "ground_truth_uri": "s3://b/ground-truth"})
    monitor = DriftMonitor(sagemaker=None, s3=s3, settings=settings, html_report=False)  # type: ignore[arg-type]
    found = monitor._labels(
        datetime(2026, 11, 26, 13, 0, tzinfo=UTC), datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    )
    assert found.labels == {"e0": [1.0], "e1": [1.0], "e2": [1.0]}
    assert found.malformed == 2
    assert found.errors[0].startswith(hour + "b.jsonl.gz:2: invalid UTF-8")
    assert found.errors[1].startswith(hour + "c.jsonl.gz: not a readable gzip file")


# -- counting by kind, into the drift check's result ------------------------------------------
def test_counts_by_kind_and_examples_of_each_kind_reach_the_result(tmp_path: Path) -> None:
    """25 bad times first used to fill the 20 examples: the other kinds were never shown."""
    frame = synthetic_dataset(400, seed=1)
    capture = tmp_path / "capture"
    rows = [",".join(f"{v:g}" for v in row) for row in frame[list(FEATURE_NAMES)].to_numpy()]
    first = [json.dumps(document(f"t{i}", time="yesterday")) for i in range(25)]
    second = [good(f"r{i}", row=row) for i, row in enumerate(rows[:200])]
    second += ["not json", "[1]", good("nan", row=ROW.replace("4.6", "nan"))]
    second += [good("short", row="1,2,3"), good("inf", row=ROW.replace("13.7", "1e999"))]
    write(capture, "a.jsonl", ("\n".join(first) + "\n").encode())
    write(capture, "b.jsonl", ("\n".join(second) + "\n").encode())
    write(capture, "c.jsonl", ("\n".join(first[:5]) + "\n").encode())
    write(capture, "d.jsonl.gz", b"\x1f\x8bnot really")
    write(capture, "e.txt", b"stray")
    reference = Reference(
        "(given)", "ref.csv", {n: frame[n].to_numpy(dtype=float) for n in FEATURE_NAMES},
        None, None,
    )  # fmt: skip
    run = RunFacts(
        endpoint="ep", variant="v", weight=None, start=NOW, end=NOW, run_id="r",
        thresholds=DriftThresholds.from_config(PlatformConfig(min_rows_for_drift=100)),
    )  # fmt: skip
    outcome = evaluate(
        run, reference, load_capture(str(capture)), GroundTruth(),
        sink=LocalSink(tmp_path / "out"), render_html=None,
    )  # fmt: skip
    result = json.loads(Path(outcome.json_uri).read_text())
    assert result["malformed"] == 35
    assert result["malformed_by_kind"] == {
        "bad time": 30,
        "not JSON": 1,
        "not an object": 1,
        "non-finite value": 2,
        "bad input": 1,
    }
    where = [e.split(": ", 1)[0] for e in result["errors"]]
    assert where == [
        f"{capture}/a.jsonl:1",
        f"{capture}/a.jsonl:2",
        f"{capture}/a.jsonl:3",
        f"{capture}/b.jsonl:201",
        f"{capture}/b.jsonl:202",
        f"{capture}/b.jsonl:203",  # payloads: the record's file and line too
        f"{capture}/b.jsonl:205",
        f"{capture}/b.jsonl:204",
    ]
    assert "event nan:" in result["errors"][5]
    assert "not a finite number" in result["errors"][5]
    assert (result["rows"], result["records"]) == (200, 203)
    assert result["malformed_files"] == [
        f"{capture}/d.jsonl.gz: not a readable gzip file: " + _gzip_error(b"\x1f\x8bnot really")
    ]
    assert result["skipped_files"] == [f"{capture}/e.txt"]
    assert any("1 capture file(s) could not be read" in note for note in result["notes"])
    assert any("1 file(s) skipped" in note for note in result["notes"])


def _gzip_error(body: bytes) -> str:
    try:
        gzip.decompress(body)
    except (OSError, EOFError) as exc:
        return str(exc)
    raise AssertionError("expected a gzip error")


def test_the_first_three_examples_of_each_kind_are_kept() -> None:
    lines = ["x"] * 30 + [json.dumps(document(time="x"))] * 5 + ["[]"]
    result = parse_lines(lines, source="f")
    assert result.malformed == 36
    assert [e.split(": ", 1)[0] for e in result.errors] == [
        "f:1", "f:2", "f:3", "f:31", "f:32", "f:33", "f:36"
    ]  # fmt: skip


def test_examples_are_kept_per_kind_across_files(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        lines = [json.dumps(document(time="x"))] * 4 + ["{"]
        write(tmp_path, f"{name}.jsonl", ("\n".join(lines) + "\n").encode())
    window = load_capture(str(tmp_path))
    assert window.malformed == 15
    assert window.malformed_by_kind == {"bad time": 12, "not JSON": 3}
    assert [e.split(": ", 1)[0] for e in window.errors] == [
        f"{tmp_path}/a.jsonl:1",
        f"{tmp_path}/a.jsonl:2",
        f"{tmp_path}/a.jsonl:3",
        f"{tmp_path}/a.jsonl:5",
        f"{tmp_path}/b.jsonl:5",
        f"{tmp_path}/c.jsonl:5",
    ]
