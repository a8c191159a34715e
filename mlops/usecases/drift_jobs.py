"""A variant's drift check run as a SageMaker Processing job, when its window is more than one
function checks (``job_threshold_bytes`` of capture files; mlops.core.drift_job).

The scheduled check lists the window's capture files first. Above the threshold it writes the
job's inputs (the manifest of the window's files, the task, the window's labels) and a record
of the run, starts the job from the definition in its settings, and marks the window as being
checked by that job in the variant's state: the run's outcome for the variant is "pending".
The job's instances each summarize their share of the files (mlops.usecases.drift_shard).

When the job ends, SageMaker's "Processing Job State Change" event reaches the drift function
(an EventBridge rule on the jobs this platform names), which ``finish``es the check: the
shards' summaries merged, judged and written exactly as an in-process check's (same names,
written once), acted on (metrics, notice), the window moved on. The next scheduled run does
the same if the event was lost (``follow``): whichever comes first records it, the other
finds nothing pending. A job that failed, stopped or left fewer summaries than files is
reported (the invocation fails: the function's error alarm) and its window is checked again
by the next run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from botocore.exceptions import ClientError

from mlops.adapters import s3io
from mlops.adapters.capture_store import WindowListing
from mlops.core import drift_job, names
from mlops.core.capture import EXAMPLES_PER_KIND, GroundTruth
from mlops.core.drift_job import JobPaths, Task
from mlops.core.finite import dumps
from mlops.core.functions import DriftSettings
from mlops.core.variant_check import NOT_ENOUGH_DATA, VariantDriftReport
from mlops.core.window_summary import WindowSummary, merged
from mlops.usecases.drift_inputs import Reference
from mlops.usecases.drift_results import (
    PENDING,
    LabelFacts,
    RunFacts,
    RunSink,
    VariantOutcome,
    record,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient


class DriftJobFailed(RuntimeError):
    """A check's Processing job failed, stopped, or left an incomplete result: its window is
    checked again by the next scheduled run."""


class Checker(Protocol):
    """What a job's check needs of the drift monitor (mlops.usecases.check_drift)."""

    sagemaker: SageMakerClient
    s3: S3Client
    settings: DriftSettings
    render_html: Callable[..., str] | None

    def reference(self, package_arn: str) -> Reference: ...
    def labels(self, start: datetime, end: datetime) -> GroundTruth: ...


@dataclass(frozen=True)
class StateStore:
    """Each variant's window state in the reports bucket: which model it was checked for, up to
    when, and the job checking the window after that, if one is."""

    s3: S3Client
    bucket: str
    endpoint: str

    def key(self, variant: str) -> str:
        return f"{names.DRIFT_REPORTS_PREFIX}/{self.endpoint}/{variant}/state.json"

    def read(self, variant: str) -> dict[str, Any] | None:
        # Listed first: with ListBucket on a prefix only, GetObject on a missing key is a 403.
        if not s3io.exists(self.s3, self.bucket, self.key(variant)):
            return None
        state: dict[str, Any] = json.loads(s3io.read(self.s3, self.bucket, self.key(variant)))
        return state

    def save(
        self, variant: str, package_arn: str, checked_until: datetime, job: str | None = None
    ) -> None:
        state: dict[str, Any] = {
            "model_package_arn": package_arn,
            "checked_until": checked_until.isoformat(),
        }
        if job is not None:
            state["job"] = job
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self.key(variant),
            Body=dumps(state).encode(),
            ContentType="application/json",
        )


