"""SageMaker Processing jobs on the embedded default: what SageMaker does with a job the
emulator only records (moto's CreateProcessingJob stores the request and answers "Completed").

For a job the drift function started, as SageMaker would: each instance gets a folder of its
own, its share of the manifest's objects (ShardedByS3Key) and every object of the fully
replicated inputs, downloaded with the job's role; the container's entry point runs in each as a
local process of this checkout's code (the drift image holds the same code), all at once, with
the definition's environment and no AWS credentials (the jobs are network-isolated); the
instances' outputs are uploaded with the job's role and encrypted with the output key. The
emulator does not keep a job's resources or environment: they come from the definition the
function started it from (its settings), as the function's own request did.

Every S3 call made with the job's role is judged by the twin's IAM (mlops.local.iam), against
the grants the stack gives that role.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.adapters import s3io
from mlops.adapters.target import EMULATOR_ACCOUNT, AwsTarget
from mlops.core import drift_job
from mlops.local.iam.enforce import PROCESSING, TwinIam

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REPO_ROOT = Path(__file__).resolve().parents[2]  # what the image's TASK_ROOT holds
# The image the embedded default's job definition names: this checkout, run as local processes.
LOCAL_IMAGE = "mlops-drift:local"


@dataclass
class LocalJob:
    """A job run here: how it ended, and each instance's output."""

    name: str
    status: str  # Completed | Failed
    instances: int
    reason: str = ""
    outputs: list[str] = field(default_factory=list)  # S3 URIs uploaded
    logs: list[str] = field(default_factory=list)  # each instance's output (stdout + stderr)

    def event(self, *, region: str, now: datetime | None = None) -> dict[str, Any]:
        """SageMaker's "Processing Job State Change" event for this job's end."""
        when = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        detail: dict[str, Any] = {
            "ProcessingJobName": self.name,
            "ProcessingJobStatus": self.status,
        }
        if self.reason:
            detail["FailureReason"] = self.reason
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": drift_job.JOB_STATE_CHANGE,
            "source": "aws.sagemaker",
            "account": EMULATOR_ACCOUNT,
            "time": when,
            "region": region,
            "resources": [
                f"arn:aws:sagemaker:{region}:{EMULATOR_ACCOUNT}:processing-job/{self.name}"
            ],
            "detail": detail,
        }


def _shares(keys: list[str], instances: int) -> list[list[str]]:
    """ShardedByS3Key: each instance about 1/n of the objects (contiguous runs of the list)."""
    size, extra = divmod(len(keys), instances)
    shares, start = [], 0
    for i in range(instances):
        end = start + size + (1 if i < extra else 0)
        shares.append(keys[start:end])
        start = end
    return shares


def _objects(s3: S3Client, s3_input: dict[str, Any]) -> tuple[list[str], str, str]:
    """(keys, bucket, the prefix local paths are relative to) of one S3 input."""
    bucket, key = s3io.split_uri(s3_input["S3Uri"])
    if s3_input["S3DataType"] == "ManifestFile":
        manifest = json.loads(s3io.read(s3, bucket, key))
        base_bucket, base = s3io.split_uri(manifest[0]["prefix"])
        return [base + str(k) for k in manifest[1:]], base_bucket, base
    return [k for k in s3io.list_keys(s3, bucket, key) if not k.endswith("/")], bucket, key


