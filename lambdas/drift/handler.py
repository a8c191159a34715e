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
- a drift check's Processing job ending ("SageMaker Processing Job State Change", Completed,
  Failed or Stopped, for the jobs this platform names): a window too large for this function
  is checked by a job (mlops.usecases.drift_jobs); its verdict is recorded here, as any run's.

An event it does not accept is answered in one line, {"ok": false, "error": ...} naming the
field, and never raises (a malformed event fails the same way on every retry). A run's id names
its reports, so it must be a plain name; its time must not be in the future (a window checked
ahead of its capture would skip the rows written later) nor before 2000.

No concurrency is reserved by default (`function_reserved_concurrency`): a scheduled check and
an overlapping one can race on a window's state (each report is still written once).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.events import (
    ALARM_STATE_CHANGE,
    PROCESSING_JOB_STATE_CHANGE,
    SCHEDULED_EVENT,
    AlarmStateChange,
    CheckRequest,
    EventRefused,
    ProcessingJobStateChange,
    ScheduledEvent,
    detail_type,
    parse_event,
    refusal,
)
from mlops.adapters.endpoints import EndpointNotFound
from mlops.adapters.target import AwsTarget
from mlops.core.functions import DriftSettings
from mlops.core.specs import DRIFT_NAMESPACE
from mlops.usecases.check_drift import DriftMonitor, VariantOutcome
from mlops.usecases.retrain import retrain_on_drift

logger = Logger(service=DriftSettings.service)

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # EventBridge's ids, Lambda's request ids
CLOCK_SKEW = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def _aws() -> AwsTarget:
    return AwsTarget.lambda_runtime()


class MetricNotFinite(ValueError):
    """A metric value is NaN or infinite: CloudWatch would refuse it, so it is not sent."""


def emit_metrics(outcome: VariantOutcome) -> None:
    """One EMF record per variant, stamped with the window's end (what the alarms read).

    Every value is checked to be finite before anything is printed, and the record is
    serialized with ``allow_nan=False``: CloudWatch drops an EMF line carrying NaN (it is not
    JSON) and PutMetricData refuses NaN and infinity, both after this function returned. A
    non-finite value fails here instead, before the variant's window is marked as checked."""
    report = outcome.report
    metrics = EphemeralMetrics(namespace=DRIFT_NAMESPACE, service="")
    metrics.set_timestamp(outcome.window_end)
    metrics.add_dimension(name="EndpointName", value=outcome.endpoint)
    metrics.add_dimension(name="VariantName", value=outcome.variant)

    def add(name: str, unit: MetricUnit, value: float) -> None:
        if not math.isfinite(value):
            raise MetricNotFinite(
                f"metric {name} of {outcome.endpoint}/{outcome.variant} is {value!r}, "
                "not a finite number: no metrics sent"
            )
        metrics.add_metric(name=name, unit=unit, value=value)

    add("RowsChecked", MetricUnit.Count, report.rows)
    add("MalformedRecords", MetricUnit.Count, report.malformed)
    if outcome.weight is not None:
        add("VariantWeight", MetricUnit.NoUnit, outcome.weight)
    if report.data is not None:
        # Only a window that was checked says anything about drift: "not enough data" emits
        # no drift datapoint, and the alarm treats the gap as not breaching.
        add("DriftShare", MetricUnit.NoUnit, report.data.drift_share)
        add("DriftedFeatures", MetricUnit.Count, report.data.drifted_columns)
        add("DriftDetected", MetricUnit.Count, int(outcome.drifted))
    if report.prediction is not None:
        add("PredictionDriftScore", MetricUnit.NoUnit, report.prediction.score)
    if report.quality is not None and report.quality.value is not None:
        add("ModelAUC", MetricUnit.NoUnit, report.quality.value)
    if is_metrics_disabled():
        return
    # What Powertools' flush_metrics does, with allow_nan=False: a regression raises here.
    print(json.dumps(metrics.serialize_metric_set(), separators=(",", ":"), allow_nan=False))
    metrics.clear_metrics()


