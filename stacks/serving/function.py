"""What every platform Lambda function shares: its construct (``PlatformFunction``), the ops
KMS key its queue and logs are encrypted with, and the EventBridge rules that invoke it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mlops.core import permissions
from mlops.core.config import PlatformConfig
from mlops.core.specs import RuleSpec
from stacks.compliance import acknowledge, logs_may_use

# The images' build context: the repository (the Dockerfiles copy lambdas/ and mlops/).
REPO_ROOT = Path(__file__).resolve().parents[2]


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
        logs_may_use(
            self.key,
            {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                }
            },
        )


class PlatformFunction(Construct):
    """A platform Lambda function: the image from lambdas/Dockerfile, an encrypted dead-letter
    queue, KMS-encrypted logs with the configured retention, and its own managed policy
    rendered from its grants (mlops.core.permissions)."""

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
        grants: list[permissions.Grant],
        refs: Grants,
        environment: dict[str, str],
        alarm_topic: sns.ITopic,
        reserved_concurrency: int,
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
        stranded.add_alarm_action(actions.SnsAction(alarm_topic))
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
        )
        # The grants of mlops.core.permissions: the offline twin enforces the same ones.
        own = refs.with_values(
            ops_key_arn=ops_key.key_arn,
            dead_letters_arn=dead_letters.queue_arn,
            log_group_arn=log_group.log_group_arn,
        )
        self.policy = own.managed_policy(
            self, "Policy", [*grants, *permissions.function_runtime()], roles=[self.role]
        )
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            description=description,
            code=_image(handler, dockerfile),
            role=self.role,
            memory_size=memory_size,
            timeout=timeout,
            # None by default: a new account's concurrency limit leaves nothing to reserve
            # (config.function_reserved_concurrency; `mlops aws preflight` checks the account).
            reserved_concurrent_executions=reserved_concurrency or None,
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
        failing.add_alarm_action(actions.SnsAction(alarm_topic))
        # CDK's Function adds DependsOn on its role, which the Role property already implies:
        # cfn-lint W3005 on CDK's own output, silenced for this one resource only.
        function_resource = self.function.node.default_child
        if not isinstance(function_resource, lambda_.CfnFunction):
            raise TypeError("DockerImageFunction without its CfnFunction")
        function_resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        # CDK's own grant lands in the role's default (inline) policy: sending to the
        # dead-letter queue (Lambda pulls the image with its service principal).
        default_policy = self.role.node.try_find_child("DefaultPolicy")
        if default_policy is not None:
            acknowledge(
                default_policy,
                "NIST.800.53.R5-IAMNoInlinePolicy",
                "CDK generates this policy with one statement: sqs:SendMessage to this "
                "function's dead-letter queue. The function's own permissions are in a managed "
                "policy.",
            )
        if not reserved_concurrency:
            acknowledge(
                self.function,
                "NIST.800.53.R5-LambdaConcurrency",
                "No reservation by default: a reservation must leave 100 unreserved executions "
                "and new accounts often have 10 in all. Set function_reserved_concurrency where "
                "the account allows (`mlops aws preflight` checks).",
            )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls regional AWS APIs (SageMaker, CloudFormation, SSM, S3, "
            "SNS, CloudWatch); a VPC would add NAT or interface endpoints for no isolation gained.",
        )


class Grants:
    """Renders mlops.core.permissions grants into IAM policies with this stack's ARNs, and
    acknowledges each wildcard cdk-nag finds with the reason its grant gives."""

    def __init__(self, values: dict[str, str], nag_names: dict[str, str]) -> None:
        self.values = values
        # How cdk-nag prints each value in a finding (imports by export name, ...).
        self.nag_names = nag_names

    @classmethod
    def for_stack(
        cls, config: PlatformConfig, storage_exports: dict[str, tuple[str, str]], **values: str
    ) -> Grants:
        """``storage_exports``: field -> (value, export name) of the storage stack's imports."""
        pseudo = {"partition": Aws.PARTITION, "region": Aws.REGION, "account": Aws.ACCOUNT_ID}
        return cls(
            {**pseudo, **{k: v for k, (v, _) in storage_exports.items()}, **values},
            {
                "partition": "<AWS::Partition>",
                "region": "<AWS::Region>",
                "account": "<AWS::AccountId>",
                **{k: name for k, (_, name) in storage_exports.items()},
            },
        )

    def with_values(self, **values: str) -> Grants:
        return Grants({**self.values, **values}, self.nag_names)

    def statements(self, grants: list[permissions.Grant]) -> list[iam.PolicyStatement]:
        return [iam.PolicyStatement.from_json(g.statement(self.values)) for g in grants]

    def managed_policy(
        self,
        scope: Construct,
        construct_id: str,
        grants: list[permissions.Grant],
        *,
        roles: list[iam.IRole],
    ) -> iam.ManagedPolicy:
        created = iam.ManagedPolicy(
            scope, construct_id, roles=roles, statements=self.statements(grants)
        )
        reasons: dict[str, list[str]] = {}
        for grant in grants:
            for resource in grant.resources:
                if "*" in resource:
                    shown = resource.format_map(_Passthrough(self.nag_names))
                    reasons.setdefault(shown, []).append(f"{grant.sid}: {grant.reason}")
        for shown, why in reasons.items():
            acknowledge(created, f"AwsSolutions-IAM5[Resource::{shown}]", " ".join(why))
        return created


class _Passthrough(dict[str, str]):
    """Fields cdk-nag prints as they are (tokens it shows by name) keep their value."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def rule(scope: Construct, spec: RuleSpec, function: lambda_.IFunction) -> events.Rule:
    """An EventBridge rule from its specification (mlops.core.specs) that invokes ``function``."""
    created = events.Rule(
        scope,
        spec.construct_id,
        description=spec.description,
        event_pattern=_event_pattern(spec.event_pattern) if spec.event_pattern else None,
        schedule=events.Schedule.expression(spec.schedule) if spec.schedule else None,
    )
    created.add_target(
        targets.LambdaFunction(
            function,
            retry_attempts=spec.retry_attempts,
            max_event_age=Duration.seconds(spec.max_event_age_seconds),
        )
    )
    return created


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
