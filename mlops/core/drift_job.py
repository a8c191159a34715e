"""A drift check too large for one function, as a SageMaker Processing job: its definition, its
name, its request, and the files its shards read and write. Pure: names, dicts and JSON.

The definition (``definition``) is CreateProcessingJob's request less what changes per check.
The serving stack builds it at synth from the platform config and the stack's resources (the
drift function's own image, the processing role, the data key) and writes it into the drift
function's environment; the embedded default builds it from the same config with its own
names. The function adds the job's name, its inputs and its output (``request``) and never
builds a job from guesses.

One job checks one variant's window. Its files live under the reports bucket, next to the
variant's results (``JobPaths``):

    drift/<endpoint>/jobs/<job>/manifest.json      the window's capture files (S3 ManifestFile):
                                                   the job's capture input, ShardedByS3Key
    drift/<endpoint>/jobs/<job>/input/task.json    what every shard needs: the files' order, the
                                                   window, the sample size (FullyReplicated)
    drift/<endpoint>/jobs/<job>/input/labels.json  the window's ground truth by event id
    drift/<endpoint>/jobs/<job>/run.json           the function's record of the run it started
    drift/<endpoint>/jobs/<job>/summaries/<host>.json   each instance's summary (the output)

They are working files, read until the job's verdict is recorded: the storage stack expires
everything under ``files_prefix`` after ``files_expiration_days`` (one endpoint per deployment,
so the prefix is fixed at synth, as a lifecycle rule's filter must be).

Each instance runs ``python3 -m lambdas.drift.shard`` in the drift function's image: it reads the
capture files SageMaker gave it, summarizes them (mlops.core.window_summary) and writes its
summary; the drift function merges the summaries and judges them like any other window.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlops.core import names
from mlops.core.config import PlatformConfig

TASK_FORMAT = "mlops.drift-task/1"
RUN_FORMAT = "mlops.drift-run/1"

# The drift function's image: AWS's Lambda Python base image puts the code and its packages in
# LAMBDA_TASK_ROOT; a Processing job runs the same image with another entry point.
TASK_ROOT = "/var/task"
ENTRYPOINT = ("python3", "-m", "lambdas.drift.shard")
# Where SageMaker puts a Processing job's inputs and takes its outputs, in each instance.
PROCESSING_ROOT = "/opt/ml/processing"
CAPTURE_INPUT = "capture"  # /opt/ml/processing/input/capture/<key below the manifest's prefix>
TASK_INPUT = "task"  # /opt/ml/processing/input/task/{task.json,labels.json}
OUTPUT = "summaries"  # /opt/ml/processing/output/<host>.json
RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"  # {"current_host": "algo-1", ...}

# SageMaker's job states (DescribeProcessingJob, and the state-change events).
RUNNING = ("InProgress", "Stopping")
ENDED = ("Completed", "Failed", "Stopped")
JOB_STATE_CHANGE = "SageMaker Processing Job State Change"


# A job's files are kept at least this long (a week to look into a job that went wrong).
FILES_KEPT_DAYS = 7


def files_prefix(endpoint: str) -> str:
    """Every file of ``endpoint``'s drift jobs is under this prefix of the reports bucket."""
    return f"{names.DRIFT_REPORTS_PREFIX}/{endpoint}/jobs/"


def files_expiration_days(config: PlatformConfig) -> int:
    """Days a job's files are kept: ``FILES_KEPT_DAYS``, and longer than the latest they can be
    needed: the job's longest run, then two schedule periods (its end event lost, the next
    scheduled run records the verdict; that run failed, the one after it), a day to spare."""
    needed = config.drift_job_max_runtime_minutes * 60 + 2 * names.schedule_seconds(
        config.drift_schedule
    )
    return max(FILES_KEPT_DAYS, math.ceil(needed / 86_400) + 1)


def job_prefix(config: PlatformConfig) -> str:
    """Every drift job's name starts with this: the function's permissions and the rule that
    hears the jobs end are scoped to it."""
    return f"{config.prefix}-{names.DRIFT_JOB}-"


def job_name(prefix: str, endpoint: str, *, variant: str, run_id: str, end: datetime) -> str:
    """The job that checks ``variant``'s window ending at ``end`` for run ``run_id``: the same
    name for a redelivered run, so SageMaker refuses a second job for it (names are unique).
    ``prefix``: ``job_prefix(config)``."""
    digest = hashlib.sha256(f"{endpoint}\n{variant}\n{run_id}\n{end.isoformat()}".encode())
    return f"{prefix}{digest.hexdigest()[:16]}"  # at most 31 + 7 + 16 of SageMaker's 63


