"""Fault injection in the scheduled drift check: every AWS call of the drift Lambda's run fails
once, throttled or with a server error, and the run is retried (the same event).

One scheduled run over an endpoint whose champion is like its reference and whose challenger
drifted (so the notice goes out) makes N calls to SageMaker, S3 and SNS (its metrics are EMF
log lines, not calls). For each call index and each code, the run is made with that call
failing, then made again (Lambda's retry), and:

- the failed run raises (Lambda retries it); the variants it finished are the ones it names;
- a variant's window does not move unless its run finished: the retry checks the same rows
  and reaches the same verdict as a run without faults;
- nothing written is overwritten, and after the retry the reports bucket holds exactly what a
  run without faults leaves (the same documents, the results linking the same reports);
- every metric record of the clean run is emitted, no other; the notice goes out with the
  same text as the clean run's (twice only if the failure came after it was published);
- no NaN anywhere; a redelivery after success writes, emits and publishes nothing.

A retry depends only on what the failed run left in the reports bucket (capture, registry and
endpoint are only read), so failures that left the same objects share one retry; and as every
case ends with the bucket of a clean run, the redelivery after success is made once.
moto in-process (``mock_aws``); Evidently's page is a fake (its renderer is not under test).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.drift import handler as drift_lambda
from mlops.core.variant_check import SCORE
from mlops.local.aws_services import FakeContext
from mlops.local.replay import requests
from mlops.usecases import check_drift
from mlops.usecases.check_drift import DriftCheckFailed
from pipeline_steps.schema import FEATURE_NAMES
from tests.local.test_drift_monitor import (
    ARTIFACTS,
    CAPTURE,
    ENDPOINT,
    EXECUTION,
    NOW,
    REGION,
    REPORTS,
    SETTINGS,
    FakeRenderer,
    World,
    make_endpoint,
    register,
    score_like_reference,
    upload_lineage,
)
from tests.support.faults import SERVER_ERROR, THROTTLE, Faults

EVENT: dict[str, Any] = {
    "version": "0",
    "id": "schedule-1",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "region": REGION,
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/drift-schedule"],
    "detail": {},
}
VARIANTS = ("challenger", "champion")  # the order the run checks them in


def no_nan(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in {text[:200]}")

    return json.loads(text, parse_constant=refuse)


@dataclass
class Attempt:
    result: dict[str, Any] | None  # the handler's answer; None if it raised
    error: Exception | None
    metrics: list[str]  # EMF records printed (CloudWatch Logs extracts them, failed or not)
    notices: list[dict[str, Any]]  # what reached the alerts topic's subscriber
    calls: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Scenario:
    world: World
    queue: str
    sqs: Any
    faults: Faults  # attached to the function's clients

    def objects(self) -> dict[str, str]:
        """The reports bucket: key -> ETag (the MD5 of its content)."""
        listed = self.world.s3.list_objects_v2(Bucket=REPORTS).get("Contents", [])
        return {o["Key"]: o["ETag"] for o in listed}

    def reset(self) -> None:
        """The reports bucket as before any run (the capture, registry and endpoint stay)."""
        if keys := self.objects():
            self.world.s3.delete_objects(
                Bucket=REPORTS, Delete={"Objects": [{"Key": k} for k in keys]}
            )
        assert self.notices() == []  # each run's were read

    def notices(self) -> list[dict[str, Any]]:
        found = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                body = json.loads(message["Body"])
                found.append({"Subject": body["Subject"], "Message": body["Message"]})
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return found

    def run(self, index: int | None = None, code: str | None = None) -> Attempt:
        """The scheduled event delivered to the function, call ``index`` failing with ``code``."""
        self.faults.clear()
        if index is not None:
            self.faults.fail_call(index, code)
        out = io.StringIO()
        result: dict[str, Any] | None = None
        error: Exception | None = None
        with redirect_stdout(out):
            try:
                result = drift_lambda.handler(dict(EVENT), FakeContext("mlops-dev-drift"))  # type: ignore[arg-type]
            except Exception as exc:
                error = exc
        calls = list(self.faults.calls)
        self.faults.clear()
        metrics = [line for line in out.getvalue().splitlines() if '"_aws"' in line]
        return Attempt(result, error, metrics, self.notices(), calls)


@dataclass
class Target:
    """The function's AwsTarget: its clients, made once (as a warm container's session)."""

    clients: dict[str, Any]

    def client(self, name: str) -> Any:
        return self.clients[name]


@pytest.fixture
def scenario(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scenario]:
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(check_drift, "evidently_html", FakeRenderer())
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (ARTIFACTS, CAPTURE, REPORTS):
            s3.create_bucket(Bucket=bucket)
        upload_lineage(s3, EXECUTION, reference=requests(400, seed=1)[list(FEATURE_NAMES)])
        scores = score_like_reference(400, seed=0)  # fewer than the monitor tests': faster
        s3.put_object(
            Bucket=ARTIFACTS,
            Key=f"{EXECUTION.removeprefix(f's3://{ARTIFACTS}/')}/evaluation/scores.csv",
            Body=f"{SCORE}\n".encode() + "\n".join(f"{v:.6f}" for v in scores).encode(),
        )
        sagemaker.create_model_package_group(ModelPackageGroupName="visits")
        packages = {"champion": register(sagemaker), "challenger": register(sagemaker)}
        make_endpoint(
            sagemaker,
            ENDPOINT,
            {
                "champion": ({"ModelPackageName": packages["champion"]}, 0.75),
                "challenger": ({"ModelPackageName": packages["challenger"]}, 0.25),
            },
        )
        world = World(sagemaker, s3, packages)
        at = NOW - timedelta(minutes=30)
        events = world.put_capture("champion", requests(150, seed=2), at=at)
        world.put_capture("challenger", requests(150, seed=3, drifted=True), at=at)
        world.put_labels(at + timedelta(minutes=5), {events[0]: [0] * 10})
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
        settings = SETTINGS.model_copy(update={"topic_arn": topic})
        for key, value in settings.environment().items():
            monkeypatch.setenv(key, value)
        faults = Faults()
        clients = {
            "sagemaker": faults.attach(boto3.client("sagemaker", region_name=REGION)),
            "s3": faults.attach(boto3.client("s3", region_name=REGION)),
            "sns": faults.attach(boto3.client("sns", region_name=REGION)),
        }
        monkeypatch.setattr(drift_lambda, "_aws", lambda: Target(clients))
        yield Scenario(world, queue, sqs, faults)


def by_variant(metrics: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {v: set() for v in VARIANTS}
    for line in metrics:
        found[no_nan(line)["VariantName"]].add(line)
    return found


def failed_variants(attempt: Attempt) -> set[str]:
    """The variants the failed run did not finish (all of them if it failed before any)."""
    if isinstance(attempt.error, DriftCheckFailed):
        return set(VARIANTS) - {o.variant for o in attempt.error.outcomes}
    return set(VARIANTS)


def check_case(
    scenario: Scenario,
    clean: Attempt,
    written: dict[str, str],
    retries: dict[frozenset[tuple[str, str]], tuple[Attempt, dict[str, str]]],
    index: int,
    code: str,
) -> None:
    scenario.reset()
    failed = scenario.run(index, code)
    service, operation = clean.calls[index]
    case = f"call {index} ({service} {operation}) failing with {code}"
    assert failed.calls[index] == clean.calls[index], case

    # Surfaced: the invocation fails, so Lambda retries it (and its errors alarm).
    assert failed.error is not None, f"{case}: the run answered {failed.result}"
    unfinished = failed_variants(failed)
    assert unfinished, case
    after_failure = scenario.objects()
    # The window moved only for the variants the run finished; the others' still starts where
    # it started (a first window is anchored there, so the next run's does not slide on).
    for variant in VARIANTS:
        key = f"drift/{ENDPOINT}/{variant}/state.json"
        until = (
            json.loads(scenario.world.text(REPORTS, key))["checked_until"]
            if key in after_failure
            else None
        )
        if variant in unfinished:
            assert until in (None, (NOW - SETTINGS.first_window).isoformat()), f"{case}: {until}"
        else:
            assert until == NOW.isoformat(), f"{case}: {variant} checked until {until}"

    # The retry: the same event, no faults. What it does depends only on what the failed run
    # left in the reports bucket (the capture, registry and endpoint are read, not written),
    # so failures that left the same objects share one retry.
    state = frozenset(after_failure.items())
    if state not in retries:
        retries[state] = (scenario.run(), scenario.objects())
    retry, final = retries[state]
    assert retry.error is None, f"{case}: the retry failed: {retry.error!r}"
    assert retry.result is not None
    answered = {v["variant"]: v for v in retry.result["variants"]}
    clean_answer = {v["variant"]: v for v in (clean.result or {})["variants"]}
    for variant in VARIANTS:
        if variant in unfinished:
            # The window did not move: the same rows, the same verdict, the same documents
            # (a result the failed run wrote makes the retry a duplicate, linking it).
            result = (clean_answer[variant]["result"] or "").removeprefix(f"s3://{REPORTS}/")
            report = (clean_answer[variant]["report"] or "").removeprefix(f"s3://{REPORTS}/")
            duplicate = result in after_failure and (not report or report in after_failure)
            expected = {**clean_answer[variant], "duplicate": duplicate}
            assert answered[variant] == expected, f"{case}: {variant}"
        else:
            assert answered[variant]["already_checked"], f"{case}: {variant}"

    # Write-once: what the failed run wrote is still there, unchanged (the state aside, which
    # moves on); and after the retry the bucket holds exactly what a clean run leaves, the
    # same documents (ETags are the MD5 of the content).
    for key, etag in after_failure.items():
        if not key.endswith("/state.json"):
            assert final[key] == etag, f"{case}: {key} was overwritten"
    assert final == written, f"{case}: {sorted(set(final) ^ set(written))}"

    # Nothing lost: every metric record of the clean run is emitted (by the failed run for the
    # variants it finished, by the retry for the others), and no other.
    emitted = by_variant(failed.metrics + retry.metrics)
    assert emitted == by_variant(clean.metrics), case
    # The notice goes out, as the clean run's; twice only if it was published before the fault
    # and the challenger's run had not finished (its state not saved: at least once, not lost).
    notices = failed.notices + retry.notices
    again = "challenger" in unfinished and ("sns", "Publish") in failed.calls[:index]
    assert notices == clean.notices * (2 if again else 1), case


def test_every_call_of_a_scheduled_run_failing_loses_and_half_applies_nothing(
    scenario: Scenario,
) -> None:
    clean = scenario.run()
    assert clean.error is None, clean.error
    assert clean.result is not None
    statuses = {v["variant"]: v["status"] for v in clean.result["variants"]}
    assert statuses == {"champion": "no-drift", "challenger": "drift"}
    assert clean.result["notified"] == ["challenger"]
    assert len(clean.notices) == 1
    assert clean.metrics
    written = scenario.objects()
    for key in written:
        body = scenario.world.s3.get_object(Bucket=REPORTS, Key=key)["Body"].read().decode()
        if key.endswith(".json"):
            no_nan(body)
    assert sorted({service for service, _ in clean.calls}) == ["s3", "sagemaker", "sns"]

    # A redelivery after success writes, emits and publishes nothing. (Every case below ends
    # with the bucket exactly as here, so this holds after each of them as well.)
    redelivered = scenario.run()
    assert redelivered.error is None, redelivered.error
    assert (redelivered.metrics, redelivered.notices) == ([], [])
    assert scenario.objects() == written

    retries: dict[frozenset[tuple[str, str]], tuple[Attempt, dict[str, str]]] = {}
    for codes in (THROTTLE, SERVER_ERROR):
        for index, (service, _) in enumerate(clean.calls):
            check_case(scenario, clean, written, retries, index, codes[service])
    assert len(clean.calls) >= 30
    assert len(retries) >= 8  # the distinct places a run can stop at
