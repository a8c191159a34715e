"""The SageMaker Pipeline definition, built offline with the SageMaker Python SDK v3.

preprocess -> train -> evaluate -> condition(metric >= threshold) -> register | fail

The SDK cannot take CDK tokens, so the definition is built with ``${Name}`` placeholders
(buckets, code keys, role, key) that the pipeline stack fills in with ``Fn::Sub``. Building
it makes no AWS call and no DNS lookup (see ../shared notes and tests/infra/test_pipeline_definition.py):
role validation is off, the role is a literal ARN placeholder, every S3 path is explicit,
telemetry is off and ModelBuilder runs without dependency auto-detection.

Network: every job runs with network isolation unless its container needs the network (see
``needs_network``), encrypts traffic between its instances, and runs in the stage's VPC when
one is configured.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

from mlops.adapters.images import SKLEARN_VERSION
from mlops.adapters.registry import (
    CODE_VERSION_KEY,
    CONTENT_TYPES,
    DATASET_DVC_KEY,
    DATASET_HASH_KEY,
    MLFLOW_RUN_ID_KEY,
    MODEL_SHA256_KEY,
    REFERENCE_DATA_KEY,
    RESPONSE_TYPES,
    SERVING_ENVIRONMENT,
)
from pipeline_steps.hyperparameters import DEFAULTS
from pipeline_steps.tracking import ARTIFACT_ROOT_ENV

# Names the Fn::Sub in the pipeline stack substitutes.
PLACEHOLDERS = (
    "ArtifactsBucket",
    "DatasetsBucket",
    "CodeBucket",
    "StepsArchiveKey",
    "SourceArchiveKey",
    "RoleName",
    "KmsKeyArn",
)
# The SDK calls iam:GetRole for anything that does not look like an ARN: give it one, with
# placeholders Fn::Sub fills (AWS::Partition and AWS::AccountId are CloudFormation's own).
ROLE_ARN = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RoleName}"
PRIMARY_METRIC = "auc"
PRIMARY_METRIC_PATH = f"binary_classification_metrics.{PRIMARY_METRIC}.value"

SPLITS = ("train", "validation", "test", "reference", "manifest")
STEP_NAMES = ("Preprocess", "Train", "Evaluate", "CheckMetric", "Register", "MetricBelowThreshold")
JOB_STEPS = ("Preprocess", "Train", "Evaluate")
# Where the training job finds its script-mode archive: SageMaker downloads the "code" channel
# there before the container starts (the container itself needs no S3 access for it).
CODE_CHANNEL = "code"
SOURCE_ARCHIVE_IN_CONTAINER = f"/opt/ml/input/data/{CODE_CHANNEL}/${{SourceArchiveKey}}"


@dataclass(frozen=True)
class PipelineSpec:
    """What the definition depends on; all known at synth time."""

    pipeline_name: str
    region: str
    model_package_group_name: str
    code_version: str
    processing_instance_type: str
    training_instance_type: str
    inference_instance_type: str
    metric_threshold: float
    mlflow_tracking_server_arn: str | None = None
    mlflow_experiment_name: str | None = None
    # A team's own MLflow server (mlflow_tracking_uri), instead of the managed one: the train
    # step writes the artifacts itself, under this root (s3://${ArtifactsBucket}/mlflow).
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = None
    # The stage's VPC: both set, or both empty (the jobs then run in SageMaker's own network).
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()


def needs_network(step: str, spec: PipelineSpec) -> bool:
    """Whether the container of a job step needs the network; all others run isolated.

    A network-isolated container has no outbound network and no AWS credentials; SageMaker
    still downloads its inputs and uploads its outputs (through the VPC, when configured).
    Decided from what each step's code does (pipeline_steps/):

    - Preprocess reads its input folder and writes its output folders: no network.
    - Evaluate reads the model, test and manifest folders and writes evaluation.json. Its
      MLflow call (evaluate._track) runs only with MLFLOW_TRACKING_URI set, which this job is
      not given, and with mlflow installed, which the processing image lacks: no network.
    - Train, untracked, reads its channels (the script archive included, see CODE_CHANNEL) and
      writes the model folder: no network. Tracked (enable_mlflow_server or mlflow_tracking_uri),
      the container first installs requirements.txt from PyPI and then logs the run to the
      MLflow server (the managed one signing with the execution role's credentials; a team's
      own with its artifacts written to S3 with them): it needs the network, and credentials.
    """
    if step not in JOB_STEPS:
        raise ValueError(f"{step!r} is not a job step ({', '.join(JOB_STEPS)})")
    return step == "Train" and tracking_uri(spec) is not None


def tracking_uri(spec: PipelineSpec) -> str | None:
    """The MLflow tracking URI the train step logs to: the managed server's ARN, a team's own
    server's URL, or None (untracked)."""
    return spec.mlflow_tracking_server_arn or spec.mlflow_tracking_uri


