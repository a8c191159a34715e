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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from botocore.exceptions import ClientError

from mlops.adapters import s3io
from mlops.adapters.audit import write_once
from mlops.adapters.capture_store import CaptureWindow, hour_prefixes, read_window
from mlops.adapters.endpoints import EndpointNotFound
from mlops.adapters.evidently_report import evidently_html, sample
from mlops.adapters.registry import PackageLineage, model_package_of
from mlops.core import names
from mlops.core.capture import GroundTruth, read_ground_truth
from mlops.core.finite import dumps, finite_or_none
from mlops.core.functions import DriftSettings, DriftThresholds
from mlops.core.variant_check import (
    DRIFT,
    NOT_ENOUGH_DATA,
    SCORE,
    VariantDriftReport,
    check_summary,
)
from mlops.core.window_summary import WindowSummary
from mlops.usecases.drift_inputs import (
    REFERENCE_FILE,
    SCORES_FILE,
    Reference,
    ReferenceDataError,
    read_columns,
)
from pipeline_steps.schema import FEATURE_NAMES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

log = logging.getLogger(__name__)

REPORT_PREFIX = names.DRIFT_REPORTS_PREFIX


class DriftCheckFailed(RuntimeError):
    """Some variants could not be checked; the others' outcomes are attached."""

    def __init__(self, message: str, outcomes: list[VariantOutcome]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


@dataclass
class VariantOutcome:
    endpoint: str
    variant: str
    package_arn: str
    weight: float | None  # None: no endpoint weight (capture files), or not a finite number
    window_start: datetime
    window_end: datetime
    report: VariantDriftReport
    files: int
    labelled_events: int
    json_uri: str
    html_uri: str | None
    duplicate: bool = False  # this run's reports existed already (a redelivered event)
    already_checked: bool = False  # nothing new since the last check: no verdict, no metrics
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.report.status == DRIFT

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "variant": self.variant,
            "model_package_arn": self.package_arn,
            "weight": self.weight,
            "window": {"start": _iso(self.window_start), "end": _iso(self.window_end)},
            "capture_files": self.files,
            "labelled_events": self.labelled_events,
            "report_html": self.html_uri,
            "notes": self.notes,
            **self.report.as_dict(),
        }


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    def _state_key(self, variant: str) -> str:
        return f"{REPORT_PREFIX}/{self.settings.endpoint_name}/{variant}/state.json"

    def window(self, variant: str, package_arn: str, now: datetime) -> tuple[datetime, datetime]:
        """From the end of the last check of this variant's model (if any) up to now, less the
        capture delay."""
        end = now - self.settings.capture_delay
        start = end - self.settings.first_window
        text = self._text(f"s3://{self.settings.reports_bucket}/{self._state_key(variant)}")
        if text:
            state = json.loads(text)
            if state.get("model_package_arn") == package_arn:
                start = datetime.fromisoformat(state["checked_until"])
        return max(start, end - self.settings.max_window), end

    def _save_state(self, variant: str, package_arn: str, checked_until: datetime) -> None:
        state = {"model_package_arn": package_arn, "checked_until": checked_until.isoformat()}
        self.s3.put_object(
            Bucket=self.settings.reports_bucket,
            Key=self._state_key(variant),
            Body=dumps(state).encode(),
            ContentType="application/json",
        )

    def _labels(self, start: datetime, end: datetime) -> GroundTruth:
        labels = GroundTruth()
        if not self.settings.ground_truth_uri:
            return labels
        bucket, base = s3io.split_uri(self.settings.ground_truth_uri)
        for prefix in hour_prefixes(base, self.settings.endpoint_name, "", start, end):
            for key in s3io.list_keys(self.s3, bucket, prefix):
                body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                read_ground_truth(body, source=key, into=labels)  # the capture files' rules
        return labels

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
        """The scheduled check: the window since the last one, reports to the reports bucket."""
        start, end = self.window(variant, package_arn, now)
        if start >= end:
            # A redelivered (or late) schedule event: this variant is checked up to ``start``
            # already. Its result was written under the same name, so this is recorded as a
            # duplicate; a late event leaves a "nothing new" record. The state stays put.
            sink = self._run_sink()
            outcome = evaluate(
                self.settings.endpoint_name, self.settings.thresholds,
                self.reference(package_arn), CaptureWindow(), GroundTruth(),
                variant=variant, weight=weight, start=end, end=end, run_id=run_id,
                sink=sink, render_html=None,
            )  # fmt: skip
            outcome.duplicate = not sink.written
            outcome.notes.append(f"already checked up to {_iso(start)}: nothing new to check")
            outcome.already_checked = True
            return outcome
        try:
            sink = self._run_sink()
            outcome = self.check_window(
                variant, package_arn, weight, start=start, end=end, run_id=run_id, sink=sink
            )
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

    def sink(self) -> S3Sink:
        return S3Sink(
            self.s3, self.settings.reports_bucket, f"{REPORT_PREFIX}/{self.settings.endpoint_name}"
        )

    def _run_sink(self) -> _RunSink:
        return _RunSink(
            self.s3, self.settings.reports_bucket, f"{REPORT_PREFIX}/{self.settings.endpoint_name}"
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
    ) -> VariantOutcome:
        """A variant's capture between ``start`` and ``end`` against its model's reference."""
        settings = self.settings
        reference = self.reference(package_arn)
        captured: CaptureWindow = read_window(
            self.s3, settings.capture_uri, settings.endpoint_name, variant, start, end
        )
        return evaluate(
            settings.endpoint_name,
            settings.thresholds,
            reference,
            captured,
            self._labels(start, end),
            variant=variant,
            weight=weight,
            start=start,
            end=end,
            run_id=run_id,
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


@dataclass
class _RunSink:
    """A scheduled run's reports in S3, each written once. A name that exists answers with its
    URI all the same: names carry the run's id and window, so it is this run's own, written by
    an attempt that failed later. The retry's result then links the report that attempt wrote,
    and its notice links both; ``written`` says what this attempt added."""

    s3: S3Client
    bucket: str
    prefix: str
    written: list[str] = field(default_factory=list)

    def write_once(self, name: str, body: str, content_type: str) -> str:
        key = "/".join(p for p in (self.prefix.strip("/"), name) if p)
        if write_once(self.s3, self.bucket, key, body, content_type):
            self.written.append(key)
        return f"s3://{self.bucket}/{key}"


class ReportSink(Protocol):
    """Where results and reports go; a name is written once, never overwritten."""

    def write_once(self, name: str, body: str, content_type: str) -> str | None:
        """The written object's URI, or None if ``name`` exists already."""
        ...


@dataclass(frozen=True)
class S3Sink:
    s3: S3Client
    bucket: str
    prefix: str

    def write_once(self, name: str, body: str, content_type: str) -> str | None:
        key = "/".join(p for p in (self.prefix.strip("/"), name) if p)
        if not write_once(self.s3, self.bucket, key, body, content_type):
            return None
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True)
class LocalSink:
    folder: Path

    def write_once(self, name: str, body: str, content_type: str) -> str | None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x", encoding="utf-8") as handle:  # "x": never overwrite
                handle.write(body)
        except FileExistsError:
            return None
        return str(path)


