"""The drift function (lambdas/drift/handler.py), on its own image (Evidently's stack):
checks each variant's captured traffic against its reference data on a schedule, and starts
retraining when the champion drifts (when configured)."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.core import names, specs
from mlops.core.config import PlatformConfig
from mlops.core.functions import DriftSettings
from mlops.core.specs import DRIFT, HANDLERS
from stacks.compliance import acknowledge
from stacks.storage import StorageImports, export_name

from .function import PlatformFunction, rule
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
    ) -> None:
        super().__init__(scope, construct_id)
        endpoint = config.endpoint_name
        arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        capture_prefixes = [
            f"{names.CAPTURE_PREFIX}/{endpoint}/",
            f"{names.GROUND_TRUTH_PREFIX}/{endpoint}/",
        ]
        report_prefixes = [
            f"{names.DRIFT_REPORTS_PREFIX}/{endpoint}/",
            f"{names.RETRAINING_AUDIT_PREFIX}/{endpoint}/",
        ]
        statements = [
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint"], resources=[f"{arn}:endpoint/{endpoint}"]
            ),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpointConfig"],
                resources=[f"{arn}:endpoint-config/*"],
            ),
            iam.PolicyStatement(actions=["sagemaker:DescribeModel"], resources=[f"{arn}:model/*"]),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[f"{arn}:model-package/{config.model_package_group_name}/*"],
            ),
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[storage.capture.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in capture_prefixes]}},
            ),
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[storage.capture.arn_for_objects(f"{p}*") for p in capture_prefixes],
            ),
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    storage.artifacts.arn_for_objects(f"pipelines/{config.pipeline_name}/*")
                ],
            ),
            # Every read is listed first (mlops.adapters.s3io.exists): a missing scores.csv of an older
            # model is "not there", not AccessDenied.
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[storage.artifacts.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"pipelines/{config.pipeline_name}/*"]}},
            ),
            # ListBucket makes a missing window state a 404 (first run), not a 403.
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[storage.reports.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in report_prefixes]}},
            ),
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[storage.reports.arn_for_objects(f"{p}*") for p in report_prefixes],
            ),
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn]
            ),
            iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]),
        ]
        if config.retrain_on_champion_drift:
            statements.append(
                iam.PolicyStatement(
                    actions=["sagemaker:StartPipelineExecution"],
                    resources=[f"{arn}:pipeline/{config.pipeline_name}"],
                )
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
            statements=statements,
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
        reports = export_name(config, "reports-bucket-arn")
        capture = export_name(config, "capture-bucket-arn")
        artifacts = export_name(config, "artifacts-bucket-arn")
        for finding, reason in (
            ("Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:endpoint-config/*",
             "Endpoint configurations are named by CloudFormation (a new one on every change); "
             "describe only, and only the endpoint's own is read."),
            ("Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model/*",
             "Models are named by CloudFormation (a new one per model package); describe only, "
             "to find the model package a variant serves."),
            (f"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model-package/{config.model_package_group_name}/*",
             "Every version of this model family's registry group, describe only: the variant "
             "may serve any approved version."),
            *(
                (f"Resource::{capture}/{p}*", "Read-only, this endpoint's captured requests "
                 "or ground-truth labels, by hour prefix.")
                for p in capture_prefixes
            ),
            (f"Resource::{artifacts}/pipelines/{config.pipeline_name}/*",
             "Read-only, this pipeline's outputs: the reference data and evaluation of the "
             "model a variant serves."),
            *(
                (f"Resource::{reports}/{p}*", "This endpoint's drift reports and window state, "
                 "or its retraining decisions; reports are written once (If-None-Match).")
                for p in report_prefixes
            ),
        ):  # fmt: skip
            acknowledge(drift.policy, f"AwsSolutions-IAM5[{finding}]", reason)
        self.function = drift.function
        rule(self, specs.drift_schedule_rule(config), self.function)
        for spec in specs.alarm_rules(config):
            if spec.target == DRIFT:
                rule(self, spec, self.function)
