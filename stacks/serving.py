"""Serving: an A/B endpoint (variants ``champion`` and ``challenger``), autoscaling, alarms,
and the traffic Lambda that shifts and rolls back.

Which package each variant serves is a *stack parameter* (``ChampionModelPackageArn``,
``ChallengerModelPackageArn``); the endpoint exists only once a champion is named. Run-time
state is never reverted by a deploy:

- ``cdk deploy`` keeps the previous parameter values (the CLI's default), so the packages
  chosen at run time stay;
- weights and instance counts changed at run time (traffic Lambda, autoscaling) are kept by
  ``RetainAllVariantProperties`` whenever CloudFormation updates the endpoint;
- a template change that leaves the endpoint config alone does not touch the endpoint.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aws_cdk import (
    Aws,
    CfnCondition,
    CfnOutput,
    CfnParameter,
    Duration,
    Environment,
    Fn,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mlops.core import names, specs
from mlops.core.config import PlatformConfig
from mlops.core.functions import DeploySettings, DriftSettings, TrafficSettings
from mlops.core.names import CHALLENGER, CHAMPION
from mlops.core.specs import (
    DEPLOY,
    DRIFT,
    DRIFT_NAMESPACE,
    HANDLERS,
    TRAFFIC,
    AlarmSpec,
    RuleSpec,
    drift_alarm_period,
)

from .compliance import acknowledge
from .storage import StorageImports

REPO_ROOT = Path(__file__).resolve().parent.parent
# The drift function: Evidently's import and a 1M-row window need room (benchmarks/drift_check.py).
DRIFT_MEMORY_MB = 3008
DRIFT_TIMEOUT_MINUTES = 15


class OpsKey(Construct):
    """A KMS key for the serving stack's alerts, queues and logs, usable by those services."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PlatformConfig) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"{config.prefix}: serving alerts, dead letters and logs",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CloudWatch alarms publish to the encrypted topic; EventBridge delivers to it.
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    principals=[iam.ServicePrincipal(service)],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                )
            )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                    }
                },
            )
        )


