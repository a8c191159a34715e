"""The scheduled drift check of an endpoint: every variant, over the capture since its last check.

An adapter over S3 and SageMaker around the pure check (mlops.core.variant_check). For each variant:

1. the model package it serves (endpoint -> endpoint config -> model -> ModelPackageName) and,
   through the package's lineage metadata, the reference data the preprocess step wrote, the
   test-set scores and the AUC the evaluate step measured;
2. the window: from where the last check of this variant and package ended (state in the
   reports bucket) to now, at most ``max_window`` long. A window with too few rows is
   reported as "not enough data" and the next run extends it instead of skipping those rows;
3. the captured records of the window, and ground-truth labels filed under its hours;
4. the verdicts over every row, and Evidently's HTML report over a sample; both written under
   time-stamped keys that are never overwritten (If-None-Match).

The same class runs in the drift Lambda, in ``mlops drift check`` and on the embedded default.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mlops.adapters import s3io
from mlops.adapters.capture_store import (
    CaptureWindow,
    WindowListing,
    hour_prefixes,
    list_window,
    read_window,
)
from mlops.adapters.endpoints import EndpointNotFound
from mlops.adapters.evidently_report import evidently_html
from mlops.adapters.registry import PackageLineage, model_package_of
from mlops.core import names
from mlops.core.capture import GroundTruth, read_ground_truth
from mlops.core.finite import finite_or_none
from mlops.core.functions import DriftSettings
from mlops.core.variant_check import NOT_ENOUGH_DATA, SCORE
from mlops.usecases.drift_inputs import (
    REFERENCE_FILE,
    SCORES_FILE,
    Reference,
    ReferenceDataError,
    read_columns,
)
from mlops.usecases.drift_jobs import DriftJobs, StateStore
from mlops.usecases.drift_results import (
    LabelFacts,
    LocalSink,
    ReportSink,
    RunFacts,
    RunSink,
    S3Sink,
    VariantOutcome,
    _iso,
    record,
)
from pipeline_steps.schema import FEATURE_NAMES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

# Where callers have always found them.
__all__ = [
    "DriftCheckFailed",
    "DriftMonitor",
    "LabelFacts",
    "LocalSink",
    "ReportSink",
    "RunFacts",
    "S3Sink",
    "VariantOutcome",
    "evaluate",
    "record",
]

log = logging.getLogger(__name__)

REPORT_PREFIX = names.DRIFT_REPORTS_PREFIX


class DriftCheckFailed(RuntimeError):
    """Some variants could not be checked; the others' outcomes are attached."""

    def __init__(self, message: str, outcomes: list[VariantOutcome]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


class DriftMonitor:
    def __init__(
        self,
        *,
        sagemaker: SageMakerClient,
        s3: S3Client,
        settings: DriftSettings,
        render_html: Callable[..., str] | None = None,
        html_report: bool = True,
    ) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.settings = settings
        self._references: dict[str, Reference] = {}
        if render_html is None and html_report:
            render_html = evidently_html  # Evidently itself loads on the first report
        self.render_html = render_html

    # -- what serves -------------------------------------------------------------------------
    def serving(self) -> dict[str, tuple[str, float]]:
        """Variant -> (model package ARN, current weight) of the endpoint."""
        name = self.settings.endpoint_name
        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            # SageMaker's answer for an endpoint that does not exist (yet: no champion).
            if exc.response["Error"]["Code"] == "ValidationException":
                raise EndpointNotFound(f"endpoint {name!r} does not exist") from None
            raise
        config = self.sagemaker.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]
        )
        weights = {
            v["VariantName"]: float(v.get("CurrentWeight", 0.0))
            for v in endpoint.get("ProductionVariants", [])
        }
        serving: dict[str, tuple[str, float]] = {}
        for variant in config["ProductionVariants"]:
            package = model_package_of(self.sagemaker, variant["ModelName"])
            if not package:
                raise ReferenceDataError(
                    f"variant {variant['VariantName']} serves model {variant['ModelName']}, "
                    "which is not a registered model package: no reference to check against"
                )
            name = variant["VariantName"]
            serving[name] = (package, weights.get(name, float(variant["InitialVariantWeight"])))
        return serving

    # -- the model's reference -----------------------------------------------------------------
    def _text(self, uri: str) -> str | None:
        """The object's text, or None if there is none. Listed first: with ListBucket granted
        on a prefix only, S3 answers GetObject on a missing key with 403, not 404."""
        bucket, key = s3io.split_uri(uri)
        if not s3io.exists(self.s3, bucket, key):
            return None
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return str(body.decode("utf-8"))

    def reference(self, package_arn: str) -> Reference:
        if package_arn in self._references:
            return self._references[package_arn]
        lineage = PackageLineage.from_description(
            self.sagemaker.describe_model_package(ModelPackageName=package_arn)
        )
        if not lineage.reference_data_uri:
            raise ReferenceDataError(
                f"model package {package_arn} has no reference_data_uri metadata"
            )
        uri = s3io.join(lineage.reference_data_uri, REFERENCE_FILE)
        text = self._text(uri)
        if text is None:
            raise ReferenceDataError(f"reference data {uri} (of {package_arn}) does not exist")
        reference = Reference(
            package_arn, uri, read_columns(text, FEATURE_NAMES, source=uri), None, None
        )
        if lineage.evaluation_uri:
            evaluation = self._text(lineage.evaluation_uri)
            if evaluation is not None:
                metrics = json.loads(evaluation).get("binary_classification_metrics", {})
                auc = metrics.get("auc", {}).get("value")
                reference.baseline_auc = finite_or_none(auc)
                if auc is not None and reference.baseline_auc is None:
                    reference.notes.append(f"AUC {auc!r} is not a finite number: no concept drift")
            scores_uri = lineage.evaluation_uri.rsplit("/", 1)[0] + "/" + SCORES_FILE
            scores = self._text(scores_uri)
            if scores is not None:
                reference.scores = read_columns(scores, (SCORE,), source=scores_uri)[SCORE]
            else:
                reference.notes.append(f"no {scores_uri}: prediction drift not checked")
        else:
            reference.notes.append("the package has no evaluation: prediction drift not checked")
        self._references[package_arn] = reference
        return reference

    # -- windows -------------------------------------------------------------------------------
    @property
    def states(self) -> StateStore:
        return StateStore(self.s3, self.settings.reports_bucket, self.settings.endpoint_name)

    def window(self, variant: str, package_arn: str, now: datetime) -> tuple[datetime, datetime]:
        """From the end of the last check of this variant's model (if any) up to now, less the
        capture delay."""
        return self._window(self.states.read(variant), package_arn, now)

    def _window(
        self, state: dict[str, Any] | None, package_arn: str, now: datetime
    ) -> tuple[datetime, datetime]:
        end = now - self.settings.capture_delay
        start = end - self.settings.first_window
        if state and state.get("model_package_arn") == package_arn:
            start = datetime.fromisoformat(state["checked_until"])
        return max(start, end - self.settings.max_window), end

    def _save_state(self, variant: str, package_arn: str, checked_until: datetime) -> None:
        self.states.save(variant, package_arn, checked_until)

    def labels(self, start: datetime, end: datetime) -> GroundTruth:
        labels = GroundTruth()
        if not self.settings.ground_truth_uri:
            return labels
        bucket, base = s3io.split_uri(self.settings.ground_truth_uri)
        for prefix in hour_prefixes(base, self.settings.endpoint_name, "", start, end):
            for key in s3io.list_keys(self.s3, bucket, prefix):
                body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                read_ground_truth(body, source=key, into=labels)  # the capture files' rules
        return labels

    _labels = labels  # its earlier name

    # -- the check -------------------------------------------------------------------------------
    def check(
        self,
        variant: str,
        package_arn: str,
        weight: float,
        *,
        now: datetime,
        run_id: str,
        on_outcome: Callable[[VariantOutcome], None] | None = None,
    ) -> VariantOutcome:
        """The scheduled check: the window since the last one, reports to the reports bucket.
        A window with more capture than one function checks goes to a Processing job
        (mlops.usecases.drift_jobs): the outcome is "pending" until the job ends."""
        jobs = DriftJobs(self)
        state = self.states.read(variant)
        job = jobs.job_of(state, package_arn)
        if job is not None:
            return jobs.follow(job, variant=variant, on_outcome=on_outcome)
        start, end = self._window(state, package_arn, now)
        if start >= end:
            # A redelivered (or late) schedule event: this variant is checked up to ``start``
            # already. Its result was written under the same name, so this is recorded as a
            # duplicate; a late event leaves a "nothing new" record. The state stays put.
            sink = self._run_sink()
            outcome = evaluate(
                self.facts(variant, weight, start=end, end=end, run_id=run_id),
                self.reference(package_arn), CaptureWindow(), GroundTruth(),
                sink=sink, render_html=None,
            )  # fmt: skip
            outcome.duplicate = not sink.written
            outcome.notes.append(f"already checked up to {_iso(start)}: nothing new to check")
            outcome.already_checked = True
            return outcome
        run = self.facts(variant, weight, start=start, end=end, run_id=run_id)
        try:
            settings = self.settings
            listing = list_window(
                self.s3, settings.capture_uri, settings.endpoint_name, variant, start, end
            )
            if jobs.wanted(listing):
                return jobs.start(run, package_arn=package_arn, listing=listing)
            sink = self._run_sink()
            outcome = self._check_window(run, package_arn, sink=sink, listing=listing)
            # A retry of a run that failed after writing (at the notice, the state) finds its
            # reports: the outcome links them all the same, and is a duplicate if it wrote none.
            outcome.duplicate = not sink.written
            # The caller acts (metrics, notice) before the window is marked as checked: a run
            # that fails in between leaves the window to the next run, which acts again.
            if on_outcome is not None:
                on_outcome(outcome)
        except Exception:
            # Anchored at its start: a first window (no state yet) must not slide on, losing rows.
            with contextlib.suppress(Exception):
                self._save_state(variant, package_arn, start)
            raise
        # Too little data: keep the start, so the next window gathers these rows too.
        checked = outcome.report.status != NOT_ENOUGH_DATA
        self._save_state(variant, package_arn, end if checked else start)
        return outcome

    def finish_job(
        self, job: str, *, on_outcome: Callable[[VariantOutcome], None] | None = None
    ) -> VariantOutcome | None:
        """A check's Processing job ended: its verdict recorded (None: nothing to record)."""
        return DriftJobs(self).finish(job, on_outcome=on_outcome)

    def sink(self) -> S3Sink:
        return S3Sink(
            self.s3, self.settings.reports_bucket, f"{REPORT_PREFIX}/{self.settings.endpoint_name}"
        )

    def _run_sink(self) -> RunSink:
        return RunSink(
            self.s3, self.settings.reports_bucket, f"{REPORT_PREFIX}/{self.settings.endpoint_name}"
        )

    def facts(
        self, variant: str, weight: float | None, *, start: datetime, end: datetime, run_id: str
    ) -> RunFacts:
        """A check of this endpoint's ``variant`` over ``start`` - ``end``, by its settings."""
        return RunFacts(
            endpoint=self.settings.endpoint_name,
            variant=variant,
            weight=weight,
            start=start,
            end=end,
            run_id=run_id,
            thresholds=self.settings.thresholds,
        )

    def check_window(
        self,
        variant: str,
        package_arn: str,
        weight: float,
        *,
        start: datetime,
        end: datetime,
        run_id: str,
        sink: ReportSink,
        listing: WindowListing | None = None,
    ) -> VariantOutcome:
        """A variant's capture between ``start`` and ``end`` against its model's reference, in
        this process (``listing``: the window's files, if listed already)."""
        run = self.facts(variant, weight, start=start, end=end, run_id=run_id)
        return self._check_window(run, package_arn, sink=sink, listing=listing)

    def _check_window(
        self,
        run: RunFacts,
        package_arn: str,
        *,
        sink: ReportSink,
        listing: WindowListing | None = None,
    ) -> VariantOutcome:
        settings = self.settings
        reference = self.reference(package_arn)
        captured: CaptureWindow = read_window(
            self.s3, settings.capture_uri, settings.endpoint_name, run.variant, run.start,
            run.end, listing=listing,
        )  # fmt: skip
        return evaluate(
            run,
            reference,
            captured,
            self.labels(run.start, run.end),
            sink=sink,
            render_html=self.render_html,
        )

    def run(
        self,
        *,
        now: datetime,
        run_id: str,
        on_outcome: Callable[[VariantOutcome], None] | None = None,
    ) -> list[VariantOutcome]:
        """Check every variant that takes traffic or could (a weight-0 challenger too).

        One variant's failure does not stop the others' checks; it is raised at the end (so
        the invocation fails, is retried, and its errors alarm)."""
        outcomes: list[VariantOutcome] = []
        failures: list[str] = []
        for variant, (package, weight) in sorted(self.serving().items()):
            try:
                outcomes.append(
                    self.check(variant, package, weight, now=now, run_id=run_id,
                               on_outcome=on_outcome)
                )  # fmt: skip
            except Exception as exc:
                log.exception("drift check of %s failed", variant)
                failures.append(f"{variant}: {type(exc).__name__}: {exc}")
        if failures:
            raise DriftCheckFailed(
                f"{len(failures)} variant check(s) failed: {'; '.join(failures)}", outcomes
            )
        return outcomes


def evaluate(
    run: RunFacts,
    reference: Reference,
    captured: CaptureWindow,
    labels: GroundTruth,
    *,
    sink: ReportSink,
    render_html: Callable[..., str] | None,
) -> VariantOutcome:
    """The check of one variant's window, its JSON result and HTML report written to ``sink``:
    the window summarized in one pass, then judged as a merge of shards is (``record``)."""
    sample_rows = run.thresholds.report_sample_rows
    summary = captured.summary(labels=labels.labels, sample_rows=sample_rows)
    return record(
        run,
        reference,
        summary,
        LabelFacts.of(labels),
        skipped_files=captured.skipped_files,
        sink=sink,
        render_html=render_html,
    )
