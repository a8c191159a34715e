"""What AWS does by itself around the functions, done on the embedded default.

The emulator (moto) stores metrics and alarms but never ingests embedded-metric-format logs,
never evaluates an alarm and never emits events (see the project notes). Here, in order, as
AWS would: the drift Lambda's handler runs in-process on a schedule event; the metrics it
prints (EMF) become CloudWatch datapoints; the drift alarms are evaluated against them; and an
alarm that changes to ALARM is delivered to the function its EventBridge rule names (the
traffic Lambda's handler for a challenger rollback, the drift handler for retraining).
The handlers themselves are the Lambda code, unchanged; only their clients point at the emulator.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops import automation
from mlops.aws import EMULATOR_ACCESS_KEY, EMULATOR_ACCOUNT, AwsTarget
from mlops.config import PlatformConfig
from mlops.envvars import patched_environ
from mlops.resources import PlatformResources
from mlops.traffic import CHALLENGER, CHAMPION, drift_alarm_name

FUNCTION_LOGGERS = ("drift", "traffic", "deploy")  # the Powertools services of lambdas/
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


@dataclass
class FakeContext:
    """The parts of a Lambda context the handlers (and Powertools) read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@contextlib.contextmanager
def environment(target: AwsTarget, values: Mapping[str, str]) -> Iterator[None]:
    """The process environment a function would see, its AWS clients aimed at ``target``."""
    values = {
        **values,
        "AWS_DEFAULT_REGION": target.region,
        "AWS_REGION": target.region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if target.endpoint_url:
        values.update(
            AWS_ENDPOINT_URL=target.endpoint_url,
            AWS_ACCESS_KEY_ID=EMULATOR_ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=EMULATOR_ACCESS_KEY,
        )
    with patched_environ(values):
        yield


def invoke(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    event: dict[str, Any],
    *,
    target: AwsTarget,
    env: Mapping[str, str],
    function_name: str,
    log_dir: Path | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Run a handler as Lambda would; return its result and the lines it logged to stdout."""
    out = io.StringIO()
    # Powertools' loggers hold the stdout of their import time: point them here too, as
    # Lambda sends a function's whole output to its log group.
    streams = [
        (h, h.setStream(out))
        for name in FUNCTION_LOGGERS
        for h in logging.getLogger(name).handlers
        if isinstance(h, logging.StreamHandler)
    ]
    try:
        with environment(target, env), contextlib.redirect_stdout(out):
            result = handler(event, FakeContext(function_name=function_name))
    finally:
        for h, previous in streams:
            if previous is not None:
                h.setStream(previous)
    lines = out.getvalue().splitlines()
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"{function_name}.log").open("a", encoding="utf-8") as log:
            log.write("\n".join(lines) + "\n")
    return result, lines


def ingest_emf(cloudwatch: Any, lines: list[str]) -> int:
    """CloudWatch Logs' embedded-metric-format extraction: EMF log lines -> datapoints."""
    count = 0
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        aws = record.get("_aws") if isinstance(record, dict) else None
        if not isinstance(aws, dict):
            continue
        when = datetime.fromtimestamp(aws["Timestamp"] / 1000, tz=UTC)
        for directive in aws.get("CloudWatchMetrics", []):
            for dimension_set in directive.get("Dimensions", [[]]):
                dimensions = [{"Name": d, "Value": str(record[d])} for d in dimension_set]
                data = []
                for metric in directive["Metrics"]:
                    values = record[metric["Name"]]
                    for value in values if isinstance(values, list) else [values]:
                        data.append(
                            {
                                "MetricName": metric["Name"],
                                "Dimensions": dimensions,
                                "Timestamp": when,
                                "Value": float(value),
                                "Unit": metric.get("Unit", "None"),
                            }
                        )
                if data:
                    cloudwatch.put_metric_data(Namespace=directive["Namespace"], MetricData=data)
                    count += len(data)
    return count


def evaluate_alarms(
    cloudwatch: Any, names: list[str], now: datetime, *, region: str
) -> list[dict[str, Any]]:
    """Evaluate metric alarms as CloudWatch does; return the state-change events they emit."""
    events = []
    for alarm in cloudwatch.describe_alarms(AlarmNames=names).get("MetricAlarms", []):
        period = int(alarm["Period"])
        periods = int(alarm["EvaluationPeriods"])
        statistic = alarm["Statistic"]
        stats = cloudwatch.get_metric_statistics(
            Namespace=alarm["Namespace"],
            MetricName=alarm["MetricName"],
            Dimensions=alarm.get("Dimensions", []),
            StartTime=now - timedelta(seconds=period * periods),
            EndTime=now + timedelta(seconds=1),
            Period=period,
            Statistics=[statistic],
        )
        compare = COMPARE[alarm["ComparisonOperator"]]
        breaching = sum(compare(p[statistic], alarm["Threshold"]) for p in stats["Datapoints"])
        # Missing datapoints count as not breaching (TreatMissingData notBreaching).
        new = "ALARM" if breaching >= int(alarm.get("DatapointsToAlarm") or periods) else "OK"
        old = alarm["StateValue"]
        if new == old:
            continue
        reason = (
            f"Threshold Crossed: {breaching} datapoint(s) of {alarm['MetricName']} "
            f"{alarm['ComparisonOperator']} {alarm['Threshold']:g} in the last {periods} period(s)"
        )
        cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=new, StateReason=reason)
        events.append(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "CloudWatch Alarm State Change",
                "source": "aws.cloudwatch",
                "account": EMULATOR_ACCOUNT,
                "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": region,
                "resources": [alarm["AlarmArn"]],
                "detail": {
                    "alarmName": alarm["AlarmName"],
                    "state": {"value": new, "reason": reason},
                    "previousState": {"value": old},
                },
            }
        )
    return events