@dataclass(frozen=True)
class JobRun:
    """The record of a check handed to a job (run.json): what ``finish`` needs to write its
    result as the run that started it would have."""

    job: str
    variant: str
    package_arn: str
    weight: float | None
    run_id: str
    start: datetime
    end: datetime
    files: int
    bytes: int
    instances: int
    skipped_files: tuple[str, ...]
    labels: LabelFacts

    def facts(self, settings: DriftSettings) -> RunFacts:
        """The check this job runs, judged by the settings the job's end is recorded with."""
        return RunFacts(
            endpoint=settings.endpoint_name,
            variant=self.variant,
            weight=self.weight,
            start=self.start,
            end=self.end,
            run_id=self.run_id,
            thresholds=settings.thresholds,
        )

    def as_document(self) -> dict[str, Any]:
        return {
            "format": drift_job.RUN_FORMAT,
            "job": self.job,
            "variant": self.variant,
            "model_package_arn": self.package_arn,
            "weight": self.weight,
            "run_id": self.run_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "files": self.files,
            "bytes": self.bytes,
            "instances": self.instances,
            "skipped_files": list(self.skipped_files),
            "labels": {
                "events": self.labels.events,
                "malformed": self.labels.malformed,
                "errors": list(self.labels.errors),
            },
        }

    @classmethod
    def from_document(cls, document: Any) -> JobRun:
        if not isinstance(document, dict) or document.get("format") != drift_job.RUN_FORMAT:
            raise ValueError(f"not a {drift_job.RUN_FORMAT} document")
        labels = document["labels"]
        return cls(
            job=str(document["job"]),
            variant=str(document["variant"]),
            package_arn=str(document["model_package_arn"]),
            weight=None if document["weight"] is None else float(document["weight"]),
            run_id=str(document["run_id"]),
            start=datetime.fromisoformat(document["start"]),
            end=datetime.fromisoformat(document["end"]),
            files=int(document["files"]),
            bytes=int(document["bytes"]),
            instances=int(document["instances"]),
            skipped_files=tuple(str(f) for f in document["skipped_files"]),
            labels=LabelFacts(
                int(labels["events"]), int(labels["malformed"]), tuple(labels["errors"])
            ),
        )


