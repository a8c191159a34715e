"""Drift Lambda: the scheduled drift check of the endpoint's variants, and retraining on drift.

Triggers:
- the EventBridge schedule ("Scheduled Event"): check every variant over the capture since its
  last check; write the JSON result and Evidently's HTML report to the reports bucket; emit
  the metrics (embedded metric format) the drift alarms watch; notify when a variant drifts.
  The event's time and id name the run, so a redelivered event writes nothing twice;
  a variant that cannot be checked fails the invocation (after the others are checked).
- the champion's drift alarm going to ALARM ("CloudWatch Alarm State Change"): start the
  training pipeline, once per episode, at most once per cooldown (only when enabled).
- a direct invocation {"action": "check"} (console test event, ``mlops drift scheduled``).

Runs with reserved concurrency 1: two checks never race on the same window state.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from mlops.drift_monitor import DriftMonitor, MonitorSettings, VariantOutcome
from mlops.retraining import retrain_on_drift
from mlops.traffic import CHAMPION, DRIFT_ALARM, endpoint_of_alarm

logger = Logger(service="drift")
NAMESPACE = "MLOps/Drift"


class Settings(BaseModel):
    """The function's environment (set by the serving stack), validated on every invocation."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str = Field(min_length=1, alias="ENDPOINT_NAME")
    reports_bucket: str = Field(min_length=3, alias="REPORTS_BUCKET")
    capture_uri: str = Field(pattern=r"^s3://", alias="CAPTURE_URI")
    ground_truth_uri: str | None = Field(default=None, alias="GROUND_TRUTH_URI")
    topic_arn: str | None = Field(default=None, alias="TOPIC_ARN")
    min_rows: int = Field(default=1000, ge=1, alias="MIN_ROWS")
    share_threshold: float = Field(default=0.5, gt=0, le=1, alias="SHARE_THRESHOLD")
    distance_threshold: float = Field(default=0.1, gt=0, le=1, alias="DISTANCE_THRESHOLD")
    quality_tolerance: float = Field(default=0.05, ge=0, le=1, alias="QUALITY_TOLERANCE")
    report_sample_rows: int = Field(default=10_000, ge=100, alias="REPORT_SAMPLE_ROWS")
    first_window_minutes: int = Field(default=60, ge=1, alias="FIRST_WINDOW_MINUTES")
    max_window_hours: int = Field(default=24, ge=1, alias="MAX_WINDOW_HOURS")
    capture_delay_minutes: int = Field(default=5, ge=0, alias="CAPTURE_DELAY_MINUTES")
    pipeline_name: str | None = Field(default=None, alias="PIPELINE_NAME")
    retrain_on_champion_drift: bool = Field(default=False, alias="RETRAIN_ON_CHAMPION_DRIFT")
    retrain_cooldown_hours: int = Field(default=24, ge=1, alias="RETRAIN_COOLDOWN_HOURS")

    @classmethod
    def from_environment(cls) -> Settings:
        return cls.model_validate({k: v for k, v in os.environ.items() if v != ""})

    def monitor(self) -> MonitorSettings:
        return MonitorSettings(
            endpoint=self.endpoint,
            reports_bucket=self.reports_bucket,
            capture_uri=self.capture_uri,
            ground_truth_uri=self.ground_truth_uri,
            min_rows=self.min_rows,
            share_threshold=self.share_threshold,
            distance_threshold=self.distance_threshold,
            quality_tolerance=self.quality_tolerance,
            report_sample_rows=self.report_sample_rows,
            first_window=timedelta(minutes=self.first_window_minutes),
            max_window=timedelta(hours=self.max_window_hours),
            capture_delay=timedelta(minutes=self.capture_delay_minutes),
        )


def _event_time(event: dict[str, Any]) -> datetime:
    when = event.get("time")
    if not when:
        return datetime.now(UTC)
    return datetime.fromisoformat(str(when).replace("Z", "+00:00")).astimezone(UTC)


def emit_metrics(outcome: VariantOutcome) -> None:
    """One EMF record per variant, stamped with the window's end (what the alarms read)."""
    report = outcome.report
    metrics = EphemeralMetrics(namespace=NAMESPACE, service="")
    metrics.set_timestamp(outcome.window_end)
    metrics.add_dimension(name="EndpointName", value=outcome.endpoint)
    metrics.add_dimension(name="VariantName", value=outcome.variant)
    metrics.add_metric(name="RowsChecked", unit=MetricUnit.Count, value=report.rows)
    metrics.add_metric(name="MalformedRecords", unit=MetricUnit.Count, value=report.malformed)
    metrics.add_metric(name="VariantWeight", unit=MetricUnit.NoUnit, value=outcome.weight)
    if report.data is not None:
        # Only a window that was checked says anything about drift: "not enough data" emits
        # no drift datapoint, and the alarm treats the gap as not breaching.
        metrics.add_metric(name="DriftShare", unit=MetricUnit.NoUnit, value=report.data.drift_share)
        metrics.add_metric(
            name="DriftedFeatures", unit=MetricUnit.Count, value=report.data.drifted_columns
        )
        metrics.add_metric(name="DriftDetected", unit=MetricUnit.Count, value=int(outcome.drifted))
    if report.prediction is not None:
        metrics.add_metric(
            name="PredictionDriftScore", unit=MetricUnit.NoUnit, value=report.prediction.score
        )
    if report.quality is not None and report.quality.value is not None:
        metrics.add_metric(name="ModelAUC", unit=MetricUnit.NoUnit, value=report.quality.value)
    metrics.flush_metrics()


