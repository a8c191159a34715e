"""The traffic function (lambdas/traffic/handler.py): shifts weights between the variants,
steps a rollout, and rolls back to the champion when a challenger alarm fires."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.core import permissions, specs
from mlops.core.config import PlatformConfig
from mlops.core.functions import TrafficSettings
from mlops.core.specs import HANDLERS, TRAFFIC
from stacks.storage import StorageImports

from .alarms import ServingAlarms
from .function import Grants, PlatformFunction, rule
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
        refs: Grants,
    ) -> None:
        super().__init__(scope, construct_id)
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
            grants=permissions.traffic(config),
            refs=refs,
            reserved_concurrency=config.function_reserved_concurrency,
            environment=TrafficSettings.for_platform(
                config, audit_bucket=storage.reports.bucket_name, topic_arn=topic.topic_arn
            ).environment(),
        )
        self.function = traffic.function
        for spec in specs.alarm_rules(config):
            if spec.target == TRAFFIC:
                rule(self, spec, self.function)
