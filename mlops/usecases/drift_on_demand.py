"""A drift check on demand (``mlops drift check``): an endpoint's variants, or capture files.

The scheduled check (``DriftMonitor.run``) chooses its own window, from where the last check
ended, and keeps state. A check on demand looks at the window it is given, keeps no state,
and writes its results where it is told: a folder or an S3 prefix; by default the reports
bucket for an endpoint, ./drift-reports for capture files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from mlops.adapters import s3io
from mlops.adapters.evidently_report import evidently_html
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core.capture import GroundTruth
from mlops.core.config import PlatformConfig
from mlops.core.functions import DriftSettings, DriftThresholds
from mlops.usecases.check_drift import (
    DriftMonitor,
    LocalSink,
    ReportSink,
    RunFacts,
    S3Sink,
    VariantOutcome,
    evaluate,
)
from mlops.usecases.drift_inputs import ReferenceDataError, load_capture, load_reference

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_FOLDER = Path("drift-reports")  # capture files' results, without an output given


class DriftRequestError(Exception):
    """The check is asked for wrongly (a usage error): a malformed or empty window, a variant
    the endpoint does not have."""


class EndpointUnreadable(RuntimeError):
    """The endpoint cannot be described (not deployed, no permission)."""


# What stops a check with a message rather than a traceback: unreadable or missing inputs.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    ReferenceDataError,
    EndpointUnreadable,
    FileNotFoundError,
    ValueError,
)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    start_given: bool  # False: capture files are checked from their own first record
    end_given: bool  # False: ... to their own last record


def _when(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DriftRequestError(
            f"{what} must be an ISO time such as 2026-11-26T14:00Z, got {value!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _duration(value: str) -> timedelta:
    match = re.fullmatch(r"(\d+)\s*([mhd])", value.strip())
    if not match or int(match.group(1)) == 0:
        raise DriftRequestError(f"--last must look like 30m, 6h or 2d, got {value!r}")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def window(since: str | None, until: str | None, last: str) -> Window:
    """From ``since`` (default: ``last`` before the end) to ``until`` (default: now), in UTC;
    times without a zone are UTC."""
    end = _when(until, "--until") or datetime.now(UTC)
    start = _when(since, "--since") or end - _duration(last)
    if end <= start:
        raise DriftRequestError(
            f"the window is empty: --since {start.isoformat()} is not before {end.isoformat()}"
        )
    return Window(start, end, start_given=since is not None, end_given=until is not None)


@dataclass
class OnDemandCheck:
    """One check: its endpoint, config (thresholds), window and where its results go."""

    endpoint: str
    config: PlatformConfig
    window: Window
    run_id: str
    target: AwsTarget | None = None  # None: every location given is local
    output: str | None = None  # a folder or an s3:// prefix
    html: bool = True  # render Evidently's HTML report
    s3: S3Client | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.s3 = self.target.client("s3") if self.target else None

    def sink(self, default: ReportSink) -> ReportSink:
        if self.output and self.output.startswith("s3://"):
            if self.s3 is None:
                raise ValueError(f"{self.output} is in S3: an AWS target is needed")
            bucket, prefix = s3io.split_uri(self.output)
            return S3Sink(self.s3, bucket, prefix)
        return LocalSink(Path(self.output)) if self.output else default

    def capture_files(
        self, capture: str, reference: str, scores: str | None, variant: str
    ) -> list[VariantOutcome]:
        """Capture files (a folder or S3 prefix of .jsonl) against a given reference.csv, and
        optionally the model's scores.csv (for prediction drift), as one variant's."""
        given = load_reference(reference, self.s3, scores_location=scores)
        span = self.window
        captured = load_capture(
            capture,
            self.s3,
            start=span.start if span.start_given else None,
            end=span.end if span.end_given else None,
        )
        # Ends not given are the files' own span, not "the last hour" before now.
        start, end = span.start, span.end
        if not span.start_given and captured.first is not None:
            start = captured.first
        if not span.end_given and captured.last is not None:
            end = captured.last + timedelta(seconds=1)
        run = RunFacts(
            endpoint=self.endpoint,
            variant=variant,
            weight=None,  # capture files: no endpoint, no weight (null in the result)
            start=start,
            end=end,
            run_id=self.run_id,
            thresholds=DriftThresholds.from_config(self.config),
        )
        outcome = evaluate(
            run,
            given,
            captured,
            GroundTruth(),
            sink=self.sink(LocalSink(DEFAULT_FOLDER)),
            render_html=evidently_html if self.html else None,
        )
        return [outcome]

    def endpoint_variants(
        self,
        resources: PlatformResources | None,
        variants: Sequence[str] = (),
        *,
        on_outcome: Callable[[VariantOutcome], None] | None = None,
    ) -> list[VariantOutcome]:
        """The endpoint's variants (``variants``, or all), each against the reference of the
        model package it serves; results in the reports bucket unless an output is given.
        ``on_outcome`` hears of each variant's outcome as it is checked (progress)."""
        if self.target is None or self.s3 is None or resources is None:
            raise ValueError("checking an endpoint needs an AWS target")
        settings = DriftSettings.for_platform(
            self.config,
            reports_bucket=resources.reports_bucket,
            capture_bucket=resources.capture_bucket,
            topic_arn=None,
        ).model_copy(
            # Data and prediction drift on demand; concept drift (labels) is the schedule's.
            update={"endpoint_name": self.endpoint, "ground_truth_uri": None}
        )
        monitor = DriftMonitor(
            sagemaker=self.target.client("sagemaker"),
            s3=self.s3,
            settings=settings,
            html_report=self.html,
        )
        try:
            serving = monitor.serving()
        except ClientError as exc:
            raise EndpointUnreadable(
                f"endpoint {self.endpoint}: {exc.response['Error']['Message']}"
            ) from None
        unknown = set(variants) - set(serving)
        if unknown:
            raise DriftRequestError(
                f"no variant {', '.join(sorted(unknown))} on {self.endpoint} "
                f"(it has {', '.join(sorted(serving))})"
            )
        span = self.window
        outcomes = []
        for variant, (package, weight) in sorted(serving.items()):
            if variants and variant not in variants:
                continue
            outcome = monitor.check_window(
                variant,
                package,
                weight,
                start=span.start,
                end=span.end,
                run_id=self.run_id,
                sink=self.sink(monitor.sink()),
            )
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        return outcomes