def training_environment(spec: PipelineSpec) -> dict[str, str]:
    """The train job's environment: its code version and, tracked, where MLflow is."""
    environment = {"CODE_VERSION": spec.code_version}
    if uri := tracking_uri(spec):
        # sagemaker-mlflow resolves a tracking-server ARN used as the tracking URI. In a VPC,
        # the training job reaches the server, PyPI (requirements.txt) and S3 through that
        # VPC: a NAT gateway, or an interface endpoint for SageMaker MLflow, a PyPI mirror and
        # an S3 gateway endpoint. The stack builds none of these; the VPC must provide them.
        environment["MLFLOW_TRACKING_URI"] = uri
        environment["MLFLOW_EXPERIMENT_NAME"] = spec.mlflow_experiment_name or spec.pipeline_name
    if spec.mlflow_tracking_uri and spec.mlflow_artifact_root:
        # The experiment the step creates keeps its artifacts here, written by the job's role.
        environment[ARTIFACT_ROOT_ENV] = spec.mlflow_artifact_root
    return environment


def _offline_environment() -> None:
    """Switch off every AWS call the SDK would otherwise make while building a definition."""
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # Telemetry would call STS and an HTTPS endpoint on a background thread.
    os.environ["SAGEMAKER_TELEMETRY_OPT_OUT"] = "true"


def build_definition(spec: PipelineSpec) -> str:
    """The pipeline definition JSON, with ``${Placeholder}`` strings for deploy-time values."""
    _offline_environment()
    # The SDK narrates at INFO/WARNING and warns about deprecated shims it imports itself;
    # none of it is actionable during synth.
    # Some SDK modules set their own logger levels, so only a global switch quiets them.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _build(spec)
    finally:
        logging.disable(previous)


