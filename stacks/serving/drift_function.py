"""The drift function (lambdas/drift/handler.py), on its own image (Evidently's stack):
checks each variant's captured traffic against its reference data on a schedule, and starts
retraining when the champion drifts (when configured)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.core import drift_job, names, permissions, processing_permissions, specs
from mlops.core.config import PlatformConfig
from mlops.core.functions import DRIFT_MEMORY_MB, DRIFT_TIMEOUT_MINUTES, DriftSettings
from mlops.core.specs import DRIFT, HANDLERS
from stacks.storage import StorageImports

from .function import Grants, PlatformFunction, rule
from .logical_ids import Group


class DriftFunction(Group):
    """lambdas/drift/handler.py, its permissions, its schedule and, with retraining on
    champion drift, the rule that hands it the champion's drift alarm (mlops.core.specs); and
    what checks a window too large for it: the Processing jobs' role, their definition (in the
    function's environment) and the rule that hands it their end (mlops.core.drift_job)."""

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
        processing = self._processing_role(config, refs)
        settings = DriftSettings.for_platform(
            config,
            reports_bucket=storage.reports.bucket_name,
            capture_bucket=storage.capture.bucket_name,
            topic_arn=topic.topic_arn,
        )
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
            refs=refs.with_values(processing_role_arn=processing.role_arn),
            reserved_concurrency=config.function_reserved_concurrency,
            environment={**settings.environment(), "DO_NOT_TRACK": "1"},
        )
        self.function = drift.function
        self.processing_role = processing
        # The jobs run the function's own image (another entry point): the image exists once
        # the function's code asset does, so its definition is added to the environment now.
        asset = self.function.node.try_find_child("AssetImage")
        if not isinstance(asset, ecr_assets.DockerImageAsset):
            raise TypeError("the drift function's image asset was not found")
        self.job_definition = drift_job.definition(
            config,
            image_uri=asset.image_uri,
            role_arn=processing.role_arn,
            key_arn=storage.key.key_arn,
        )
        with_job = settings.model_copy(update={"processing_job": self.job_definition})
        self.function.add_environment("PROCESSING_JOB", with_job.environment()["PROCESSING_JOB"])
        rule(self, specs.drift_schedule_rule(config), self.function)
        rule(self, specs.drift_job_rule(config), self.function)
        for spec in specs.alarm_rules(config):
            if spec.target == DRIFT:
                rule(self, spec, self.function)

    def _processing_role(self, config: PlatformConfig, refs: Grants) -> iam.Role:
        """The role the drift checks' Processing jobs run as (mlops.core.permissions), named so
        the function's PassRole and the embedded default name the same role."""
        account = Stack.of(self).account
        role = iam.Role(
            self,
            "ProcessingRole",
            role_name=names.drift_processing_role(config),
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {
                        "aws:SourceArn": permissions.drift_jobs(config).format_map(refs.values)
                    },
                },
            ),
            description=f"{config.prefix}: drift checks run as SageMaker Processing jobs",
        )
        refs.managed_policy(
            self, "ProcessingPolicy", processing_permissions.drift_processing(config), roles=[role]
        )
        return role
