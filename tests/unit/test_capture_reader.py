"""The column-wise capture reader gives the reference reader's result exactly.

The reference: capture.parse_file, the window filter, then variant_check.table_from_records
(what a window's check did line by line before). Compared on generated files mixing records
as SageMaker writes them, records written by hand, junk of every kind, and payloads of every
shape the fast path takes or must refuse: records, values (bit for bit, sign of zero
included), event ids, order, malformed counts by kind and their examples, unreadable files,
and the window's first and last times.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops.adapters.target import S3_CONNECTIONS, AwsTarget
from mlops.core import capture, capture_reader
from mlops.core.capture import encode_record
from mlops.core.capture_reader import FileRead, read_file, read_files
from mlops.core.variant_check import table_from_records
from pipeline_steps.schema import FEATURE_NAMES
from tests.unit.test_capture_properties import (
    KINDS,
    NUMBERS,
    SOURCE,
    by_hand,
    by_the_encoder,
    files,
    junk,
    number_text,
)

PROPERTY = settings(max_examples=60, deadline=None, database=None)
NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def reference(body: bytes, name: str, start: datetime | None, end: datetime | None) -> FileRead:
    parsed = capture.parse_file(body, source=name)
    if parsed.unreadable is not None:
        return FileRead(unreadable=parsed.unreadable)
    kept = [
        (r, n)
        for r, n in zip(parsed.records, parsed.lines, strict=True)
        if (start is None or r.inference_time >= start) and (end is None or r.inference_time < end)
    ]
    times = [r.inference_time for r, _ in kept]
    table = table_from_records([r for r, _ in kept], source=name, lines=[n for _, n in kept])
    return FileRead(
        table, parsed.problems, None, min(times, default=None), max(times, default=None)
    )


def bits(array: np.ndarray) -> list[int]:
    values: list[int] = np.ascontiguousarray(array, dtype=np.float64).view(np.int64).tolist()
    return values


def assert_same(fast: FileRead, expected: FileRead) -> None:
    assert fast.unreadable == expected.unreadable
    assert (fast.first, fast.last) == (expected.first, expected.last)
    assert (fast.problems.by_kind, fast.problems.examples) == (
        expected.problems.by_kind,
        expected.problems.examples,
    )
    if expected.table is None:
        assert fast.table is None
        return
    assert fast.table is not None
    got, want = fast.table, expected.table
    assert (got.rows, got.records) == (want.rows, want.records)
    assert list(got.event_ids) == list(want.event_ids)
    for name in FEATURE_NAMES:  # bit for bit: -0.0 is not 0.0
        assert bits(got.features[name]) == bits(want.features[name]), name
    assert bits(got.scores) == bits(want.scores)
    assert (got.problems.by_kind, got.problems.examples) == (
        want.problems.by_kind,
        want.problems.examples,
    )


# -- payloads of every shape ------------------------------------------------------------------
CSV_ODD = ["-0", "+1", ".5", "5.", "1E+05", "007", " 1", "2 ", "\t3", "1_0", "0x10", "\u0663"]
CSV_BAD = ["nan", "inf", "-Infinity", "1e999", "", "x"]
JSON_ODD = ["-0", "0", "-0.0", "-0e3", "1E400", "NaN", "Infinity", '"1.5"', "true", "null", "+1"]


def _row(draw: st.DrawFn, odd: list[str]) -> list[str]:
    """Nine plain numbers, often with one odd value among them (a whole row of odd values
    would almost never be a row the fast path takes)."""
    row = [number_text(v) for v in draw(st.lists(NUMBERS, min_size=9, max_size=9))]
    if draw(st.booleans()):
        row[draw(st.integers(0, 8))] = draw(st.sampled_from(odd))
    return row[: draw(st.sampled_from([9, 9, 9, 8]))] + (
        ["1"] if draw(st.integers(0, 9)) == 0 else []
    )


SCORES = st.one_of(
    st.floats(0, 1).map(repr),
    st.sampled_from(["0", "-0", "+0.5", ".5", "5.", "1e999", "NaN", '"0.5"', "1", "0.25 "]),
)
CSV_TYPES = st.sampled_from(["text/csv", "text/csv; charset=utf-8", "TEXT/CSV", "text/csvx"])
JSON_TYPES = st.sampled_from(
    ["application/json", "Application/JSON; x=y", " application/json ", "application/jsonl"]
)


@st.composite
def scored(draw: st.DrawFn) -> str:
    """One capture line: a request of any shape and a response, written by encode_record."""
    if draw(st.booleans()):
        row = ",".join(_row(draw, CSV_ODD + CSV_BAD))
        spacing = draw(st.sampled_from(["", "", "\n", "\r\n", " "]))
        request, request_type = (row + spacing).encode(), draw(CSV_TYPES)
        if draw(st.integers(0, 5)) == 0:
            request = (row + "\n" + row).encode()  # two rows: the handlers' parser
    else:
        values = draw(st.sampled_from([", ", ","])).join(_row(draw, JSON_ODD))
        body = draw(
            st.sampled_from(
                [
                    '{{"instances": [[{}]]}}',
                    '{{"instances":[[{}]]}}',
                    "[[{}]]",
                    '{{"instances": [[{}]] }}',
                ]
            )
        )
        request, request_type = body.format(values).encode(), draw(JSON_TYPES)
    score = draw(SCORES)
    response = draw(
        st.sampled_from(
            [
                '{{"predictions": [{{"score": {}, "label": 1}}]}}',
                '{{"predictions":[{{"score":{},"label":0}}]}}',
                '{{"predictions": [{{"score": {}, "label": 1}}]}}\u00a0',
                '{{"predictions": [{{"label": 1, "score": {}}}]}}',
                "{}\n",
            ]
        )
    ).format(score)
    response_type = draw(st.sampled_from(["application/json", "text/csv", "application/jsonx"]))
    return encode_record(
        request=request,
        request_type=request_type,
        response=response.encode(),
        response_type=response_type,
        inference_time=NOW + timedelta(seconds=draw(st.integers(-5, 5))),
        event_id=draw(st.sampled_from(["e1", "e2", "é", "a\\b", 'q"'])),
        inference_id=draw(st.none() | st.just("i-1")),
        csv_types=draw(st.sampled_from([("text/csv",), ()])),
        json_types=draw(st.sampled_from([("application/json",), ()])),
    )


@st.composite
def lines(draw: st.DrawFn) -> list[bytes]:
    good = st.one_of(
        scored().map(str.encode),
        by_the_encoder().map(lambda w: w.line.encode()),
        by_hand().map(lambda w: w.line.encode()),
    )
    bad = st.sampled_from(KINDS).flatmap(junk)
    return draw(st.lists(st.one_of(good, good, bad), max_size=14))


WINDOWS = st.sampled_from(
    [
        (None, None),
        (NOW, None),
        (None, NOW),
        (NOW - timedelta(seconds=2), NOW + timedelta(seconds=3)),
    ]
)


@PROPERTY
@given(data=st.data(), written=lines(), window=WINDOWS)
def test_the_reference_result_on_generated_files(
    data: st.DataObject, written: list[bytes], window: tuple[datetime | None, datetime | None]
) -> None:
    body, name, _ = data.draw(files(written))
    start, end = window
    assert_same(
        read_file(body, source=name, start=start, end=end), reference(body, name, start, end)
    )


ODD_FILES = st.sampled_from(
    [(b"\x1f\x8bnot gzip", "odd.gz"), (b"x\n\xff\n", "odd.jsonl"), (b"", "odd.jsonl")]
)


@PROPERTY
@given(
    data=st.data(),
    written=st.lists(lines(), min_size=1, max_size=4),
    odd=st.lists(ODD_FILES, max_size=1),
    window=WINDOWS,
    batch_bytes=st.sampled_from([capture_reader.BATCH_BYTES, 1]),
)
def test_files_read_together_read_as_each_alone(
    data: st.DataObject,
    written: list[list[bytes]],
    odd: list[tuple[bytes, str]],
    window: tuple[datetime | None, datetime | None],
    batch_bytes: int,
) -> None:
    """A batch (several files in one frame, line numbers and positions per file) gives each
    file the reference result; so does a batch cut in parts (BATCH_BYTES)."""
    drawn = [data.draw(files(w))[:2] for w in written] + odd
    named = [(body, f"f{i}/{name}") for i, (body, name) in enumerate(drawn)]
    start, end = window
    saved, capture_reader.BATCH_BYTES = capture_reader.BATCH_BYTES, batch_bytes
    try:
        got = list(
            read_files(
                ((name, functools.partial(bytes, body)) for body, name in named),
                start=start,
                end=end,
                workers=1,
            )
        )
    finally:
        capture_reader.BATCH_BYTES = saved
    assert [name for name, _ in got] == [name for _, name in named]
    for (body, name), (_, read) in zip(named, got, strict=True):
        assert_same(read, reference(body, name, start, end))


# -- lines the fast path must not vouch for ----------------------------------------------------
def _line() -> str:
    return encode_record(
        request=b"1,2,3,4,5,6,7,8,9",
        request_type="text/csv",
        response=b'{"predictions": [{"score": 0.5, "label": 1}]}',
        response_type="application/json",
        inference_time=NOW,
        event_id="e",
    )


CANONICAL = _line()
NEAR_MISSES = [
    CANONICAL.replace('"eventId":"e"', '"eventId":"e","eventId":"f"'),  # duplicate key: last wins
    CANONICAL.replace('"captureData":{', '"captureData":{"endpointInput":7,', 1),
    CANONICAL.replace('"eventId":"e"', '"eventId":"\\u0065"'),  # escapes the template refuses
    CANONICAL.replace('"eventId":"e"', '"eventId":"\\ud800"'),  # a lone surrogate
    CANONICAL.replace("1,2,3", "1,2,\\u0033"),
    CANONICAL.replace("1,2,3", "1,2,3\\/"),
    CANONICAL.replace("0.5", "NaN"),
    CANONICAL.replace("0.5", "1e999"),
    CANONICAL.replace('"eventVersion":"0"}', '"eventVersion":"0"} '),
    CANONICAL.replace('"eventVersion":"0"}', '"eventVersion":"0"}x'),
    CANONICAL.replace('"eventVersion":"0"}', '"eventVersion":"0"}{}'),
    CANONICAL.replace('"eventVersion":"0"', '"eventVersion":1e999'),
    CANONICAL.replace("2026-11-26T14:00:00Z", "2026-11-26T14:00:60Z"),
    CANONICAL.replace("2026-11-26T14:00:00Z", "2026-11-26 14:00:00Z"),
    CANONICAL.replace("T14:00:00Z", "T14:00:00.123456789+01:00"),
    CANONICAL.replace('"encoding":"CSV"', '"encoding":"BASE64"'),
    CANONICAL.replace("1,2,3", "1,2,\u0663"),  # Arabic-Indic 3: \d takes it, [0-9] does not
    CANONICAL.replace("1,2,3", "1, 2,3"),
    CANONICAL.replace("text/csv", "text/csvx"),
    CANONICAL.replace("application/json", "text/csv"),
    CANONICAL.replace('"score\\": 0.5', '"score\\": +0.5'),
    CANONICAL.replace('"score\\": 0.5', '"score\\":\u00a00.5'),
    CANONICAL.replace("\\n", ""),
    CANONICAL + "\r",
    "\ufeff" + CANONICAL,
    CANONICAL.replace("{", "[", 1),
    # A field holding another key of the template, a quote, a control character or a byte
    # outside its class; a key twice; an encoding not SageMaker's; a line not closed.
    CANONICAL.replace('"eventId":"e"', '"eventId":"e","inferenceTime":"x"'),  # duplicate key
    CANONICAL.replace('"eventId":"e"', '"eventId":"e\\",\\"inferenceTime\\":\\"x"'),
    CANONICAL.replace('9","encoding":"CSV"', '9","encoding":"JSON","encoding":"CSV"'),
    CANONICAL.replace('0.5, \\"label\\": 1}]}"', '0.5, \\"label\\": 1}]}\\""'),
    CANONICAL.replace('"encoding":"JSON"}}', '"encoding":"JSONX"}}'),
    CANONICAL.replace('"encoding":"JSON"}}', '"encoding":"CSV","encoding":"JSON"}}'),
    CANONICAL.replace("text/csv", 'text/"csv'),
    CANONICAL.replace("text/csv", 'text/\\"csv'),
    CANONICAL.replace("application/json", "application/json\\\\"),
    CANONICAL.replace('"eventId":"e"', '"eventId":"e\t"'),  # a raw tab: not JSON
    CANONICAL.replace('"eventId":"e"', '"eventId":"e\x7f"'),
    CANONICAL.replace('"eventId":"e"', '"eventId":"\u00e9"'),
    CANONICAL.replace(
        '"inferenceTime":"2026-11-26T14:00:00Z"', '"inferenceTime":"2026-11-26\tT14:00:00Z"'
    ),
    CANONICAL.replace('"mode":"INPUT",', '"mode":"INPUT", '),
    CANONICAL.replace('"eventVersion":"0"}', '"eventVersion":"0"},"eventVersion":"0"}'),
    CANONICAL[:-1] + "]",
    CANONICAL.replace('"encoding":"CSV"', '"encoding":"CSVX"'),
    CANONICAL.replace('"encoding":"CSV"', '"encoding":"csv"'),
    CANONICAL.replace("8,9", "8,9\t"),  # raw tabs: not JSON, but the payloads' regexes take them
    CANONICAL.replace('0.5, \\"label', '0.5,\t\\"label'),
]


@pytest.mark.parametrize("line", NEAR_MISSES)
def test_near_misses_of_the_template_read_as_the_reference_reads_them(line: str) -> None:
    body = (CANONICAL + "\n" + line + "\n" + CANONICAL + "\n").encode()
    assert_same(read_file(body, source=SOURCE), reference(body, SOURCE, None, None))


def test_lines_of_different_templates_keep_their_order() -> None:
    """Rows and examples in line order when lines match different templates (inferenceId)."""
    lines = [
        encode_record(
            request=request, request_type="text/csv",
            response=b'{"predictions": [{"score": 0.5, "label": 1}]}',
            response_type="application/json", inference_time=NOW, event_id=f"e{i}",
            inference_id="i" if i % 2 == 0 else None,
        )
        for i, request in enumerate([b"1,2,3", b"1,2", b"1,2,3,4,5,6,7,8,9", b"9,8,7,6,5,4,3,2,1"])
    ]  # fmt: skip
    body = ("\n".join(lines) + "\n").encode()
    fast = read_file(body, source=SOURCE)
    assert_same(fast, reference(body, SOURCE, None, None))
    assert fast.table is not None
    assert fast.table.event_ids.tolist() == ["e2", "e3"]


def test_first_and_last_are_of_records_only() -> None:
    """A line with a valid time that is no record (bad base64) is not the window's first."""
    early = CANONICAL.replace("14:00:00Z", "13:59:00Z").replace(
        '"data":"1,2,3,4,5,6,7,8,9","encoding":"CSV"', '"data":"!!","encoding":"BASE64"'
    )
    assert early != CANONICAL
    body = (early + "\n" + CANONICAL + "\n").encode()
    fast = read_file(body, source=SOURCE)
    assert_same(fast, reference(body, SOURCE, None, None))
    assert fast.first == NOW
    assert fast.problems.by_kind == {"bad base64": 1}


