"""The SageMaker Python SDK (and boto3) as the pipeline definition uses them.

Import this module only inside the offline environment: pipeline_definition._build imports it,
after _offline_environment has set the environment for an offline build (no role validation,
no telemetry, no instance metadata, a default region) and while build_definition silences the
warnings and logging the SDK emits as it imports its own modules.
"""

from typing import Any

import boto3
from sagemaker.core import image_uris
from sagemaker.core.config.config_manager import SageMakerConfig
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

# The SDK's documented telemetry opt-out (else a background thread calls STS and an HTTPS
# endpoint). The SDK validates a session's config against its JSON schema, the schema itself
# included, on every config lookup: ~44 in a definition, most of a synth's time. This config is
# validated once, here, as the SDK would; only this object (never changed) skips re-validation.
TELEMETRY_OPT_OUT: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
_validate = SageMakerConfig.validate_sagemaker_config
_validate(TELEMETRY_OPT_OUT)


def _validate_unless_opt_out(sagemaker_config: dict[str, Any] | None = None) -> None:
    if sagemaker_config is not TELEMETRY_OPT_OUT:
        _validate(sagemaker_config)


SageMakerConfig.validate_sagemaker_config = staticmethod(_validate_unless_opt_out)

__all__ = [
    "TELEMETRY_OPT_OUT",
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
