"""What the serving stack creates that the embedded default mirrors, specified once.

Alarms (metric, statistic, period, evaluation periods, threshold, dimensions, actions),
EventBridge rules (patterns, schedules, targets) and the endpoint's data capture are described
here as plain values. The CDK constructs (stacks/serving/) build their resources from these
specifications, and the embedded default (mlops/local/) creates the same resources in the
emulator from the same specifications, so the two cannot disagree; tests compare them
property by property with the synthesized template. Pure: no AWS, no CDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mlops.core import drift_job, names
from mlops.core.config import PlatformConfig
from mlops.core.names import CHAMPION, VARIANTS

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
DRIFT_NAMESPACE = "MLOps/Drift"
DRIFT_METRIC = "DriftDetected"  # 1 when a checked window drifted, 0 when not; none without data
DRIFT_ALARM_PERIODS = 2  # ALARM while either of the last two checks drifted (1 datapoint)

# The functions an EventBridge rule can target (lambdas/<name>/handler.py).
Function = Literal["traffic", "deploy", "drift"]
TRAFFIC: Function = "traffic"
DEPLOY: Function = "deploy"
DRIFT: Function = "drift"
# What Lambda runs for each: the image's CMD, and what the embedded default imports.
HANDLERS: dict[Function, str] = {
    TRAFFIC: "lambdas.traffic.handler.handler",
    DEPLOY: "lambdas.deploy.handler.handler",
    DRIFT: "lambdas.drift.handler.handler",
}


@dataclass(frozen=True)
class AlarmSpec:
    construct_id: str
    name: str
    description: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str  # "Sum", "Maximum", ... or a percentile such as "p99"
    period_seconds: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str = "GreaterThanOrEqualToThreshold"
    treat_missing_data: str = "notBreaching"
    notify_on_alarm: bool = True  # the alerts topic hears ALARM
    notify_on_ok: bool = True  # ... and OK

    @property
    def is_percentile(self) -> bool:
        return self.statistic.startswith("p")

    def put_metric_alarm(self, topic_arn: str | None = None) -> dict[str, Any]:
        """CloudWatch's PutMetricAlarm request for this alarm (the embedded default's)."""
        request: dict[str, Any] = {
            "AlarmName": self.name,
            "AlarmDescription": self.description,
            "Namespace": self.namespace,
            "MetricName": self.metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
            "Period": self.period_seconds,
            "EvaluationPeriods": self.evaluation_periods,
            "DatapointsToAlarm": self.datapoints_to_alarm,
            "Threshold": self.threshold,
            "ComparisonOperator": self.comparison,
            "TreatMissingData": self.treat_missing_data,
        }
        request["ExtendedStatistic" if self.is_percentile else "Statistic"] = self.statistic
        if topic_arn:
            request["AlarmActions"] = [topic_arn] if self.notify_on_alarm else []
            request["OKActions"] = [topic_arn] if self.notify_on_ok else []
        return request


def _variant_dimensions(config: PlatformConfig, variant: str) -> tuple[tuple[str, str], ...]:
    return (("EndpointName", config.endpoint_name), ("VariantName", variant))


def variant_alarms(config: PlatformConfig) -> list[AlarmSpec]:
    """Per variant: server errors and p99 model latency, 2 minutes of 3."""
    alarms = []
    for variant in VARIANTS:
        errors, latency = names.variant_alarms(config.endpoint_name, variant)
        common: dict[str, Any] = {
            "namespace": SAGEMAKER_NAMESPACE,
            "dimensions": _variant_dimensions(config, variant),
            "period_seconds": 60,
            "evaluation_periods": 3,
            "datapoints_to_alarm": 2,
        }
        alarms += [
            AlarmSpec(
                construct_id=f"{variant.title()}5XxAlarm",
                name=errors,
                description=f"{variant}: {config.error_alarm_count}+ server errors a minute, "
                "2 minutes of 3",
                metric="Invocation5XXErrors",
                statistic="Sum",
                threshold=float(config.error_alarm_count),
                **common,
            ),
            AlarmSpec(
                construct_id=f"{variant.title()}LatencyAlarm",
                name=latency,
                description=f"{variant}: p99 model latency above {config.latency_alarm_ms} ms, "
                "2 minutes of 3",
                metric="ModelLatency",
                statistic="p99",
                threshold=float(config.latency_alarm_ms * 1000),  # ModelLatency is in µs
                **common,
            ),
        ]
    return alarms


def drift_alarm_period(config: PlatformConfig) -> int:
    """One alarm period per scheduled check, within CloudWatch's one-day evaluation limit."""
    return min(max(names.schedule_seconds(config.drift_schedule), 60), 86400)


def drift_alarms(config: PlatformConfig) -> list[AlarmSpec]:
    """One per variant on DriftDetected: a checked window drifted (no data: no datapoint).

    A check's datapoint lands minutes after its period starts: looking at two periods keeps a
    lasting drift in ALARM instead of flapping every period. ALARM is announced by the drift
    function itself, with the report's link; the topic hears when the episode is over.
    """
    return [
        AlarmSpec(
            construct_id=f"{variant.title()}DriftAlarm",
            name=names.drift_alarm(config.endpoint_name, variant),
            description=f"The drift check found drift on the {variant} "
            "(see the drift notice for the report)",
            namespace=DRIFT_NAMESPACE,
            metric=DRIFT_METRIC,
            dimensions=_variant_dimensions(config, variant),
            statistic="Maximum",
            period_seconds=drift_alarm_period(config),
            evaluation_periods=DRIFT_ALARM_PERIODS,
            datapoints_to_alarm=1,
            threshold=1.0,
            notify_on_alarm=False,
            notify_on_ok=True,
        )
        for variant in VARIANTS
    ]


