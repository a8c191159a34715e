"""What AWS does by itself around the functions, done on the embedded default.

The emulator (moto) stores metrics and alarms but never ingests embedded-metric-format logs,
never evaluates an alarm and never emits events (see the project notes). Here, in order, as
AWS would: the drift Lambda's handler runs in-process on a schedule event; the metrics it
prints (EMF) become CloudWatch datapoints; the drift alarms are evaluated against them; and an
alarm that changes to ALARM is delivered to the function of every EventBridge rule (created in
the emulator from ``mlops.core.specs``, as the serving stack creates them) whose pattern
matches it. The handlers are the Lambda code, unchanged, loaded by their handler path as
Lambda does and given the environment their contract (``mlops.core.functions``) describes;
only their clients point at the emulator.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.adapters.envvars import patched_environ
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import EMULATOR_ACCESS_KEY, EMULATOR_ACCOUNT, AwsTarget
from mlops.core import drift_job, names, specs
from mlops.core.config import PlatformConfig
from mlops.core.functions import (
    CONTRACTS,
    DRIFT_MEMORY_MB,
    DeploySettings,
    DriftSettings,
    FunctionSettings,
    TrafficSettings,
)
from mlops.local.iam.enforce import TwinIam
from mlops.local.processing import LOCAL_IMAGE, LocalJob, run_processing_job
from mlops.usecases.drift_results import PENDING

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.literals import StateValueType
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDatumTypeDef
    from mypy_boto3_events import EventBridgeClient

# The Powertools loggers of lambdas/: one per function, named by its contract.
FUNCTION_LOGGERS = tuple(contract.service for contract in CONTRACTS.values())
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
    memory_limit_in_mb: int = DRIFT_MEMORY_MB
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
            context = FakeContext(
                function_name=function_name,
                invoked_function_arn=(
                    f"arn:aws:lambda:{target.region}:{EMULATOR_ACCOUNT}:function:{function_name}"
                ),
            )
            result = handler(event, context)
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


def ingest_emf(cloudwatch: CloudWatchClient, lines: list[str]) -> int:
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
                dimensions: list[DimensionTypeDef] = [
                    {"Name": d, "Value": str(record[d])} for d in dimension_set
                ]
                data: list[MetricDatumTypeDef] = []
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
    cloudwatch: CloudWatchClient, names: list[str], now: datetime, *, region: str
) -> list[dict[str, Any]]:
    """Evaluate metric alarms as CloudWatch does; return the state-change events they emit."""
    events = []
    for alarm in cloudwatch.describe_alarms(AlarmNames=names).get("MetricAlarms", []):
        period = int(alarm["Period"])
        periods = int(alarm["EvaluationPeriods"])
        if "Statistic" not in alarm:
            # The twin evaluates the alarms its own metrics feed (the drift alarms, from EMF);
            # the endpoint's percentile alarms are only read for their state.
            raise ValueError(f"alarm {alarm['AlarmName']}: percentile alarms are not evaluated")
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
        new: StateValueType = (
            "ALARM" if breaching >= int(alarm.get("DatapointsToAlarm") or periods) else "OK"
        )
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


def create_alarms(
    cloudwatch: CloudWatchClient, alarms: list[specs.AlarmSpec], topic_arn: str | None = None
) -> list[str]:
    """The serving stack's alarms, in the emulator, once: putting an alarm again would reset
    its state, and an alarm in ALARM must stay there."""
    names = [spec.name for spec in alarms]
    existing = {
        a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    }
    for spec in alarms:
        if spec.name not in existing:
            cloudwatch.put_metric_alarm(**spec.put_metric_alarm(topic_arn))
    return names


def function_arn(config: PlatformConfig, function: specs.Function, region: str) -> str:
    return f"arn:aws:lambda:{region}:{EMULATOR_ACCOUNT}:function:{config.prefix}-{function}"


def rule_name(config: PlatformConfig, spec: specs.RuleSpec) -> str:
    return f"{config.prefix}-{spec.construct_id}"


def create_rules(events: EventBridgeClient, config: PlatformConfig) -> list[str]:
    """The serving stack's EventBridge rules and their targets, in the emulator."""
    region = events.meta.region_name
    created = []
    for spec in specs.rules(config):
        name = rule_name(config, spec)
        rule: dict[str, Any] = {"Name": name, "Description": spec.description, "State": "ENABLED"}
        if spec.event_pattern is not None:
            rule["EventPattern"] = json.dumps(spec.event_pattern)
        if spec.schedule is not None:
            rule["ScheduleExpression"] = spec.schedule
        events.put_rule(**rule)
        events.put_targets(
            Rule=name,
            Targets=[
                {
                    "Id": "Target0",
                    "Arn": function_arn(config, spec.target, region),
                    "RetryPolicy": {
                        "MaximumRetryAttempts": spec.retry_attempts,
                        "MaximumEventAgeInSeconds": spec.max_event_age_seconds,
                    },
                }
            ],
        )
        created.append(name)
    return created


