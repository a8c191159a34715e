"""A drift job's files expire: the reports bucket's lifecycle rule covers every file the drift
function and the job's instances write for a job, and nothing a check keeps (its results and
reports, the variants' window state)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_cdk.assertions import Template

from mlops.adapters.capture_store import WindowListing
from mlops.core import drift_job, names
from mlops.core.capture import GroundTruth
from mlops.core.config import PlatformConfig, read_cdk_json_context
from mlops.core.functions import DriftSettings
from mlops.usecases.drift_jobs import DriftJobs
from mlops.usecases.drift_results import RunFacts
from tests.conftest import ROOT

CONFIG = PlatformConfig.from_context(read_cdk_json_context(ROOT / "cdk.json"))  # the template's
END = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
REPORTS = "reports"


def rules(template: Template) -> dict[str, dict[str, Any]]:
    (bucket,) = [
        b for i, b in template.find_resources("AWS::S3::Bucket").items() if i.startswith("Reports")
    ]
    return {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}


@dataclass
class Recorder:
    """S3 and SageMaker as a job's start uses them: what is written, what is started."""

    keys: list[str] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def put_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        assert Bucket == REPORTS
        self.keys.append(Key)
        return {}

    def create_processing_job(self, **request: Any) -> dict[str, Any]:
        self.jobs.append(request)
        return {"ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/j"}


@dataclass
class Checker:
    sagemaker: Any
    s3: Any
    settings: DriftSettings
    render_html: Callable[..., str] | None = None

    def reference(self, package_arn: str) -> Any:
        raise AssertionError("starting a job reads no reference")

    def labels(self, start: datetime, end: datetime) -> GroundTruth:
        return GroundTruth()


def test_drift_job_files_expire_and_the_checks_records_do_not(storage_template: Template) -> None:
    prefix = drift_job.files_prefix(CONFIG.endpoint_name)
    assert prefix == f"drift/{CONFIG.endpoint_name}/jobs/"
    found = rules(storage_template)
    assert found["expire-drift-job-files"] == {
        "Id": "expire-drift-job-files",
        "Status": "Enabled",
        "Prefix": prefix,
        "ExpirationInDays": drift_job.FILES_KEPT_DAYS,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
    }
    # A separate rule: S3 rejects ExpiredObjectDeleteMarker next to ExpirationInDays.
    assert found["remove-drift-job-delete-markers"] == {
        "Id": "remove-drift-job-delete-markers",
        "Status": "Enabled",
        "Prefix": prefix,
        "ExpiredObjectDeleteMarker": True,
    }

    # What the drift function writes when it starts a job, and where the job's instances write.
    recorder = Recorder()
    definition = drift_job.definition(
        CONFIG,
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/drift:1",
        role_arn="arn:aws:iam::123456789012:role/drift-processing",
        key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
    )
    settings = DriftSettings.for_platform(
        CONFIG,
        reports_bucket=REPORTS,
        capture_bucket="capture",
        topic_arn=None,
        processing_job=definition,
    )
    capture = f"{names.CAPTURE_PREFIX}/{CONFIG.endpoint_name}/{names.CHAMPION}/"
    listing = WindowListing(
        "capture", capture, tuple(f"{capture}2026/11/26/13/{i}.jsonl" for i in range(3)),
        (10**9,) * 3, (),
    )  # fmt: skip
    run = RunFacts(
        endpoint=CONFIG.endpoint_name, variant=names.CHAMPION, weight=0.9,
        start=END - timedelta(hours=1), end=END, run_id="r1", thresholds=settings.thresholds,
    )  # fmt: skip
    jobs = DriftJobs(Checker(recorder, recorder, settings))
    outcome = jobs.start(run, package_arn="arn:package/1", listing=listing)
    assert outcome.pending

    state = jobs.states.key(names.CHAMPION)
    job_files = [k for k in recorder.keys if k != state]
    assert state in recorder.keys
    assert {k.rsplit("/", 1)[-1] for k in job_files} >= {"manifest.json", "task.json", "run.json"}
    assert all(k.startswith(prefix) for k in job_files), job_files
    (request,) = recorder.jobs
    uris = [i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]]
    uris += [o["S3Output"]["S3Uri"] for o in request["ProcessingOutputConfig"]["Outputs"]]
    assert all(u.startswith(f"s3://{REPORTS}/{prefix}") for u in uris), uris
    # Kept: the window's state, and the results and reports (next to it, by variant).
    result = f"{names.DRIFT_REPORTS_PREFIX}/{CONFIG.endpoint_name}/{names.CHAMPION}/2026/11/26/"
    assert not state.startswith(prefix)
    assert not result.startswith(prefix)


@pytest.mark.parametrize(
    ("context", "days"),
    [
        ({}, 7),
        ({"drift_schedule": "rate(5 minutes)"}, 7),
        # A sparse schedule: kept past the run after next (a lost end event, a failed run).
        ({"drift_schedule": "rate(10 days)"}, 22),
        ({"drift_schedule": "rate(3 days)", "drift_job_max_runtime_minutes": 1440}, 8),
    ],
)
def test_job_files_outlive_the_runs_that_can_need_them(context: dict[str, Any], days: int) -> None:
    assert drift_job.files_expiration_days(PlatformConfig.from_context(context)) == days
