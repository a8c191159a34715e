"""Stateful storage: the platform's KMS key and its S3 buckets.

Everything here outlives a `cdk destroy` (RETAIN) and the stack has termination protection:
losing training data, models or audit-relevant capture data is never a side effect of a deploy.
Logical IDs are pinned by tests/infra/test_logical_ids.py because a changed ID replaces the resource.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Fn, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops.core import drift_job, names
from mlops.core.config import PlatformConfig

from .compliance import acknowledge


class SecureBucket(Construct):
    """A versioned, KMS-encrypted, SSL-only, private, access-logged bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        access_logs: s3.IBucket,
        noncurrent_version_expiration_days: int,
        current_version_expiration_days: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        expiring = current_version_expiration_days is not None
        rules = [
            s3.LifecycleRule(
                id="noncurrent-versions",
                # Where current objects expire, what expiry leaves behind goes a day later:
                # "expires after N days" then means N+1, not N + the usual grace period.
                noncurrent_version_expiration=Duration.days(
                    1 if expiring else noncurrent_version_expiration_days
                ),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            )
        ]
        if current_version_expiration_days is not None:
            rules += [
                s3.LifecycleRule(
                    id="expire-objects", expiration=Duration.days(current_version_expiration_days)
                ),
                s3.LifecycleRule(
                    id="remove-expired-delete-markers", expired_object_delete_marker=True
                ),
            ]
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            # One data key per bucket, not per object: cuts KMS requests (and cost) by ~99%.
            bucket_key_enabled=True,
            versioned=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{construct_id.lower()}/",
            lifecycle_rules=rules,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Default encryption applies only when a writer names none: refuse writers that name
        # another key, SSE-S3 or SSE-C, so every object is under the platform key.
        objects = self.bucket.arn_for_objects("*")
        anyone = iam.AnyPrincipal()
        key_header = "s3:x-amz-server-side-encryption-aws-kms-key-id"
        for sid, conditions in {
            "DenyOtherKmsKeys": {
                "StringNotEqualsIfExists": {key_header: key.key_arn},
                "Null": {key_header: "false"},
            },
            "DenyOtherEncryption": {
                "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"},
                "Null": {"s3:x-amz-server-side-encryption": "false"},
            },
            "DenyCustomerKeys": {
                "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}
            },
        }.items():
            self.bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    effect=iam.Effect.DENY,
                    principals=[anyone],
                    actions=["s3:PutObject"],
                    resources=[objects],
                    conditions=conditions,
                )
            )
        # An orphaned bucket (stack deleted, bucket retained) keeps its SSL-only policy.
        if self.bucket.policy is not None:
            self.bucket.policy.apply_removal_policy(RemovalPolicy.RETAIN)


class StorageStack(Stack):
    """The platform's KMS key and buckets: datasets, artifacts, capture, reports, access logs."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: PlatformConfig, env: Environment
    ) -> None:
        super().__init__(scope, construct_id, env=env, termination_protection=True)

        self.key = kms.Key(
            self,
            "DataKey",
            description=f"{config.prefix}: encrypts datasets, models, captured data and reports",
            enable_key_rotation=True,
            alias=names.data_key_alias(config),
            # The longest wait AWS allows between scheduling deletion and losing every object.
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The key outlives a destroy (RETAIN above); its alias does not, or the fixed name
        # would block the next deploy. A retained key is still found by its description.
        for child in self.key.node.children:
            if isinstance(child, kms.Alias):
                child.apply_removal_policy(RemovalPolicy.DESTROY)

        # S3 server access logging cannot deliver to a bucket encrypted with SSE-KMS, so this
        # one bucket uses SSE-S3 (AES-256). It holds request logs, never data.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(config.access_log_expiration_days),
                    noncurrent_version_expiration=Duration.days(
                        config.noncurrent_version_expiration_days
                    ),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        if self.access_logs.policy is not None:
            self.access_logs.policy.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            self.access_logs,
            "NIST.800.53.R5-S3DefaultEncryptionKMS",
            "S3 server access logging cannot deliver to an SSE-KMS bucket; this bucket holds "
            "only request logs and is encrypted with SSE-S3 (AES-256).",
        )

        def data_bucket(name: str, expiration_days: int | None = None) -> s3.Bucket:
            return SecureBucket(
                self,
                name,
                key=self.key,
                access_logs=self.access_logs,
                noncurrent_version_expiration_days=config.noncurrent_version_expiration_days,
                current_version_expiration_days=expiration_days,
            ).bucket

        self.datasets = data_bucket("Datasets")
        # Pipeline artifacts and model tarballs: kept as long as a registered package points at them.
        self.artifacts = data_bucket("Artifacts")
        # Captured requests/responses are personal-data-adjacent: they expire.
        self.capture = data_bucket("Capture", config.capture_expiration_days)
        self.reports = data_bucket("Reports")
        # A drift check run as a Processing job leaves working files (manifest, task, labels,
        # run record, the instances' summaries) under one fixed prefix: they expire once no
        # check can need them, and their old versions and delete markers a day later.
        job_files = drift_job.files_prefix(config.endpoint_name)
        self.reports.add_lifecycle_rule(
            id="expire-drift-job-files",
            prefix=job_files,
            expiration=Duration.days(drift_job.files_expiration_days(config)),
            noncurrent_version_expiration=Duration.days(1),
        )
        self.reports.add_lifecycle_rule(
            id="remove-drift-job-delete-markers",
            prefix=job_files,
            expired_object_delete_marker=True,
        )
        self.buckets = {
            "datasets": self.datasets,
            "artifacts": self.artifacts,
            "capture": self.capture,
            "reports": self.reports,
        }

        # Named exports are the stable contract other stacks import (see StorageImports).
        for role, bucket in self.buckets.items():
            CfnOutput(
                self,
                f"{role.title()}BucketName",
                value=bucket.bucket_name,
                export_name=export_name(config, f"{role}-bucket-name"),
            )
            CfnOutput(
                self,
                f"{role.title()}BucketArn",
                value=bucket.bucket_arn,
                export_name=export_name(config, f"{role}-bucket-arn"),
            )
        CfnOutput(
            self,
            "DataKeyArn",
            value=self.key.key_arn,
            export_name=export_name(config, "data-key-arn"),
        )
        CfnOutput(self, "AccessLogsBucketName", value=self.access_logs.bucket_name)


BUCKET_ROLES = ("datasets", "artifacts", "capture", "reports")


def export_name(config: PlatformConfig, what: str) -> str:
    return f"{config.prefix}-{what}"


class StorageImports(Construct):
    """The storage stack's buckets and key, imported by export name into another stack.

    Importing by name, not by passing constructs across stacks, keeps the contract explicit
    and stable: the storage stack can evolve without CDK inventing new export names.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: PlatformConfig) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key.from_key_arn(
            self, "DataKey", Fn.import_value(export_name(config, "data-key-arn"))
        )
        self.buckets: dict[str, s3.IBucket] = {
            role: s3.Bucket.from_bucket_attributes(
                self,
                role.title(),
                bucket_arn=Fn.import_value(export_name(config, f"{role}-bucket-arn")),
                bucket_name=Fn.import_value(export_name(config, f"{role}-bucket-name")),
                encryption_key=self.key,
            )
            for role in BUCKET_ROLES
        }

    @property
    def datasets(self) -> s3.IBucket:
        return self.buckets["datasets"]

    @property
    def artifacts(self) -> s3.IBucket:
        return self.buckets["artifacts"]

    @property
    def capture(self) -> s3.IBucket:
        return self.buckets["capture"]

    @property
    def reports(self) -> s3.IBucket:
        return self.buckets["reports"]
