"""The SageMaker Pipeline definition: built offline, deterministic, wired as designed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops.adapters.images import sklearn_image_uri
from stacks.pipeline_definition import PLACEHOLDERS, PipelineSpec, build_definition

ROOT = Path(__file__).resolve().parents[2]
# Written out, not read from the SDK's table: a changed image must show up here.
INFERENCE_IMAGE = (
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
)
SUPPORT = Path(__file__).resolve().parent / "support"
SPEC = PipelineSpec(
    pipeline_name="mlops-dev-training",
    region="us-east-1",
    model_package_group_name="mlops-dev-visits",
    code_version="c0de",
    processing_instance_type="ml.m5.large",
    training_instance_type="ml.m5.xlarge",
    inference_instance_type="ml.m5.large",
    metric_threshold=0.6,
)


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(build_definition(SPEC))
    return parsed


def steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for step in definition["Steps"]:
        found[step["Name"]] = step
        if step["Type"] == "Condition":
            for branch in ("IfSteps", "ElseSteps"):
                for inner in step["Arguments"][branch]:
                    found[inner["Name"]] = inner
    return found


def test_generated_offline_in_a_fresh_process_and_identical(
    tmp_path: Path, definition: dict[str, Any]
) -> None:
    # No network at all: the network guard in Python, and no interfaces where unshare works.
    log = tmp_path / "attempts.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"PYTHONPATH": str(SUPPORT), "NETWORK_GUARD_LOG": str(log)}
    code = (
        "import json, sys; from stacks.pipeline_definition import PipelineSpec, build_definition; "
        "sys.stdout.write(build_definition(PipelineSpec(**json.loads(sys.argv[1]))))"
    )
    command = [sys.executable, "-c", code, json.dumps(SPEC.__dict__)]
    if (
        subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode
        == 0
    ):
        command = ["unshare", "--net", "--", *command]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert log.read_text() == "guard loaded\n"  # active, and no connection attempted
    assert result.stdout == json.dumps(definition, indent=1, sort_keys=True)
    assert result.stdout == build_definition(SPEC)


def test_five_steps_and_a_fail_branch(definition: dict[str, Any]) -> None:
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("Preprocess", "Processing"),
        ("Train", "Training"),
        ("Evaluate", "Processing"),
        ("CheckMetric", "Condition"),
    ]
    condition = steps(definition)["CheckMetric"]["Arguments"]
    assert [s["Name"] for s in condition["IfSteps"]] == ["Register"]
    assert [s["Type"] for s in condition["IfSteps"]] == ["RegisterModel"]
    assert [s["Name"] for s in condition["ElseSteps"]] == ["MetricBelowThreshold"]
    assert [s["Type"] for s in condition["ElseSteps"]] == ["Fail"]


def test_parameters(definition: dict[str, Any]) -> None:
    parameters = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definition["Parameters"]}
    assert parameters == {
        "InputDataUri": ("String", "s3://${DatasetsBucket}/raw/"),
        "ProcessingInstanceType": ("String", "ml.m5.large"),
        "TrainingInstanceType": ("String", "ml.m5.xlarge"),
        "Algorithm": ("String", "logistic"),
        "Seed": ("String", "42"),
        "MetricThreshold": ("Float", 0.6),
        "ApprovalStatus": ("String", "PendingManualApproval"),
    }


def test_steps_are_wired_through_their_outputs(definition: dict[str, Any]) -> None:
    found = steps(definition)
    train = found["Train"]["Arguments"]
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]
    }
    assert channels == {
        **{
            name: {
                "Get": f"Steps.Preprocess.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"
            }
            for name in ("train", "validation", "manifest")
        },
        # The script-mode archive, downloaded by SageMaker (see test_pipeline_isolation.py).
        "code": "s3://${CodeBucket}/${SourceArchiveKey}",
    }
    evaluate_inputs = {
        i["InputName"]: i["S3Input"]["S3Uri"]
        for i in found["Evaluate"]["Arguments"]["ProcessingInputs"]
    }
    assert evaluate_inputs["model"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert evaluate_inputs["test"] == {
        "Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"
    }
    assert found["Evaluate"]["PropertyFiles"] == [
        {
            "OutputName": "evaluation",
            "FilePath": "evaluation.json",
            "PropertyFileName": "Evaluation",
        }
    ]


def test_parameters_reach_the_jobs(definition: dict[str, Any]) -> None:
    found = steps(definition)
    arguments = found["Preprocess"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[0] == "preprocess"
    assert arguments[arguments.index("--seed") + 1] == {"Get": "Parameters.Seed"}
    assert found["Preprocess"]["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] == {
        "Get": "Parameters.InputDataUri"
    }
    train = found["Train"]["Arguments"]
    assert train["HyperParameters"]["algorithm"] == {"Get": "Parameters.Algorithm"}
    assert train["HyperParameters"]["seed"] == {"Get": "Parameters.Seed"}
    # MLflow records the input the run read as the training data's source.
    assert train["HyperParameters"]["dataset-source"] == {"Get": "Parameters.InputDataUri"}
    assert train["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    for name in ("Preprocess", "Evaluate"):
        cluster = found[name]["Arguments"]["ProcessingResources"]["ClusterConfig"]
        assert cluster["InstanceType"] == {"Get": "Parameters.ProcessingInstanceType"}


def test_no_experiment_trials(definition: dict[str, Any]) -> None:
    # MLflow tracks experiments; SageMaker Experiments would need more IAM for nothing.
    assert definition.get("PipelineExperimentConfig") is None


def test_condition_gates_on_the_evaluated_auc(definition: dict[str, Any]) -> None:
    (condition,) = steps(definition)["CheckMetric"]["Arguments"]["Conditions"]
    assert condition == {
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Evaluation"},
                "Path": "binary_classification_metrics.auc.value",
            }
        },
        "RightValue": {"Get": "Parameters.MetricThreshold"},
    }


def test_registration_carries_metrics_and_lineage(definition: dict[str, Any]) -> None:
    register = steps(definition)["Register"]["Arguments"]
    assert register["ModelPackageGroupName"] == "mlops-dev-visits"
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ApprovalStatus"}
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"]["Std:Join"]["Values"] == [
        {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"},
        "evaluation.json",
    ]
    metadata = register["CustomerMetadataProperties"]
    lineage_path = {"Get": "Steps.Evaluate.PropertyFiles.Evaluation"}
    for key in ("mlflow_run_id", "dataset_sha256", "dataset_dvc_md5", "model_sha256"):
        assert metadata[key] == {
            "Std:JsonGet": {"PropertyFile": lineage_path, "Path": f"lineage.{key}"}
        }
    assert metadata["code_version"] == "c0de"
    assert metadata["reference_data_uri"] == {
        "Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['reference'].S3Output.S3Uri"
    }
    assert register["MetadataProperties"]["CommitId"] == "c0de"
    (container,) = register["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert container["Image"] == INFERENCE_IMAGE
    assert container["Environment"] == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    }


def test_every_job_encrypts_with_the_platform_key(definition: dict[str, Any]) -> None:
    found = steps(definition)
    for name in ("Preprocess", "Evaluate"):
        arguments = found[name]["Arguments"]
        assert arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "${KmsKeyArn}"
        assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == "${KmsKeyArn}"
        assert arguments["AppSpecification"]["ImageUri"] == sklearn_image_uri(
            "us-east-1", "training"
        )
        assert arguments["AppSpecification"]["ContainerEntrypoint"] == [
            "python3",
            "/opt/ml/processing/input/code/${StepsArchiveKey}",
        ]
    train = found["Train"]["Arguments"]
    assert train["ResourceConfig"]["VolumeKmsKeyId"] == "${KmsKeyArn}"
    assert train["OutputDataConfig"]["KmsKeyId"] == "${KmsKeyArn}"
    assert train["HyperParameters"]["sagemaker_program"] == "train.py"
    assert (
        train["HyperParameters"]["sagemaker_submit_directory"]
        == "/opt/ml/input/data/code/${SourceArchiveKey}"
    )


def test_only_known_placeholders(definition: dict[str, Any]) -> None:
    text = json.dumps(definition)
    used = set(re.findall(r"\$\{([^}]+)\}", text))
    assert used == set(PLACEHOLDERS) | {"AWS::Partition", "AWS::AccountId"}
    assert definition["Steps"][1]["Arguments"]["RoleArn"] == (
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RoleName}"
    )


def test_mlflow_attachment(definition: dict[str, Any]) -> None:
    assert "MlflowConfig" not in definition
    arn = (
        "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:mlflow-tracking-server/x"
    )
    spec = PipelineSpec(
        **{**SPEC.__dict__, "mlflow_tracking_server_arn": arn, "mlflow_experiment_name": "exp"}
    )
    tracked = json.loads(build_definition(spec))
    assert tracked["MlflowConfig"] == {"MlflowResourceArn": arn, "MlflowExperimentName": "exp"}
    environment = steps(tracked)["Train"]["Arguments"]["Environment"]
    assert environment["MLFLOW_TRACKING_URI"] == arn
    assert environment["MLFLOW_EXPERIMENT_NAME"] == "exp"


def test_sdk_config_validated_once_not_per_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The telemetry opt-out is validated when the SDK is loaded, not again on each of the
    definition's config lookups (they took most of a synth); any other config still is."""
    build_definition(SPEC)  # the SDK loaded, the opt-out validated
    from sagemaker.core.config import config_manager  # noqa: PLC0415 - after the offline setup

    validations: list[object] = []
    validate = config_manager.jsonschema.validate

    def counted(instance: object, schema: object) -> None:
        validations.append(instance)
        validate(instance, schema)

    monkeypatch.setattr(config_manager.jsonschema, "validate", counted)
    assert json.loads(build_definition(SPEC))["Steps"]
    assert validations == []
    with pytest.raises(config_manager.jsonschema.exceptions.ValidationError):
        config_manager.SageMakerConfig.validate_sagemaker_config({"SchemaVersion": "9.9"})
    assert validations == [{"SchemaVersion": "9.9"}]


def test_own_tracking_server(definition: dict[str, Any]) -> None:
    # mlflow_tracking_uri: a team's own server, no managed one; the artifacts in the bucket.
    assert "MLFLOW_TRACKING_URI" not in steps(definition)["Train"]["Arguments"]["Environment"]
    spec = PipelineSpec(
        **{
            **SPEC.__dict__,
            "mlflow_tracking_uri": "https://mlflow.example.com",
            "mlflow_experiment_name": "mlops-dev-training",
            "mlflow_artifact_root": "s3://${ArtifactsBucket}/mlflow",
        }
    )
    tracked = json.loads(build_definition(spec))
    assert "MlflowConfig" not in tracked  # that names a managed server
    found = steps(tracked)
    train = found["Train"]["Arguments"]
    assert train["Environment"] == {
        "CODE_VERSION": "c0de",
        "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
        "MLFLOW_EXPERIMENT_NAME": "mlops-dev-training",
        "MLOPS_MLFLOW_ARTIFACT_ROOT": "s3://${ArtifactsBucket}/mlflow",
    }
    # Train reaches the server (and PyPI for MLflow); Evaluate stays isolated.
    assert train["EnableNetworkIsolation"] is False
    assert found["Evaluate"]["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"] is True
