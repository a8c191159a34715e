"""Capture durability on the local endpoint: captured records reach S3 within a bounded delay
without another request, a SIGTERM or SIGINT to `mlops local serve` writes what is buffered,
and every answered request is captured exactly once - also when a timer flush and a stop flush
race, and when a write fails and is retried."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError

from mlops.adapters.registry import set_approval
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core import capture
from mlops.core.approval import on_approval
from mlops.core.config import PlatformConfig
from mlops.local.capture_writer import CaptureWriteError, CaptureWriter
from mlops.local.deployment import EmulatorDeployment
from mlops.local.emulator import bootstrap
from mlops.local.endpoint import EndpointRoute, LocalEndpoints, LocalEndpointServer
from mlops.local.pipeline import LocalPipelineRunner, RunOptions

CONFIG = PlatformConfig()
ROW = "4.61512,1,6.907755,0,0,13.73189,1,0,0"
ROOT = Path(__file__).resolve().parents[2]
KEY = re.compile(
    r"capture/[^/]+/(champion|challenger|v)/\d{4}/\d{2}/\d{2}/\d{2}/"
    r"\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl"
)


@pytest.fixture
def champion(emulator: AwsTarget) -> tuple[AwsTarget, PlatformResources]:
    """One approved package serving as the champion, capturing every request."""
    resources = bootstrap(emulator, CONFIG)
    runner = LocalPipelineRunner(
        target=emulator, resources=resources, config=CONFIG, mlflow_tracking_uri=None
    )
    result = runner.run(RunOptions())
    assert result.registered, result.reason
    arn = result.model_package_arn or ""
    set_approval(emulator.client("sagemaker"), arn, "Approved")
    deployment = EmulatorDeployment(
        sagemaker=emulator.client("sagemaker"), config=CONFIG, resources=resources
    )
    deployment.deploy(on_approval(deployment.current(), arn, initial_challenger_weight=0.25))
    return emulator, resources


def runtime(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )


def invoke(client: Any, ids: list[str]) -> None:
    for inference_id in ids:
        response = client.invoke_endpoint(
            EndpointName=CONFIG.endpoint_name, Body=ROW, ContentType="text/csv",
            InferenceId=inference_id,
        )  # fmt: skip
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def captured(target: AwsTarget, bucket: str) -> Counter[str]:
    """Inference ids in every capture file of the bucket, counted."""
    s3 = target.client("s3")
    seen: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            assert KEY.fullmatch(item["Key"]), item["Key"]
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            assert body.endswith("\n")
            for line in body.split("\n")[:-1]:
                seen[json.loads(line)["eventMetadata"]["inferenceId"]] += 1
    return seen


def test_records_reach_s3_within_the_delay_without_another_request(
    champion: tuple[AwsTarget, PlatformResources], tmp_path: Path
) -> None:
    target, resources = champion
    age = 1.5
    writer = CaptureWriter(target.client("s3"), max_age_seconds=age)
    server = LocalEndpointServer(
        LocalEndpoints(target, cache_dir=tmp_path, refresh_seconds=0, capture_writer=writer)
    ).start()
    try:
        client = runtime(server.url)
        ids = [f"idle-{i}" for i in range(10)]
        invoke(client, ids[:1])  # loads the model; its record starts the buffer
        first = time.monotonic()
        invoke(client, ids[1:])
        answered = time.monotonic()
        assert answered - first < age  # every record buffered before the age limit came
        seen: Counter[str] = Counter()
        while time.monotonic() - answered < age + 5 and sum(seen.values()) < len(ids):
            time.sleep(0.1)
            seen = captured(target, resources.capture_bucket)
        delay = time.monotonic() - first
        assert seen == Counter(ids), f"{sum(seen.values())} of {len(ids)} in S3 after {delay:.1f} s"
        assert delay < age + 2.0  # the age limit, the timer's write, and this loop's reads
        assert writer.pending_records == 0
    finally:
        server.stop()
    assert captured(target, resources.capture_bucket) == Counter(ids)  # stop wrote no copies


def read_url(process: subprocess.Popen[str], timeout: float) -> str:
    """The URL `mlops local serve` prints, read without blocking past ``timeout``."""
    stdout = process.stdout
    assert stdout is not None
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stdout], [], [], 0.2)
        if not ready:
            continue
        line = stdout.readline()
        if not line:
            break
        text += line
        found = re.search(r" at (http://127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1)
    process.kill()
    _, stderr = process.communicate()
    raise AssertionError(f"`mlops local serve` did not start:\n{text}\n{stderr}")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_to_local_serve_writes_every_answered_request_once(
    champion: tuple[AwsTarget, PlatformResources], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    target, resources = champion
    env = {**os.environ, "MLOPS_ENDPOINT_URL": target.endpoint_url or "",
           "MLOPS_HOME": str(tmp_path / "home"), "COLUMNS": "250"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops.cli", "local", "serve", "--port", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = read_url(process, timeout=60)
        ids = [f"{stop_signal.name}-{i}" for i in range(40)]
        invoke(runtime(url), ids)
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "stopped; capture written: 1 file(s)" in stdout, stdout
    assert captured(target, resources.capture_bucket) == Counter(ids)


# -- the writer on its own: races and failed writes ----------------------------------------------


@pytest.fixture
def bucket(emulator: AwsTarget) -> str:
    emulator.client("s3").create_bucket(Bucket="capture-durability")
    return "capture-durability"


def route(bucket: str) -> EndpointRoute:
    return EndpointRoute(
        name="ep", variants=[], capture_uri=f"s3://{bucket}/capture", capture_percentage=100,
        capture_kms_key=None, csv_types=("text/csv",), json_types=("application/json",),
        read_at=0.0,
    )  # fmt: skip


def line(inference_id: str) -> str:
    return capture.encode_record(
        request=ROW.encode(), request_type="text/csv", response=b'{"predictions": []}',
        response_type="application/json", inference_time=datetime.now(UTC),
        inference_id=inference_id,
    )  # fmt: skip


class S3Proxy:
    """The emulator's S3 client, with a hook before (and after) each ``put_object``."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.puts = 0
        self.before: Callable[[int], None] = lambda number: None
        self.after: Callable[[int], None] = lambda number: None

    def put_object(self, **request: Any) -> Any:
        self.puts += 1
        number = self.puts
        self.before(number)
        answer = self.s3.put_object(**request)
        self.after(number)
        return answer