@dataclass(frozen=True)
class RuleSpec:
    """An EventBridge rule: an event pattern or a schedule -> one function."""

    construct_id: str
    description: str
    target: Function
    max_event_age_seconds: int
    retry_attempts: int = 2
    event_pattern: dict[str, Any] | None = None
    schedule: str | None = None


def pattern_matches(pattern: dict[str, Any], event: Any) -> bool:
    """EventBridge's matching for the patterns used here: each key's value is one of the
    listed values, or starts with a listed {"prefix": ...}; nested objects match recursively."""
    if not isinstance(event, dict):
        return False
    for key, wanted in pattern.items():
        value = event.get(key)
        if isinstance(wanted, dict):
            if not pattern_matches(wanted, value):
                return False
        elif not any(_value_matches(w, value) for w in wanted):
            return False
    return True


def _value_matches(wanted: Any, value: Any) -> bool:
    if isinstance(wanted, dict):
        ((operator, argument),) = wanted.items()
        if operator != "prefix":
            raise ValueError(f"pattern operator {operator!r} is not matched here")
        return isinstance(value, str) and value.startswith(argument)
    return bool(value == wanted)


def _alarm_pattern(alarms: tuple[str, ...]) -> dict[str, Any]:
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": list(alarms), "state": {"value": ["ALARM"]}},
    }


def alarm_rules(config: PlatformConfig) -> list[RuleSpec]:
    """What reacts to alarms: challenger alarms roll back; champion drift retrains (if on)."""
    endpoint = config.endpoint_name
    rules = [
        RuleSpec(
            construct_id="ChallengerAlarmRule",
            description="Roll back to the champion when a challenger alarm fires",
            target=TRAFFIC,
            max_event_age_seconds=3600,
            event_pattern=_alarm_pattern(
                names.challenger_gate_alarms(
                    endpoint, drift=config.auto_rollback_on_challenger_drift
                )
            ),
        )
    ]
    if config.retrain_on_champion_drift:
        rules.append(
            RuleSpec(
                construct_id="ChampionDriftRule",
                description="Start retraining when the champion drifts "
                "(one start per episode and cooldown)",
                target=DRIFT,
                max_event_age_seconds=3600,
                event_pattern=_alarm_pattern((names.drift_alarm(endpoint, CHAMPION),)),
            )
        )
    return rules


def approval_rule(config: PlatformConfig) -> RuleSpec:
    return RuleSpec(
        construct_id="ApprovalRule",
        description="Deploy a newly approved model package as the challenger",
        target=DEPLOY,
        max_event_age_seconds=7200,
        event_pattern={
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Model Package State Change"],
            "detail": {
                "ModelPackageGroupName": [config.model_package_group_name],
                "ModelApprovalStatus": ["Approved"],
            },
        },
    )


def drift_schedule_rule(config: PlatformConfig) -> RuleSpec:
    return RuleSpec(
        construct_id="DriftSchedule",
        description=f"Drift check of {config.endpoint_name}'s variants ({config.drift_schedule})",
        target=DRIFT,
        max_event_age_seconds=1800,
        schedule=config.drift_schedule,
    )


def drift_job_rule(config: PlatformConfig) -> RuleSpec:
    """A drift check run as a Processing job ended (mlops.core.drift_job): the drift function
    records its verdict (or reports its failure) within minutes, not at the next schedule."""
    return RuleSpec(
        construct_id="DriftJobRule",
        description=f"Record the verdict of {config.endpoint_name}'s drift checks run as "
        "processing jobs when they end",
        target=DRIFT,
        max_event_age_seconds=3600,
        event_pattern={
            "source": ["aws.sagemaker"],
            "detail-type": [drift_job.JOB_STATE_CHANGE],
            "detail": {
                "ProcessingJobName": [{"prefix": drift_job.job_prefix(config)}],
                "ProcessingJobStatus": list(drift_job.ENDED),
            },
        },
    )


def rules(config: PlatformConfig) -> list[RuleSpec]:
    """Every rule of the serving stack."""
    return [
        approval_rule(config),
        *alarm_rules(config),
        drift_schedule_rule(config),
        drift_job_rule(config),
    ]


@dataclass(frozen=True)
class CaptureSpec:
    """The endpoint's data capture: what SageMaker writes to the capture bucket."""

    sampling_percentage: int
    prefix: str = names.CAPTURE_PREFIX
    modes: tuple[str, ...] = ("Input", "Output")
    # Without these SageMaker stores payloads base64-encoded.
    csv_content_types: tuple[str, ...] = ("text/csv",)
    json_content_types: tuple[str, ...] = ("application/json",)

    def destination(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.prefix}"

    def data_capture_config(self, bucket: str, key_arn: str | None) -> dict[str, Any]:
        """SageMaker's DataCaptureConfig (the API's and CloudFormation's shape)."""
        config: dict[str, Any] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": self.sampling_percentage,
            "DestinationS3Uri": self.destination(bucket),
            "CaptureOptions": [{"CaptureMode": mode} for mode in self.modes],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": list(self.csv_content_types),
                "JsonContentTypes": list(self.json_content_types),
            },
        }
        if key_arn:
            config["KmsKeyId"] = key_arn
        return config


def capture(config: PlatformConfig) -> CaptureSpec:
    return CaptureSpec(sampling_percentage=config.capture_sampling_percentage)