def routes(
    events: EventBridgeClient, config: PlatformConfig, event: dict[str, Any]
) -> list[specs.Function]:
    """The functions EventBridge delivers ``event`` to: the targets of the rules (read back
    from the emulator) whose patterns match it."""
    by_arn = {function_arn(config, f, events.meta.region_name): f for f in specs.HANDLERS}
    found: list[specs.Function] = []
    for rule in events.list_rules(NamePrefix=f"{config.prefix}-")["Rules"]:
        pattern = rule.get("EventPattern")
        if not pattern or not specs.pattern_matches(json.loads(pattern), event):
            continue
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
            if target["Arn"] in by_arn:
                found.append(by_arn[target["Arn"]])
    return found


def function_settings(
    function: specs.Function,
    config: PlatformConfig,
    resources: PlatformResources,
    *,
    topic_arn: str | None = None,
) -> FunctionSettings:
    """A function's settings on the embedded default: its contract, from the same config."""
    if function == specs.TRAFFIC:
        return TrafficSettings.for_platform(
            config, audit_bucket=resources.reports_bucket, topic_arn=topic_arn
        )
    if function == specs.DEPLOY:
        return DeploySettings.for_platform(
            config,
            audit_bucket=resources.reports_bucket,
            topic_arn=topic_arn,
            cloudformation_role_arn=None,
        )
    return drift_settings(config, resources, topic_arn=topic_arn)


def drift_settings(
    config: PlatformConfig, resources: PlatformResources, *, topic_arn: str | None = None
) -> DriftSettings:
    """The drift function's settings on the embedded default. The local endpoint writes its
    capture files when asked to (no buffering delay, unlike SageMaker): a check may look right
    up to its own time. Its Processing jobs run here (mlops.local.processing), from a
    definition made as the stack makes it."""
    account = EMULATOR_ACCOUNT
    return DriftSettings.for_platform(
        config,
        reports_bucket=resources.reports_bucket,
        capture_bucket=resources.capture_bucket,
        topic_arn=topic_arn,
        capture_delay_minutes=0,
        processing_job=drift_job.definition(
            config,
            image_uri=LOCAL_IMAGE,
            role_arn=f"arn:aws:iam::{account}:role/{names.drift_processing_role(config)}",
            key_arn=resources.key_arn or f"arn:aws:kms:{config.region}:{account}:key/data-key",
        ),
    )


def load_handler(path: str) -> Callable[[Any, Any], dict[str, Any]]:
    """The handler Lambda would run for ``path`` ("package.module.function")."""
    module, _, name = path.rpartition(".")
    handler: Callable[[Any, Any], dict[str, Any]] = getattr(importlib.import_module(module), name)
    return handler