def _stage(s3: S3Client, request: dict[str, Any], roots: list[Path]) -> None:
    """Every input into every instance's folder, as SageMaker downloads them."""
    for processing_input in request.get("ProcessingInputs", []):
        s3_input = processing_input["S3Input"]
        keys, bucket, base = _objects(s3, s3_input)
        if s3_input.get("S3DataDistributionType") == "ShardedByS3Key":
            shares = _shares(keys, len(roots))
        else:
            shares = [keys] * len(roots)
        for root, share in zip(roots, shares, strict=True):
            local = root / s3_input["LocalPath"].lstrip("/")
            local.mkdir(parents=True, exist_ok=True)
            for key in share:
                target = (local / key[len(base) :].lstrip("/")).resolve()
                if not target.is_relative_to(local.resolve()):
                    raise ValueError(f"s3://{bucket}/{key} would land outside {local}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3io.read(s3, bucket, key))


def _upload(s3: S3Client, request: dict[str, Any], roots: list[Path]) -> list[str]:
    config = request.get("ProcessingOutputConfig", {})
    key_id = config.get("KmsKeyId")
    encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_id} if key_id else {}
    uploaded = []
    for output in config.get("Outputs", []):
        s3_output = output["S3Output"]
        bucket, prefix = s3io.split_uri(s3_output["S3Uri"])
        for root in roots:
            local = root / s3_output["LocalPath"].lstrip("/")
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                key = f"{prefix.rstrip('/')}/{path.relative_to(local).as_posix()}"
                s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), **encryption)
                uploaded.append(f"s3://{bucket}/{key}")
    return uploaded


def _command(request: dict[str, Any]) -> list[str]:
    entrypoint = list(request["AppSpecification"]["ContainerEntrypoint"])
    if entrypoint and entrypoint[0].startswith("python"):
        entrypoint[0] = sys.executable  # the image's python3: this checkout's interpreter
    return entrypoint


def _environment(request: dict[str, Any], root: Path) -> dict[str, str]:
    """The container's environment: the definition's, this checkout in place of the image's
    code, and no AWS credentials or endpoint (the job is network-isolated)."""
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {
        **kept,
        **request.get("Environment", {}),
        "PYTHONPATH": str(REPO_ROOT),
        "MLOPS_PROCESSING_ROOT": str(root),
    }


def run_processing_job(
    target: AwsTarget,
    name: str,
    definition: dict[str, Any],
    *,
    iam: TwinIam | None = None,
    workdir: Path | None = None,
) -> LocalJob:
    """Run the job ``name`` the emulator recorded, from ``definition`` (the CreateProcessingJob
    template its request was made from): stage, run the instances, upload their outputs."""
    sagemaker, s3 = target.client("sagemaker"), target.client("s3")
    recorded = sagemaker.describe_processing_job(ProcessingJobName=name)
    request: dict[str, Any] = {**definition, **recorded}  # the emulator keeps what it keeps

    def guard() -> contextlib.AbstractContextManager[None]:
        return iam.enforced(PROCESSING) if iam is not None else contextlib.nullcontext()

    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=workdir) as scratch:
        with guard():
            # The instance count the function asked for: the definition's, no more than files.
            manifest_input = next(
                i["S3Input"]
                for i in request["ProcessingInputs"]
                if i["S3Input"]["S3DataType"] == "ManifestFile"
            )
            files = len(_objects(s3, manifest_input)[0])
            count = drift_job.instance_count(definition, files)
            roots = [Path(scratch) / f"algo-{i + 1}" for i in range(count)]
            for i, root in enumerate(roots):
                config = root / drift_job.RESOURCE_CONFIG.lstrip("/")
                config.parent.mkdir(parents=True)
                hosts = [f"algo-{j + 1}" for j in range(count)]
                config.write_text(json.dumps({"current_host": hosts[i], "hosts": hosts}))
            _stage(s3, request, roots)
        runtime = int(request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 3600))
        processes = [
            subprocess.Popen(  # noqa: S603 - the definition's entry point, this interpreter
                _command(request),
                cwd=root,
                env=_environment(request, root),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for root in roots
        ]
        logs, failed = [], []
        for root, process in zip(roots, processes, strict=True):
            try:
                out, _ = process.communicate(timeout=runtime)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
                failed.append(f"{root.name}: stopped after MaxRuntimeInSeconds {runtime}")
            logs.append(out)
            if process.returncode and not failed:
                message = root / "opt/ml/output/message"
                why = message.read_text() if message.exists() else f"exit {process.returncode}"
                failed.append(f"{root.name}: {why}")
        job = LocalJob(name, "Failed" if failed else "Completed", count, "; ".join(failed))
        job.logs = logs
        if not failed:
            with guard():
                job.outputs = _upload(s3, request, roots)
        else:
            # The emulator has no "Failed": Stopped is the state it can record.
            sagemaker.stop_processing_job(ProcessingJobName=name)
    return job
