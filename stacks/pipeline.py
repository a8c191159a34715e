"""The training pipeline: AWS::SageMaker::Pipeline, its step code and its execution role.

The definition comes from stacks/pipeline_definition.py (SageMaker SDK v3, built offline);
deploy-time values reach it through Fn::Sub. The step code ships as two CDK file assets
built deterministically from pipeline_steps/ (mlops/adapters/code_bundle.py).

The jobs run network-isolated unless they need the network (pipeline_definition.needs_network),
in the stage's VPC when ``vpc_subnet_ids``/``vpc_security_group_ids`` are set, and write to
the job log groups this stack creates (``create_job_log_groups``, see JobLogGroups).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, CfnOutput, Duration, Environment, Fn, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlops.adapters import code_bundle
from mlops.core import names
from mlops.core.config import PlatformConfig

from .compliance import acknowledge, logs_may_use
from .pipeline_definition import PipelineSpec, build_definition
from .storage import StorageImports, export_name

# The log groups every SageMaker processing and training job of the account and region
# writes to (SageMaker names them; there is no per-job or per-pipeline setting).
JOB_LOG_GROUPS = {
    "ProcessingJobs": "/aws/sagemaker/ProcessingJobs",
    "TrainingJobs": "/aws/sagemaker/TrainingJobs",
}
VPC_DESCRIBE_ACTIONS = (
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)
VPC_INTERFACE_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
)


def log_group_arn(name: str) -> str:
    return f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:{name}"


class JobLogGroups(Construct):
    """The two job log groups, KMS-encrypted with their own key, with the configured retention.

    Without them SageMaker creates both on a job's first log line, unencrypted and kept
    forever. Their names are per account and region, so exactly one stage there creates them:
    every other stage in the same account and region sets ``create_job_log_groups`` to false
    (CloudFormation fails its deploy on the existing names otherwise) and writes into these.

    Everything here is RETAIN: logs outlive ``cdk destroy``, and so does the key, which the
    retained groups still need. Redeploying after a destroy therefore needs
    ``-c create_job_log_groups=false`` (keeping the retained groups as they are), adopting them
    with ``cdk import``, or deleting both groups first. The same holds where a job ran before
    the first deploy: SageMaker already created the groups.

    The key is the pipeline stack's own, not the storage stack's data key: only CloudWatch Logs
    needs it, for exactly these two groups, and the data key's policy stays as it is.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: PlatformConfig) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"{config.prefix}: encrypts the SageMaker job log groups",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CloudWatch Logs encrypts and decrypts with the key on behalf of the log groups (and
        # of whoever reads them, with logs:* permissions only); the encryption context names
        # the log group, so the key serves these two and no other.
        logs_may_use(
            self.key,
            {
                "ArnEquals": {
                    "kms:EncryptionContext:aws:logs:arn": [
                        log_group_arn(name) for name in JOB_LOG_GROUPS.values()
                    ]
                }
            },
        )
        self.groups: list[logs.LogGroup] = []
        for construct_name, name in JOB_LOG_GROUPS.items():
            group = logs.LogGroup(
                self,
                construct_name,
                log_group_name=name,
                encryption_key=self.key,
                removal_policy=RemovalPolicy.RETAIN,
            )
            # Config validated the number against CloudWatch's allowed values; the L2's enum
            # has no lookup by days, so it is set on the resource.
            resource = group.node.default_child
            if not isinstance(resource, logs.CfnLogGroup):
                raise TypeError("LogGroup without its CfnLogGroup")
            resource.retention_in_days = config.log_retention_days
            self.groups.append(group)