class PlatformFunction(Construct):
    """A platform Lambda function: the image from lambdas/Dockerfile, reserved concurrency 1
    (its decisions never race), an encrypted dead-letter queue, KMS-encrypted logs with the
    configured retention, and its own managed policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        ops_key: kms.IKey,
        log_retention_days: int,
        memory_size: int,
        timeout: Duration,
        statements: list[iam.PolicyStatement],
        environment: dict[str, str],
        alarm_topic: sns.ITopic,
        dockerfile: str = "lambdas/Dockerfile",
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(
            self, "Logs", encryption_key=ops_key, removal_policy=RemovalPolicy.RETAIN
        )
        # Config validated the number against CloudWatch's allowed values; the L2's enum has
        # no lookup by days, so it is set on the resource.
        log_group_resource = log_group.node.default_child
        if not isinstance(log_group_resource, logs.CfnLogGroup):
            raise TypeError("LogGroup without its CfnLogGroup")
        log_group_resource.retention_in_days = log_retention_days
        dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=ops_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        # A decision that failed all its retries lands here: someone must look at it.
        stranded = cloudwatch.Alarm(
            self,
            "DeadLettersAlarm",
            alarm_description=f"{construct_id}: an invocation failed all retries (see its dead-letter queue)",
            metric=dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1)
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        stranded.add_alarm_action(cloudwatch_actions_sns(alarm_topic))
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
        )
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[self.role],
            statements=[
                *statements,
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[ops_key.key_arn]
                ),
                iam.PolicyStatement(
                    actions=["sqs:SendMessage"], resources=[dead_letters.queue_arn]
                ),
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                ),
            ],
        )
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            description=description,
            code=_image(handler, dockerfile),
            role=self.role,
            memory_size=memory_size,
            timeout=timeout,
            reserved_concurrent_executions=1,
            dead_letter_queue=dead_letters,
            log_group=log_group,
            architecture=lambda_.Architecture.X86_64,
            environment=environment,
        )
        self.function.node.add_dependency(self.policy)
        # An invocation that raised (before its retries): someone should look at the logs.
        failing = cloudwatch.Alarm(
            self,
            "ErrorsAlarm",
            alarm_description=f"{construct_id}: the function raised an error (see its logs)",
            metric=self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        failing.add_alarm_action(cloudwatch_actions_sns(alarm_topic))
        # CDK's Function adds DependsOn on its role, which the Role property already implies:
        # cfn-lint W3005 on CDK's own output, silenced for this one resource only.
        function_resource = self.function.node.default_child
        if not isinstance(function_resource, lambda_.CfnFunction):
            raise TypeError("DockerImageFunction without its CfnFunction")
        function_resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        # CDK's own grants land in the role's default (inline) policy: pulling the image from
        # the asset repository and sending to the dead-letter queue.
        default_policy = self.role.node.try_find_child("DefaultPolicy")
        if default_policy is not None:
            acknowledge(
                default_policy,
                "NIST.800.53.R5-IAMNoInlinePolicy",
                "CDK generates this policy for the function's image pull (ECR) and its "
                "dead-letter queue; the function's own permissions are in a managed policy.",
            )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls regional AWS APIs (SageMaker, CloudFormation, SSM, S3, "
            "SNS, CloudWatch); a VPC would add NAT or interface endpoints for no isolation gained.",
        )


class ServingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PlatformConfig,
        env: Environment,
    ) -> None:
        super().__init__(scope, construct_id, env=env)
        self.config = config
        endpoint_name = config.endpoint_name
        storage = StorageImports(self, "Storage", config=config)

        champion = CfnParameter(
            self,
            "ChampionModelPackageArn",
            type="String",
            default="",
            description="Approved model package serving as champion (set by the deploy-on-approval flow)",
            allowed_pattern=r"^$|^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/.+$",
        )
        challenger = CfnParameter(
            self,
            "ChallengerModelPackageArn",
            type="String",
            default="",
            description="Approved model package serving as challenger (empty: no challenger)",
            allowed_pattern=r"^$|^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/.+$",
        )
        has_champion = CfnCondition(
            self,
            "HasChampion",
            expression=Fn.condition_not(Fn.condition_equals(champion.value_as_string, "")),
        )
        has_challenger = CfnCondition(
            self,
            "HasChallenger",
            expression=Fn.condition_and(
                has_champion,  # type: ignore[arg-type]  # a CfnCondition is a condition expression
                Fn.condition_not(Fn.condition_equals(challenger.value_as_string, "")),
            ),
        )

        ops = OpsKey(self, "Ops", config=config).key
        self.topic = sns.Topic(
            self,
            "Alerts",
            display_name=f"{config.prefix} model serving alerts",
            master_key=ops,
            enforce_ssl=True,
        )
        if config.notification_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.notification_email))

        role = self._model_role(storage)
        self._model_role_arn = role.role_arn
        models = {
            CHAMPION: self._model(CHAMPION, champion.value_as_string, role, has_champion),
            CHALLENGER: self._model(CHALLENGER, challenger.value_as_string, role, has_challenger),
        }
        endpoint_config = self._endpoint_config(storage, models, has_champion, has_challenger)
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
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
        self._autoscaling(has_champion, has_challenger)
        self.alarms = self._alarms()
        self.drift_alarms = self._drift_alarms()
        self.traffic = self._traffic_lambda(storage, ops)
        self.drift = self._drift_lambda(storage, ops)
        self._alarm_rules()
        self.deployer = self._deploy_lambda(storage, ops)
        self.dashboard = self._dashboard()

        CfnOutput(self, "EndpointName", value=endpoint_name)
        CfnOutput(self, "AlertsTopicArn", value=self.topic.topic_arn)
        CfnOutput(self, "TrafficFunctionName", value=self.traffic.function_name)
        CfnOutput(self, "DeployFunctionName", value=self.deployer.function_name)
        CfnOutput(self, "DriftFunctionName", value=self.drift.function_name)
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name)

    # -- models and endpoint -----------------------------------------------------------------

    def _model_role(self, storage: StorageImports) -> iam.Role:
        role = iam.Role(
            self,
            "ModelRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{self.config.prefix}: hosts the champion and challenger models",
        )
        prefix = f"pipelines/{self.config.pipeline_name}/*"
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
                        f"{self.config.model_package_group_name}/*"
                    ],
                ),
                iam.PolicyStatement(
                    actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[
                        f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/*"
                    ],
                ),
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
                ),
            ],
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{self._export('artifacts-bucket-arn')}/{prefix}]",
            "Model tarballs live under each pipeline execution's own prefix; read-only, "
            "limited to this pipeline's prefix.",
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{self._export('capture-bucket-arn')}/{names.CAPTURE_PREFIX}/*]",
            "Data capture writes one object per batch under keys SageMaker names by time.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            f"model-package/{self.config.model_package_group_name}/*]",
            "Versions are numbered at registration; the wildcard stays in this family's group.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
            "log-group:/aws/sagemaker/Endpoints/*]",
            "SageMaker writes each endpoint's logs to a group it names after the endpoint.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData supports no resource ARN; limited to SageMaker's "
            "namespaces by condition.",
        )
        self._model_policy = policy
        return role

    def _export(self, what: str) -> str:
        return f"{self.config.prefix}-{what}"

    def _model(
        self, variant: str, package: str, role: iam.Role, condition: CfnCondition
    ) -> sagemaker.CfnModel:
        model = sagemaker.CfnModel(
            self,
            f"{variant.title()}Model",
            execution_role_arn=role.role_arn,
            containers=[sagemaker.CfnModel.ContainerDefinitionProperty(model_package_name=package)],
            # The model container gets no network: it serves, it does not call out.
            enable_network_isolation=True,
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
            "InitialInstanceCount": self.config.endpoint_min_instances,
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
        champion = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=CHAMPION,
            model_name=models[CHAMPION].attr_model_name,
            initial_instance_count=self.config.endpoint_min_instances,
            instance_type=self.config.champion_instance_type,
            initial_variant_weight=1.0,  # replaced below by the SSM dynamic reference
        )
        # Inside Fn::If the variant is raw CloudFormation (PascalCase), not a typed property.
        challenger = self._variant(
            CHALLENGER,
            models[CHALLENGER],
            self._weight_reference(CHALLENGER),
            self.config.challenger_instance_type,
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
            specs.capture(self.config).data_capture_config(
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
        return f"{{{{resolve:ssm:{self.config.weight_parameter(variant)}}}}}"

    def _autoscaling(self, has_champion: CfnCondition, has_challenger: CfnCondition) -> None:
        for variant, condition in ((CHAMPION, has_champion), (CHALLENGER, has_challenger)):
            target = autoscaling.CfnScalableTarget(
                self,
                f"{variant.title()}Scaling",
                service_namespace="sagemaker",
                resource_id=f"endpoint/{self.config.endpoint_name}/variant/{variant}",
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                min_capacity=self.config.endpoint_min_instances,
                max_capacity=self.config.endpoint_max_instances,
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
                policy_name=f"{self.config.endpoint_name}-{variant}-invocations",
                policy_type="TargetTrackingScaling",
                scaling_target_id=target.ref,
                target_tracking_scaling_policy_configuration=autoscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                    target_value=float(self.config.invocations_per_instance_target),
                    predefined_metric_specification=autoscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                        predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                    ),
                    scale_in_cooldown=300,
                    scale_out_cooldown=60,
                ),
            )
            policy.cfn_options.condition = condition

    def _alarm(self, spec: AlarmSpec) -> cloudwatch.Alarm:
        """A CloudWatch alarm from its specification (mlops.core.specs)."""
        alarm = cloudwatch.Alarm(
            self,
            spec.construct_id,
            alarm_name=spec.name,
            alarm_description=spec.description,
            metric=cloudwatch.Metric(
                namespace=spec.namespace,
                metric_name=spec.metric,
                dimensions_map=dict(spec.dimensions),
                statistic=spec.statistic,
                period=Duration.seconds(spec.period_seconds),
            ),
            threshold=spec.threshold,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.datapoints_to_alarm,
            comparison_operator=cloudwatch.ComparisonOperator[_enum_member(spec.comparison)],
            treat_missing_data=cloudwatch.TreatMissingData[_enum_member(spec.treat_missing_data)],
        )
        action = cloudwatch_actions_sns(self.topic)
        if spec.notify_on_alarm:
            alarm.add_alarm_action(action)
        if spec.notify_on_ok:
            alarm.add_ok_action(action)
        return alarm

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        """Per variant: server errors and p99 latency (mlops.core.specs.variant_alarms)."""
        return {spec.name: self._alarm(spec) for spec in specs.variant_alarms(self.config)}

    # -- traffic control -----------------------------------------------------------------------

    def _deployment_role(self, storage: StorageImports) -> iam.Role:
        config = self.config
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
                    resources=[self._model_role_arn],
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
                        f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter"
                        f"{config.weight_parameter(variant)}"
                        for variant in (CHAMPION, CHALLENGER)
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

    def _weights_statement(self) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            actions=["ssm:PutParameter"],
            resources=[
                f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter"
                f"{self.config.weight_parameter(variant)}"
                for variant in (CHAMPION, CHALLENGER)
            ],
        )

    def _traffic_lambda(
        self, storage: StorageImports, ops: kms.IKey
    ) -> lambda_.DockerImageFunction:
        config = self.config
        endpoint_arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:endpoint/{config.endpoint_name}"
        traffic = PlatformFunction(
            self,
            "Traffic",
            handler=HANDLERS[TRAFFIC],
            alarm_topic=self.topic,
            description="Shift, roll back or step the rollout of the endpoint's variants",
            ops_key=ops,
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
                        *(a.alarm_arn for a in self.alarms.values()),
                        *(
                            [self.drift_alarms[CHALLENGER].alarm_arn]
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
                iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]),
                self._weights_statement(),
            ],
            environment=TrafficSettings.for_platform(
                config, audit_bucket=storage.reports.bucket_name, topic_arn=self.topic.topic_arn
            ).environment(),
        )
        acknowledge(
            traffic.policy,
            f"AwsSolutions-IAM5[Resource::{self._export('reports-bucket-arn')}/{names.TRAFFIC_AUDIT_PREFIX}/{config.endpoint_name}/*]",
            "One audit record per request, named by its id; write-only, limited to this "
            "endpoint's audit prefix.",
        )
        return traffic.function

    def _deploy_lambda(self, storage: StorageImports, ops: kms.IKey) -> lambda_.DockerImageFunction:
        """Approved package -> challenger (or first champion), through this stack's parameters."""
        config = self.config
        # CloudFormation applies the deploy Lambda's parameter changes with a role that can
        # only (re)create models, endpoint configs, this endpoint and its scaling: the
        # Lambda's UpdateStack permission is no wider than that role.
        cfn_role = self._deployment_role(storage).role_arn
        deploy = PlatformFunction(
            self,
            "Deploy",
            handler=HANDLERS[DEPLOY],
            alarm_topic=self.topic,
            description="Make a newly approved model package the challenger; promote on request",
            ops_key=ops,
            log_retention_days=config.log_retention_days,
            memory_size=256,
            timeout=Duration.minutes(1),
            statements=[
                iam.PolicyStatement(
                    actions=["cloudformation:DescribeStacks", "cloudformation:UpdateStack"],
                    resources=[self.stack_id],
                ),
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[cfn_role],
                    conditions={
                        "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
                    },
                ),
                self._weights_statement(),
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
                iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]),
            ],
            environment=DeploySettings.for_platform(
                config,
                audit_bucket=storage.reports.bucket_name,
                topic_arn=self.topic.topic_arn,
                cloudformation_role_arn=cfn_role,
            ).environment(),
        )
        acknowledge(
            deploy.policy,
            f"AwsSolutions-IAM5[Resource::{self._export('reports-bucket-arn')}/{names.SERVING_AUDIT_PREFIX}/{config.endpoint_name}/*]",
            "One audit record per deployment, named by its request id; write-only, limited to "
            "this endpoint's prefix.",
        )
        self._rule(specs.approval_rule(config), deploy.function)
        return deploy.function

    def _rule(self, spec: RuleSpec, function: lambda_.IFunction) -> events.Rule:
        """An EventBridge rule from its specification (mlops.core.specs)."""
        rule = events.Rule(
            self,
            spec.construct_id,
            description=spec.description,
            event_pattern=_event_pattern(spec.event_pattern) if spec.event_pattern else None,
            schedule=events.Schedule.expression(spec.schedule) if spec.schedule else None,
        )
        rule.add_target(
            targets.LambdaFunction(
                function,
                retry_attempts=spec.retry_attempts,
                max_event_age=Duration.seconds(spec.max_event_age_seconds),
            )
        )
        return rule

    def _alarm_rules(self) -> None:
        """Challenger alarms -> rollback; champion drift -> retraining (when enabled)."""
        functions = {TRAFFIC: self.traffic, DRIFT: self.drift}
        for spec in specs.alarm_rules(self.config):
            self._rule(spec, functions[spec.target])

    # -- drift ---------------------------------------------------------------------------------
    def _drift_lambda(self, storage: StorageImports, ops: kms.IKey) -> lambda_.DockerImageFunction:
        """The scheduled drift check (lambdas/drift), on its own image: Evidently's stack."""
        config = self.config
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
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]),
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
            alarm_topic=self.topic,
            description="Scheduled drift check of the endpoint's variants over data capture",
            ops_key=ops,
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
                    topic_arn=self.topic.topic_arn,
                ).environment(),
                "DO_NOT_TRACK": "1",
            },
        )
        reports = self._export("reports-bucket-arn")
        capture = self._export("capture-bucket-arn")
        artifacts = self._export("artifacts-bucket-arn")
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
        self._rule(specs.drift_schedule_rule(config), drift.function)
        return drift.function

    def _drift_alarms(self) -> dict[str, cloudwatch.Alarm]:
        """One per variant on DriftDetected (mlops.core.specs.drift_alarms)."""
        return {
            spec.dimensions[-1][1]: self._alarm(spec) for spec in specs.drift_alarms(self.config)
        }

    def _drift_metric(
        self, name: str, variant: str, statistic: str, period: Duration
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=DRIFT_NAMESPACE,
            metric_name=name,
            dimensions_map={"EndpointName": self.config.endpoint_name, "VariantName": variant},
            statistic=statistic,
            period=period,
        )

    def _dashboard(self) -> cloudwatch.Dashboard:
        """Per variant: traffic, latency, errors, weights, drift; and the functions' health."""
        endpoint = self.config.endpoint_name
        period = Duration.minutes(5)
        drift_period = Duration.seconds(drift_alarm_period(self.config))

        def sagemaker_metric(name: str, variant: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name=name,
                dimensions_map={"EndpointName": endpoint, "VariantName": variant},
                statistic=statistic,
                period=period,
                label=variant,
            )

        variants = (CHAMPION, CHALLENGER)
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{self.config.prefix}-serving"
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {endpoint}: champion and challenger\n"
                "Weights change with rollouts and rollbacks (traffic function); drift share "
                "is the share of features that drifted in each scheduled check.",
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Invocations",
                left=[sagemaker_metric("Invocations", v, "Sum") for v in variants],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Model latency p99 (microseconds)",
                left=[sagemaker_metric("ModelLatency", v, "p99") for v in variants],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Errors (4XX, 5XX)",
                left=[
                    sagemaker_metric(name, v, "Sum")
                    for name in ("Invocation4XXErrors", "Invocation5XXErrors")
                    for v in variants
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Variant weights",
                left=[
                    self._drift_metric("VariantWeight", v, "Maximum", drift_period)
                    for v in variants
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1),
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Drift share (features drifted / all)",
                left=[
                    self._drift_metric("DriftShare", v, "Maximum", drift_period).with_(label=v)
                    for v in variants
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1),
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=self.config.drift_share_threshold, label="dataset drift"
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Rows checked, malformed records",
                left=[
                    self._drift_metric("RowsChecked", v, "Sum", drift_period).with_(
                        label=f"{v} rows"
                    )
                    for v in variants
                ],
                right=[
                    self._drift_metric("MalformedRecords", v, "Sum", drift_period).with_(
                        label=f"{v} malformed"
                    )
                    for v in variants
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=[*self.alarms.values(), *self.drift_alarms.values()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Functions: errors",
                left=[
                    f.metric_errors(period=period, label=label)
                    for label, f in (("traffic", self.traffic), ("drift", self.drift))
                ],
                width=12,
            ),
        )
        return dashboard


def _image(handler: str, dockerfile: str) -> lambda_.DockerImageCode:
    return lambda_.DockerImageCode.from_image_asset(
        str(REPO_ROOT),
        file=dockerfile,
        cmd=[handler],
        platform=ecr_assets.Platform.LINUX_AMD64,
    )


def _event_pattern(pattern: dict[str, Any]) -> events.EventPattern:
    """An EventBridge pattern as CDK's type (detail-type is ``detail_type`` there)."""
    return events.EventPattern(**{key.replace("-", "_"): value for key, value in pattern.items()})


def _enum_member(value: str) -> str:
    """CloudFormation's value -> the CDK enum member: GreaterThanThreshold -> GREATER_THAN_THRESHOLD."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", value).upper()


def cloudwatch_actions_sns(topic: sns.ITopic) -> cloudwatch.IAlarmAction:
    from aws_cdk import aws_cloudwatch_actions as actions  # noqa: PLC0415

    return actions.SnsAction(topic)