@dataclass(frozen=True)
class LabelFacts:
    """What a result says of the window's ground truth: how many events had labels, and the
    label lines that were malformed (the labels themselves are in the window's summary)."""

    events: int = 0
    malformed: int = 0
    errors: tuple[str, ...] = ()

    @classmethod
    def of(cls, labels: GroundTruth) -> LabelFacts:
        return cls(len(labels.labels), labels.malformed, tuple(labels.errors))


def evaluate(
    endpoint: str,
    thresholds: DriftThresholds,
    reference: Reference,
    captured: CaptureWindow,
    labels: GroundTruth,
    *,
    variant: str,
    weight: float | None,
    start: datetime,
    end: datetime,
    run_id: str,
    sink: ReportSink,
    render_html: Callable[..., str] | None,
) -> VariantOutcome:
    """The check of one variant's window, its JSON result and HTML report written to ``sink``:
    the window summarized in one pass, then judged as a merge of shards is (``record``)."""
    summary = captured.summary(labels=labels.labels, sample_rows=thresholds.report_sample_rows)
    return record(
        endpoint,
        thresholds,
        reference,
        summary,
        LabelFacts.of(labels),
        skipped_files=captured.skipped_files,
        variant=variant,
        weight=weight,
        start=start,
        end=end,
        run_id=run_id,
        sink=sink,
        render_html=render_html,
    )