def drift_message(outcomes: list[VariantOutcome]) -> tuple[str, str]:
    drifted = [o for o in outcomes if o.drifted]
    endpoint = outcomes[0].endpoint
    subject = f"Drift on {endpoint}: {', '.join(o.variant for o in drifted)}"
    lines = [f"The scheduled drift check found drift on endpoint {endpoint}.", ""]
    for o in drifted:
        report = o.report
        weight = "unknown" if o.weight is None else f"{o.weight:g}"
        lines.append(f"{o.variant} (weight {weight}, model {o.package_arn}):")
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


def _monitor(settings: DriftSettings) -> tuple[DriftMonitor, Any]:
    aws = _aws()
    monitor = DriftMonitor(
        sagemaker=aws.client("sagemaker"), s3=aws.client("s3"), settings=settings
    )
    return monitor, (aws.client("sns") if settings.topic_arn else None)


def _actor(
    settings: DriftSettings, sns: Any, notified: list[str]
) -> Callable[[VariantOutcome], None]:
    """What the function does with each variant's verdict, right after it is recorded and before
    its window is marked as checked: a failure later in the run cannot cost this variant its
    metrics (and so its alarm) or notice."""
    topic_arn = settings.topic_arn

    def act(outcome: VariantOutcome) -> None:
        emit_metrics(outcome)
        logger.info(
            "variant checked",
            extra={"variant": outcome.variant, "status": outcome.report.status,
                   "rows": outcome.report.rows, "result": outcome.json_uri,
                   "replayed": outcome.duplicate, "job": outcome.job},
        )  # fmt: skip
        if sns is not None and topic_arn and outcome.drifted:
            subject, message = drift_message([outcome])
            sns.publish(TopicArn=topic_arn, Subject=subject, Message=message)
            notified.append(outcome.variant)

    return act


def _variant(outcome: VariantOutcome) -> dict[str, Any]:
    return {
        "variant": outcome.variant,
        "status": outcome.report.status,
        "rows": outcome.report.rows,
        "malformed": outcome.report.malformed,
        "drift_share": outcome.report.drift_share,
        "result": outcome.json_uri,
        "report": outcome.html_uri,
        "duplicate": outcome.duplicate,
        "already_checked": outcome.already_checked,
        "job": outcome.job,
    }


def check(settings: DriftSettings, run_id: str, now: datetime) -> dict[str, Any]:
    """Check every variant now; ``run_id`` names the run (a redelivery writes nothing twice).
    A variant whose window is more than one function checks is handed to a Processing job:
    "pending", its verdict recorded when the job ends (``job_ended``)."""
    monitor, sns = _monitor(settings)
    notified: list[str] = []
    try:
        outcomes = monitor.run(now=now, run_id=run_id, on_outcome=_actor(settings, sns, notified))
    except EndpointNotFound as exc:
        # Until a champion is approved the stack has no endpoint: nothing to check, and
        # nothing wrong (no error, no dead letter, no alarm every hour after a deploy).
        logger.info("no endpoint yet", extra={"endpoint": settings.endpoint_name})
        return {"ok": True, "run_id": run_id, "skipped": str(exc), "notified": [], "variants": []}
    for outcome in outcomes:
        if outcome.pending:
            logger.info("checked by a processing job", extra={"variant": outcome.variant,
                        "job": outcome.job, "notes": outcome.notes})  # fmt: skip
    return {
        "ok": True,
        "run_id": run_id,
        "notified": notified,
        "variants": [_variant(o) for o in outcomes],
    }


def job_ended(settings: DriftSettings, event: ProcessingJobStateChange) -> dict[str, Any]:
    """A drift check's Processing job ended: record its verdict like any run's (metrics,
    notice, the window moved on). A job that gave no verdict raises DriftJobFailed (the error
    alarm), its window left to the next run; a retry of this event then finds nothing to do."""
    name = event.detail.processing_job_name
    if not name.startswith(settings.job_prefix):
        return refused(f"job {name} is not a drift check of this platform ({settings.job_prefix}*)")
    monitor, sns = _monitor(settings)
    notified: list[str] = []
    outcome = monitor.finish_job(name, on_outcome=_actor(settings, sns, notified))
    if outcome is None:
        logger.info("nothing to record", extra={"job": name})
        return {"ok": True, "job": name, "notified": [], "variants": []}
    return {"ok": True, "job": name, "notified": notified, "variants": [_variant(outcome)]}