def definition(
    config: PlatformConfig, *, image_uri: str, role_arn: str, key_arn: str
) -> dict[str, Any]:
    """CreateProcessingJob's request less the job's name, inputs and output location: what the
    stack writes into the drift function's environment (values may be CDK tokens)."""
    cluster: dict[str, Any] = {
        "InstanceCount": config.drift_job_instance_count,
        "InstanceType": config.drift_job_instance_type,
        "VolumeSizeInGB": config.drift_job_volume_gb,
        "VolumeKmsKeyId": key_arn,
    }
    network: dict[str, Any] = {"EnableNetworkIsolation": True}
    if config.uses_vpc:
        network["VpcConfig"] = {
            "SecurityGroupIds": list(config.vpc_security_group_ids),
            "Subnets": list(config.vpc_subnet_ids),
        }
    return {
        "RoleArn": role_arn,
        "AppSpecification": {"ImageUri": image_uri, "ContainerEntrypoint": list(ENTRYPOINT)},
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": config.drift_job_max_runtime_minutes * 60},
        # The image's code and packages are in TASK_ROOT (Lambda adds it to the path itself).
        "Environment": {"PYTHONPATH": TASK_ROOT, "DO_NOT_TRACK": "1"},
        # The shards read files and write files: no network, no credentials in the container.
        "NetworkConfig": network,
        "ProcessingOutputConfig": {"KmsKeyId": key_arn},
    }


@dataclass(frozen=True)
class JobPaths:
    """Where one job's files are, in the reports bucket."""

    bucket: str
    prefix: str  # drift/<endpoint>/jobs/<job>

    @classmethod
    def of(cls, bucket: str, endpoint: str, job: str) -> JobPaths:
        return cls(bucket, f"{files_prefix(endpoint)}{job}")

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    @property
    def manifest(self) -> str:
        return self.key("manifest.json")

    @property
    def task(self) -> str:
        return self.key("input/task.json")

    @property
    def labels(self) -> str:
        return self.key("input/labels.json")

    @property
    def run(self) -> str:
        return self.key("run.json")

    @property
    def summaries(self) -> str:
        return self.key(f"{OUTPUT}/")


def request(
    template: dict[str, Any], *, name: str, paths: JobPaths, instances: int | None = None
) -> dict[str, Any]:
    """The CreateProcessingJob request of job ``name``: the definition, its capture files
    (the manifest, sharded by key over the instances), the task (on every instance) and where
    the instances' summaries go. ``instances``: fewer than the definition's (never more files'
    worth of instances than there are files)."""
    made: dict[str, Any] = json.loads(json.dumps(template))  # a copy: it serves every job
    made["ProcessingJobName"] = name
    if instances is not None:
        made["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = instance_count(
            template, instances
        )
    made["ProcessingInputs"] = [
        {
            "InputName": CAPTURE_INPUT,
            "S3Input": {
                "S3Uri": paths.uri("manifest.json"),
                "S3DataType": "ManifestFile",
                "S3InputMode": "File",
                "S3DataDistributionType": "ShardedByS3Key",
                "LocalPath": f"{PROCESSING_ROOT}/input/{CAPTURE_INPUT}",
            },
        },
        {
            "InputName": TASK_INPUT,
            "S3Input": {
                "S3Uri": paths.uri("input/"),
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
                "LocalPath": f"{PROCESSING_ROOT}/input/{TASK_INPUT}",
            },
        },
    ]
    made["ProcessingOutputConfig"]["Outputs"] = [
        {
            "OutputName": OUTPUT,
            "S3Output": {
                "S3Uri": paths.uri(f"{OUTPUT}/"),
                "LocalPath": f"{PROCESSING_ROOT}/output",
                "S3UploadMode": "EndOfJob",
            },
        }
    ]
    return made


def instance_count(template: dict[str, Any], files: int) -> int:
    """The definition's instance count, but no more instances than files (a shard with no
    file would only cost)."""
    configured = int(template["ProcessingResources"]["ClusterConfig"]["InstanceCount"])
    return max(1, min(configured, files))


def manifest(bucket: str, prefix: str, keys: list[str]) -> list[Any]:
    """An S3 ManifestFile: the common prefix, then each key below it (SageMaker writes each
    object to the input's LocalPath under that relative key)."""
    base = prefix if prefix.endswith("/") else prefix + "/"
    outside = [k for k in keys if not k.startswith(base)]
    if outside:
        raise ValueError(f"{len(outside)} key(s) outside {base}, e.g. {outside[0]}")
    return [{"prefix": f"s3://{bucket}/{base}"}, *(k[len(base) :] for k in keys)]


@dataclass(frozen=True)
class Task:
    """What every shard of a job needs: the window's files in order (keys below ``prefix``:
    a shard finds a file's order by its key), the window, how much to keep."""

    prefix: str
    keys: tuple[str, ...]  # relative to prefix, in the window's order
    start: datetime
    end: datetime
    sample_rows: int
    keep_errors: int

    def as_document(self) -> dict[str, Any]:
        return {
            "format": TASK_FORMAT,
            "prefix": self.prefix,
            "keys": list(self.keys),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sample_rows": self.sample_rows,
            "keep_errors": self.keep_errors,
        }

    @classmethod
    def from_document(cls, document: Any) -> Task:
        if not isinstance(document, dict) or document.get("format") != TASK_FORMAT:
            raise ValueError(f"not a {TASK_FORMAT} document")
        return cls(
            prefix=str(document["prefix"]),
            keys=tuple(str(k) for k in document["keys"]),
            start=datetime.fromisoformat(document["start"]),
            end=datetime.fromisoformat(document["end"]),
            sample_rows=int(document["sample_rows"]),
            keep_errors=int(document["keep_errors"]),
        )
