"""A drift check too large for one function, end to end on the embedded default: the scheduled
run lists the window, finds more capture than the threshold and starts a Processing job from
the definition in its settings; the twin runs the job's instances as local processes (the drift
image's entry point, each on its share of the manifest); the job's end event reaches the drift
function, which merges the shards' summaries, records the verdicts, emits the metrics, and the
drift alarm and its rollback follow. The verdicts, every score, the malformed accounting and the
AUC are those of the same window checked in one process.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlops.adapters import s3io
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core import drift_job
from mlops.core.capture import encode_ground_truth, object_key
from mlops.local.aws_services import drift_settings, invoke_function, scheduled_drift_check
from mlops.local.processing import LOCAL_IMAGE
from mlops.local.replay import requests, send
from mlops.usecases.check_drift import DriftMonitor, LocalSink
from mlops.usecases.drift_jobs import DriftJobFailed
from tests.local.test_drift_monitor import NOW, World
from tests.local.test_drift_monitor import world as monitor_world
from tests.local.test_drift_scheduled import CONFIG, serving

__all__ = ["monitor_world", "serving"]  # fixtures

# Any window of real traffic is above 10 kB: it goes to a job of two instances.
JOBS = CONFIG.model_copy(update={"drift_job_threshold_mb": 0.01, "drift_job_instance_count": 2})
COMPARED_APART = ("report_html", "processing_job", "notes")


def capture_keys(s3: Any, bucket: str, variant: str) -> list[str]:
    return [
        k
        for k in s3io.list_keys(s3, bucket, f"capture/{CONFIG.endpoint_name}/{variant}/")
        if k.endswith(".jsonl")
    ]


def add_malformed_and_labels(emulator: AwsTarget, resources: PlatformResources) -> int:
    """A capture file of bad lines next to the challenger's, and labels for its events (against
    its scores: the challenger's quality drops). Returns how many events are labelled."""
    s3 = emulator.client("s3")
    bucket = resources.capture_bucket
    keys = capture_keys(s3, bucket, "challenger")
    events: list[tuple[str, int]] = []
    for key in keys:
        for line in s3io.read(s3, bucket, key).decode().splitlines():
            record = json.loads(line)
            scores = json.loads(record["captureData"]["endpointOutput"]["data"])["predictions"]
            events.append((record["eventMetadata"]["eventId"], len(scores)))
    when = datetime.now(UTC)
    bad = object_key("capture", CONFIG.endpoint_name, "challenger", when)
    s3.put_object(
        Bucket=bucket,
        Key=bad,
        Body=b'not json\n{"captureData": {}, "eventMetadata": {"eventId": "x"}}\nnot json either\n',
    )
    labels = "\n".join(encode_ground_truth(e, [1, 0] * (n // 2) + [1] * (n % 2)) for e, n in events)
    s3.put_object(
        Bucket=bucket,
        Key=f"ground-truth/{CONFIG.endpoint_name}/{when:%Y/%m/%d/%H}/labels.jsonl",
        Body=labels.encode(),
    )
    return len(events)


def result_of(s3: Any, uri: str) -> dict[str, Any]:
    bucket, key = s3io.split_uri(uri)
    document: dict[str, Any] = json.loads(s3io.read(s3, bucket, key))
    return document


def test_a_window_above_the_threshold_is_checked_by_a_job_as_in_one_process(
    emulator: AwsTarget, serving: tuple[PlatformResources, Any], tmp_path: Path
) -> None:
    resources, (server, runtime) = serving
    send(runtime, CONFIG.endpoint_name, requests(400, seed=31), target_variant="champion")
    send(runtime, CONFIG.endpoint_name, requests(400, seed=32, drifted=True),
         target_variant="challenger")  # fmt: skip
    server.endpoints.capture.flush()
    labelled = add_malformed_and_labels(emulator, resources)
    s3, sagemaker = emulator.client("s3"), emulator.client("sagemaker")

    run = scheduled_drift_check(
        emulator, JOBS, resources, now=datetime.now(UTC) + timedelta(minutes=1)
    )

    # The switch: both windows went to jobs, named under the platform's prefix, and ran here.
    started = {v["variant"]: v for v in run.result["variants"]}
    assert {v["status"] for v in started.values()} == {"pending"}
    assert all(v["job"].startswith(drift_job.job_prefix(CONFIG)) for v in started.values())
    assert [job.status for job in run.jobs] == ["Completed", "Completed"], [
        j.logs for j in run.jobs
    ]
    recorded = sagemaker.describe_processing_job(ProcessingJobName=started["challenger"]["job"])
    assert recorded["AppSpecification"]["ImageUri"] == LOCAL_IMAGE
    assert recorded["AppSpecification"]["ContainerEntrypoint"] == list(drift_job.ENTRYPOINT)
    (capture_input,) = [
        i["S3Input"]
        for i in recorded["ProcessingInputs"]
        if i["InputName"] == drift_job.CAPTURE_INPUT
    ]
    assert (capture_input["S3DataType"], capture_input["S3DataDistributionType"]) == (
        "ManifestFile", "ShardedByS3Key"
    )  # fmt: skip
    challenger_job = next(j for j in run.jobs if j.name == started["challenger"]["job"])
    assert challenger_job.instances == 2
    assert len(challenger_job.outputs) == 2  # one summary per instance

    # The merge: the job's end event reached the drift function, which recorded the verdicts.
    assert [target for target, _ in run.job_results] == ["drift", "drift"]
    merged = {r["variants"][0]["variant"]: r["variants"][0] for _, r in run.job_results if r["ok"]}
    assert merged["champion"]["status"] == "no-drift"
    assert merged["challenger"]["status"] == "drift"
    assert merged["challenger"]["report"].endswith(".html")
    # ... and its metrics raised the challenger's drift alarm, which rolled it back.
    assert run.datapoints > 0
    assert [e["detail"]["alarmName"] for e in run.alarm_events] == [
        f"{CONFIG.endpoint_name}-challenger-drift"
    ]
    assert [(target, outcome["action"]) for target, outcome in run.actions] == [
        ("traffic", "rollback")
    ]

    # The same windows checked in one process give the same results.
    monitor = DriftMonitor(sagemaker=sagemaker, s3=s3, settings=drift_settings(CONFIG, resources))
    for variant, given in merged.items():
        by_job = result_of(s3, given["result"])
        start = datetime.fromisoformat(by_job["window"]["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(by_job["window"]["end"].replace("Z", "+00:00"))
        outcome = monitor.check_window(
            variant, by_job["model_package_arn"], by_job["weight"], start=start, end=end,
            run_id="in-process", sink=LocalSink(tmp_path / variant),
        )  # fmt: skip
        in_process = json.loads(Path(outcome.json_uri).read_text())
        assert by_job["processing_job"] == started[variant]["job"]
        assert any("checked by processing job" in n for n in by_job["notes"])
        assert {k: v for k, v in by_job.items() if k not in COMPARED_APART} == {
            k: v for k, v in in_process.items() if k not in COMPARED_APART
        }
    challenger = result_of(s3, merged["challenger"]["result"])
    assert challenger["malformed_by_kind"] == {"not JSON": 2, "missing endpointInput": 1}
    assert challenger["labelled_events"] == labelled
    assert challenger["quality"]["value"] is not None

    # The end event again (EventBridge delivers at least once): nothing is recorded twice.
    again, _ = invoke_function(
        "drift", challenger_job.event(region=emulator.region), target=emulator, config=JOBS,
        resources=resources,
    )  # fmt: skip
    assert again == {"ok": True, "job": challenger_job.name, "notified": [], "variants": []}


# -- a job that gives no verdict --------------------------------------------------------------
@pytest.fixture
def jobs_world(monitor_world: World) -> tuple[World, DriftMonitor]:
    definition = drift_job.definition(
        JOBS, image_uri="img", role_arn="arn:aws:iam::123456789012:role/r",
        key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
    )  # fmt: skip
    monitor = monitor_world.monitor(processing_job=definition, job_threshold_bytes=1)
    monitor_world.put_capture("champion", requests(300, seed=2), at=NOW - timedelta(minutes=30))
    return monitor_world, monitor


def test_a_job_without_a_complete_result_is_reported_and_its_window_checked_again(
    jobs_world: tuple[World, DriftMonitor],
) -> None:
    world, monitor = jobs_world
    arn = world.packages["champion"]
    started = monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    assert started.pending
    assert started.job is not None
    assert monitor.states.read("champion") == {
        "model_package_arn": arn,
        "checked_until": (NOW - timedelta(hours=1)).isoformat(),
        "job": started.job,
    }
    # The emulator says "Completed" at once, and no instance wrote a summary: no verdict.
    with pytest.raises(DriftJobFailed, match=r"0 summaries cover 0 of the window's 1 files"):
        monitor.finish_job(started.job)
    assert "job" not in (monitor.states.read("champion") or {})
    assert monitor.window("champion", arn, NOW)[0] == NOW - timedelta(hours=1)
    assert monitor.finish_job(started.job) is None  # the event's retry: nothing to do


def test_a_stopped_job_found_by_the_next_run_is_reported(
    jobs_world: tuple[World, DriftMonitor],
) -> None:
    world, monitor = jobs_world
    arn = world.packages["champion"]
    started = monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    assert started.job is not None
    world.sagemaker.stop_processing_job(ProcessingJobName=started.job)
    with pytest.raises(DriftJobFailed, match="Stopped"):
        monitor.check("champion", arn, 0.8, now=NOW + timedelta(hours=1), run_id="r2")
    assert monitor.window("champion", arn, NOW)[0] == NOW - timedelta(hours=1)


def test_a_job_whose_files_expired_gives_its_window_back(
    jobs_world: tuple[World, DriftMonitor],
) -> None:
    """Its end event lost, and the next run later than the job's files are kept (a sparse
    cron schedule): the window is checked again, never left waiting on a job forever."""
    world, monitor = jobs_world
    arn = world.packages["champion"]
    started = monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    assert started.job is not None
    settings = monitor.settings
    paths = drift_job.JobPaths.of(settings.reports_bucket, settings.endpoint_name, started.job)
    for key in s3io.list_keys(world.s3, paths.bucket, paths.prefix + "/"):
        world.s3.delete_object(Bucket=paths.bucket, Key=key)  # what the lifecycle rule does
    with pytest.raises(DriftJobFailed, match=r"has no record .* its files expired"):
        monitor.check("champion", arn, 0.8, now=NOW + timedelta(days=8), run_id="r2")
    assert monitor.states.read("champion") == {
        "model_package_arn": arn,
        "checked_until": (NOW - timedelta(hours=1)).isoformat(),
    }


def test_below_the_threshold_the_window_is_checked_in_the_function(
    jobs_world: tuple[World, DriftMonitor],
) -> None:
    world, monitor = jobs_world
    monitor.settings = monitor.settings.model_copy(update={"job_threshold_bytes": 10**9})
    outcome = monitor.check("champion", world.packages["champion"], 0.8, now=NOW, run_id="r1")
    assert outcome.report.status == "no-drift"
    assert outcome.job is None
    assert world.sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []


def test_a_redelivered_run_does_not_take_up_its_failed_job_again(
    jobs_world: tuple[World, DriftMonitor], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, monitor = jobs_world
    arn = world.packages["champion"]
    started = monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    assert started.job is not None
    world.sagemaker.stop_processing_job(ProcessingJobName=started.job)
    with pytest.raises(DriftJobFailed, match="Stopped"):
        monitor.finish_job(started.job)

    # The run is redelivered (its invocation failed): the same name, which SageMaker refuses
    # (the emulator does not: its answer is made here).
    def refuse(**_: Any) -> None:
        message = (
            "Job name must be unique within an AWS account and region, and a job with this "
            "name already exists"
        )
        error = {"Error": {"Code": "ValidationException", "Message": message}}
        raise ClientError(error, "CreateProcessingJob")  # type: ignore[arg-type]

    monkeypatch.setattr(world.sagemaker, "create_processing_job", refuse)
    with pytest.raises(DriftJobFailed, match=r"this run's processing job .* ended Stopped"):
        monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    assert "job" not in (monitor.states.read("champion") or {})
    assert monitor.window("champion", arn, NOW)[0] == NOW - timedelta(hours=1)
