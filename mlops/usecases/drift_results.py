"""What a drift check of one variant produces, however the window was read: the verdicts
(``record``: from the window's summary), the JSON result and Evidently's HTML report written
once under the run's names, and the outcome the caller acts on (metrics, notice).

The in-process check (mlops.usecases.check_drift) and a check run as a SageMaker Processing job
(mlops.usecases.drift_jobs) both end here, so their results are written alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mlops.adapters import local_files
from mlops.adapters.audit import write_once
from mlops.adapters.evidently_report import sample, with_verdict
from mlops.core.capture import GroundTruth
from mlops.core.finite import dumps, finite_or_none
from mlops.core.functions import DriftThresholds
from mlops.core.variant_check import (
    DRIFT,
    NOT_ENOUGH_DATA,
    SCORE,
    VariantDriftReport,
    check_summary,
)
from mlops.core.window_summary import WindowSummary
from mlops.usecases.drift_inputs import Reference
from pipeline_steps.schema import FEATURE_NAMES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# The status of a window handed to a Processing job: no verdict yet, it is recorded when the
# job ends (mlops.usecases.drift_jobs).
PENDING = "pending"


@dataclass(frozen=True, kw_only=True)
class RunFacts:
    """What one check of a variant's window is: whose window, at what weight, from when to
    when, in which run, judged how. Built once per check (scheduled, on demand, or handed to a
    Processing job and recorded when it ends) and passed to what judges and records it."""

    endpoint: str
    variant: str
    weight: float | None  # None: no endpoint weight (capture files)
    start: datetime
    end: datetime
    run_id: str
    thresholds: DriftThresholds


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
    job: str | None = None  # the SageMaker Processing job that checks (or checked) the window

    @property
    def drifted(self) -> bool:
        return self.report.status == DRIFT

    @property
    def pending(self) -> bool:
        """Handed to a Processing job: no verdict yet (nothing to emit or announce)."""
        return self.report.status == PENDING

    @classmethod
    def of(
        cls,
        run: RunFacts,
        *,
        package_arn: str,
        report: VariantDriftReport,
        files: int,
        labelled_events: int,
        json_uri: str = "",
        notes: list[str] | None = None,
        job: str | None = None,
    ) -> VariantOutcome:
        """The outcome of ``run``, with no HTML report (yet); a weight that is not a finite
        number is None."""
        return cls(
            endpoint=run.endpoint,
            variant=run.variant,
            package_arn=package_arn,
            weight=finite_or_none(run.weight),
            window_start=run.start,
            window_end=run.end,
            report=report,
            files=files,
            labelled_events=labelled_events,
            json_uri=json_uri,
            html_uri=None,
            notes=list(notes or ()),
            job=job,
        )

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
            "processing_job": self.job,
            "notes": self.notes,
            **self.report.as_dict(),
        }


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunSink:
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
            local_files.write_new(path, body)  # whole, and never over another result
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


def record(
    run: RunFacts,
    reference: Reference,
    summary: WindowSummary,
    labels: LabelFacts,
    *,
    skipped_files: list[str],
    sink: ReportSink,
    render_html: Callable[..., str] | None,
    job: str | None = None,
    notes: tuple[str, ...] = (),
) -> VariantOutcome:
    """A window's verdicts from its summary (one pass, or a Processing job's shards merged),
    its JSON result and HTML report written to ``sink`` under the run's names. ``job``: the
    Processing job that summarized the window; ``notes``: what the result should also say."""
    report = check_summary(
        run.variant,
        reference.features,
        summary,
        reference_scores=reference.scores,
        baseline_auc=reference.baseline_auc,
        thresholds=run.thresholds,
    )
    # Lines that were not capture records count as malformed too: by kind, with the first
    # examples of each kind (of the lines, then of the payloads), then the labels'.
    report.errors = report.errors + list(labels.errors)
    report.skipped_files = list(skipped_files)
    base = f"{run.variant}/{run.end:%Y/%m/%d}/{run.end:%Y%m%dT%H%M%SZ}-{run.run_id}"
    outcome = VariantOutcome.of(
        run,
        package_arn=reference.package_arn,
        report=report,
        files=summary.files,
        labelled_events=labels.events,
        notes=list(reference.notes)
        + ([f"{labels.malformed} malformed label line(s)"] if labels.malformed else []),
        job=job,
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
    if run.weight is not None and outcome.weight is None:
        outcome.notes.append(f"the variant's weight {run.weight!r} is not a finite number")
    outcome.notes += notes
    if report.status != NOT_ENOUGH_DATA and render_html is not None:
        html = _html(run, render_html, reference, summary, report)
        outcome.html_uri = sink.write_once(f"{base}.html", html, "text/html")
        outcome.duplicate = outcome.html_uri is None
    body = dumps(outcome.as_dict(), indent=2, default=_iso) + "\n"
    written = sink.write_once(f"{base}.json", body, "application/json")
    outcome.json_uri = written or f"{base}.json (exists: this run was recorded before)"
    outcome.duplicate = outcome.duplicate or written is None
    return outcome


def _html(
    run: RunFacts,
    render: Callable[..., str],
    reference: Reference,
    summary: WindowSummary,
    report: VariantDriftReport,
) -> str:
    thresholds = run.thresholds
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
    page = render(
        ref,
        current,
        columns=columns,
        title=f"{run.endpoint} / {report.variant}: data and prediction drift",
        sample_rows=thresholds.report_sample_rows,
        share_threshold=thresholds.share_threshold,
        distance_threshold=thresholds.distance_threshold,
    )
    # The rows the page's preset sees: evidently_html's sample of each side.
    shown = min(thresholds.report_sample_rows, len(next(iter(current.values()))))
    shown_ref = min(thresholds.report_sample_rows, len(next(iter(ref.values()))))
    return with_verdict(page, **verdict_header(run, reference, report, columns, shown, shown_ref))


def _package(arn: str) -> str:
    """``group/version`` of a model package ARN; anything else (a local model) as it is."""
    return "/".join(arn.rsplit("/", 2)[-2:]) if "model-package/" in arn else (arn or "-")


def verdict_header(
    run: RunFacts,
    reference: Reference,
    report: VariantDriftReport,
    columns: list[str],
    shown_rows: int,
    shown_reference_rows: int,
) -> dict[str, Any]:
    """The verdict of record for the top of Evidently's page: its title, facts and the caveat
    that its own column count and sample differ from the verdict's."""
    data, prediction, thresholds = report.data, report.prediction, run.thresholds
    features = len(data.columns) if data else 0
    drifted = [c.column for c in data.columns if c.drifted] if data else []
    share = (
        "-" if data is None else f"{data.drift_share:.2f} ({len(drifted)} of {features} features)"
    )
    title = f"{run.endpoint} / {report.variant}: {report.status}, drift share {share}"
    facts = [
        ("verdict of record", report.status),
        ("drift share", share),
        ("drifted features", ", ".join(drifted) or "none"),
        ("prediction drift", "-" if prediction is None else
         f"{prediction.test} {prediction.score:.4g} (threshold {prediction.threshold:g}): "
         + ("drift" if prediction.drifted else "no drift")),
        ("window", f"{_iso(run.start)} to {_iso(run.end)} (run {run.run_id})"),
        ("model", f"{_package(reference.package_arn)} ({reference.package_arn or '-'})"),
        ("thresholds", f"dataset drift at a share of {thresholds.share_threshold:g} or more; "
         f"distance {thresholds.distance_threshold:g}; at least {thresholds.min_rows} rows"),
        ("rows", f"{report.rows} rows checked for the verdict; this page: {shown_rows} of them "
         f"(sampled, seeded) against {shown_reference_rows} reference rows"),
    ]  # fmt: skip
    extra = [c for c in columns if c not in {col.column for col in data.columns}] if data else []
    caveat = (
        f"the verdict above is of record: {features} features tested over all {report.rows} "
        f"rows of the window. Evidently's report below counts {len(columns)} columns"
        + (f" (the {features} features and {', '.join(extra)})" if extra else "")
        + f" and runs on a sample of {shown_rows} rows, so its share of drifted columns can "
        "differ from the verdict's (the prediction column is judged separately above)."
    )
    return {"title": title, "facts": facts, "caveat": caveat}
