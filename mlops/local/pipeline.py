"""Run the training pipeline on this machine: the same step code as the SageMaker Pipeline,
the same S3 layout and the same registration, against the emulator or a real account.

preprocess -> train -> evaluate -> check the metric -> register (or stop, saying why)

Each step reads its inputs from S3 and writes its outputs back, as a SageMaker job would:
  s3://<artifacts>/pipelines/<pipeline>/<execution id>/{train,validation,test,reference,
                                                         manifest,model,evaluation}/...

What SageMaker does there with the pipeline's execution role (staging each job's inputs and
outputs, reading the evaluation for the condition, registering) runs inside the optional
``execution_role`` hook; uploading the input dataset and MLflow's registry are the operator's.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import secrets
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlops.adapters import code_bundle, dvc_remote, s3io
from mlops.adapters.envvars import patched_environ
from mlops.adapters.images import sklearn_image_uri
from mlops.adapters.registry import (
    CODE_VERSION_KEY,
    CONTENT_TYPES,
    DATASET_DVC_KEY,
    DATASET_HASH_KEY,
    EXECUTION_KEY,
    MLFLOW_RUN_ID_KEY,
    MODEL_SHA256_KEY,
    REFERENCE_DATA_KEY,
    RESPONSE_TYPES,
    SERVING_ENVIRONMENT,
    approval_status,
)
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core.config import PlatformConfig
from mlops.local.emulator import mlflow_environment
from pipeline_steps import evaluate, preprocess, train
from pipeline_steps.data import bundled_dataset_path
from pipeline_steps.hashing import file_sha256
from pipeline_steps.hyperparameters import DEFAULTS, Hyperparameters
from pipeline_steps.schema import DataValidationError
from pipeline_steps.tracking import artifact_location

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import InferenceSpecificationTypeDef

PRIMARY_METRIC = "auc"
DEFAULT_INPUT_PREFIX = "raw/"
Progress = Callable[[str, str, str], None]  # step, status, detail
# Entered, with the step's name, around the work SageMaker does with the execution role.
RoleScope = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True)
class RunOptions:
    algorithm: str = DEFAULTS.algorithm
    seed: int = DEFAULTS.seed
    max_iter: int = DEFAULTS.max_iter
    learning_rate: float = DEFAULTS.learning_rate
    c: float = DEFAULTS.c
    metric_threshold: float | None = None  # None: the stage's configured threshold
    input_uri: str | None = None  # None: s3://<datasets>/raw/, seeded with the bundled data
    data_file: Path | None = None  # a local CSV to upload and train on
    approval_status: str = "PendingManualApproval"

    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters(
            algorithm=self.algorithm,  # type: ignore[arg-type]
            seed=self.seed,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            c=self.c,
        )


@dataclass
class StepRecord:
    name: str
    status: str
    seconds: float
    detail: str = ""


@dataclass
class LocalRunResult:
    execution_id: str
    input_uri: str
    threshold: float
    steps: list[StepRecord] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    registered: bool = False
    reason: str | None = None
    model_package_arn: str | None = None
    mlflow_run_id: str | None = None
    mlflow_model_uri: str | None = None
    mlflow_model_version: str | None = None
    dataset_sha256: str | None = None
    dataset_dvc_md5: str | None = None
    model_sha256: str | None = None
    code_version: str | None = None
    model_data_uri: str | None = None
    evaluation_uri: str | None = None
    reference_uri: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.registered


class StepFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class _Run:
    options: RunOptions
    params: Hyperparameters
    result: LocalRunResult
    work: Path
    prefix: str


def _required(value: str | None) -> str:
    if not value:
        raise StepFailed("an earlier step did not produce its output")
    return value


def _execution_id() -> str:
    return f"local-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def pack_model(model_dir: Path, target: Path) -> Path:
    """model.tar.gz as SageMaker writes it, but byte-stable: sorted, no timestamps or owners."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(model_dir).as_posix())
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    target.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return target


STEP_NAMES = ("Preprocess", "Train", "Evaluate", "CheckMetric", "Register")  # the pipeline's


