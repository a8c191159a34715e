"""The deploy function (lambdas/deploy/handler.py): makes a newly approved model package the
challenger (or the first champion), and promotes on request, through this stack's parameters.

CloudFormation applies those parameter changes with a role of its own (``DeploymentRole``)
that can only (re)create models, endpoint configs, this endpoint and its scaling: the
function's UpdateStack permission is no wider than that role.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.core import names, specs
from mlops.core.config import PlatformConfig
from mlops.core.functions import DeploySettings
from mlops.core.specs import DEPLOY, HANDLERS
from stacks.compliance import acknowledge
from stacks.storage import StorageImports, export_name

from .function import PlatformFunction, rule, weights_statement
from .logical_ids import Group


class DeployFunction(Group):
    """lambdas/deploy/handler.py, its permissions, CloudFormation's role for its updates, and
    the rule that hands it each approval (mlops.core.specs.approval_rule)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PlatformConfig,
        storage: StorageImports,
        ops_key: kms.IKey,
        topic: sns.ITopic,
        model_role: iam.IRole,
    ) -> None:
        super().__init__(scope, construct_id)
        # The function may pass only this role to CloudFormation (see the module docstring).
        cfn_role = self._deployment_role(config, storage, model_role).role_arn
        deploy = PlatformFunction(
            self,
            "Deploy",
            handler=HANDLERS[DEPLOY],
            alarm_topic=topic,
            description="Make a newly approved model package the challenger; promote on request",
            ops_key=ops_key,
            log_retention_days=config.log_retention_days,
            memory_size=256,
            timeout=Duration.minutes(1),
            statements=[
                iam.PolicyStatement(
                    actions=["cloudformation:DescribeStacks", "cloudformation:UpdateStack"],
                    resources=[Stack.of(self).stack_id],
                ),
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[cfn_role],
                    conditions={
                        "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
                    },
                ),
                weights_statement(config),
                iam.PolicyStatement(
                    actions=["s3:PutObject"],
                    resources=[
                        storage.reports.arn_for_objects(
                            f"{names.SERVING_AUDIT_PREFIX}/{config.endpoint_name}/*"
                        )
                    ],
                ),
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey"], resources=[storage.key.key_arn]
                ),
                iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]),
            ],
            environment=DeploySettings.for_platform(
                config,
                audit_bucket=storage.reports.bucket_name,
                topic_arn=topic.topic_arn,
                cloudformation_role_arn=cfn_role,
            ).environment(),
        )
        acknowledge(
            deploy.policy,
            f"AwsSolutions-IAM5[Resource::{export_name(config, 'reports-bucket-arn')}/{names.SERVING_AUDIT_PREFIX}/{config.endpoint_name}/*]",
            "One audit record per deployment, named by its request id; write-only, limited to "
            "this endpoint's prefix.",
        )
        self.function = deploy.function
        rule(self, specs.approval_rule(config), self.function)

    def _deployment_role(
        self, config: PlatformConfig, storage: StorageImports, model_role: iam.IRole
    ) -> iam.Role:
        arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        role = iam.Role(
            self,
            "DeploymentRole",
            assumed_by=iam.ServicePrincipal("cloudformation.amazonaws.com"),
            description=f"{config.prefix}: CloudFormation's role for deploy-on-approval updates",
        )
        policy = iam.ManagedPolicy(
            self,
            "DeploymentPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:CreateModel",
                        "sagemaker:DescribeModel",
                        "sagemaker:DeleteModel",
                        "sagemaker:CreateEndpointConfig",
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DeleteEndpointConfig",
                        "sagemaker:CreateEndpoint",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:UpdateEndpoint",
                        "sagemaker:AddTags",
                    ],
                    resources=[
                        f"{arn}:model/*",
                        f"{arn}:endpoint-config/*",
                        f"{arn}:endpoint/{config.endpoint_name}",
                    ],
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeModelPackage"],
                    resources=[f"{arn}:model-package/{config.model_package_group_name}/*"],
                ),
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[model_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    actions=["kms:CreateGrant", "kms:DescribeKey"],
                    resources=[storage.key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                # The endpoint config reads the weights in force through dynamic references.
                iam.PolicyStatement(
                    actions=["ssm:GetParameters", "ssm:GetParameter"],
                    resources=[
                        f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{name}"
                        for name in names.weight_parameters(config).values()
                    ],
                ),
                # Application Auto Scaling has no resource-level permissions for these calls.
                iam.PolicyStatement(
                    actions=[
                        "application-autoscaling:RegisterScalableTarget",
                        "application-autoscaling:DeregisterScalableTarget",
                        "application-autoscaling:DescribeScalableTargets",
                        "application-autoscaling:PutScalingPolicy",
                        "application-autoscaling:DeleteScalingPolicy",
                        "application-autoscaling:DescribeScalingPolicies",
                    ],
                    resources=["*"],
                ),
            ],
        )
        for resource, reason in {
            "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model/*": (
                "CloudFormation names each model it creates for a package; models only."
            ),
            "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:endpoint-config/*": (
                "CloudFormation names each endpoint config it creates; endpoint configs only."
            ),
            "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model-package/"
            f"{config.model_package_group_name}/*": (
                "Package versions are numbered at registration; limited to this family's group."
            ),
            "*": (
                "Application Auto Scaling's register/describe/policy calls support no resource "
                "ARNs; the role is used only by CloudFormation for this stack."
            ),
        }.items():
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
        return role
