"""Stateful registry: the SageMaker Model Package Group and, optionally, managed MLflow.

The package group is the single gate to production: serving only ever deploys approved
packages from it. Managed MLflow costs money while it exists, so it sits behind
`enable_mlflow_server` (README: cost).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from mlops.core import names
from mlops.core.config import PlatformConfig
from mlops.core.names import CHALLENGER, CHAMPION

from .compliance import acknowledge
from .storage import StorageImports, export_name

MLFLOW_ARTIFACT_PREFIX = names.MLFLOW_ARTIFACT_PREFIX


class MlflowTrackingServer(Construct):
    """SageMaker managed MLflow, storing its artifacts under one prefix of the artifacts bucket.

    Its role can read and write only that prefix, and use the data key only through S3.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        size: str,
        artifacts: s3.IBucket,
        artifact_arn_export: str,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            # The trust policy AWS documents for MLflow tracking servers: SageMaker only.
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{name}: reads and writes MLflow artifacts only",
        )
        prefix_arn = artifacts.arn_for_objects(f"{MLFLOW_ARTIFACT_PREFIX}/*")
        # A customer-managed policy, not inline: NIST 800-53 R5 (IAMNoInlinePolicy) wants
        # permissions reviewable and attachable on their own.
        policy = iam.ManagedPolicy(
            self,
            "ArtifactAccess",
            description=f"{name}: MLflow artifact store access",
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    resources=[prefix_arn],
                ),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[artifacts.bucket_arn],
                    conditions={
                        "StringLike": {
                            "s3:prefix": [MLFLOW_ARTIFACT_PREFIX, f"{MLFLOW_ARTIFACT_PREFIX}/*"]
                        }
                    },
                ),
                iam.PolicyStatement(
                    actions=["s3:GetBucketLocation"],
                    resources=[artifacts.bucket_arn],
                ),
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}
                    },
                ),
            ],
        )
        self.role.add_managed_policy(policy)
        acknowledge(
            policy,
            # cdk-nag names an imported ARN by its export name.
            f"AwsSolutions-IAM5[Resource::{artifact_arn_export}/{MLFLOW_ARTIFACT_PREFIX}/*]",
            "MLflow writes run artifacts under keys it generates; access is limited to the "
            f"'{MLFLOW_ARTIFACT_PREFIX}/' prefix of the artifacts bucket.",
        )
        self.server = sagemaker.CfnMlflowTrackingServer(
            self,
            "Server",
            tracking_server_name=name,
            artifact_store_uri=f"s3://{artifacts.bucket_name}/{MLFLOW_ARTIFACT_PREFIX}",
            role_arn=self.role.role_arn,
            tracking_server_size=size,
            # The pipeline registers models explicitly, with lineage metadata; MLflow must not
            # create a second, unaudited path into the registry.
            automatic_model_registration=False,
        )
        self.server.node.add_dependency(policy)
        # Deleting a tracking server deletes its run history; stop it to stop paying instead.
        # Its role and policy stay with it, or a retained server could no longer reach S3.
        for resource in (self.server, self.role, policy):
            resource.apply_removal_policy(RemovalPolicy.RETAIN)


class RegistryStack(Stack):
    """The Model Package Group for the model family, plus optional managed MLflow."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PlatformConfig,
        env: Environment,
    ) -> None:
        super().__init__(scope, construct_id, env=env, termination_protection=True)
        storage = StorageImports(self, "Storage", config=config)

        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=config.model_package_group_name,
            model_package_group_description=(
                f"{config.prefix}: every model of the '{config.model_family}' family that may "
                "serve traffic; only Approved packages are deployed."
            ),
        )
        self.model_package_group.apply_removal_policy(RemovalPolicy.RETAIN)
        CfnOutput(
            self,
            "ModelPackageGroupName",
            value=config.model_package_group_name,
        )

        # The variants' current weights. The traffic controls write them at run time and the
        # serving stack's endpoint config reads them, so a deploy that replaces the endpoint
        # config starts from the weights in force, never from a default. CloudFormation writes
        # the value when it creates the parameter and whenever this resource's properties
        # change: keep them as they are (a test pins them).
        for variant, weight in ((CHAMPION, "1"), (CHALLENGER, "0")):
            parameter = ssm.StringParameter(
                self,
                f"{variant.title()}Weight",
                parameter_name=config.weight_parameter(variant),
                string_value=weight,
                description=f"current traffic weight of the {variant} variant of {config.endpoint_name}",
            )
            # Run-time state of an endpoint that a destroy removes too; a retained parameter
            # (fixed name) would block the next deploy.
            parameter.apply_removal_policy(RemovalPolicy.DESTROY)

        self.mlflow: MlflowTrackingServer | None = None
        if config.enable_mlflow_server:
            self.mlflow = MlflowTrackingServer(
                self,
                "Mlflow",
                name=config.mlflow_tracking_server_name,
                size=config.mlflow_server_size,
                artifacts=storage.artifacts,
                artifact_arn_export=export_name(config, "artifacts-bucket-arn"),
                key=storage.key,
            )
            CfnOutput(
                self, "MlflowTrackingServerArn", value=self.mlflow.server.attr_tracking_server_arn
            )
