"""The serving dashboard: per variant traffic, latency, errors, weights and drift; the
alarms; and the functions' health."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from mlops.core import names
from mlops.core.config import PlatformConfig
from mlops.core.names import CHALLENGER, CHAMPION
from mlops.core.specs import DRIFT_NAMESPACE, drift_alarm_period

from .alarms import ServingAlarms
from .logical_ids import Group


class ServingDashboard(Group):
    """One CloudWatch dashboard, named ``<prefix>-serving``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PlatformConfig,
        alarms: ServingAlarms,
        traffic: lambda_.IFunction,
        drift: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        endpoint = config.endpoint_name
        period = Duration.minutes(5)
        drift_period = Duration.seconds(drift_alarm_period(config))

        def sagemaker_metric(name: str, variant: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name=name,
                dimensions_map={"EndpointName": endpoint, "VariantName": variant},
                statistic=statistic,
                period=period,
                label=variant,
            )

        variants = (CHAMPION, CHALLENGER)
        self.dashboard = dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=names.dashboard(config)
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {endpoint}: champion and challenger\n"
                "Weights change with rollouts and rollbacks (traffic function); drift share "
                "is the share of features that drifted in each scheduled check.",
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Invocations",
                left=[sagemaker_metric("Invocations", v, "Sum") for v in variants],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Model latency p99 (microseconds)",
                left=[sagemaker_metric("ModelLatency", v, "p99") for v in variants],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Errors (4XX, 5XX)",
                left=[
                    sagemaker_metric(name, v, "Sum")
                    for name in ("Invocation4XXErrors", "Invocation5XXErrors")
                    for v in variants
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Variant weights",
                left=[
                    _drift_metric(config, "VariantWeight", v, "Maximum", drift_period)
                    for v in variants
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1),
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Drift share (features drifted / all)",
                left=[
                    _drift_metric(config, "DriftShare", v, "Maximum", drift_period).with_(label=v)
                    for v in variants
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1),
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=config.drift_share_threshold, label="dataset drift"
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Rows checked, malformed records",
                left=[
                    _drift_metric(config, "RowsChecked", v, "Sum", drift_period).with_(
                        label=f"{v} rows"
                    )
                    for v in variants
                ],
                right=[
                    _drift_metric(config, "MalformedRecords", v, "Sum", drift_period).with_(
                        label=f"{v} malformed"
                    )
                    for v in variants
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=[*alarms.variant.values(), *alarms.drift.values()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Functions: errors",
                left=[
                    f.metric_errors(period=period, label=label)
                    for label, f in (("traffic", traffic), ("drift", drift))
                ],
                width=12,
            ),
        )


def _drift_metric(
    config: PlatformConfig, name: str, variant: str, statistic: str, period: Duration
) -> cloudwatch.Metric:
    """A metric the drift function publishes (EMF) with each check, per variant."""
    return cloudwatch.Metric(
        namespace=DRIFT_NAMESPACE,
        metric_name=name,
        dimensions_map={"EndpointName": config.endpoint_name, "VariantName": variant},
        statistic=statistic,
        period=period,
    )