class TrainingPipeline(Construct):
    """The pipeline, the role it runs as, and the step code it runs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PlatformConfig,
        storage: StorageImports,
        bundle_dir: Path,
        mlflow_tracking_server_arn: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        name = config.pipeline_name

        tracked = mlflow_tracking_server_arn is not None or config.mlflow_tracking_uri is not None
        steps_archive = s3_assets.Asset(
            self, "StepsArchive", path=str(code_bundle.build_zipapp(bundle_dir))
        )
        source_archive = s3_assets.Asset(
            self,
            "SourceArchive",
            path=str(
                code_bundle.build_sourcedir(
                    bundle_dir / ("tracked" if tracked else "untracked"), with_tracking=tracked
                )
            ),
        )

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{name}: runs the training pipeline's jobs and registers its models",
        )
        # Attached from the policy side (Roles: [...]) so the policy can name the role's own
        # ARN for iam:PassRole without a dependency cycle. Managed, not inline: NIST IAM rules.
        policy = iam.ManagedPolicy(
            self,
            "ExecutionPolicy",
            description=f"{name}: least privilege for the training pipeline",
            statements=self._statements(config, storage, mlflow_tracking_server_arn),
            roles=[self.role],
        )
        assets = (steps_archive, source_archive)
        policy.add_statements(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    f"arn:{Aws.PARTITION}:s3:::{asset.s3_bucket_name}/{asset.s3_object_key}"
                    for asset in assets
                ],
            ),
            # Processing inputs are S3 prefixes: the job lists them before downloading.
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{steps_archive.s3_bucket_name}"],
                conditions={"StringLike": {"s3:prefix": [a.s3_object_key for a in assets]}},
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
        )
        self._acknowledge_wildcards(config, policy)

        definition = build_definition(
            PipelineSpec(
                pipeline_name=name,
                region=config.region,
                model_package_group_name=config.model_package_group_name,
                code_version=code_bundle.code_version(),
                processing_instance_type=config.processing_instance_type,
                training_instance_type=config.training_instance_type,
                inference_instance_type=config.champion_instance_type,
                metric_threshold=config.model_metric_threshold,
                mlflow_tracking_server_arn=mlflow_tracking_server_arn,
                mlflow_experiment_name=name,
                mlflow_tracking_uri=config.mlflow_tracking_uri,
                mlflow_artifact_root=f"s3://${{ArtifactsBucket}}/{names.MLFLOW_ARTIFACT_PREFIX}",
                subnets=tuple(config.vpc_subnet_ids),
                security_group_ids=tuple(config.vpc_security_group_ids),
            )
        )
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=name,
            pipeline_description=(
                "preprocess -> train -> evaluate -> register if the metric clears the threshold"
            ),
            role_arn=self.role.role_arn,
            pipeline_definition={
                "PipelineDefinitionBody": Fn.sub(
                    definition,
                    {
                        "ArtifactsBucket": storage.artifacts.bucket_name,
                        "DatasetsBucket": storage.datasets.bucket_name,
                        "CodeBucket": steps_archive.s3_bucket_name,
                        "StepsArchiveKey": steps_archive.s3_object_key,
                        "SourceArchiveKey": source_archive.s3_object_key,
                        "RoleName": self.role.role_name,
                        "KmsKeyArn": storage.key.key_arn,
                    },
                )
            },
        )
        # The role alone is not enough: the jobs need the policy attached before they start.
        self.pipeline.node.add_dependency(policy)
        self.log_groups: JobLogGroups | None = None
        if config.create_job_log_groups:
            self.log_groups = JobLogGroups(self, "JobLogs", config=config)
            # No execution can start before the groups exist: SageMaker would create them
            # itself, unencrypted, and this stack's deploy would then fail on their names.
            self.pipeline.node.add_dependency(self.log_groups)

    @staticmethod
    def _statements(
        config: PlatformConfig, storage: StorageImports, mlflow_arn: str | None
    ) -> list[iam.PolicyStatement]:
        stack_region, account, partition = Aws.REGION, Aws.ACCOUNT_ID, Aws.PARTITION
        name = config.pipeline_name
        sagemaker_arn = f"arn:{partition}:sagemaker:{stack_region}:{account}"
        prefix = f"pipelines/{name}/*"
        statements = [
            # Jobs the pipeline starts are named "pipelines-<execution>-<step>-...".
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[
                    f"{sagemaker_arn}:processing-job/pipelines-*",
                    f"{sagemaker_arn}:training-job/pipelines-*",
                ],
            ),
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:AddTags",
                ],
                # Which of these CreateModelPackage is authorized on for a new version is not
                # documented: the group, the version to be, or the group's name as a package.
                resources=[
                    f"{sagemaker_arn}:model-package-group/{config.model_package_group_name}",
                    f"{sagemaker_arn}:model-package/{config.model_package_group_name}",
                    f"{sagemaker_arn}:model-package/{config.model_package_group_name}/*",
                ],
            ),
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[storage.datasets.arn_for_objects("*")],
            ),
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[storage.artifacts.arn_for_objects(prefix)],
            ),
            iam.PolicyStatement(
                actions=["s3:ListBucket", "s3:GetBucketLocation"],
                resources=[storage.datasets.bucket_arn, storage.artifacts.bucket_arn],
            ),
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[storage.key.key_arn],
            ),
            # Encrypting job volumes with the data key: SageMaker creates grants for the jobs.
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[storage.key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            # Training jobs publish their metrics; PutMetricData has no resource-level scope.
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
            # The job log groups only. Where this stack creates them (create_job_log_groups),
            # the jobs only add streams; where another stage or SageMaker owns them, the first
            # job may have to create them.
            iam.PolicyStatement(
                actions=[
                    *([] if config.create_job_log_groups else ["logs:CreateLogGroup"]),
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    # Listed by SageMaker's guide for job execution roles; read-only.
                    "logs:DescribeLogStreams",
                ],
                resources=[f"{log_group_arn(group)}:*" for group in JOB_LOG_GROUPS.values()],
            ),
        ]
        if config.uses_vpc:
            statements += TrainingPipeline._vpc_statements(config)
        if mlflow_arn:
            statements.append(
                iam.PolicyStatement(
                    actions=["sagemaker-mlflow:*"],
                    resources=[Fn.sub(mlflow_arn)],
                )
            )
        if config.mlflow_tracking_uri:
            # A team's own server: the train step writes the run's artifacts itself, under
            # the experiment's prefix (pipeline_steps.tracking.ARTIFACT_ROOT_ENV). MLflow only
            # uploads them (a multipart upload is PutObject too); nothing here reads them back.
            statements.append(
                iam.PolicyStatement(
                    actions=["s3:PutObject"],
                    resources=[storage.artifacts.arn_for_objects(_mlflow_prefix(config))],
                )
            )
        return statements

    @staticmethod
    def _vpc_statements(config: PlatformConfig) -> list[iam.PolicyStatement]:
        """What SageMaker needs, with the execution role, to attach the jobs to the VPC.

        The actions are those the SageMaker guide lists for jobs in a private VPC (execution
        role permissions for CreateProcessingJob/CreateTrainingJob), each scoped as far as EC2
        allows: the network interfaces only in the configured subnets (with the configured
        security groups); the Describe actions support no resource scoping at all.
        """
        ec2 = f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        subnets = [f"{ec2}:subnet/{subnet}" for subnet in config.vpc_subnet_ids]
        groups = [f"{ec2}:security-group/{group}" for group in config.vpc_security_group_ids]
        return [
            iam.PolicyStatement(actions=list(VPC_DESCRIBE_ACTIONS), resources=["*"]),
            # CreateNetworkInterface is authorized on the subnet and security groups it uses
            # as well as on the new interface: only these subnets and groups.
            iam.PolicyStatement(
                actions=["ec2:CreateNetworkInterface"], resources=[*subnets, *groups]
            ),
            # The interfaces themselves (created, shared with SageMaker's account, removed):
            # interface IDs exist only at run time, so by condition on their subnet.
            iam.PolicyStatement(
                actions=list(VPC_INTERFACE_ACTIONS),
                resources=[f"{ec2}:network-interface/*"],
                conditions={"ArnEquals": {"ec2:Subnet": subnets}},
            ),
        ]

    @staticmethod
    def _acknowledge_wildcards(config: PlatformConfig, policy: iam.ManagedPolicy) -> None:
        """Each wildcard the policy needs, with why it cannot be narrower."""
        arn = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"
        reasons = {
            arn.format(service="sagemaker", resource="processing-job/pipelines-*"): (
                "SageMaker Pipelines names each job 'pipelines-<execution id>-<step>-...' at run "
                "time; the wildcard covers only jobs started by pipelines."
            ),
            arn.format(service="sagemaker", resource="training-job/pipelines-*"): (
                "SageMaker Pipelines names each job 'pipelines-<execution id>-<step>-...' at run "
                "time; the wildcard covers only jobs started by pipelines."
            ),
            arn.format(
                service="sagemaker", resource=f"model-package/{config.model_package_group_name}/*"
            ): (
                "Model package versions are numbered by SageMaker at registration; the wildcard "
                "stays inside this model family's package group."
            ),
            export_name(config, "datasets-bucket-arn") + "/*": (
                "InputDataUri is a pipeline parameter: any object in the datasets bucket may "
                "be trained on. Read-only."
            ),
            export_name(config, "artifacts-bucket-arn") + f"/pipelines/{config.pipeline_name}/*": (
                "Each execution writes under its own execution id; the wildcard is limited to "
                "this pipeline's prefix of the artifacts bucket."
            ),
            **(
                {
                    export_name(config, "artifacts-bucket-arn") + f"/{_mlflow_prefix(config)}": (
                        "MLflow names each run's and model's artifacts at run time; the "
                        "wildcard is limited to this pipeline's experiment under the mlflow/ "
                        "prefix of the artifacts bucket. Write-only."
                    )
                }
                if config.mlflow_tracking_uri
                else {}
            ),
            arn.format(service="logs", resource="log-group:/aws/sagemaker/ProcessingJobs:*"): (
                "SageMaker writes one log stream per job into this fixed log group; streams are "
                "named at run time."
            ),
            arn.format(service="logs", resource="log-group:/aws/sagemaker/TrainingJobs:*"): (
                "SageMaker writes one log stream per job into this fixed log group; streams are "
                "named at run time."
            ),
        }
        reasons["*"] = (
            "cloudwatch:PutMetricData supports no resource ARN; the statement is limited to "
            "SageMaker's /aws/sagemaker/* namespaces by condition."
        )
        if config.uses_vpc:
            reasons["*"] += (
                " The EC2 Describe actions SageMaker needs for jobs in a VPC (network "
                "interfaces, VPCs, DHCP options, subnets, security groups) support no "
                "resource ARN either; they are read-only."
            )
            reasons[arn.format(service="ec2", resource="network-interface/*")] = (
                "SageMaker creates, shares and deletes the jobs' network interfaces at run "
                "time, so their IDs are unknown; the statement is limited by condition to "
                "interfaces in the configured subnets."
            )
        for resource, reason in reasons.items():
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
        if config.enable_mlflow_server:
            acknowledge(
                policy,
                "AwsSolutions-IAM5[Action::sagemaker-mlflow:*]",
                "MLflow's client API maps to dozens of sagemaker-mlflow actions that change "
                "with MLflow versions; the statement is limited to this stage's tracking server.",
            )


def _mlflow_prefix(config: PlatformConfig) -> str:
    """The objects of the pipeline's MLflow experiment (named as the pipeline)."""
    return f"{names.MLFLOW_ARTIFACT_PREFIX}/{config.pipeline_name}/*"


