"""The deploy function (lambdas/deploy/handler.py): makes a newly approved model package the
challenger (or the first champion), and promotes on request, through this stack's parameters.

CloudFormation applies those parameter changes with a role of its own (``DeploymentRole``)
that can only (re)create models, endpoint configs, this endpoint and its scaling: the
function's UpdateStack permission is no wider than that role.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.core import permissions, specs
from mlops.core.config import PlatformConfig
from mlops.core.functions import DeploySettings
from mlops.core.specs import DEPLOY, HANDLERS
from stacks.storage import StorageImports

from .function import Grants, PlatformFunction, rule
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
        refs: Grants,
    ) -> None:
        super().__init__(scope, construct_id)
        # The function may pass only this role to CloudFormation (see the module docstring).
        cfn_role = self._deployment_role(
            config, refs.with_values(model_role_arn=model_role.role_arn)
        )
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
            grants=permissions.deploy(config),
            refs=refs.with_values(cloudformation_role_arn=cfn_role),
            reserved_concurrency=config.function_reserved_concurrency,
            environment=DeploySettings.for_platform(
                config,
                audit_bucket=storage.reports.bucket_name,
                topic_arn=topic.topic_arn,
                cloudformation_role_arn=cfn_role,
            ).environment(),
        )
        self.function = deploy.function
        rule(self, specs.approval_rule(config), self.function)

    def _deployment_role(self, config: PlatformConfig, refs: Grants) -> str:
        role = iam.Role(
            self,
            "DeploymentRole",
            assumed_by=iam.ServicePrincipal("cloudformation.amazonaws.com"),
            description=f"{config.prefix}: CloudFormation's role for deploy-on-approval updates",
        )
        refs.managed_policy(
            self, "DeploymentPolicy", permissions.cloudformation(config), roles=[role]
        )
        return role.role_arn
