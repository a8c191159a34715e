"""Serving: an A/B endpoint (variants ``champion`` and ``challenger``), autoscaling, alarms,
the functions that shift traffic, deploy approved packages and check drift, and a dashboard.

Which package each variant serves is a *stack parameter* (``ChampionModelPackageArn``,
``ChallengerModelPackageArn``); the endpoint exists only once a champion is named. Run-time
state is never reverted by a deploy:

- ``cdk deploy`` keeps the previous parameter values (the CLI's default), so the packages
  chosen at run time stay;
- weights and instance counts changed at run time (traffic Lambda, autoscaling) are kept by
  ``RetainAllVariantProperties`` whenever CloudFormation updates the endpoint;
- a template change that leaves the endpoint config alone does not touch the endpoint.

The stack composes one construct per concern; their ids stay out of the logical IDs
(logical_ids.py), which are the ones the stack was first deployed with.
"""

from __future__ import annotations

from aws_cdk import (
    CfnCondition,
    CfnOutput,
    CfnParameter,
    DefaultStackSynthesizer,
    Environment,
    Fn,
    Stack,
)
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from mlops.core.config import PlatformConfig
from stacks.storage import StorageImports, export_name

from .alarms import ServingAlarms
from .dashboard import ServingDashboard
from .deploy_function import DeployFunction
from .drift_function import DriftFunction
from .endpoint import ServingEndpoint
from .function import Grants, OpsKey
from .logical_ids import FlatLogicalIds
from .traffic_function import TrafficFunction

# A deployable model package ARN, or empty (no package for that variant).
PACKAGE_ARN_PATTERN = r"^$|^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/.+$"


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
        self._logical_ids = FlatLogicalIds(self)
        self.config = config
        storage = StorageImports(self, "Storage", config=config)

        champion = CfnParameter(
            self,
            "ChampionModelPackageArn",
            type="String",
            default="",
            description="Approved model package serving as champion (set by the deploy-on-approval flow)",
            allowed_pattern=PACKAGE_ARN_PATTERN,
        )
        challenger = CfnParameter(
            self,
            "ChallengerModelPackageArn",
            type="String",
            default="",
            description="Approved model package serving as challenger (empty: no challenger)",
            allowed_pattern=PACKAGE_ARN_PATTERN,
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

        ops_key = OpsKey(self, "Ops", config=config).key
        self.topic = sns.Topic(
            self,
            "Alerts",
            display_name=f"{config.prefix} model serving alerts",
            master_key=ops_key,
            enforce_ssl=True,
        )
        if config.notification_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.notification_email))

        endpoint = ServingEndpoint(
            self,
            "Endpoint",
            config=config,
            storage=storage,
            champion_package=champion.value_as_string,
            challenger_package=challenger.value_as_string,
            has_champion=has_champion,
            has_challenger=has_challenger,
            ops_key=ops_key,
        )
        self.endpoint = endpoint.endpoint
        alarms = ServingAlarms(self, "Alarms", config=config, topic=self.topic)
        synthesizer = self.synthesizer
        refs = Grants.for_stack(
            config,
            {
                f"{role}_bucket_arn": (
                    storage.buckets[role].bucket_arn,
                    export_name(config, f"{role}-bucket-arn"),
                )
                for role in ("reports", "capture", "artifacts")
            }
            | {"data_key_arn": (storage.key.key_arn, export_name(config, "data-key-arn"))},
            topic_arn=self.topic.topic_arn,
            bootstrap_qualifier=(
                synthesizer.bootstrap_qualifier
                if isinstance(synthesizer, DefaultStackSynthesizer)
                and synthesizer.bootstrap_qualifier
                else DefaultStackSynthesizer.DEFAULT_QUALIFIER
            ),
        )
        self.alarms = alarms.variant
        self.drift_alarms = alarms.drift
        self.traffic = TrafficFunction(
            self,
            "TrafficFunction",
            config=config,
            storage=storage,
            ops_key=ops_key,
            topic=self.topic,
            alarms=alarms,
            refs=refs,
        ).function
        self.drift = DriftFunction(
            self,
            "DriftFunction",
            config=config,
            storage=storage,
            ops_key=ops_key,
            topic=self.topic,
            refs=refs,
        ).function
        self.deployer = DeployFunction(
            self,
            "DeployFunction",
            config=config,
            storage=storage,
            ops_key=ops_key,
            topic=self.topic,
            model_role=endpoint.model_role,
            refs=refs,
        ).function
        self.dashboard = ServingDashboard(
            self, "Dashboard", config=config, alarms=alarms, traffic=self.traffic, drift=self.drift
        ).dashboard

        CfnOutput(self, "EndpointName", value=config.endpoint_name)
        CfnOutput(self, "AlertsTopicArn", value=self.topic.topic_arn)
        CfnOutput(self, "TrafficFunctionName", value=self.traffic.function_name)
        CfnOutput(self, "DeployFunctionName", value=self.deployer.function_name)
        CfnOutput(self, "DriftFunctionName", value=self.drift.function_name)
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name)
        # The logical IDs the resources had before they were grouped (logical_ids.py).
        self._logical_ids.apply()