def retrain(settings: DriftSettings, event: AlarmStateChange, when: datetime) -> dict[str, Any]:
    alarm = event.detail
    if alarm.alarm_name != settings.champion_drift_alarm or alarm.state.value != "ALARM":
        return refused(
            f"alarm {alarm.alarm_name} in {alarm.state.value} is not a champion "
            f"drift alarm in ALARM ({settings.champion_drift_alarm})"
        )
    if not settings.retrain_on_champion_drift:
        return refused("retraining on champion drift is off")
    aws = _aws()
    decision = retrain_on_drift(
        sagemaker=aws.client("sagemaker"),
        s3=aws.client("s3"),
        bucket=settings.reports_bucket,
        pipeline=settings.pipeline_name,
        endpoint=settings.endpoint_name,
        event_id=event.id,  # an EventId (lambdas.events): a plain name
        reason=f"alarm {alarm.alarm_name}: {alarm.state.reason}"[:500],
        now=when,
        cooldown=timedelta(hours=settings.retrain_cooldown_hours),
    )
    logger.info("retraining decision", extra={"decision": decision.__dict__})
    return {"ok": True, **decision.__dict__}


def run_id(value: str) -> str:
    """``value`` as the name of a run (its reports' keys), or EventRefused naming the field."""
    if not RUN_ID.fullmatch(value):
        raise EventRefused(
            f"id: {value[:80]!r} is not a run id (1-128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit)"
        )
    return value


def run_time(value: datetime, now: datetime) -> datetime:
    """``value`` (UTC if it names no zone) as the time of a run, or EventRefused naming it."""
    when = value if value.tzinfo else value.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if when > now + CLOCK_SKEW:
        raise EventRefused(
            f"time: {_iso(when)} is in the future (now {_iso(now)}): a window checked before its "
            "capture is written would skip those rows"
        )
    if when < EARLIEST:
        raise EventRefused(f"time: {_iso(when)} is before {_iso(EARLIEST)}: not a run's time")
    return when


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def refused(error: object) -> dict[str, Any]:
    """The answer to an event this function does not act on: one printable line."""
    answer = refusal(error)
    logger.warning("refused", extra={"error": answer["error"]})
    return answer


@logger.inject_lambda_context(log_event=True)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = DriftSettings.from_environment(os.environ)
    now = datetime.now(UTC)
    try:
        kind = detail_type(event)
        if kind == ALARM_STATE_CHANGE:
            alarm = parse_event(event, AlarmStateChange)
            return retrain(settings, alarm, run_time(alarm.time, now))
        if kind == PROCESSING_JOB_STATE_CHANGE:
            return job_ended(settings, parse_event(event, ProcessingJobStateChange))
        if kind == SCHEDULED_EVENT:
            # A variant that cannot be checked (no readable reference, S3 or SageMaker failing)
            # fails the invocation after the others are checked: retried, then the errors and
            # dead-letter alarms say so. Drift monitoring never goes quiet without a signal.
            scheduled = parse_event(event, ScheduledEvent)
            return check(settings, run_id(scheduled.id), run_time(scheduled.time, now))
        if isinstance(event, dict) and "action" in event:
            request = parse_event(event, CheckRequest)
            when = run_time(request.time, now) if request.time else now
            return check(settings, run_id(request.id or context.aws_request_id), when)
    except EventRefused as exc:
        return refused(exc)
    return refused(
        'expected a "Scheduled Event", a champion drift alarm event, a drift check job\'s '
        '"SageMaker Processing Job State Change" or {"action": "check"}'
    )