def test_invalid_utf8_and_unreadable_files() -> None:
    for body, name in [
        (CANONICAL.encode() + b"\n\xff\n" + CANONICAL.encode(), SOURCE),
        (b"\x1f\x8bnot gzip", SOURCE),
        (b"", SOURCE),
        (b"\n\n", SOURCE),
    ]:
        assert_same(read_file(body, source=name), reference(body, name, None, None))


def test_lines_as_sagemaker_writes_them_take_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without this, every test above could pass on the reference parser alone."""
    calls: list[str] = []
    monkeypatch.setattr(capture_reader, "parse_line", calls.append)
    written = [
        encode_record(
            request=request,
            request_type=kind,
            response=b'{"predictions": [{"score": 0.25, "label": 0}]}',
            response_type="application/json",
            inference_time=NOW,
            event_id=f"e{i}",
            inference_id="i" if i % 2 else None,
            csv_types=csv_types,
        )
        for i, (request, kind, csv_types) in enumerate(
            [
                (b"0,1,2.5,3,4,5,6,7,-8e-3", "text/csv", ("text/csv",)),
                (b"0,1,2.5,3,4,5,6,7,8", "text/csv", ()),  # BASE64
                (b'{"instances": [[0, 1, 2.5, 3, 4, 5, 6, 7, 8]]}', "application/json", ()),
            ]
        )
    ]
    result = read_file(("\n".join(written) + "\n").encode(), source=SOURCE)
    assert calls == []
    assert result.table is not None
    assert result.table.rows == 3
    assert result.table.features["hlthp"].tolist() == [-8e-3, 8.0, 8.0]


def test_files_read_in_threads_come_back_in_order() -> None:
    bodies = {f"f{i}.jsonl": (_line().replace('"e"', f'"e{i}"') + "\n").encode() for i in range(40)}
    got = list(
        read_files(((n, functools.partial(bodies.__getitem__, n)) for n in bodies), workers=3)
    )
    assert [name for name, _ in got] == list(bodies)
    assert [r.table.event_ids.tolist() for _, r in got if r.table is not None] == [
        [f"e{i}"] for i in range(40)
    ]


def test_a_window_keeps_what_the_reference_keeps() -> None:
    body = "\n".join(
        json.dumps(json.loads(_line()) | {}, separators=(",", ":")).replace(
            "2026-11-26T14:00:00Z", f"2026-11-26T14:00:0{s}Z"
        )
        for s in range(6)
    ).encode()
    start, end = NOW + timedelta(seconds=1), NOW + timedelta(seconds=4)
    fast = read_file(body, source=SOURCE, start=start, end=end)
    assert_same(fast, reference(body, SOURCE, start, end))
    assert fast.table is not None
    assert fast.table.records == 3


# -- every payload shape against every response shape, each way of encoding ---------------------
ROWS = ["0,1,2.5,3,4,5,6,7,8", "-0,1,2,3,4,5,6,7,8", "1, 2,3,4,5,6,7,8,9", "1,2,3,4,5,6,7,8,9\n",
        "1,2,3,4,5,6,7,8,9\r\n", "1,2,3,4,5,6,7,8,9\r", "+1,.5,5.,1E+05,007,6,7,8,9",
        "1,2,3,4,5,6,7,8,\u0663", "1_0,2,3,4,5,6,7,8,9", "1,2,3,4,5,6,7,8,1e999", "1,2,3",
        "1,2,3,4,5,6,7,8,9\n1,2,3,4,5,6,7,8,9", "\t1,2,3,4,5,6,7,8,9"]  # fmt: skip
JSON_ROWS = ['{"instances": [[0, 1, 2.5, 3, 4, 5, 6, 7, 8]]}', '{"instances":[[-0,1,2,3,4,5,6,7,8]]}',
             '{"instances": [[-0.0, 1, 2, 3, 4, 5, 6, 7, -0e1]]}', '{"instances": [[1E400, 1, 2, 3, 4, 5, 6, 7, 8]]}',
             '{"instances": [["1.5", 1, 2, 3, 4, 5, 6, 7, 8]]}', '{"instances": [[true, 1, 2, 3, 4, 5, 6, 7, 8]]}',
             '{"instances": [[+1, 1, 2, 3, 4, 5, 6, 7, 8]]}', '[[0, 1, 2, 3, 4, 5, 6, 7, 8]]',
             '{"instances": [[12345678901234567890123, 1, 2, 3, 4, 5, 6, 7, 8]]}']  # fmt: skip
SCORE_TEXTS = ["0.25", "+0.5", ".5", "5.", "-0", "0", "1e999", "NaN", '"0.5"', "1_0"]
RESPONSES = [
    *('{"predictions": [{"score": ' + s + ', "label": 1}]}' for s in SCORE_TEXTS),
    *(s + "\n" for s in SCORE_TEXTS),
    "0.5 0.6",
    " 0.5 ",
]
REQUEST_TYPES = ["text/csv", "TEXT/CSV; charset=utf-8", "text/csvx", "application/json",
                 "Application/JSON; x=y", "application/jsonl"]  # fmt: skip
RESPONSE_TYPES = ["application/json", "text/csv; charset=utf-8", "application/jsonx", "TEXT/CSV"]


@pytest.mark.parametrize("request_type", REQUEST_TYPES)
@pytest.mark.parametrize("encoded", ["as text", "as BASE64"])
def test_every_payload_shape_reads_as_the_reference_reads_it(
    request_type: str, encoded: str
) -> None:
    types = (REQUEST_TYPES + RESPONSE_TYPES) if encoded == "as text" else []
    written = [
        encode_record(
            request=request.encode(),
            request_type=request_type,
            response=response.encode(),
            response_type=response_type,
            inference_time=NOW,
            event_id=f"e{i}",
            csv_types=[t for t in types if "csv" in t.lower()],
            json_types=[t for t in types if "json" in t.lower()],
        )
        for i, (request, response, response_type) in enumerate(
            (q, r, t) for q in ROWS + JSON_ROWS for r in RESPONSES for t in RESPONSE_TYPES
        )
    ]
    body = ("\n".join(written) + "\n").encode()
    fast, expected = read_file(body, source=SOURCE), reference(body, SOURCE, None, None)
    assert_same(fast, expected)
    assert expected.table is not None
    assert expected.table.rows > 0 or request_type == "application/jsonl"  # not a type served


def test_s3_clients_hold_a_connection_for_every_fetch_in_flight() -> None:
    """Fetches past the pool's size would each open a connection (a TLS handshake in AWS) and
    drop it, with a "Connection pool is full" warning per GET."""
    s3 = AwsTarget(region="us-east-1", endpoint_url="http://127.0.0.1:9").client("s3")
    pool = getattr(s3.meta.config, "max_pool_connections", None)  # botocore's stubs omit it
    assert pool == S3_CONNECTIONS >= capture_reader.FETCHERS
