"""What each serving role may do, specified once: the stacks render these grants into IAM
policies, and the offline twin enforces the same grants on every call a function makes.

A resource is an ARN template. ``{partition}``, ``{region}`` and ``{account}`` are the
deployment's; the other fields name resources whose ARNs only the deployment knows:

- ``{reports_bucket_arn}``, ``{capture_bucket_arn}``, ``{artifacts_bucket_arn}``,
  ``{data_key_arn}``: the storage stack's buckets and key;
- ``{ops_key_arn}``, ``{topic_arn}``: the serving stack's key and alerts topic;
- ``{cloudformation_role_arn}``, ``{model_role_arn}``, ``{processing_role_arn}``: roles the
  serving stack creates;
- ``{dead_letters_arn}``, ``{log_group_arn}``: the function's own queue and log group;
- ``{bootstrap_qualifier}``: the CDK bootstrap qualifier the stack was synthesized with.

Every grant carries the reason it exists: tests/infra/test_iam_minimal.py lists each granted
action that no recorded call and no CloudFormation handler needs, and shows the reason.

Pure: names and strings only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops.core import drift_job, names, specs
from mlops.core.config import PlatformConfig

# Every resource in these tags: CloudFormation's role may create and delete only models and
# endpoint configs that carry the endpoint's tag (their names are CloudFormation's to choose).
ENDPOINT_TAG = "mlops:endpoint"
_AUTOSCALING_ROLE = (
    "role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


@dataclass(frozen=True)
class Grant:
    """One IAM statement (Effect Allow) and why it exists."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    reason: str
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def statement(self, refs: Mapping[str, str]) -> dict[str, Any]:
        """The IAM policy statement, its ARN templates filled from ``refs``."""
        statement: dict[str, Any] = {
            "Sid": self.sid,
            "Effect": "Allow",
            "Action": list(self.actions) if len(self.actions) > 1 else self.actions[0],
            "Resource": [_fill(r, refs) for r in self.resources]
            if len(self.resources) > 1
            else _fill(self.resources[0], refs),
        }
        if self.conditions:
            statement["Condition"] = _fill(self.conditions, refs)
        return statement


def policy(grants: list[Grant], refs: Mapping[str, str]) -> dict[str, Any]:
    """An IAM policy document holding ``grants``."""
    return {"Version": "2012-10-17", "Statement": [g.statement(refs) for g in grants]}


