"""The A/B endpoint: the champion and challenger models, the endpoint config (with data capture
as mlops.core.specs.capture says), the endpoint, and per-variant autoscaling.

Weights come from SSM dynamic references, resolved by CloudFormation at each deploy: the
weights in force (kept by the traffic function) are what a new endpoint config gets.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnCondition, Fn, RemovalPolicy, Tags
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlops.core import names, permissions, specs
from mlops.core.config import PlatformConfig
from mlops.core.names import CHALLENGER, CHAMPION
from stacks.compliance import acknowledge
from stacks.storage import StorageImports, export_name

from .logical_ids import Group


class ServingEndpoint(Group):
    """The endpoint and what it serves; exists only while a champion is named (``has_champion``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PlatformConfig,
        storage: StorageImports,
        champion_package: str,
        challenger_package: str,
        has_champion: CfnCondition,
        has_challenger: CfnCondition,
        ops_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        # SageMaker writes the endpoint's container logs here; created by the stack so they
        # are encrypted and expire. Destroyed with the stack (a fixed name would block a
        # redeploy); audit records live in S3, not here.
        logs_group = logs.CfnLogGroup(
            self,
            "EndpointLogs",
            log_group_name=f"/aws/sagemaker/Endpoints/{config.endpoint_name}",
            kms_key_id=ops_key.key_arn,
            retention_in_days=config.log_retention_days,
        )
        logs_group.apply_removal_policy(RemovalPolicy.DESTROY)
        self.model_role = self._model_role(storage)
        models = {
            CHAMPION: self._model(CHAMPION, champion_package, has_champion),
            CHALLENGER: self._model(CHALLENGER, challenger_package, has_challenger),
        }
        endpoint_config = self._endpoint_config(storage, models, has_champion, has_challenger)
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=config.endpoint_name,
            endpoint_config_name=endpoint_config.attr_endpoint_config_name,
            # Keep run-time instance counts (autoscaling) when CloudFormation updates the
            # endpoint; weights come from the new config, which reads the weights in force
            # from SSM: a deploy never silently reverts a rollback or a rollout step.
            retain_all_variant_properties=True,
            exclude_retained_variant_properties=[
                sagemaker.CfnEndpoint.VariantPropertyProperty(variant_property_type="DesiredWeight")
            ],
        )
        self.endpoint.cfn_options.condition = has_champion
        # Before the endpoint: SageMaker would otherwise create the group first, unencrypted.
        self.endpoint.add_dependency(logs_group)
        # CloudFormation's deployment role creates and deletes only what carries this tag.
        for resource in (*models.values(), endpoint_config):
            Tags.of(resource).add(permissions.ENDPOINT_TAG, config.endpoint_name)
        self._autoscaling(has_champion, has_challenger)

    def _model_role(self, storage: StorageImports) -> iam.Role:
        config = self._config
        role = iam.Role(
            self,
            "ModelRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{config.prefix}: hosts the champion and challenger models",
        )
        prefix = f"pipelines/{config.pipeline_name}/*"
        policy = iam.ManagedPolicy(
            self,
            "ModelPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject"], resources=[storage.artifacts.arn_for_objects(prefix)]
                ),
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn]
                ),
                # Data capture writes to the capture bucket under the platform key.
                iam.PolicyStatement(
                    actions=["s3:PutObject"],
                    resources=[storage.capture.arn_for_objects(f"{names.CAPTURE_PREFIX}/*")],
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeModelPackage"],
                    resources=[
                        f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:model-package/"
                        f"{config.model_package_group_name}/*"
                    ],
                ),
                # The stack creates the endpoint's log group (encrypted, with retention).
                iam.PolicyStatement(
                    actions=[
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    resources=[
                        f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:"
                        f"/aws/sagemaker/Endpoints/{config.endpoint_name}:*"
                    ],
                ),
                *self._vpc_statements(),
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
                ),
            ],
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{export_name(config, 'artifacts-bucket-arn')}/{prefix}]",
            "Model tarballs live under each pipeline execution's own prefix; read-only, "
            "limited to this pipeline's prefix.",
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{export_name(config, 'capture-bucket-arn')}/{names.CAPTURE_PREFIX}/*]",
            "Data capture writes one object per batch under keys SageMaker names by time.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            f"model-package/{config.model_package_group_name}/*]",
            "Versions are numbered at registration; the wildcard stays in this family's group.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
            f"log-group:/aws/sagemaker/Endpoints/{config.endpoint_name}:*]",
            "SageMaker writes one log stream per variant and instance into the endpoint's group.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData supports no resource ARN; limited to SageMaker's "
            "namespaces by condition."
            + (
                " EC2's network-interface calls for VPC hosting take no resource ARN before "
                "the interface exists."
                if config.uses_vpc
                else ""
            ),
        )
        self._model_policy = policy
        return role

    def _vpc_statements(self) -> list[iam.PolicyStatement]:
        """What SageMaker does with the model role to attach the models to the VPC's subnets."""
        if not self._config.uses_vpc:
            return []
        return [
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                resources=["*"],
            )
        ]

    def _model(self, variant: str, package: str, condition: CfnCondition) -> sagemaker.CfnModel:
        model = sagemaker.CfnModel(
            self,
            f"{variant.title()}Model",
            execution_role_arn=self.model_role.role_arn,
            containers=[sagemaker.CfnModel.ContainerDefinitionProperty(model_package_name=package)],
            # The model container gets no network: it serves, it does not call out.
            enable_network_isolation=True,
            vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                subnets=list(self._config.vpc_subnet_ids),
                security_group_ids=list(self._config.vpc_security_group_ids),
            )
            if self._config.uses_vpc
            else None,
        )
        model.cfn_options.condition = condition
        model.node.add_dependency(self._model_policy)
        return model

    def _variant(
        self, name: str, model: sagemaker.CfnModel, weight: object, instance_type: str
    ) -> dict[str, object]:
        return {
            "VariantName": name,
            "ModelName": model.attr_model_name,
            "InitialInstanceCount": self._config.endpoint_min_instances,
            "InstanceType": instance_type,
            "InitialVariantWeight": weight,
        }

    def _endpoint_config(
        self,
        storage: StorageImports,
        models: dict[str, sagemaker.CfnModel],
        has_champion: CfnCondition,
        has_challenger: CfnCondition,
    ) -> sagemaker.CfnEndpointConfig:
        config = self._config
        champion = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=CHAMPION,
            model_name=models[CHAMPION].attr_model_name,
            initial_instance_count=config.endpoint_min_instances,
            instance_type=config.champion_instance_type,
            initial_variant_weight=1.0,  # replaced below by the SSM dynamic reference
        )
        # Inside Fn::If the variant is raw CloudFormation (PascalCase), not a typed property.
        challenger = self._variant(
            CHALLENGER,
            models[CHALLENGER],
            self._weight_reference(CHALLENGER),
            config.challenger_instance_type,
        )
        endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                champion,
                Fn.condition_if(has_challenger.logical_id, challenger, Aws.NO_VALUE),
            ],
            # Encrypts the ML storage volumes (config validation refuses NVMe instance types).
            kms_key_id=storage.key.key_arn,
        )
        # Data capture as mlops.core.specs.capture says (the embedded default's too).
        endpoint_config.add_property_override(
            "DataCaptureConfig",
            specs.capture(config).data_capture_config(
                storage.capture.bucket_name, storage.key.key_arn
            ),
        )
        endpoint_config.cfn_options.condition = has_champion
        endpoint_config.add_property_override(
            "ProductionVariants.0.InitialVariantWeight", self._weight_reference(CHAMPION)
        )
        return endpoint_config

    def _weight_reference(self, variant: str) -> str:
        # Resolved by CloudFormation at each deploy: the weight in force at that moment.
        return f"{{{{resolve:ssm:{self._config.weight_parameter(variant)}}}}}"

    def _autoscaling(self, has_champion: CfnCondition, has_challenger: CfnCondition) -> None:
        config = self._config
        for variant, condition in ((CHAMPION, has_champion), (CHALLENGER, has_challenger)):
            target = autoscaling.CfnScalableTarget(
                self,
                f"{variant.title()}Scaling",
                service_namespace="sagemaker",
                resource_id=f"endpoint/{config.endpoint_name}/variant/{variant}",
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                min_capacity=config.endpoint_min_instances,
                max_capacity=config.endpoint_max_instances,
                # The service-linked role AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint.
                role_arn=(
                    f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/"
                    "sagemaker.application-autoscaling.amazonaws.com/"
                    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
                ),
            )
            target.cfn_options.condition = condition
            target.node.add_dependency(self.endpoint)
            policy = autoscaling.CfnScalingPolicy(
                self,
                f"{variant.title()}ScalingPolicy",
                policy_name=f"{config.endpoint_name}-{variant}-invocations",
                policy_type="TargetTrackingScaling",
                scaling_target_id=target.ref,
                target_tracking_scaling_policy_configuration=autoscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                    target_value=float(config.invocations_per_instance_target),
                    predefined_metric_specification=autoscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                        predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                    ),
                    scale_in_cooldown=300,
                    scale_out_cooldown=60,
                ),
            )
            policy.cfn_options.condition = condition
