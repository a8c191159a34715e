"""A drift check's Processing job, offline: its definition and request, its name, its manifest,
and one shard run on a folder laid out as SageMaker lays out an instance."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lambdas.drift import shard
from mlops.core import drift_job
from mlops.core.capture import encode_record
from mlops.core.capture_reader import read_file
from mlops.core.config import ConfigError, PlatformConfig
from mlops.core.drift_job import JobPaths, Task
from mlops.core.window_summary import SourceFile, WindowSummary, summarize
from mlops.usecases.drift_shard import ShardError, run_shard

CONFIG = PlatformConfig()
NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
DEFINITION = drift_job.definition(
    CONFIG, image_uri="img", role_arn="arn:aws:iam::1:role/r", key_arn="arn:aws:kms:r:1:key/k"
)


def test_the_request_shards_the_manifest_and_replicates_the_task() -> None:
    paths = JobPaths.of("reports", CONFIG.endpoint_name, "mlops-dev-drift-0123")
    request = drift_job.request(DEFINITION, name="mlops-dev-drift-0123", paths=paths, instances=9)
    capture, task = request["ProcessingInputs"]
    assert capture["S3Input"] == {
        "S3Uri": "s3://reports/drift/mlops-dev-visits/jobs/mlops-dev-drift-0123/manifest.json",
        "S3DataType": "ManifestFile",
        "S3InputMode": "File",
        "S3DataDistributionType": "ShardedByS3Key",
        "LocalPath": "/opt/ml/processing/input/capture",
    }
    assert task["S3Input"]["S3DataDistributionType"] == "FullyReplicated"
    assert task["S3Input"]["S3Uri"].endswith("/mlops-dev-drift-0123/input/")
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"].endswith("/mlops-dev-drift-0123/summaries/")
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == "arn:aws:kms:r:1:key/k"
    assert request["NetworkConfig"] == {"EnableNetworkIsolation": True}
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    # Never more instances than files; the definition itself is left as it was.
    fewer = drift_job.request(DEFINITION, name="x", paths=paths, instances=1)
    assert fewer["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert "ProcessingJobName" not in DEFINITION
    assert DEFINITION["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2


def test_job_names_are_sagemakers_and_the_same_for_a_redelivered_run() -> None:
    prefix = drift_job.job_prefix(
        PlatformConfig(project="a-twenty-char-projct", stage="tenletters")
    )
    name = drift_job.job_name(prefix, "ep", variant="challenger", run_id="r1", end=NOW)
    assert len(name) <= 63
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)
    assert name == drift_job.job_name(prefix, "ep", variant="challenger", run_id="r1", end=NOW)
    others = {
        drift_job.job_name(prefix, "ep", variant=v, run_id=r, end=e)
        for v, r, e in (("champion", "r1", NOW), ("challenger", "r2", NOW),
                        ("challenger", "r1", NOW + timedelta(hours=1)))
    }  # fmt: skip
    assert name not in others
    assert len(others) == 3


def test_the_manifest_lists_keys_below_its_prefix() -> None:
    keys = ["capture/ep/v/2026/11/26/13/a.jsonl", "capture/ep/v/2026/11/26/14/b.jsonl"]
    assert drift_job.manifest("b", "capture/ep/v/", keys) == [
        {"prefix": "s3://b/capture/ep/v/"},
        "2026/11/26/13/a.jsonl",
        "2026/11/26/14/b.jsonl",
    ]
    with pytest.raises(ValueError, match="outside capture/ep/v/"):
        drift_job.manifest("b", "capture/ep/v", ["capture/ep/w/x.jsonl"])


def test_a_job_instance_type_with_local_nvme_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"drift_job_instance_type.*NVMe"):
        PlatformConfig.from_context({"drift_job_instance_type": "ml.m5d.xlarge"})


def capture_file(rows: int, start: int) -> bytes:
    lines = [
        encode_record(
            request=",".join(str((start + i + j) % 7) for j in range(9)).encode(),
            request_type="text/csv",
            response=f'{{"predictions": [{{"score": 0.{i % 10}, "label": 0}}]}}'.encode(),
            response_type="application/json",
            inference_time=NOW - timedelta(minutes=30),
            event_id=f"e{start + i}",
        )
        for i in range(rows)
    ]
    return ("\n".join([*lines, "not json"]) + "\n").encode()


def instance(tmp_path: Path, files: dict[str, bytes], keys: list[str], host: str) -> Path:
    """A folder laid out as SageMaker lays out one instance of the job."""
    root = tmp_path / host
    for relative, body in files.items():
        path = root / "opt/ml/processing/input/capture" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    task = Task("capture/ep/v/", tuple(keys), NOW - timedelta(hours=1), NOW, 100, 3)
    inputs = root / "opt/ml/processing/input/task"
    inputs.mkdir(parents=True)
    (inputs / "task.json").write_text(json.dumps(task.as_document()))
    (inputs / "labels.json").write_text(json.dumps({"labels": {"e3": [1.0]}}))
    (root / "opt/ml/config").mkdir(parents=True)
    (root / "opt/ml/config/resourceconfig.json").write_text(json.dumps({"current_host": host}))
    return root


def test_a_shard_summarizes_its_files_at_their_place_in_the_window(tmp_path: Path) -> None:
    keys = ["2026/11/26/13/a.jsonl", "2026/11/26/13/b.jsonl", "2026/11/26/13/c.jsonl"]
    bodies = {k: capture_file(20, 100 * i) for i, k in enumerate(keys)}
    root = instance(tmp_path, {keys[2]: bodies[keys[2]], keys[0]: bodies[keys[0]]}, keys, "algo-2")
    written = run_shard(root)
    assert written == root / "opt/ml/processing/output/algo-2.json"
    summary = WindowSummary.from_document(json.loads(written.read_text()))
    expected = summarize(
        [
            (SourceFile(i, f"capture/ep/v/{keys[i]}"),
             read_file(bodies[keys[i]], source=f"capture/ep/v/{keys[i]}"))
            for i in (0, 2)
        ],
        labels={"e3": [1.0]}, sample_rows=100,
    )  # fmt: skip
    assert summary.as_document() == json.loads(json.dumps(expected.as_document()))
    assert summary.sources == (0, 2)
    assert summary.malformed.examples["not JSON"][0].startswith("capture/ep/v/2026/11/26/13/a")


def test_a_file_the_task_does_not_name_fails_the_shard_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = instance(tmp_path, {"2026/x.jsonl": capture_file(2, 0)}, ["2026/y.jsonl"], "algo-1")
    with pytest.raises(ShardError, match=r"2026/x\.jsonl is not one of the job's 1 files"):
        run_shard(root)
    monkeypatch.setenv("MLOPS_PROCESSING_ROOT", str(root))
    with pytest.raises(ShardError):
        shard.main()
    message = (root / "opt/ml/output/message").read_text()
    assert message.startswith("drift shard failed: ShardError: 2026/x.jsonl is not one")