def slow_down() -> ClientError:
    return ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce your rate"}}, "PutObject")


def test_a_stop_and_a_flush_racing_the_timer_write_each_record_once(
    emulator: AwsTarget, bucket: str
) -> None:
    s3 = S3Proxy(emulator.client("s3"))
    timer_writing, release = threading.Event(), threading.Event()

    def hold_the_first(number: int) -> None:
        if number == 1:  # the timer's write, held until the stop is under way
            timer_writing.set()
            assert release.wait(10)

    s3.before = hold_the_first
    writer = CaptureWriter(cast(Any, s3), max_age_seconds=0.2)
    first = [f"early-{i}" for i in range(20)]
    for inference_id in first:
        writer.add(route(bucket), "v", line(inference_id))
    assert timer_writing.wait(5), "no timer flush without another request"
    later = [f"late-{i}" for i in range(20)]
    for inference_id in later:  # buffered while the timer's write is held
        writer.add(route(bucket), "v", line(inference_id))

    # An explicit flush (as the demo and tests make) and a stop, while the timer's write is held.
    racing = [threading.Thread(target=writer.flush), threading.Thread(target=writer.close)]
    for thread in racing:
        thread.start()
    time.sleep(0.3)  # both now wait on the timer's write (or would race it)
    release.set()
    for thread in racing:
        thread.join(10)
        assert not thread.is_alive()

    assert captured(emulator, bucket) == Counter(first + later)
    assert len(writer.files_written) == len(set(writer.files_written)) == s3.puts == 2
    assert writer.pending_records == 0


def test_a_failed_write_is_retried_and_written_once(emulator: AwsTarget, bucket: str) -> None:
    s3 = S3Proxy(emulator.client("s3"))

    def refuse_the_first(number: int) -> None:
        if number == 1:
            raise slow_down()

    s3.before = refuse_the_first
    writer = CaptureWriter(cast(Any, s3), max_age_seconds=60)  # no timer flush in this test
    ids = [f"retry-{i}" for i in range(10)]
    for inference_id in ids:
        writer.add(route(bucket), "v", line(inference_id))
    with pytest.raises(CaptureWriteError) as failed:
        writer.flush()
    assert writer.pending_records == 10  # kept, not dropped
    assert "10 record(s) not written (kept for the next flush)" in str(failed.value)
    assert writer.flush() == writer.files_written  # the good write
    assert captured(emulator, bucket) == Counter(ids)
    assert len(writer.files_written) == 1
    assert writer.pending_records == 0
    writer.close()
    assert captured(emulator, bucket) == Counter(ids)


def test_a_write_that_failed_after_s3_stored_it_is_not_duplicated(
    emulator: AwsTarget, bucket: str
) -> None:
    """A timeout after S3 stored the object: the retry rewrites the same object."""
    s3 = S3Proxy(emulator.client("s3"))

    def lose_the_first_answer(number: int) -> None:
        if number == 1:
            raise slow_down()

    s3.after = lose_the_first_answer
    writer = CaptureWriter(cast(Any, s3), max_age_seconds=0.2)
    ids = [f"stored-{i}" for i in range(10)]
    for inference_id in ids:
        writer.add(route(bucket), "v", line(inference_id))
    deadline = time.monotonic() + 5
    while (writer.pending_records or s3.puts < 2) and time.monotonic() < deadline:
        time.sleep(0.05)  # the timer writes, fails, and retries on its own
    assert s3.puts == 2
    assert writer.pending_records == 0
    writer.close()
    assert captured(emulator, bucket) == Counter(ids)
    assert len(writer.files_written) == 1
