"""The local run on the embedded default: the emulator's S3 and registry, a local MLflow."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from mlops.adapters import s3io
from mlops.adapters.envvars import patched_environ
from mlops.adapters.registry import PackageLineage, set_approval
from mlops.adapters.target import AwsTarget
from mlops.cli import app
from mlops.core.config import PlatformConfig
from mlops.local.emulator import Home, bootstrap, mlflow_artifact_root, mlflow_environment
from mlops.local.pipeline import LocalPipelineRunner, RunOptions
from pipeline_steps.data import synthetic_dataset

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import ModelPackageSummaryTypeDef


@pytest.fixture
def runner(emulator: AwsTarget, tmp_path: Path) -> LocalPipelineRunner:
    config = PlatformConfig()
    home = Home(tmp_path / "home")
    home.mlflow_dir.mkdir(parents=True)
    resources = bootstrap(emulator, config)
    return LocalPipelineRunner(
        target=emulator,
        resources=resources,
        config=config,
        mlflow_tracking_uri=home.mlflow_tracking_uri,
        mlflow_artifact_root=mlflow_artifact_root(resources),
    )


def packages(
    target: AwsTarget, group: str = "mlops-dev-visits"
) -> list[ModelPackageSummaryTypeDef]:
    return target.client("sagemaker").list_model_packages(ModelPackageGroupName=group)[
        "ModelPackageSummaryList"
    ]


def test_bootstrap_mirrors_the_storage_stack(emulator: AwsTarget) -> None:
    resources = bootstrap(emulator, PlatformConfig())
    assert bootstrap(emulator, PlatformConfig()) == resources  # idempotent
    s3 = emulator.client("s3")
    for role in ("datasets", "artifacts", "capture", "reports"):
        bucket = resources.bucket(role)
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        assert rule["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": resources.key_arn,
        }
    group = emulator.client("sagemaker").describe_model_package_group(
        ModelPackageGroupName="mlops-dev-visits"
    )
    assert group["ModelPackageGroupName"] == "mlops-dev-visits"


def test_run_registers_with_lineage_and_reproduces(
    runner: LocalPipelineRunner, emulator: AwsTarget
) -> None:
    events: list[tuple[str, str]] = []
    runner.progress = lambda step, status, detail: events.append((step, status))
    first = runner.run(RunOptions())
    assert first.registered, first.reason
    assert [(s.name, s.status) for s in first.steps] == [
        (name, "Succeeded")
        for name in ("Preprocess", "Train", "Evaluate", "CheckMetric", "Register")
    ]
    assert events[:2] == [("Preprocess", "Executing"), ("Preprocess", "Succeeded")]
    assert first.metrics["auc"] > 0.6

    # The registry entry carries everything needed to find its run, data and code.
    sagemaker = emulator.client("sagemaker")
    described = sagemaker.describe_model_package(ModelPackageName=first.model_package_arn or "")
    lineage = PackageLineage.from_description(described)
    assert lineage.approval_status == "PendingManualApproval"
    assert lineage.mlflow_run_id == first.mlflow_run_id
    assert lineage.dataset_sha256 == first.dataset_sha256
    assert lineage.code_version == first.code_version
    assert lineage.model_sha256 == first.model_sha256
    assert lineage.reference_data_uri == first.reference_uri
    assert lineage.model_data_url == first.model_data_uri
    assert described["MetadataProperties"]["CommitId"] == first.code_version

    # Data and artifacts are in the emulated S3, under the execution's prefix.
    s3 = emulator.client("s3")
    bucket, key = s3io.split_uri(first.evaluation_uri or "")
    report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert report["lineage"]["model_sha256"] == first.model_sha256
    prefix = f"pipelines/mlops-dev-training/{first.execution_id}/"
    keys = s3io.list_keys(s3, "mlops-dev-artifacts", prefix)
    assert {k[len(prefix) :].split("/")[0] for k in keys} == {
        "train", "validation", "test", "reference", "manifest", "model", "evaluation",
    }  # fmt: skip
    assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "aws:kms"

    # MLflow: the run has the metrics and tags, and the model is in MLflow's registry.
    client = MlflowClient(runner.mlflow_tracking_uri)
    run = client.get_run(first.mlflow_run_id or "")
    assert run.data.tags["dataset_sha256"] == first.dataset_sha256
    assert run.data.tags["model_package_arn"] == first.model_package_arn
    assert run.data.metrics["test_auc"] == pytest.approx(first.metrics["auc"])
    version = client.get_model_version("mlops-dev-visits", first.mlflow_model_version or "")
    assert version.tags["model_package_arn"] == first.model_package_arn

    # The same inputs again: the same model bytes and metrics, a new registry version.
    second = runner.run(RunOptions())
    assert second.registered
    assert second.model_sha256 == first.model_sha256
    assert second.metrics == first.metrics
    assert second.dataset_sha256 == first.dataset_sha256
    assert second.model_package_arn != first.model_package_arn
    assert len(packages(emulator)) == 2
    # No MLflow global state leaks out of an in-process run.
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_EXPERIMENT_ID" not in os.environ
    assert mlflow.get_tracking_uri() != runner.mlflow_tracking_uri
    assert mlflow.active_run() is None


def test_below_threshold_is_not_registered_and_says_why(
    runner: LocalPipelineRunner, emulator: AwsTarget
) -> None:
    result = runner.run(RunOptions(metric_threshold=0.95))
    assert not result.registered
    assert result.reason is not None
    assert "is below the threshold 0.9500: the model is not registered" in result.reason
    assert [(s.name, s.status) for s in result.steps][-1] == ("CheckMetric", "Failed")
    assert packages(emulator) == []


def test_bad_data_stops_before_training(
    runner: LocalPipelineRunner, emulator: AwsTarget, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    synthetic_dataset(30).drop(columns=["disea"]).to_csv(bad, index=False)
    result = runner.run(RunOptions(data_file=bad))
    assert not result.registered
    assert result.reason is not None
    assert "invalid input data: bad.csv: missing column(s) 'disea'" in result.reason
    assert [(s.name, s.status) for s in result.steps] == [("Preprocess", "Failed")]
    assert packages(emulator) == []


def test_an_unexpected_failure_marks_the_step_and_keeps_the_reason(
    runner: LocalPipelineRunner, emulator: AwsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("pipeline_steps.evaluate.run", broken)
    result = runner.run(RunOptions())
    assert not result.registered
    assert result.reason == "OSError: disk full"
    assert [(s.name, s.status) for s in result.steps][-1] == ("Evaluate", "Failed")
    assert packages(emulator) == []


def test_own_data_file_is_uploaded_and_used(runner: LocalPipelineRunner, tmp_path: Path) -> None:
    data = tmp_path / "mine.csv"
    synthetic_dataset(3000, seed=5).to_csv(data, index=False)
    result = runner.run(RunOptions(data_file=data, algorithm="gradient_boosting", max_iter=30))
    assert result.registered, result.reason
    assert result.input_uri.startswith("s3://mlops-dev-datasets/uploads/")
    assert result.input_uri.endswith("-mine/")
    # SageMaker's layout for a training job's model: <output>/<job>/output/model.tar.gz
    assert (result.model_data_uri or "").endswith(
        f"/model/{result.execution_id}-train/output/model.tar.gz"
    )


def test_approval_keeps_lineage(runner: LocalPipelineRunner, emulator: AwsTarget) -> None:
    result = runner.run(RunOptions())
    sagemaker = emulator.client("sagemaker")
    set_approval(sagemaker, result.model_package_arn or "", "Approved", "tested")
    lineage = PackageLineage.from_description(
        sagemaker.describe_model_package(ModelPackageName=result.model_package_arn or "")
    )
    assert lineage.approval_status == "Approved"
    assert lineage.reference_data_uri == result.reference_uri
    with pytest.raises(ValueError, match="approval status must be one of"):
        set_approval(sagemaker, result.model_package_arn or "", "Maybe")


# -- the CLI --------------------------------------------------------------------------------


def cli(emulator: AwsTarget, tmp_path: Path, *args: str) -> Any:
    env = {
        "MLOPS_ENDPOINT_URL": emulator.endpoint_url or "",
        "MLOPS_HOME": str(tmp_path / "home"),
        "COLUMNS": "200",
    }
    return CliRunner().invoke(app, list(args), env=env)


def test_cli_run_local_then_approve(emulator: AwsTarget, tmp_path: Path) -> None:
    result = cli(emulator, tmp_path, "pipeline", "run-local")
    assert result.exit_code == 0, result.output
    for step in ("Preprocess", "Train", "Evaluate", "CheckMetric", "Register"):
        assert f"  {step}" in result.output
    assert (
        "registered arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/1"
        in result.output
    )

    listed = cli(emulator, tmp_path, "registry", "list")
    assert listed.exit_code == 0, listed.output
    assert "PendingManualApproval" in listed.output

    approved = cli(emulator, tmp_path, "registry", "approve", "1", "--reason", "ok")
    assert approved.exit_code == 0, approved.output
    shown = cli(emulator, tmp_path, "registry", "show", "1")
    assert "approval_status: Approved" in shown.output
    assert (
        "reference_data_uri: s3://mlops-dev-artifacts/pipelines/mlops-dev-training/local-"
        in shown.output
    )


def test_cli_below_threshold_exits_1_with_the_reason(emulator: AwsTarget, tmp_path: Path) -> None:
    result = cli(emulator, tmp_path, "pipeline", "run-local", "--threshold", "0.99")
    assert result.exit_code == 1
    assert "not registered: test auc" in result.output
    assert "is below the threshold 0.9900" in result.output


def test_cli_rejects_bad_options(emulator: AwsTarget, tmp_path: Path) -> None:
    bad_algorithm = cli(emulator, tmp_path, "pipeline", "run-local", "--algorithm", "xgboost")
    assert bad_algorithm.exit_code == 2
    assert "--algorithm: 'xgboost' is not one of 'logistic', 'gradient_boosting'" in (
        bad_algorithm.output
    )
    bad_context = cli(emulator, tmp_path, "-c", "stage=", "registry", "list")
    assert bad_context.exit_code == 2
    assert "'stage': must be 1-10 lowercase letters" in bad_context.output


def test_cli_data_upload_validates_first(emulator: AwsTarget, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("lncoins,idp\n1,2\n")
    refused = cli(emulator, tmp_path, "data", "upload", str(bad))
    assert refused.exit_code == 1
    assert "not uploaded: bad.csv: missing column(s) 'mdvis'" in refused.output
    uploaded = cli(emulator, tmp_path, "data", "upload")
    assert uploaded.exit_code == 0, uploaded.output
    assert "uploaded 20190 rows to s3://mlops-dev-datasets/raw/randhie.csv" in uploaded.output
    s3 = emulator.client("s3")
    head = s3.head_object(Bucket="mlops-dev-datasets", Key="raw/randhie.csv")
    assert head["ServerSideEncryption"] == "aws:kms"


def test_cli_serving_lifecycle(emulator: AwsTarget, tmp_path: Path) -> None:
    """Approve -> champion, approve -> challenger, rollout step, rollback, promote."""
    for args in (
        ["pipeline", "run-local"],
        ["pipeline", "run-local", "--algorithm", "gradient_boosting", "--max-iter", "50"],
    ):
        assert cli(emulator, tmp_path, *args).exit_code == 0
    first = cli(emulator, tmp_path, "registry", "approve", "1", "--reason", "baseline")
    assert "model-package/mlops-dev-visits/1 is the first champion" in first.output
    second = cli(emulator, tmp_path, "registry", "approve", "2", "--reason", "better AUC")
    assert "model-package/mlops-dev-visits/2 is the challenger at 0.1" in second.output
    status = cli(emulator, tmp_path, "endpoint", "status")
    assert "challenger" in status.output
    assert "5xx OK" in status.output or "5xx INSUFFICIENT_DATA" in status.output
    step = cli(emulator, tmp_path, "traffic", "rollout-step")
    assert "after:  challenger 0.25, champion 0.75" in step.output
    rolled = cli(emulator, tmp_path, "traffic", "rollback", "-r", "latency")
    assert "after:  challenger 0, champion 1" in rolled.output
    bad = cli(emulator, tmp_path, "traffic", "shift", "-r", "try", "--weight", "champion=-1")
    assert bad.exit_code == 2  # a usage error, refused before the endpoint is read
    assert "weight of champion must be >= 0" in bad.output
    promoted = cli(emulator, tmp_path, "serving", "promote", "-r", "challenger wins")
    assert promoted.exit_code == 0, promoted.output
    assert "model-package/mlops-dev-visits/2 promoted to champion" in promoted.output
    status = cli(emulator, tmp_path, "endpoint", "status")
    assert "mlops-dev-visits-v2" in status.output  # both variants serve v2, the challenger at 0
    again = cli(emulator, tmp_path, "serving", "promote", "-r", "again")
    assert again.exit_code == 1
    assert "there is no challenger to promote" in again.output


def aliases(tmp_path: Path) -> dict[str, str]:
    client = MlflowClient(Home(tmp_path / "home").mlflow_tracking_uri)
    return {k: str(v) for k, v in client.get_registered_model("mlops-dev-visits").aliases.items()}


def test_cli_mlflow_aliases_follow_what_serves(emulator: AwsTarget, tmp_path: Path) -> None:
    """champion/challenger move with approve, deploy, rollback and promote; the champion
    loads back by its alias from the emulated artifacts bucket."""
    for args in (
        ["pipeline", "run-local"],
        ["pipeline", "run-local", "--algorithm", "gradient_boosting", "--max-iter", "50"],
        ["pipeline", "run-local", "--seed", "7"],
    ):
        assert cli(emulator, tmp_path, *args).exit_code == 0
    assert aliases(tmp_path) == {}  # registered, nothing approved: nothing serves
    cli(emulator, tmp_path, "registry", "approve", "1", "--reason", "baseline")
    assert aliases(tmp_path) == {"champion": "1"}
    cli(emulator, tmp_path, "registry", "approve", "2", "--reason", "better AUC")
    assert aliases(tmp_path) == {"champion": "1", "challenger": "2"}
    rolled = cli(emulator, tmp_path, "traffic", "rollback", "-r", "latency")
    assert "MLflow aliases not moved" not in rolled.output
    assert aliases(tmp_path) == {"champion": "1"}
    client = MlflowClient(Home(tmp_path / "home").mlflow_tracking_uri)
    assert "latency" in client.get_model_version("mlops-dev-visits", "2").tags["rolled_back"]
    cli(emulator, tmp_path, "registry", "approve", "3", "--reason", "retrained")
    assert aliases(tmp_path) == {"champion": "1", "challenger": "3"}
    promoted = cli(emulator, tmp_path, "serving", "promote", "-r", "challenger wins")
    assert promoted.exit_code == 0, promoted.output
    assert aliases(tmp_path) == {"champion": "3"}
    # The SageMaker package each alias names is on its version.
    assert (
        client.get_model_version_by_alias("mlops-dev-visits", "champion")
        .tags["model_package_arn"]
        .endswith("model-package/mlops-dev-visits/3")
    )

    # The champion by its alias, its artifacts read from the emulated bucket.
    home = Home(tmp_path / "home")
    with patched_environ({"MLFLOW_TRACKING_URI": home.mlflow_tracking_uri,
                          **mlflow_environment(emulator)}):  # fmt: skip
        model = mlflow.pyfunc.load_model("models:/mlops-dev-visits@champion")
        rows = synthetic_dataset(5, seed=3)
        assert len(model.predict(rows[list(model.metadata.get_input_schema().input_names())])) == 5
    assert mlflow.get_tracking_uri() != home.mlflow_tracking_uri
    keys = s3io.list_keys(emulator.client("s3"), "mlops-dev-artifacts", "mlflow/")
    assert any(k.endswith("model.skops") for k in keys)
    assert not list((home.mlflow_dir).rglob("model.skops"))  # nothing on local disk
