"""The traffic function (lambdas/traffic/handler.py): shifts weights between the variants,
steps a rollout, and rolls back to the champion when a challenger alarm fires."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.core import names, specs
from mlops.core.config import PlatformConfig
from mlops.core.functions import TrafficSettings
from mlops.core.names import CHALLENGER
from mlops.core.specs import HANDLERS, TRAFFIC
from stacks.compliance import acknowledge
from stacks.storage import StorageImports, export_name

from .alarms import ServingAlarms
from .function import PlatformFunction, rule, weights_statement
from .logical_ids import Group


class TrafficFunction(Group):
    """lambdas/traffic/handler.py, its permissions, and the rule that rolls back on the
    challenger's alarms (mlops.core.specs.alarm_rules)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PlatformConfig,
        storage: StorageImports,
        ops_key: kms.IKey,
        topic: sns.ITopic,
        alarms: ServingAlarms,
    ) -> None:
        super().__init__(scope, construct_id)
        endpoint_arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:endpoint/{config.endpoint_name}"
        traffic = PlatformFunction(
            self,
            "Traffic",
            handler=HANDLERS[TRAFFIC],
            alarm_topic=topic,
            description="Shift, roll back or step the rollout of the endpoint's variants",
            ops_key=ops_key,
            log_retention_days=config.log_retention_days,
            memory_size=512,
            timeout=Duration.minutes(5),  # bounded backoff while the endpoint is Updating
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:UpdateEndpointWeightsAndCapacities",
                    ],
                    resources=[endpoint_arn],
                ),
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarms"],
                    resources=[
                        *(a.alarm_arn for a in alarms.variant.values()),
                        *(
                            [alarms.drift[CHALLENGER].alarm_arn]
                            if config.auto_rollback_on_challenger_drift
                            else []
                        ),
                    ],
                ),
                iam.PolicyStatement(
                    actions=["s3:PutObject"],
                    resources=[
                        storage.reports.arn_for_objects(
                            f"{names.TRAFFIC_AUDIT_PREFIX}/{config.endpoint_name}/*"
                        )
                    ],
                ),
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey"], resources=[storage.key.key_arn]
                ),
                iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]),
                weights_statement(config),
            ],
            environment=TrafficSettings.for_platform(
                config, audit_bucket=storage.reports.bucket_name, topic_arn=topic.topic_arn
            ).environment(),
        )
        acknowledge(
            traffic.policy,
            f"AwsSolutions-IAM5[Resource::{export_name(config, 'reports-bucket-arn')}/{names.TRAFFIC_AUDIT_PREFIX}/{config.endpoint_name}/*]",
            "One audit record per request, named by its id; write-only, limited to this "
            "endpoint's audit prefix.",
        )
        self.function = traffic.function
        for spec in specs.alarm_rules(config):
            if spec.target == TRAFFIC:
                rule(self, spec, self.function)
