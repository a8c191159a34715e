"""Reading a variant's capture window from (emulated) S3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlops.adapters.capture_store import hour_prefixes, read_window
from mlops.adapters.target import AwsTarget
from mlops.core.capture import encode_record, object_key

T0 = datetime(2026, 11, 26, 13, 50, tzinfo=UTC)


def put_capture(target: AwsTarget, when: datetime, variant: str, lines: list[str]) -> None:
    key = object_key("capture", "mlops-dev-visits", variant, when)
    target.client("s3").put_object(
        Bucket="mlops-dev-capture", Key=key, Body=("\n".join(lines) + "\n").encode()
    )


def record(when: datetime) -> str:
    return encode_record(
        request=b"4.6,1,6.9,0,0,13.7,1,0,0", request_type="text/csv",
        response=b'{"predictions": [{"score": 0.6, "label": 1}]}', response_type="application/json",
        inference_time=when,
    )  # fmt: skip


def test_hour_prefixes_span_the_window() -> None:
    assert hour_prefixes("capture", "ep", "challenger", T0, T0 + timedelta(minutes=20)) == [
        "capture/ep/challenger/2026/11/26/13/",
        "capture/ep/challenger/2026/11/26/14/",
    ]


def test_window_reads_its_variant_and_time_only(emulator: AwsTarget) -> None:
    emulator.client("s3").create_bucket(Bucket="mlops-dev-capture")
    put_capture(emulator, T0, "challenger", [record(T0 + timedelta(minutes=i)) for i in range(5)])
    put_capture(
        emulator,
        T0 + timedelta(minutes=15),
        "challenger",
        [record(T0 + timedelta(minutes=15)), "garbage"],
    )
    put_capture(emulator, T0, "champion", [record(T0)])
    put_capture(emulator, T0 - timedelta(hours=2), "challenger", [record(T0 - timedelta(hours=2))])
    window = read_window(
        emulator.client("s3"), "s3://mlops-dev-capture/capture", "mlops-dev-visits", "challenger",
        T0 + timedelta(minutes=2), T0 + timedelta(minutes=30),
    )  # fmt: skip
    assert window.files == 2
    assert window.table().records == 4  # minutes 2, 3, 4 and 15; not the champion's, not 2 h ago
    assert window.malformed == 1
    assert ".jsonl:2: not JSON:" in window.errors[0]  # the file and line of the bad record
    assert window.errors[0].endswith("line 1 column 1 (char 0)")


def test_empty_window_is_refused(emulator: AwsTarget) -> None:
    with pytest.raises(ValueError, match="empty window"):
        read_window(emulator.client("s3"), "s3://b/capture", "ep", "champion", T0, T0)