def create_drift_alarms(cloudwatch: Any, config: PlatformConfig) -> list[str]:
    """The serving stack's drift alarms (stacks/serving.py), in the emulator, once: putting an
    alarm again would reset its state, and an alarm in ALARM must stay there."""
    names = [drift_alarm_name(config.endpoint_name, v) for v in (CHAMPION, CHALLENGER)]
    existing = {
        a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    }
    for variant, name in zip((CHAMPION, CHALLENGER), names, strict=True):
        if name in existing:
            continue
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            AlarmDescription=f"The drift check found drift on {variant}",
            Namespace=automation.DRIFT_NAMESPACE,
            MetricName=automation.DRIFT_METRIC,
            Dimensions=[
                {"Name": "EndpointName", "Value": config.endpoint_name},
                {"Name": "VariantName", "Value": variant},
            ],
            Statistic="Maximum",
            Period=automation.drift_alarm_period(config),
            EvaluationPeriods=automation.DRIFT_ALARM_PERIODS,
            DatapointsToAlarm=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="notBreaching",
        )
    return names


@dataclass
class ScheduledRun:
    """One scheduled drift check on the embedded default, and everything it set off."""

    result: dict[str, Any]
    datapoints: int
    alarm_events: list[dict[str, Any]]
    actions: list[tuple[str, dict[str, Any]]]  # (route target, handler result)
    seconds_alarm_to_action: float = 0.0  # alarm evaluated -> its actions done (this machine)


def traffic_environment(config: PlatformConfig, resources: PlatformResources) -> dict[str, str]:
    return {
        "AUDIT_BUCKET": resources.reports_bucket,
        "ROLLOUT_STEPS": ",".join(f"{s:g}" for s in config.rollout_steps),
        "WEIGHT_PARAMETER_PREFIX": config.weight_parameter("").removesuffix("-weight"),
        "GATE_ON_DRIFT": str(config.auto_rollback_on_challenger_drift).lower(),
        "POWERTOOLS_SERVICE_NAME": "traffic",
        "POWERTOOLS_METRICS_NAMESPACE": "MLOps/Traffic",
    }


def scheduled_drift_check(
    target: AwsTarget,
    config: PlatformConfig,
    resources: PlatformResources,
    *,
    now: datetime | None = None,
    topic_arn: str | None = None,
    log_dir: Path | None = None,
) -> ScheduledRun:
    """One tick of the drift schedule, and what the alarms and rules do with its result."""
    from lambdas.drift import handler as drift  # noqa: PLC0415  (pulls in Evidently on use)
    from lambdas.traffic import handler as traffic  # noqa: PLC0415

    now = now or datetime.now(UTC)
    cloudwatch = target.client("cloudwatch")
    alarms = create_drift_alarms(cloudwatch, config)
    drift_env = automation.drift_environment(
        config,
        reports_bucket=resources.reports_bucket,
        capture_bucket=resources.capture_bucket,
        topic_arn=topic_arn,
    )
    # The local endpoint writes its capture files when asked to (no buffering delay, unlike
    # SageMaker): a check may look right up to its own time.
    drift_env["CAPTURE_DELAY_MINUTES"] = "0"
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": EMULATOR_ACCOUNT,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": target.region,
        "resources": [f"arn:aws:events:{target.region}:{EMULATOR_ACCOUNT}:rule/drift-schedule"],
        "detail": {},
    }
    result, lines = invoke(
        drift.handler,
        event,
        target=target,
        env=drift_env,
        function_name=f"{config.prefix}-drift",
        log_dir=log_dir,
    )
    datapoints = ingest_emf(cloudwatch, lines)
    # The event's time has whole seconds; the datapoints carry it, so evaluate just after.
    evaluated = time.perf_counter()
    alarm_events = evaluate_alarms(
        cloudwatch, alarms, now + timedelta(seconds=1), region=target.region
    )
    actions = []
    functions = {
        automation.TRAFFIC: (traffic.handler, traffic_environment(config, resources)),
        automation.DRIFT: (drift.handler, drift_env),
    }
    routes = automation.alarm_routes(config)
    for alarm_event in alarm_events:
        if alarm_event["detail"]["state"]["value"] != "ALARM":
            continue
        for route in routes:
            if alarm_event["detail"]["alarmName"] not in route.alarms:
                continue
            handler, env = functions[route.target]
            outcome, _ = invoke(
                handler, alarm_event, target=target, env=env,
                function_name=f"{config.prefix}-{route.target}", log_dir=log_dir,
            )  # fmt: skip
            actions.append((route.target, outcome))
    return ScheduledRun(result, datapoints, alarm_events, actions, time.perf_counter() - evaluated)
