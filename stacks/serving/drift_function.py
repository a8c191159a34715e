"""The drift function (lambdas/drift/handler.py), on its own image (Evidently's stack):
checks each variant's captured traffic against its reference data on a schedule, and starts
retraining when the champion drifts (when configured)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.core import permissions, specs
from mlops.core.config import PlatformConfig
from mlops.core.functions import DriftSettings
from mlops.core.specs import DRIFT, HANDLERS
from stacks.storage import StorageImports

from .function import Grants, PlatformFunction, rule
from .logical_ids import Group

# Evidently's import and a 1M-row window need room (benchmarks/drift_check.py).
DRIFT_MEMORY_MB = 3008
DRIFT_TIMEOUT_MINUTES = 15


class DriftFunction(Group):
    """lambdas/drift/handler.py, its permissions, its schedule and, with retraining on
    champion drift, the rule that hands it the champion's drift alarm (mlops.core.specs)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PlatformConfig,
        storage: StorageImports,
        ops_key: kms.IKey,
        topic: sns.ITopic,
        refs: Grants,
    ) -> None:
        super().__init__(scope, construct_id)
        drift = PlatformFunction(
            self,
            "Drift",
            handler=HANDLERS[DRIFT],
            dockerfile="lambdas/drift/Dockerfile",
            alarm_topic=topic,
            description="Scheduled drift check of the endpoint's variants over data capture",
            ops_key=ops_key,
            log_retention_days=config.log_retention_days,
            # benchmarks/drift_check.py: 1M captured rows fit well inside this (README).
            memory_size=DRIFT_MEMORY_MB,
            timeout=Duration.minutes(DRIFT_TIMEOUT_MINUTES),
            grants=permissions.drift(config),
            refs=refs,
            reserved_concurrency=config.function_reserved_concurrency,
            environment={
                **DriftSettings.for_platform(
                    config,
                    reports_bucket=storage.reports.bucket_name,
                    capture_bucket=storage.capture.bucket_name,
                    topic_arn=topic.topic_arn,
                ).environment(),
                "DO_NOT_TRACK": "1",
            },
        )
        self.function = drift.function
        rule(self, specs.drift_schedule_rule(config), self.function)
        for spec in specs.alarm_rules(config):
            if spec.target == DRIFT:
                rule(self, spec, self.function)