def _build(spec: PipelineSpec) -> str:
    # Deferred: the SDK is imported only once build_definition has set up the offline
    # environment (see _sagemaker_sdk); its two network settings classes likewise.
    from sagemaker.core.network import NetworkConfig  # noqa: PLC0415
    from sagemaker.train.configs import Networking  # noqa: PLC0415

    from . import _sagemaker_sdk as sdk  # noqa: PLC0415

    boto_session = sdk.boto3.Session(
        aws_access_key_id="offline",
        aws_secret_access_key="offline",  # noqa: S106 - never sent: no call is made
        region_name=spec.region,
    )
    session = sdk.PipelineSession(boto_session=boto_session, default_bucket="${ArtifactsBucket}")
    # No telemetry: no STS or HTTPS call from a background thread (validated once: see sdk).
    session.sagemaker_config = sdk.TELEMETRY_OPT_OUT

    input_data = sdk.ParameterString("InputDataUri", default_value="s3://${DatasetsBucket}/raw/")
    processing_instance = sdk.ParameterString(
        "ProcessingInstanceType", default_value=spec.processing_instance_type
    )
    training_instance = sdk.ParameterString(
        "TrainingInstanceType", default_value=spec.training_instance_type
    )
    algorithm = sdk.ParameterString("Algorithm", default_value=DEFAULTS.algorithm)
    seed = sdk.ParameterString("Seed", default_value=str(DEFAULTS.seed))
    threshold = sdk.ParameterFloat("MetricThreshold", default_value=spec.metric_threshold)
    approval = sdk.ParameterString("ApprovalStatus", default_value="PendingManualApproval")

    image = sdk.image_uris.retrieve(
        "sklearn", region=spec.region, version=SKLEARN_VERSION, image_scope="training"
    )
    inference_image = sdk.image_uris.retrieve(
        "sklearn", region=spec.region, version=SKLEARN_VERSION, image_scope="inference"
    )
    steps_archive = "s3://${CodeBucket}/${StepsArchiveKey}"
    source_archive = "s3://${CodeBucket}/${SourceArchiveKey}"
    run_prefix = sdk.Join(
        on="/", values=["s3://${ArtifactsBucket}", "pipelines", spec.pipeline_name]
    )

    vpc = bool(spec.subnets)
    if vpc != bool(spec.security_group_ids):
        raise ValueError("give subnets and security_group_ids together, or neither")

    def processor(job: str, step: str) -> Any:
        return sdk.ScriptProcessor(
            role=ROLE_ARN,
            image_uri=image,
            command=["python3"],
            instance_count=1,
            instance_type=processing_instance,
            volume_kms_key="${KmsKeyArn}",
            output_kms_key="${KmsKeyArn}",
            base_job_name=f"{spec.pipeline_name}-{job}",
            sagemaker_session=session,
            env={"CODE_VERSION": spec.code_version},
            network_config=NetworkConfig(
                enable_network_isolation=not needs_network(step, spec),
                # Encrypts traffic between the instances of a job: none with one instance,
                # and an instance_count above 1 must not silently leave it in the clear.
                encrypt_inter_container_traffic=True,
                subnets=list(spec.subnets) if vpc else None,
                security_group_ids=list(spec.security_group_ids) if vpc else None,
            ),
        )

    def output(name: str, local: str) -> Any:
        return sdk.ProcessingOutput(
            output_name=name,
            s3_output=sdk.ProcessingS3Output(
                s3_uri=sdk.Join(
                    on="/", values=[run_prefix, sdk.ExecutionVariables.PIPELINE_EXECUTION_ID, name]
                ),
                local_path=local,
                s3_upload_mode="EndOfJob",
            ),
        )

    def s3_input(name: str, uri: Any, local: str) -> Any:
        return sdk.ProcessingInput(
            input_name=name,
            s3_input=sdk.ProcessingS3Input(
                s3_uri=uri,
                local_path=local,
                s3_data_type="S3Prefix",
                s3_input_mode="File",
            ),
        )

    preprocess = sdk.ProcessingStep(
        name="Preprocess",
        step_args=processor("preprocess", "Preprocess").run(
            code=steps_archive,
            arguments=[
                "preprocess",
                "--input",
                "/opt/ml/processing/input/data",
                "--output",
                "/opt/ml/processing/output",
                "--seed",
                seed,
            ],
            inputs=[s3_input("data", input_data, "/opt/ml/processing/input/data")],
            outputs=[output(name, f"/opt/ml/processing/output/{name}") for name in SPLITS],
        ),
    )

    def split_uri(name: str) -> Any:
        outputs = preprocess.properties.ProcessingOutputConfig.Outputs
        return outputs[name].S3Output.S3Uri

    environment = training_environment(spec)
    trainer = sdk.ModelTrainer(
        sagemaker_session=session,
        role=ROLE_ARN,
        base_job_name=f"{spec.pipeline_name}-train",
        training_image=image,
        compute=sdk.Compute(
            instance_type=training_instance,
            instance_count=1,
            volume_size_in_gb=30,
            volume_kms_key_id="${KmsKeyArn}",
        ),
        stopping_condition=sdk.StoppingCondition(max_runtime_in_seconds=3600),
        output_data_config=sdk.OutputDataConfig(
            s3_output_path=sdk.Join(
                on="/", values=[run_prefix, sdk.ExecutionVariables.PIPELINE_EXECUTION_ID, "model"]
            ),
            kms_key_id="${KmsKeyArn}",
        ),
        # Script mode without SourceCode: the SDK would upload driver files under a
        # timestamped prefix (a new definition every synth). The framework image's toolkit
        # reads these two hyperparameters instead and runs train.py from our archive. The
        # archive comes in as a channel, not as an s3:// URI the toolkit would download
        # itself: an isolated container has no credentials and no route to S3.
        hyperparameters={
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": SOURCE_ARCHIVE_IN_CONTAINER,
            "algorithm": algorithm,
            "seed": seed,
            # MLflow records the pipeline's input as the training data's source.
            "dataset-source": input_data,
        },
        environment=environment,
        networking=Networking(
            enable_network_isolation=not needs_network("Train", spec),
            # Encrypts traffic between training instances: none with one instance, and an
            # instance_count above 1 must not silently leave it in the clear.
            enable_inter_container_traffic_encryption=True,
            subnets=list(spec.subnets) if vpc else None,
            security_group_ids=list(spec.security_group_ids) if vpc else None,
        ),
    )
    train = sdk.TrainingStep(
        name="Train",
        step_args=trainer.train(
            input_data_config=[
                sdk.InputData(
                    channel_name="train", data_source=split_uri("train"), content_type="text/csv"
                ),
                sdk.InputData(
                    channel_name="validation",
                    data_source=split_uri("validation"),
                    content_type="text/csv",
                ),
                sdk.InputData(
                    channel_name="manifest",
                    data_source=split_uri("manifest"),
                    content_type="application/json",
                ),
                sdk.InputData(channel_name=CODE_CHANNEL, data_source=source_archive),
            ]
        ),
    )
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    evaluation = sdk.PropertyFile(
        name="Evaluation", output_name="evaluation", path="evaluation.json"
    )
    evaluate = sdk.ProcessingStep(
        name="Evaluate",
        step_args=processor("evaluate", "Evaluate").run(
            code=steps_archive,
            arguments=[
                "evaluate",
                "--model",
                "/opt/ml/processing/input/model",
                "--test",
                "/opt/ml/processing/input/test",
                "--manifest",
                "/opt/ml/processing/input/manifest",
                "--output",
                "/opt/ml/processing/output/evaluation",
            ],
            inputs=[
                s3_input("model", model_data, "/opt/ml/processing/input/model"),
                s3_input("test", split_uri("test"), "/opt/ml/processing/input/test"),
                s3_input("manifest", split_uri("manifest"), "/opt/ml/processing/input/manifest"),
            ],
            outputs=[output("evaluation", "/opt/ml/processing/output/evaluation")],
        ),
        property_files=[evaluation],
    )
    evaluation_uri = sdk.Join(
        on="/",
        values=[
            evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri,
            "evaluation.json",
        ],
    )

    def lineage(key: str) -> Any:
        return sdk.JsonGet(
            step_name=evaluate.name, property_file=evaluation, json_path=f"lineage.{key}"
        )

    model = sdk.ModelBuilder(
        sagemaker_session=session,
        role_arn=ROLE_ARN,
        image_uri=inference_image,
        s3_model_data_url=model_data,
        env_vars=dict(SERVING_ENVIRONMENT),
        dependencies=None,  # auto-detection would call S3 (default_bucket) at build time
    )
    register = sdk.ModelStep(
        name="Register",
        step_args=model.register(
            model_package_group_name=spec.model_package_group_name,
            content_types=list(CONTENT_TYPES),
            response_types=list(RESPONSE_TYPES),
            inference_instances=[spec.inference_instance_type],
            transform_instances=[spec.inference_instance_type],
            approval_status=approval,
            model_metrics=sdk.ModelMetrics(
                model_statistics=sdk.MetricsSource(
                    content_type="application/json", s3_uri=evaluation_uri
                )
            ),
            metadata_properties=sdk.MetadataProperties(
                commit_id=spec.code_version,
                generated_by=sdk.ExecutionVariables.PIPELINE_EXECUTION_ARN,
                project_id=spec.pipeline_name,
            ),
            customer_metadata_properties={
                MLFLOW_RUN_ID_KEY: lineage(MLFLOW_RUN_ID_KEY),
                DATASET_HASH_KEY: lineage(DATASET_HASH_KEY),
                DATASET_DVC_KEY: lineage(DATASET_DVC_KEY),
                MODEL_SHA256_KEY: lineage(MODEL_SHA256_KEY),
                CODE_VERSION_KEY: spec.code_version,
                REFERENCE_DATA_KEY: split_uri("reference"),
            },
            description=sdk.Join(
                on=" ", values=["trained by", sdk.ExecutionVariables.PIPELINE_EXECUTION_ARN]
            ),
        ),
    )
    metric = sdk.JsonGet(
        step_name=evaluate.name, property_file=evaluation, json_path=PRIMARY_METRIC_PATH
    )
    below = sdk.FailStep(
        name="MetricBelowThreshold",
        error_message=sdk.Join(
            on=" ",
            values=[
                f"Model {PRIMARY_METRIC}",
                metric,
                "is below the threshold",
                threshold,
                "- not registered.",
            ],
        ),
    )
    check = sdk.ConditionStep(
        name="CheckMetric",
        conditions=[sdk.ConditionGreaterThanOrEqualTo(left=metric, right=threshold)],
        if_steps=[register],
        else_steps=[below],
    )
    pipeline = sdk.Pipeline(
        name=spec.pipeline_name,
        parameters=[
            input_data,
            processing_instance,
            training_instance,
            algorithm,
            seed,
            threshold,
            approval,
        ],
        steps=[preprocess, train, evaluate, check],
        sagemaker_session=session,
        # No SageMaker Experiments trial per execution: MLflow is the experiment tracker,
        # and the role needs no sagemaker:CreateExperiment/CreateTrial.
        pipeline_experiment_config=None,
    )
    definition = json.loads(pipeline.definition())
    if spec.mlflow_tracking_server_arn:
        definition["MlflowConfig"] = {
            "MlflowResourceArn": spec.mlflow_tracking_server_arn,
            "MlflowExperimentName": spec.mlflow_experiment_name or spec.pipeline_name,
        }
    else:
        definition.pop("MlflowConfig", None)
    return json.dumps(definition, indent=1, sort_keys=True)