class LocalPipelineRunner:
    def __init__(
        self,
        *,
        target: AwsTarget,
        resources: PlatformResources,
        config: PlatformConfig,
        mlflow_tracking_uri: str | None,
        mlflow_artifact_root: str | None = None,
        progress: Progress | None = None,
        execution_role: RoleScope | None = None,
    ) -> None:
        self.target = target
        self.resources = resources
        self.config = config
        self.mlflow_tracking_uri = mlflow_tracking_uri
        self.mlflow_artifact_root = mlflow_artifact_root
        # MLflow's artifact client is its own boto3 client: aimed at the emulator's S3 too.
        self.mlflow_environment = mlflow_environment(target) if mlflow_tracking_uri else {}
        self.progress = progress or (lambda step, status, detail: None)
        self.execution_role = execution_role
        # With a hook, S3 transfers stay on the calling thread (its context), where an
        # observer installed by the hook sees them; the calls made are the same.
        self._transfer = TransferConfig(use_threads=False) if execution_role else None
        self.s3 = target.client("s3")
        self.sagemaker = target.client("sagemaker")

    # -- helpers -------------------------------------------------------------------------

    def _put_kwargs(self) -> dict[str, str]:
        # Explicitly the platform key, as the SageMaker jobs' OutputKmsKey does.
        if self.resources.key_arn:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.resources.key_arn}
        return {}

    def _as_role(self, step: str) -> AbstractContextManager[object]:
        return self.execution_role(step) if self.execution_role else nullcontext()

    def _download(self, uri: str, into: Path) -> None:
        s3io.download_prefix(self.s3, uri, into, transfer=self._transfer)

    def _upload(self, folder: Path, uri: str) -> None:
        s3io.upload_tree(self.s3, folder, uri, self._transfer, **self._put_kwargs())

    def _step(self, result: LocalRunResult, name: str, action: Callable[[], str]) -> None:
        self.progress(name, "Executing", "")
        started = time.perf_counter()
        try:
            detail = action()
        except Exception as exc:
            # Any failure ends the run with the step marked Failed and the reason kept,
            # as a pipeline execution would; the caller reports it.
            message = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - started
            result.steps.append(StepRecord(name, "Failed", seconds, message))
            self.progress(name, "Failed", message)
            raise StepFailed(message) from exc
        seconds = time.perf_counter() - started
        result.steps.append(StepRecord(name, "Succeeded", seconds, detail))
        self.progress(name, "Succeeded", detail)

    def _ensure_input(self, options: RunOptions) -> str:
        datasets = self.resources.datasets_bucket
        if options.data_file is not None:
            if not options.data_file.is_file():
                raise StepFailed(f"--data {options.data_file}: no such file")
            # One prefix per file content and name: the run reads exactly this file.
            digest = file_sha256(options.data_file)[:12]
            prefix = f"uploads/{digest}-{options.data_file.stem}/"
            key = prefix + options.data_file.name
            dvc_remote.store_file(self.s3, options.data_file, datasets, key, **self._put_kwargs())
            uri = f"s3://{datasets}/{prefix}"
        elif options.input_uri:
            uri = options.input_uri
            bucket, prefix = s3io.split_uri(uri)
            if bucket != datasets:
                return uri  # not in the DVC remote's bucket: trained on as it is
        else:
            prefix = DEFAULT_INPUT_PREFIX
            uri = f"s3://{datasets}/{prefix}"
            if not s3io.list_keys(self.s3, datasets, prefix):
                # First run on a fresh stage: seed it with the bundled public dataset.
                dvc_remote.store_file(
                    self.s3,
                    bundled_dataset_path(),
                    datasets,
                    prefix + "randhie.csv",
                    **self._put_kwargs(),
                )
        # As `mlops data upload` does: what the run reads is fetchable with `dvc pull`.
        try:
            dvc_remote.store_folder_listing(self.s3, datasets, prefix, **self._put_kwargs())
        except FileNotFoundError:  # no CSV there: preprocess says so, as it always has
            pass
        except ClientError as exc:  # e.g. no PutObject on dvc/: the run does not need it
            logging.getLogger(__name__).warning(
                "%s not stored in the DVC remote (registry show will say so): %s", uri, exc
            )
        return uri

    def _ensure_experiment(self) -> None:
        if not self.mlflow_tracking_uri:
            return
        client = MlflowClient(self.mlflow_tracking_uri)
        name = self.resources.pipeline_name
        if client.get_experiment_by_name(name) is None:
            # Never None for a local store: MLflow would put the artifacts in ./mlruns.
            location = artifact_location(
                self.mlflow_tracking_uri, name, root=self.mlflow_artifact_root
            )
            client.create_experiment(name, artifact_location=location)

    # -- the run ---------------------------------------------------------------------------

    def run(self, options: RunOptions) -> LocalRunResult:
        threshold = (
            self.config.model_metric_threshold
            if options.metric_threshold is None
            else options.metric_threshold
        )
        params = options.hyperparameters()  # bad hyperparameters fail before any work
        execution_id = _execution_id()
        result = LocalRunResult(execution_id=execution_id, input_uri="", threshold=threshold)
        result.code_version = code_bundle.code_version()
        self._ensure_experiment()
        with tempfile.TemporaryDirectory(prefix="mlops-run-") as scratch:
            run = _Run(
                options=options,
                params=params,
                result=result,
                work=Path(scratch),
                prefix=(
                    f"s3://{self.resources.artifacts_bucket}/pipelines/"
                    f"{self.resources.pipeline_name}/{execution_id}"
                ),
            )
            try:
                for name, step in zip(
                    STEP_NAMES,
                    (self._preprocess, self._train, self._evaluate, self._check,
                     self._register_step),
                    strict=True,
                ):  # fmt: skip
                    self._step(result, name, lambda step=step: step(run))  # type: ignore[misc]
            except StepFailed as exc:
                result.reason = result.reason or str(exc)
        return result

    def _preprocess(self, run: _Run) -> str:
        result = run.result
        result.input_uri = self._ensure_input(run.options)  # the operator's, not the role's
        with self._as_role("Preprocess"):
            manifest = self._preprocess_job(run)
        result.dataset_sha256 = str(manifest["dataset_sha256"])
        result.dataset_dvc_md5 = str(manifest["dataset_dvc_md5"])
        result.reference_uri = s3io.join(run.prefix, "reference") + "/"
        rows: dict[str, int] = manifest["rows"]  # type: ignore[assignment]
        return (
            f"{sum(rows.values())} rows -> train {rows['train']}, "
            f"validation {rows['validation']}, test {rows['test']}"
        )

    def _preprocess_job(self, run: _Run) -> dict[str, object]:
        raw = run.work / "input"
        try:
            self._download(run.result.input_uri, raw)
        except FileNotFoundError as exc:
            raise StepFailed(str(exc)) from None
        out = run.work / "preprocess"
        try:
            manifest = preprocess.run(
                raw, out, seed=run.options.seed, code_version=run.result.code_version or "unknown"
            )
        except DataValidationError as exc:
            raise StepFailed(f"invalid input data: {exc}") from None
        for name in (*preprocess.SPLIT_NAMES, "reference", "manifest"):
            self._upload(out / name, s3io.join(run.prefix, name))
        return manifest

    def _train(self, run: _Run) -> str:
        result = run.result
        with self._as_role("Train"):
            channels = run.work / "channels"
            for name in ("train", "validation", "manifest"):
                self._download(s3io.join(run.prefix, name) + "/", channels / name)
            model_dir = run.work / "model"
            environment = {
                "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
                "MLFLOW_EXPERIMENT_NAME": self.resources.pipeline_name,
                **self.mlflow_environment,
            }
            with patched_environ(environment):
                card = train.run(
                    train_dir=channels / "train",
                    validation_dir=channels / "validation",
                    manifest_dir=channels / "manifest",
                    model_dir=model_dir,
                    params=run.params,
                    code_version=result.code_version or "unknown",
                    dataset_source=result.input_uri,
                )
            archive = pack_model(model_dir, run.work / "model.tar.gz")
            # Where a SageMaker training job puts it:
            # <output path>/<job name>/output/model.tar.gz.
            job = f"{result.execution_id}-train"
            result.model_data_uri = s3io.upload_file(
                self.s3,
                archive,
                s3io.join(run.prefix, "model", job, "output", "model.tar.gz"),
                self._transfer,
                **self._put_kwargs(),
            )
        result.model_sha256 = card.model_sha256
        result.mlflow_run_id = card.mlflow_run_id
        result.mlflow_model_uri = card.mlflow_model_uri
        auc = card.validation_metrics[PRIMARY_METRIC]
        return (
            f"{run.params.algorithm}, seed {run.params.seed}: validation {PRIMARY_METRIC} {auc:.4f}"
        )

    def _evaluate(self, run: _Run) -> str:
        result = run.result
        with self._as_role("Evaluate"):
            inputs = run.work / "evaluate-in"
            self._download(_required(result.model_data_uri), inputs / "model")
            for name in ("test", "manifest"):
                self._download(s3io.join(run.prefix, name) + "/", inputs / name)
            out = run.work / "evaluation"
            environment = {
                "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
                **self.mlflow_environment,
            }
            with patched_environ(environment):
                evaluate.run(
                    model_source=inputs / "model",
                    test_dir=inputs / "test",
                    manifest_dir=inputs / "manifest",
                    output=out,
                )
            self._upload(out, s3io.join(run.prefix, "evaluation"))
        result.evaluation_uri = s3io.join(run.prefix, "evaluation", evaluate.EVALUATION)
        return f"{evaluate.EVALUATION} written"

    def _check(self, run: _Run) -> str:
        # Read back from S3, as the pipeline reads its property file.
        result = run.result
        bucket, key = s3io.split_uri(_required(result.evaluation_uri))
        with self._as_role("CheckMetric"):
            report = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        section = report["binary_classification_metrics"]
        result.metrics = {k: float(v["value"]) for k, v in section.items() if "value" in v}
        value = result.metrics[PRIMARY_METRIC]
        if value < result.threshold:
            result.reason = (
                f"test {PRIMARY_METRIC} {value:.4f} is below the threshold "
                f"{result.threshold:.4f}: the model is not registered"
            )
            raise StepFailed(result.reason)
        return f"test {PRIMARY_METRIC} {value:.4f} >= threshold {result.threshold:.4f}"

    def _register_step(self, run: _Run) -> str:
        result = run.result
        with self._as_role("Register"):
            code_version = result.code_version or ""
            result.model_package_arn = self._register(run.options, result, code_version)
        result.registered = True
        if self.mlflow_tracking_uri and result.mlflow_model_uri:
            result.mlflow_model_version = self._register_in_mlflow(result)
        where = (
            f"; MLflow model version {result.mlflow_model_version}"
            if result.mlflow_model_version
            else ""
        )
        return f"{result.model_package_arn} ({run.options.approval_status}){where}"

    def _register(self, options: RunOptions, result: LocalRunResult, code_version: str) -> str:
        image = sklearn_image_uri(self.target.region, "inference")
        # Ignored below: the config takes any pattern-valid instance type, while the stubs'
        # Literal lists only the types SageMaker had when they were generated.
        instance_types = [self.config.champion_instance_type]
        specification: InferenceSpecificationTypeDef = {
            "Containers": [
                {
                    "Image": image,
                    "ModelDataUrl": _required(result.model_data_uri),
                    "Environment": dict(SERVING_ENVIRONMENT),
                }
            ],
            "SupportedContentTypes": list(CONTENT_TYPES),
            "SupportedResponseMIMETypes": list(RESPONSE_TYPES),
            "SupportedRealtimeInferenceInstanceTypes": instance_types,  # type: ignore[typeddict-item]
            "SupportedTransformInstanceTypes": instance_types,  # type: ignore[typeddict-item]
        }
        response = self.sagemaker.create_model_package(
            ModelPackageGroupName=self.resources.model_package_group,
            ModelPackageDescription=f"trained by mlops pipeline run-local {result.execution_id}",
            InferenceSpecification=specification,
            ModelApprovalStatus=approval_status(options.approval_status),
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": _required(result.evaluation_uri),
                    }
                }
            },
            MetadataProperties={
                "CommitId": code_version,
                "GeneratedBy": f"mlops pipeline run-local {result.execution_id}",
                "ProjectId": self.resources.pipeline_name,
            },
            CustomerMetadataProperties={
                MLFLOW_RUN_ID_KEY: result.mlflow_run_id or evaluate.NOT_TRACKED,
                DATASET_HASH_KEY: result.dataset_sha256 or "",
                DATASET_DVC_KEY: result.dataset_dvc_md5 or "",
                MODEL_SHA256_KEY: result.model_sha256 or "",
                CODE_VERSION_KEY: code_version,
                REFERENCE_DATA_KEY: _required(result.reference_uri),
                EXECUTION_KEY: result.execution_id,
            },
        )
        return str(response["ModelPackageArn"])

    def _register_in_mlflow(self, result: LocalRunResult) -> str:
        """A version in MLflow's registry too, tagged with the SageMaker package it matches."""
        uri = _required(self.mlflow_tracking_uri)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        name = self.resources.model_package_group
        # The logged model by id, not its models:/ URI: resolving that URI goes through
        # MLflow's process-wide tracking URI, which this runner leaves alone.
        model_id = _required(result.mlflow_model_uri).removeprefix("models:/")
        logged = client.get_logged_model(model_id)
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(
                name, description=f"{self.config.prefix}: {self.config.model_family}"
            )
        version = client.create_model_version(
            name,
            source=logged.artifact_location,
            run_id=result.mlflow_run_id,
            model_id=model_id,
            tags={
                "model_package_arn": result.model_package_arn or "",
                DATASET_HASH_KEY: result.dataset_sha256 or "",
                DATASET_DVC_KEY: result.dataset_dvc_md5 or "",
                CODE_VERSION_KEY: result.code_version or "",
                MODEL_SHA256_KEY: result.model_sha256 or "",
            },
        )
        client.set_tag(
            _required(result.mlflow_run_id), "model_package_arn", result.model_package_arn or ""
        )
        return str(version.version)
