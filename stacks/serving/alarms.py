"""The endpoint's alarms, built from their specifications (mlops.core.specs), which the
embedded default creates in the emulator too: per variant, server errors and p99 latency,
and drift."""

from __future__ import annotations

import re

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.core import specs
from mlops.core.config import PlatformConfig
from mlops.core.specs import AlarmSpec

from .logical_ids import Group


class ServingAlarms(Group):
    """Variant alarms (by alarm name) and drift alarms (by variant), notifying ``topic``."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: PlatformConfig, topic: sns.ITopic
    ) -> None:
        super().__init__(scope, construct_id)
        # Per variant: server errors and p99 latency (mlops.core.specs.variant_alarms).
        self.variant: dict[str, cloudwatch.Alarm] = {
            spec.name: alarm(self, spec, topic) for spec in specs.variant_alarms(config)
        }
        # One per variant on DriftDetected (mlops.core.specs.drift_alarms).
        self.drift: dict[str, cloudwatch.Alarm] = {
            spec.dimensions[-1][1]: alarm(self, spec, topic) for spec in specs.drift_alarms(config)
        }


def alarm(scope: Construct, spec: AlarmSpec, topic: sns.ITopic) -> cloudwatch.Alarm:
    """A CloudWatch alarm from its specification (mlops.core.specs)."""
    created = cloudwatch.Alarm(
        scope,
        spec.construct_id,
        alarm_name=spec.name,
        alarm_description=spec.description,
        metric=cloudwatch.Metric(
            namespace=spec.namespace,
            metric_name=spec.metric,
            dimensions_map=dict(spec.dimensions),
            statistic=spec.statistic,
            period=Duration.seconds(spec.period_seconds),
        ),
        threshold=spec.threshold,
        evaluation_periods=spec.evaluation_periods,
        datapoints_to_alarm=spec.datapoints_to_alarm,
        comparison_operator=cloudwatch.ComparisonOperator[_enum_member(spec.comparison)],
        treat_missing_data=cloudwatch.TreatMissingData[_enum_member(spec.treat_missing_data)],
    )
    action = actions.SnsAction(topic)
    if spec.notify_on_alarm:
        created.add_alarm_action(action)
    if spec.notify_on_ok:
        created.add_ok_action(action)
    return created


def _enum_member(value: str) -> str:
    """CloudFormation's value -> the CDK enum member: GreaterThanThreshold -> GREATER_THAN_THRESHOLD."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", value).upper()