def drift_message(outcomes: list[VariantOutcome]) -> tuple[str, str]:
    drifted = [o for o in outcomes if o.drifted]
    endpoint = outcomes[0].endpoint
    subject = f"Drift on {endpoint}: {', '.join(o.variant for o in drifted)}"
    lines = [f"The scheduled drift check found drift on endpoint {endpoint}.", ""]
    for o in drifted:
        report = o.report
        lines.append(f"{o.variant} (weight {o.weight:g}, model {o.package_arn}):")
        lines.append(
            f"  window {o.window_start:%Y-%m-%d %H:%M} - {o.window_end:%H:%M} UTC, {report.rows} rows"
        )
        if report.data is not None:
            drifted_columns = [c.column for c in report.data.columns if c.drifted]
            lines.append(
                f"  data drift share {report.data.drift_share:.2f} "
                f"(threshold {report.data.share_threshold:g}): {', '.join(drifted_columns) or 'none'}"
            )
        if report.prediction is not None:
            lines.append(
                f"  prediction drift {report.prediction.score:.3f} "
                f"({'drifted' if report.prediction.drifted else 'no drift'})"
            )
        if report.quality is not None and report.quality.value is not None:
            lines.append(
                f"  AUC {report.quality.value:.3f} vs {report.quality.baseline:.3f} at evaluation"
            )
        if o.html_uri:
            bucket, _, key = o.html_uri.removeprefix("s3://").partition("/")
            lines.append(f"  report: {o.html_uri}")
            lines.append(
                f"  console: https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}"
            )
        lines.append(f"  result: {o.json_uri}")
        lines.append("")
    lines.append("Runbook: README.md, 'Runbook: roll back from the console'.")
    return subject[:100], "\n".join(lines)


def check(settings: Settings, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run_id = str(event.get("id") or context.aws_request_id)
    monitor = DriftMonitor(
        sagemaker=boto3.client("sagemaker"), s3=boto3.client("s3"), settings=settings.monitor()
    )
    sns = boto3.client("sns") if settings.topic_arn else None
    notified: list[str] = []

    def act(outcome: VariantOutcome) -> None:
        # Right after each variant's check, before its window is marked as checked: a failure
        # later in the run cannot cost this variant its metrics (and so its alarm) or notice.
        emit_metrics(outcome)
        logger.info(
            "variant checked",
            extra={"variant": outcome.variant, "status": outcome.report.status,
                   "rows": outcome.report.rows, "result": outcome.json_uri,
                   "replayed": outcome.duplicate},
        )  # fmt: skip
        if sns is not None and outcome.drifted:
            subject, message = drift_message([outcome])
            sns.publish(TopicArn=settings.topic_arn, Subject=subject, Message=message)
            notified.append(outcome.variant)

    outcomes = monitor.run(now=_event_time(event), run_id=run_id, on_outcome=act)
    return {
        "ok": True,
        "run_id": run_id,
        "notified": notified,
        "variants": [
            {
                "variant": o.variant,
                "status": o.report.status,
                "rows": o.report.rows,
                "malformed": o.report.malformed,
                "drift_share": o.report.drift_share,
                "result": o.json_uri,
                "report": o.html_uri,
                "duplicate": o.duplicate,
                "already_checked": o.already_checked,
            }
            for o in outcomes
        ],
    }


def retrain(settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail", {})
    alarm = str(detail.get("alarmName", ""))
    endpoint = endpoint_of_alarm(alarm, CHAMPION, (DRIFT_ALARM,))
    if endpoint != settings.endpoint or detail.get("state", {}).get("value") != "ALARM":
        return {
            "ok": False,
            "error": f"alarm {alarm} in {detail.get('state')} is not a champion drift alarm in ALARM",
        }
    if not (settings.retrain_on_champion_drift and settings.pipeline_name):
        return {"ok": False, "error": "retraining on champion drift is off"}
    decision = retrain_on_drift(
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        bucket=settings.reports_bucket,
        pipeline=settings.pipeline_name,
        endpoint=endpoint,
        event_id=str(event.get("id")),
        reason=f"alarm {alarm}: {detail.get('state', {}).get('reason', '')}"[:500],
        now=_event_time(event),
        cooldown=timedelta(hours=settings.retrain_cooldown_hours),
    )
    logger.info("retraining decision", extra={"decision": decision.__dict__})
    return {"ok": True, **decision.__dict__}


@logger.inject_lambda_context(log_event=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_environment()
    if event.get("detail-type") == "CloudWatch Alarm State Change":
        return retrain(settings, event)
    if event.get("detail-type") == "Scheduled Event" or event.get("action") == "check":
        # A variant that cannot be checked (no readable reference, S3 or SageMaker failing)
        # fails the invocation after the others are checked: retried, then the errors and
        # dead-letter alarms say so. Drift monitoring never goes quiet without a signal.
        return check(settings, event, context)
    return {"ok": False, "error": f"unknown event: {sorted(event)[:5]}"}