@dataclass
class DriftJobs:
    """Start, follow and finish the checks of one endpoint's variants that run as jobs."""

    checker: Checker

    @property
    def settings(self) -> DriftSettings:
        return self.checker.settings

    @property
    def states(self) -> StateStore:
        settings = self.settings
        return StateStore(self.checker.s3, settings.reports_bucket, settings.endpoint_name)

    def paths(self, job: str) -> JobPaths:
        return JobPaths.of(self.settings.reports_bucket, self.settings.endpoint_name, job)

    def wanted(self, listing: WindowListing) -> bool:
        """Whether this window is checked by a job: more capture than one function checks, and a
        job definition to run it with."""
        settings = self.settings
        return settings.processing_job is not None and listing.bytes > settings.job_threshold_bytes

    @staticmethod
    def job_of(state: dict[str, Any] | None, package_arn: str) -> str | None:
        """The job checking the window of a variant in ``state`` for this model, if one is (a
        job for another model is abandoned: a new model starts a new window)."""
        if not state or state.get("model_package_arn") != package_arn:
            return None
        job = state.get("job")
        return str(job) if job else None

    # -- start ------------------------------------------------------------------------------
    def start(self, facts: RunFacts, *, package_arn: str, listing: WindowListing) -> VariantOutcome:
        settings, s3 = self.settings, self.checker.s3
        if settings.processing_job is None:
            raise ValueError("no processing job definition in the drift settings")
        variant, start, end = facts.variant, facts.start, facts.end
        name = drift_job.job_name(
            settings.job_prefix,
            settings.endpoint_name,
            variant=variant,
            run_id=facts.run_id,
            end=end,
        )
        paths = self.paths(name)
        labels = self.checker.labels(start, end)
        task = Task(
            prefix=listing.prefix,
            keys=tuple(key[len(listing.prefix) :] for key in listing.keys),
            start=start,
            end=end,
            sample_rows=settings.report_sample_rows,
            keep_errors=EXAMPLES_PER_KIND,
        )
        request = drift_job.request(
            settings.processing_job, name=name, paths=paths, instances=len(listing.keys)
        )
        instances = int(request["ProcessingResources"]["ClusterConfig"]["InstanceCount"])
        run = JobRun(
            job=name,
            variant=variant,
            package_arn=package_arn,
            weight=facts.weight,
            run_id=facts.run_id,
            start=start,
            end=end,
            files=len(listing.keys),
            bytes=listing.bytes,
            instances=instances,
            skipped_files=listing.skipped,
            labels=LabelFacts.of(labels),
        )
        manifest = drift_job.manifest(listing.bucket, listing.prefix, list(listing.keys))
        for key, document in (
            (paths.manifest, manifest),
            (paths.task, task.as_document()),
            (paths.labels, {"labels": labels.labels}),
            (paths.run, run.as_document()),
        ):
            s3.put_object(
                Bucket=paths.bucket,
                Key=key,
                Body=dumps(document, separators=(",", ":")).encode(),
                ContentType="application/json",
            )
        try:
            self.checker.sagemaker.create_processing_job(**request)
        except ClientError as exc:
            # A redelivered run names the same job: SageMaker refuses a second one. Still
            # running or done, it is this run's; one that failed is not taken up again (the
            # next scheduled run, another name, checks the window).
            if not _exists(exc):
                raise
            status, reason = self._status(run)
            if status not in (*drift_job.RUNNING, "Completed"):
                raise DriftJobFailed(
                    f"this run's processing job {name} ended {status} ({reason}); the window "
                    f"{start.isoformat()} - {end.isoformat()} is checked again by the next "
                    "scheduled run"
                ) from None
        self.states.save(variant, package_arn, start, job=name)
        return self._pending(run, note=_started(run, settings, request))

    def _pending(self, run: JobRun, *, note: str) -> VariantOutcome:
        facts = run.facts(self.settings)
        report = VariantDriftReport(
            variant=run.variant,
            status=PENDING,
            rows=0,
            records=0,
            malformed=0,
            min_rows=facts.thresholds.min_rows,
        )
        return VariantOutcome.of(
            facts,
            package_arn=run.package_arn,
            report=report,
            files=run.files,
            labelled_events=run.labels.events,
            json_uri=self.paths(run.job).uri("run.json"),
            notes=[note],
            job=run.job,
        )

    # -- follow and finish --------------------------------------------------------------------
    def run(self, job: str) -> JobRun:
        paths = self.paths(job)
        if not s3io.exists(self.checker.s3, paths.bucket, paths.run):
            raise DriftJobFailed(f"no record of a drift check run as job {job} ({paths.run})")
        return JobRun.from_document(json.loads(s3io.read(self.checker.s3, paths.bucket, paths.run)))

    def follow(
        self,
        job: str,
        *,
        variant: str,
        on_outcome: Callable[[VariantOutcome], None] | None = None,
    ) -> VariantOutcome:
        """A scheduled run finds ``variant``'s window with a job: still running, its verdict
        recorded now (its end event was lost or is late), or its failure reported."""
        paths = self.paths(job)
        if not s3io.exists(self.checker.s3, paths.bucket, paths.run):
            self._lost(job, variant)
        run = self.run(job)
        status, _ = self._status(run)
        if status in drift_job.RUNNING:
            return self._pending(run, note=f"processing job {job} is still checking this window")
        outcome = self.finish(job, on_outcome=on_outcome)
        return outcome or self._pending(run, note=f"processing job {job} was recorded already")

    def finish(
        self, job: str, *, on_outcome: Callable[[VariantOutcome], None] | None = None
    ) -> VariantOutcome | None:
        """The job ended: its verdict, written and acted on like an in-process check's, and the
        window moved on. None when there is nothing to do: the job is not (or no longer) the
        one checking its variant's window, or has not ended."""
        run = self.run(job)
        state = self.states.read(run.variant)
        if (
            not state
            or state.get("job") != job
            or state.get("model_package_arn") != run.package_arn
        ):
            return None  # recorded already (a redelivery, or the other path came first)
        status, reason = self._status(run)
        if status in drift_job.RUNNING:
            return None
        if status != "Completed":
            self._failed(run, f"{status}: {reason}")
        summary = self._summary(run)
        sink = RunSink(
            self.checker.s3,
            self.settings.reports_bucket,
            f"{names.DRIFT_REPORTS_PREFIX}/{self.settings.endpoint_name}",
        )
        outcome = record(
            run.facts(self.settings),
            self.checker.reference(run.package_arn),
            summary,
            run.labels,
            skipped_files=list(run.skipped_files),
            sink=sink,
            render_html=self.checker.render_html,
            job=job,
            notes=(
                f"checked by processing job {job}: {run.files} capture files "
                f"({run.bytes / 1e6:,.1f} MB) on {run.instances} instance(s)",
            ),
        )
        outcome.duplicate = not sink.written
        if on_outcome is not None:
            on_outcome(outcome)
        checked = outcome.report.status != NOT_ENOUGH_DATA
        self.states.save(run.variant, run.package_arn, run.end if checked else run.start)
        return outcome

    def _status(self, run: JobRun) -> tuple[str, str]:
        try:
            described = self.checker.sagemaker.describe_processing_job(ProcessingJobName=run.job)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationException":  # no such job
                self._failed(run, "the job does not exist")
            raise
        reason = described.get("FailureReason") or described.get("ExitMessage") or "no reason given"
        return described["ProcessingJobStatus"], reason

    def _summary(self, run: JobRun) -> WindowSummary:
        """The shards' summaries merged; every file of the window summarized exactly once."""
        paths, s3 = self.paths(run.job), self.checker.s3
        keys = [k for k in s3io.list_keys(s3, paths.bucket, paths.summaries) if k.endswith(".json")]
        try:
            parts = [
                WindowSummary.from_document(json.loads(s3io.read(s3, paths.bucket, key)))
                for key in keys
            ]
            summary = merged(parts) if parts else None
        except ValueError as exc:
            self._failed(run, f"its summaries do not merge: {exc}")
        if summary is None or set(summary.sources) != set(range(run.files)):
            covered = 0 if summary is None else len(summary.sources)
            self._failed(
                run, f"{len(keys)} summaries cover {covered} of the window's {run.files} files"
            )
        return summary

    def _lost(self, job: str, variant: str) -> NoReturn:
        """The job's record is gone before its verdict was recorded (a job's files expire:
        mlops.core.drift_job.files_expiration_days): the window goes back to the next run."""
        state = self.states.read(variant) or {}
        since = state.get("checked_until")
        if state.get("job") == job and since:
            checked_until = datetime.fromisoformat(since)
            self.states.save(variant, str(state["model_package_arn"]), checked_until)
        raise DriftJobFailed(
            f"the drift check of {self.settings.endpoint_name}/{variant} as processing job {job} "
            f"has no record ({self.paths(job).run}: its files expired); its window from {since} "
            "is checked again by the next scheduled run"
        )

    def _failed(self, run: JobRun, why: str) -> NoReturn:
        """Report a job that gave no verdict, and give its window back to the next run."""
        self.states.save(run.variant, run.package_arn, run.start)
        raise DriftJobFailed(
            f"the drift check of {self.settings.endpoint_name}/{run.variant} as processing job "
            f"{run.job} gave no verdict ({why}); its window {run.start.isoformat()} - "
            f"{run.end.isoformat()} is checked again by the next scheduled run"
        )


def _exists(error: ClientError) -> bool:
    """SageMaker's answer to a job name in use."""
    code = error.response["Error"]["Code"]
    message = error.response["Error"].get("Message", "").lower()
    return code == "ResourceInUse" or (code == "ValidationException" and "unique" in message)


def _started(run: JobRun, settings: DriftSettings, request: dict[str, Any]) -> str:
    cluster = request["ProcessingResources"]["ClusterConfig"]
    return (
        f"{run.bytes / 1e6:,.0f} MB of capture in {run.files} files, above the "
        f"{settings.job_threshold_bytes / 1e6:,.0f} MB one function checks: processing job "
        f"{run.job} checks the window on {cluster['InstanceCount']} x {cluster['InstanceType']}; "
        "its verdict is recorded when the job ends"
    )