def record(
    endpoint: str,
    thresholds: DriftThresholds,
    reference: Reference,
    summary: WindowSummary,
    labels: LabelFacts,
    *,
    skipped_files: list[str],
    variant: str,
    weight: float | None,
    start: datetime,
    end: datetime,
    run_id: str,
    sink: ReportSink,
    render_html: Callable[..., str] | None,
) -> VariantOutcome:
    """A window's verdicts from its summary (one pass, or a Processing job's shards merged),
    its JSON result and HTML report written to ``sink`` under the run's names."""
    report = check_summary(
        variant,
        reference.features,
        summary,
        reference_scores=reference.scores,
        baseline_auc=reference.baseline_auc,
        thresholds=thresholds,
    )
    # Lines that were not capture records count as malformed too: by kind, with the first
    # examples of each kind (of the lines, then of the payloads), then the labels'.
    report.errors = report.errors + list(labels.errors)
    report.skipped_files = list(skipped_files)
    base = f"{variant}/{end:%Y/%m/%d}/{end:%Y%m%dT%H%M%SZ}-{run_id}"
    outcome = VariantOutcome(
        endpoint=endpoint,
        variant=variant,
        package_arn=reference.package_arn,
        weight=finite_or_none(weight),
        window_start=start,
        window_end=end,
        report=report,
        files=summary.files,
        labelled_events=labels.events,
        json_uri="",
        html_uri=None,
        notes=list(reference.notes)
        + ([f"{labels.malformed} malformed label line(s)"] if labels.malformed else []),
    )
    if report.malformed_files:
        outcome.notes.append(
            f"{len(report.malformed_files)} capture file(s) could not be read, none of their "
            "records checked: see malformed_files"
        )
    if skipped_files:
        outcome.notes.append(
            f"{len(skipped_files)} file(s) skipped, not capture files (*.jsonl, "
            "*.jsonl.gz): see skipped_files"
        )
    if weight is not None and outcome.weight is None:
        outcome.notes.append(f"the variant's weight {weight!r} is not a finite number")
    if report.status != NOT_ENOUGH_DATA and render_html is not None:
        html = _html(endpoint, thresholds, render_html, reference, summary, report)
        outcome.html_uri = sink.write_once(f"{base}.html", html, "text/html")
        outcome.duplicate = outcome.html_uri is None
    body = dumps(outcome.as_dict(), indent=2, default=_iso) + "\n"
    written = sink.write_once(f"{base}.json", body, "application/json")
    outcome.json_uri = written or f"{base}.json (exists: this run was recorded before)"
    outcome.duplicate = outcome.duplicate or written is None
    return outcome


def _html(
    endpoint: str,
    thresholds: DriftThresholds,
    render: Callable[..., str],
    reference: Reference,
    summary: WindowSummary,
    report: VariantDriftReport,
) -> str:
    ref: dict[str, np.ndarray] = dict(reference.features)
    # The window's rows in the report: the summary's sample (at most report_sample_rows rows,
    # the same ones however the window was split into shards).
    current: dict[str, np.ndarray] = summary.sample.columns()
    columns = list(FEATURE_NAMES)
    if reference.scores is not None and len(reference.scores):
        # The reference scores come from the test split, the features from the training
        # split: one table of equal columns, each drawn at random from its own source
        # (every test is per column, so the pairing of values in a row carries nothing).
        # As many rows as the larger source (up to the report's sample), the smaller one drawn
        # with replacement: a short test split must not shrink the reference to a size where
        # Evidently would switch from distance tests to p-values.
        rows = min(
            thresholds.report_sample_rows, max(len(reference.scores), len(next(iter(ref.values()))))
        )
        ref = sample(ref, rows, seed=1, replace=True)
        ref[SCORE] = sample({SCORE: reference.scores}, rows, seed=2, replace=True)[SCORE]
        current[SCORE] = summary.sample.scores.copy()
        columns.append(SCORE)
    return render(
        ref,
        current,
        columns=columns,
        title=f"{endpoint} / {report.variant}: data and prediction drift",
        sample_rows=thresholds.report_sample_rows,
        share_threshold=thresholds.share_threshold,
        distance_threshold=thresholds.distance_threshold,
    )
