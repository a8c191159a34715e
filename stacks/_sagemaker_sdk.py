"""The SageMaker Python SDK (and boto3) as the pipeline definition uses them.

Import this module only inside the offline environment: pipeline_definition._build imports it,
after _offline_environment has set the environment for an offline build (no role validation,
no telemetry, no instance metadata, a default region) and while build_definition silences the
warnings and logging the SDK emits as it imports its own modules.
"""

import boto3
from sagemaker.core import image_uris
from sagemaker.core.metadata_properties import MetadataProperties
from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.processing import ScriptProcessor
from sagemaker.core.shapes import (
    ProcessingInput,
    ProcessingOutput,
    ProcessingS3Input,
    ProcessingS3Output,
)
from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import (
    ParameterFloat,
    ParameterString,
)
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow import (
    ConditionStep,
    FailStep,
    ModelStep,
    Pipeline,
    ProcessingStep,
    TrainingStep,
)
from sagemaker.serve.model_builder import ModelBuilder
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import (
    Compute,
    InputData,
    OutputDataConfig,
    StoppingCondition,
)

__all__ = [
    "Compute",
    "ConditionGreaterThanOrEqualTo",
    "ConditionStep",
    "ExecutionVariables",
    "FailStep",
    "InputData",
    "Join",
    "JsonGet",
    "MetadataProperties",
    "MetricsSource",
    "ModelBuilder",
    "ModelMetrics",
    "ModelStep",
    "ModelTrainer",
    "OutputDataConfig",
    "ParameterFloat",
    "ParameterString",
    "Pipeline",
    "PipelineSession",
    "ProcessingInput",
    "ProcessingOutput",
    "ProcessingS3Input",
    "ProcessingS3Output",
    "ProcessingStep",
    "PropertyFile",
    "ScriptProcessor",
    "StoppingCondition",
    "TrainingStep",
    "boto3",
    "image_uris",
]