def invoke_function(
    function: specs.Function,
    event: Any,
    *,
    target: AwsTarget,
    config: PlatformConfig,
    resources: PlatformResources,
    topic_arn: str | None = None,
    log_dir: Path | None = None,
    iam: TwinIam | None = None,
    settings: FunctionSettings | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Invoke one of the platform's functions as Lambda would, on the embedded default: with
    its role's permissions enforced (mlops.local.iam.enforce)."""
    iam = iam or TwinIam(
        config=config, region=target.region, resources=resources, topic_arn=topic_arn
    )
    with iam.enforced(function):
        return invoke(
            load_handler(specs.HANDLERS[function]),
            event,
            target=target,
            env=(
                settings or function_settings(function, config, resources, topic_arn=topic_arn)
            ).environment(),
            function_name=f"{config.prefix}-{function}",
            log_dir=log_dir,
        )


@dataclass
class ScheduledRun:
    """One scheduled drift check on the embedded default, and everything it set off."""

    result: dict[str, Any]
    datapoints: int
    alarm_events: list[dict[str, Any]]
    actions: list[tuple[specs.Function, dict[str, Any]]]  # (rule target, handler result)
    seconds_alarm_to_action: float = 0.0  # alarm evaluated -> its actions done (this machine)
    # The Processing jobs the check started, run here, and what their end events set off.
    jobs: list[LocalJob] = field(default_factory=list)
    job_results: list[tuple[specs.Function, dict[str, Any]]] = field(default_factory=list)


def run_started_jobs(
    result: dict[str, Any],
    *,
    target: AwsTarget,
    config: PlatformConfig,
    resources: PlatformResources,
    iam: TwinIam,
    common: dict[str, Any],
) -> tuple[list[LocalJob], list[tuple[specs.Function, dict[str, Any]]], list[str]]:
    """What SageMaker and EventBridge do after a run handed windows to Processing jobs: each job
    runs (here), and its end event reaches the functions whose rules match it. Returns the jobs,
    the handlers' results and the lines they logged."""
    definition = drift_settings(config, resources).processing_job or {}
    events = target.client("events")
    jobs, results, lines = [], [], []
    for variant in result.get("variants", []):
        if variant.get("status") != PENDING or not variant.get("job"):
            continue
        job = run_processing_job(target, variant["job"], definition, iam=iam)
        jobs.append(job)
        event = job.event(region=target.region)
        for function in routes(events, config, event):
            outcome, logged = invoke_function(function, event, **common)
            results.append((function, outcome))
            lines += logged
    return jobs, results, lines


def scheduled_drift_check(
    target: AwsTarget,
    config: PlatformConfig,
    resources: PlatformResources,
    *,
    now: datetime | None = None,
    topic_arn: str | None = None,
    log_dir: Path | None = None,
    iam: TwinIam | None = None,
) -> ScheduledRun:
    """One tick of the drift schedule, and what the alarms and rules do with its result."""
    now = now or datetime.now(UTC)
    cloudwatch = target.client("cloudwatch")
    events = target.client("events")
    alarms = create_alarms(cloudwatch, specs.drift_alarms(config))
    create_rules(events, config)
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
    iam = iam or TwinIam(
        config=config, region=target.region, resources=resources, topic_arn=topic_arn
    )
    common: dict[str, Any] = {
        "target": target,
        "config": config,
        "resources": resources,
        "topic_arn": topic_arn,
        "log_dir": log_dir,
        "iam": iam,
    }
    result, lines = invoke_function(specs.DRIFT, event, **common)
    jobs, job_results, job_lines = run_started_jobs(
        result, target=target, config=config, resources=resources, iam=iam, common=common
    )
    datapoints = ingest_emf(cloudwatch, lines + job_lines)
    # The event's time has whole seconds; the datapoints carry it, so evaluate just after.
    evaluated = time.perf_counter()
    alarm_events = evaluate_alarms(
        cloudwatch, alarms, now + timedelta(seconds=1), region=target.region
    )
    actions = []
    for alarm_event in alarm_events:
        for function in routes(events, config, alarm_event):
            outcome, _ = invoke_function(function, alarm_event, **common)
            actions.append((function, outcome))
    return ScheduledRun(
        result, datapoints, alarm_events, actions, time.perf_counter() - evaluated,
        jobs=jobs, job_results=job_results,
    )  # fmt: skip
