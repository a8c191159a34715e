"""The training pipeline: AWS::SageMaker::Pipeline, its step code and its execution role.

The definition comes from stacks/pipeline_definition.py (SageMaker SDK v3, built offline);
deploy-time values reach it through Fn::Sub. The step code ships as two CDK file assets
built deterministically from pipeline_steps/ (mlops/adapters/code_bundle.py).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, CfnOutput, Environment, Fn, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlops.adapters import code_bundle
from mlops.core.config import PlatformConfig

from .compliance import acknowledge
from .pipeline_definition import PipelineSpec, build_definition
from .storage import StorageImports, export_name


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

        tracked = mlflow_tracking_server_arn is not None
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
                resources=[
                    f"{sagemaker_arn}:model-package-group/{config.model_package_group_name}",
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
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    f"arn:{partition}:logs:{stack_region}:{account}:log-group:/aws/sagemaker/ProcessingJobs:*",
                    f"arn:{partition}:logs:{stack_region}:{account}:log-group:/aws/sagemaker/TrainingJobs:*",
                ],
            ),
        ]
        if mlflow_arn:
            statements.append(
                iam.PolicyStatement(
                    actions=["sagemaker-mlflow:*"],
                    resources=[Fn.sub(mlflow_arn)],
                )
            )
        return statements

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
        for resource, reason in reasons.items():
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
        if config.enable_mlflow_server:
            acknowledge(
                policy,
                "AwsSolutions-IAM5[Action::sagemaker-mlflow:*]",
                "MLflow's client API maps to dozens of sagemaker-mlflow actions that change "
                "with MLflow versions; the statement is limited to this stage's tracking server.",
            )


class PipelineStack(Stack):
    """The training pipeline of one stage."""

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