def _fill(value: Any, refs: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(refs)
    if isinstance(value, Mapping):
        return {_fill(k, refs): _fill(v, refs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(v, refs) for v in value]
    return value


def _arn(service: str, resource: str, *, region: bool = True) -> str:
    where = "{region}" if region else ""
    return f"arn:{{partition}}:{service}:{where}:{{account}}:{resource}"


def _objects(bucket: str, prefix: str) -> str:
    return f"{{{bucket}_bucket_arn}}/{prefix}*"


def _weight_parameters(config: PlatformConfig) -> tuple[str, ...]:
    # SSM parameter ARNs are "parameter" + the name, which starts with "/".
    return tuple(_arn("ssm", f"parameter{n}") for n in names.weight_parameters(config).values())


def endpoint_arn(config: PlatformConfig) -> str:
    return _arn("sagemaker", f"endpoint/{config.endpoint_name}")


def package_versions(config: PlatformConfig) -> str:
    return _arn("sagemaker", f"model-package/{config.model_package_group_name}/*")


def serving_stack_arn(config: PlatformConfig) -> str:
    return _arn("cloudformation", f"stack/{names.serving_stack(config)}/*")


def bootstrap_parameter() -> str:
    return _arn("ssm", "parameter/cdk-bootstrap/{bootstrap_qualifier}/version")


def function_runtime() -> list[Grant]:
    """What Lambda itself does with every platform function's role."""
    return [
        Grant(
            "OpsKey",
            ("kms:GenerateDataKey", "kms:Decrypt"),
            ("{ops_key_arn}",),
            "The alerts topic and the dead-letter queue are encrypted with the ops key: "
            "publishing and dead-lettering need a data key.",
        ),
        Grant(
            "DeadLetters",
            ("sqs:SendMessage",),
            ("{dead_letters_arn}",),
            "Lambda sends an event that failed every retry to the function's dead-letter "
            "queue with the function's role.",
        ),
        Grant(
            "Logs",
            ("logs:CreateLogStream", "logs:PutLogEvents"),
            ("{log_group_arn}",),
            "The Lambda runtime writes the function's logs to its own log group.",
        ),
    ]


def _audit(sid: str, prefix: str, claims: str, config: PlatformConfig) -> list[Grant]:
    endpoint = config.endpoint_name
    return [
        Grant(
            sid,
            ("s3:PutObject", "s3:GetObject"),
            (
                _objects("reports", f"{prefix}/{endpoint}/"),
                _objects("reports", f"{claims}/{endpoint}/"),
            ),
            "One audit record per request, named by its request id, written once; the "
            "request's claim is written before it acts and read by a redelivery, which returns "
            "the recorded outcome instead of acting again.",
        ),
        Grant(
            f"{sid}Lease",
            ("s3:GetObject", "s3:PutObject"),
            (f"{{reports_bucket_arn}}/{names.LEASE_PREFIX}/{endpoint}.json",),
            "The endpoint's lease: every weight change (traffic, deploy, CLI) reads it and "
            "writes it with a condition on its version, so decisions on the endpoint are one "
            "at a time.",
        ),
        Grant(
            f"{sid}Key",
            ("kms:GenerateDataKey", "kms:Decrypt"),
            ("{data_key_arn}",),
            "The reports bucket encrypts each object with the platform's data key; reading "
            "the lease and a claim decrypts it.",
        ),
    ]


def _notify() -> Grant:
    return Grant(
        "Notify",
        ("sns:Publish",),
        ("{topic_arn}",),
        "Each decision is announced on the alerts topic.",
    )


def _write_weights(config: PlatformConfig) -> Grant:
    return Grant(
        "WriteWeights",
        ("ssm:PutParameter",),
        _weight_parameters(config),
        "The weights in force are kept in SSM, so a deploy starts from them.",
    )


def traffic(config: PlatformConfig) -> list[Grant]:
    """The traffic function: shift, roll back, step the rollout of this endpoint."""
    gates = names.challenger_gate_alarms(
        config.endpoint_name, drift=config.auto_rollback_on_challenger_drift
    )
    watched = sorted({*(a.name for a in specs.variant_alarms(config)), *gates})
    return [
        Grant(
            "Endpoint",
            ("sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"),
            (endpoint_arn(config),),
            "Reads the variants' weights and changes them, on this endpoint only.",
        ),
        Grant(
            "GateAlarms",
            ("cloudwatch:DescribeAlarms",),
            tuple(_arn("cloudwatch", f"alarm:{name}") for name in watched),
            "A rollout step goes ahead only while none of the challenger's gate alarms fires.",
        ),
        *_audit("TrafficAudit", names.TRAFFIC_AUDIT_PREFIX, names.TRAFFIC_CLAIMS_PREFIX, config),
        _notify(),
        _write_weights(config),
    ]


def deploy(config: PlatformConfig) -> list[Grant]:
    """The deploy function: an approved package becomes the challenger; promote."""
    return [
        Grant(
            "ReadStack",
            ("cloudformation:DescribeStacks",),
            (serving_stack_arn(config),),
            "Reads which packages serve (the serving stack's parameters) and its status.",
        ),
        Grant(
            "UpdateStackAsDeploymentRole",
            ("cloudformation:UpdateStack",),
            (serving_stack_arn(config),),
            "Changes which packages serve. Only with CloudFormation's deployment role: without "
            "the condition a call could run as the stack's last role (CDK's, admin).",
            {"StringEquals": {"cloudformation:RoleArn": "{cloudformation_role_arn}"}},
        ),
        Grant(
            "PassDeploymentRole",
            ("iam:PassRole",),
            ("{cloudformation_role_arn}",),
            "UpdateStack hands CloudFormation its deployment role.",
            {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
        ),
        Grant(
            "BootstrapVersion",
            ("ssm:GetParameters",),
            (bootstrap_parameter(),),
            "CloudFormation resolves the stack's SSM-typed BootstrapVersion parameter with "
            "the caller's credentials on every update.",
        ),
        Grant(
            "ReadWeights",
            ("ssm:GetParameter",),
            _weight_parameters(config),
            "Reads the weights in force, to put them back if the update is refused.",
        ),
        _write_weights(config),
        Grant(
            "VerifyPackage",
            ("sagemaker:DescribeModelPackage",),
            (package_versions(config),),
            "A package is deployed only once the registry says it is Approved, in this "
            "family's group and account (the event alone is not trusted).",
        ),
        *_audit("ServingAudit", names.SERVING_AUDIT_PREFIX, names.SERVING_CLAIMS_PREFIX, config),
        _notify(),
    ]


def drift(config: PlatformConfig) -> list[Grant]:
    """The drift function: reads the window's capture, writes reports and metrics."""
    endpoint = config.endpoint_name
    capture = (f"{names.CAPTURE_PREFIX}/{endpoint}/", f"{names.GROUND_TRUTH_PREFIX}/{endpoint}/")
    reports = (
        f"{names.DRIFT_REPORTS_PREFIX}/{endpoint}/",
        f"{names.RETRAINING_AUDIT_PREFIX}/{endpoint}/",
    )
    pipeline = f"pipelines/{config.pipeline_name}/"
    grants = [
        Grant(
            "Endpoint",
            ("sagemaker:DescribeEndpoint",),
            (endpoint_arn(config),),
            "Finds the endpoint config and so the package each variant serves.",
        ),
        Grant(
            "EndpointConfig",
            ("sagemaker:DescribeEndpointConfig",),
            (_arn("sagemaker", "endpoint-config/*"),),
            "CloudFormation names the endpoint configs (a new one on every change); describe only.",
        ),
        Grant(
            "Model",
            ("sagemaker:DescribeModel",),
            (_arn("sagemaker", "model/*"),),
            "CloudFormation names the models (one per package); describe only, to find the "
            "package a variant serves.",
        ),
        Grant(
            "Package",
            ("sagemaker:DescribeModelPackage",),
            (package_versions(config),),
            "The reference data and evaluation of the package a variant serves.",
        ),
        Grant(
            "ListCapture",
            ("s3:ListBucket",),
            ("{capture_bucket_arn}",),
            "Lists the window's capture and label files by hour prefix.",
            {"StringLike": {"s3:prefix": [f"{p}*" for p in capture]}},
        ),
        Grant(
            "ReadCapture",
            ("s3:GetObject",),
            tuple(_objects("capture", p) for p in capture),
            "Reads this endpoint's captured requests and ground-truth labels.",
        ),
        Grant(
            "ListPipelineOutputs",
            ("s3:ListBucket",),
            ("{artifacts_bucket_arn}",),
            "A missing output of an older model is 'not there' (404), not AccessDenied.",
            {"StringLike": {"s3:prefix": [f"{pipeline}*"]}},
        ),
        Grant(
            "ReadPipelineOutputs",
            ("s3:GetObject",),
            (_objects("artifacts", pipeline),),
            "Reads the reference data and evaluation of the model a variant serves.",
        ),
        Grant(
            "ListReports",
            ("s3:ListBucket",),
            ("{reports_bucket_arn}",),
            "A missing window state is a 404 on the first run, not a 403.",
            {"StringLike": {"s3:prefix": [f"{p}*" for p in reports]}},
        ),
        Grant(
            "Reports",
            ("s3:GetObject", "s3:PutObject"),
            tuple(_objects("reports", p) for p in reports),
            "Reads and writes this endpoint's window state, drift reports and retraining "
            "decisions (reports are written once).",
        ),
        Grant(
            "DataKey",
            ("kms:Decrypt", "kms:GenerateDataKey"),
            ("{data_key_arn}",),
            "Capture, pipeline outputs and reports are encrypted with the platform's data key.",
        ),
        _notify(),
        *_drift_jobs(config),
    ]
    if config.retrain_on_champion_drift:
        grants.append(
            Grant(
                "Retrain",
                ("sagemaker:StartPipelineExecution",),
                (_arn("sagemaker", f"pipeline/{config.pipeline_name}"),),
                "Champion drift starts the training pipeline (retrain_on_champion_drift).",
            )
        )
    return grants


def drift_jobs(config: PlatformConfig) -> str:
    """The drift checks' Processing jobs (mlops.core.drift_job names them)."""
    return _arn("sagemaker", f"processing-job/{drift_job.job_prefix(config)}*")


def _drift_jobs(config: PlatformConfig) -> list[Grant]:
    """What the drift function needs to hand a large window to a Processing job."""
    return [
        Grant(
            "StartCheckJobs",
            ("sagemaker:CreateProcessingJob",),
            (drift_jobs(config),),
            "A window with more capture than one function checks is checked by a Processing "
            "job, named by the function at run time under the platform's drift-job prefix; only "
            "a job without network access, on the configured instance type, with its volume "
            "and output encrypted by the data key.",
            {
                "Bool": {"sagemaker:NetworkIsolation": "true"},
                "ArnEquals": {
                    "sagemaker:VolumeKmsKeyArn": "{data_key_arn}",
                    "sagemaker:OutputKmsKeyArn": "{data_key_arn}",
                },
                "ForAllValues:StringEquals": {
                    "sagemaker:InstanceTypes": [config.drift_job_instance_type]
                },
                "Null": {"sagemaker:InstanceTypes": "false"},
            },
        ),
        Grant(
            "FollowCheckJobs",
            ("sagemaker:DescribeProcessingJob",),
            (drift_jobs(config),),
            "A scheduled run finds whether the job checking a variant's window still runs, "
            "ended, or failed (its end event may be late or lost).",
        ),
        Grant(
            "PassProcessingRole",
            ("iam:PassRole",),
            ("{processing_role_arn}",),
            "The check's job runs as the processing role, and only SageMaker may receive it.",
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
    ]


def cloudformation(config: PlatformConfig) -> list[Grant]:
    """CloudFormation's role for the deploy function's updates: it (re)creates the models, the
    endpoint config, the endpoint and its scaling, and can undo them when an update fails."""
    tagged = {"StringEquals": {f"aws:RequestTag/{ENDPOINT_TAG}": config.endpoint_name}}
    owned = {"StringEquals": {f"aws:ResourceTag/{ENDPOINT_TAG}": config.endpoint_name}}
    target = f"endpoint/{config.endpoint_name}/variant/*"  # the scalable targets' resource ids
    return [
        Grant(
            "CreateIsolatedModels",
            ("sagemaker:CreateModel",),
            (_arn("sagemaker", "model/*"),),
            "CloudFormation names the models itself: creation is allowed only with this "
            "endpoint's tag, and only without network access, so whatever a container holds "
            "cannot reach out with the model role.",
            {**tagged, "Bool": {"sagemaker:NetworkIsolation": "true"}},
        ),
        Grant(
            "CreateTaggedEndpointConfigs",
            ("sagemaker:CreateEndpointConfig",),
            (_arn("sagemaker", "endpoint-config/*"),),
            "CloudFormation names the endpoint configs itself: creation is allowed only with "
            "this endpoint's tag.",
            tagged,
        ),
        Grant(
            "TagOnCreate",
            ("sagemaker:AddTags",),
            (_arn("sagemaker", "model/*"), _arn("sagemaker", "endpoint-config/*")),
            "Tags are added as the resource is created (same tag condition).",
            tagged,
        ),
        Grant(
            "ManageOwnModels",
            (
                "sagemaker:DescribeModel",
                "sagemaker:DeleteModel",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DeleteEndpointConfig",
                "sagemaker:DeleteTags",
            ),
            (_arn("sagemaker", "model/*"), _arn("sagemaker", "endpoint-config/*")),
            "Replacing or rolling back deletes the previous model or config: only those "
            "carrying this endpoint's tag.",
            owned,
        ),
        Grant(
            "Endpoint",
            (
                "sagemaker:CreateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:DeleteEndpoint",
                "sagemaker:AddTags",
                "sagemaker:DeleteTags",
            ),
            (endpoint_arn(config),),
            "This endpoint only. DeleteEndpoint lets a failed first deployment roll back "
            "(without it the stack ends UPDATE_ROLLBACK_FAILED).",
        ),
        Grant(
            "EndpointUsesOwnConfigs",
            ("sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"),
            (_arn("sagemaker", "endpoint-config/*"),),
            "Creating or updating the endpoint is also authorized on the endpoint config it "
            "names: only configs carrying this endpoint's tag.",
            owned,
        ),
        Grant(
            "Packages",
            ("sagemaker:DescribeModelPackage",),
            (package_versions(config),),
            "A model is created from a package of this family's group.",
        ),
        Grant(
            "PassModelRole",
            ("iam:PassRole",),
            ("{model_role_arn}",),
            "The models run as the model role, and only SageMaker may receive it.",
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        Grant(
            "VolumeKey",
            ("kms:CreateGrant",),
            ("{data_key_arn}",),
            "The endpoint config encrypts the ML volumes and the captured data with the data "
            "key; SageMaker takes a grant on it.",
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        Grant(
            "DescribeVolumeKey",
            ("kms:DescribeKey",),
            ("{data_key_arn}",),
            "CreateEndpointConfig's handler describes the key (no grant involved).",
        ),
        Grant(
            "ReadWeights",
            ("ssm:GetParameters",),
            (*_weight_parameters(config), bootstrap_parameter()),
            "The endpoint config reads the weights in force through dynamic references; the "
            "stack's BootstrapVersion parameter is resolved on every update.",
        ),
        Grant(
            "Autoscaling",
            (
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:DescribeScalingPolicies",
                "application-autoscaling:DescribeScheduledActions",
                "application-autoscaling:PutScheduledAction",
                "application-autoscaling:DeleteScheduledAction",
                "application-autoscaling:TagResource",
                "application-autoscaling:UntagResource",
                "application-autoscaling:ListTagsForResource",
            ),
            ("*",),
            f"Scaling of the variants ({target}); Application Auto Scaling's describe calls "
            "take no resource ARN and its targets' ARNs are assigned at registration.",
        ),
        Grant(
            "ScalingAlarms",
            (
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DescribeAlarms",
            ),
            (_arn("cloudwatch", f"alarm:TargetTracking-endpoint/{config.endpoint_name}/*"),),
            "Target tracking creates and removes its own alarms, named after the target.",
        ),
        Grant(
            "ScalingMetrics",
            ("cloudwatch:GetMetricData",),
            ("*",),
            "The scaling policy handler reads the metric it tracks; GetMetricData takes no "
            "resource ARN.",
        ),
        Grant(
            "PassAutoscalingServiceRole",
            ("iam:PassRole",),
            (_arn("iam", _AUTOSCALING_ROLE, region=False),),
            "The scalable targets name Application Auto Scaling's service-linked role for "
            "SageMaker variants (the ScalableTarget handler passes it).",
        ),
        Grant(
            "AutoscalingServiceRole",
            ("iam:CreateServiceLinkedRole",),
            (_arn("iam", _AUTOSCALING_ROLE, region=False),),
            "Registering the first SageMaker variant in an account creates Application Auto "
            "Scaling's service-linked role.",
            {
                "StringLike": {
                    "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                }
            },
        ),
    ]


ROLES = {
    specs.TRAFFIC: traffic,
    specs.DEPLOY: deploy,
    specs.DRIFT: drift,
}


def for_function(function: specs.Function, config: PlatformConfig) -> list[Grant]:
    """Everything a platform function's role holds: its own grants and the runtime's."""
    return [*ROLES[function](config), *function_runtime()]