class PipelineStack(Stack):
    """The training pipeline of one stage, and (``create_job_log_groups``) the job log groups.

    The job log groups are per account and region, not per stage: in an account and region
    with more than one stage (e.g. stage=prod next to stage=dev), exactly one stage creates
    them and every other one is deployed with ``-c create_job_log_groups=false``; its jobs
    then write into the same two groups. Both groups and their key are retained on destroy:
    a redeploy after a destroy also needs ``-c create_job_log_groups=false`` (or ``cdk
    import``, or deleting the groups first). See JobLogGroups.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PlatformConfig,
        env: Environment,
        bundle_dir: Path,
    ) -> None:
        super().__init__(scope, construct_id, env=env)
        storage = StorageImports(self, "Storage", config=config)
        # Known from the server's name: no cross-stack import, and usable inside the
        # definition as a ${...} placeholder that Fn::Sub resolves.
        mlflow_arn = (
            "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
            f":mlflow-tracking-server/{config.mlflow_tracking_server_name}"
            if config.enable_mlflow_server
            else None
        )
        self.training = TrainingPipeline(
            self,
            "Training",
            config=config,
            storage=storage,
            bundle_dir=bundle_dir,
            mlflow_tracking_server_arn=mlflow_arn,
        )
        CfnOutput(self, "PipelineName", value=config.pipeline_name)
        CfnOutput(self, "ExecutionRoleArn", value=self.training.role.role_arn)
