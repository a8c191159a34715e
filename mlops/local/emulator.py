"""The embedded default: the platform on one machine, with no AWS account.

- an AWS emulator (moto server) on 127.0.0.1 and a free port, in the background;
- the storage and registry resources created in it as the stacks create them in AWS
  (KMS key, versioned SSE-KMS buckets, the model package group);
- MLflow: runs and registry in a local sqlite store, which outlives the emulator; artifacts
  (models, manifests) in the emulated artifacts bucket, s3://<artifacts>/mlflow/, as in AWS,
  and so gone, like the registry's packages, when the emulator stops.

Everything lives under one folder, ``MLOPS_HOME`` (default ``.mlops/`` in the project).
The emulator keeps its state in memory: stopping it forgets buckets and registry.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mlops.adapters.resources import PlatformResources, emulator_key_arn
from mlops.adapters.target import EMULATOR_ACCESS_KEY, AwsTarget
from mlops.core import names
from mlops.core.config import PlatformConfig

STATE_FILE = "emulator.json"
LOG_FILE = "emulator.log"
READY_TIMEOUT_S = 30.0


class EmbeddedError(RuntimeError):
    """The embedded default cannot be started, reached or used."""


@dataclass(frozen=True)
class Home:
    """The one folder the embedded default keeps everything in."""

    root: Path

    @classmethod
    def default(cls) -> Home:
        # An empty MLOPS_HOME (an unset shell variable exported) means the default, never the
        # current directory.
        return cls(Path(os.environ.get("MLOPS_HOME") or ".mlops").resolve())

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_database(self) -> Path:
        return self.mlflow_dir / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_database}"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"


def mlflow_artifact_root(resources: PlatformResources) -> str:
    """MLflow's artifact store on the embedded default: the emulated artifacts bucket, under
    the prefix MLflow's artifacts have in AWS."""
    return f"s3://{resources.artifacts_bucket}/{names.MLFLOW_ARTIFACT_PREFIX}"


def mlflow_environment(target: AwsTarget) -> dict[str, str]:
    """What MLflow's own S3 client (not an AwsTarget's) needs to reach the emulator's buckets;
    empty for AWS, where it finds the credentials as boto3 does."""
    if not target.is_emulator:
        return {}
    return {
        "MLFLOW_S3_ENDPOINT_URL": str(target.endpoint_url),
        "AWS_ACCESS_KEY_ID": EMULATOR_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": EMULATOR_ACCESS_KEY,
        "AWS_DEFAULT_REGION": target.region,
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_ready(endpoint_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=timeout) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass(frozen=True)
class EmulatorState:
    pid: int
    port: int
    endpoint_url: str

    @classmethod
    def read(cls, home: Home) -> EmulatorState | None:
        try:
            data = json.loads(home.state_file.read_text())
            return cls(
                pid=int(data["pid"]), port=int(data["port"]), endpoint_url=str(data["endpoint_url"])
            )
        except (OSError, ValueError, KeyError):
            return None

    def write(self, home: Home) -> None:
        home.root.mkdir(parents=True, exist_ok=True)
        tmp = home.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2) + "\n")
        tmp.replace(home.state_file)


def running_emulator(home: Home) -> EmulatorState | None:
    state = EmulatorState.read(home)
    if state is not None and _alive(state.pid) and is_ready(state.endpoint_url):
        return state
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _is_emulator(pid: int) -> bool:
    """Whether ``pid`` still runs moto's server (a stale state file may name a reused pid)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no /proc (macOS): trust the state file
        return True
    try:
        command = cmdline.read_bytes()
    except OSError:
        return False
    return b"mlops.local.moto_server" in command or b"moto.server" in command


def start_emulator(home: Home, port: int | None = None) -> EmulatorState:
    """Start moto's server in the background (its own session: it outlives this command)."""
    if (state := running_emulator(home)) is not None:
        return state
    home.root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    endpoint_url = f"http://127.0.0.1:{port}"
    with (home.root / LOG_FILE).open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "mlops.local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # Recorded at once, so that `stop_emulator` finds it even if this wait is interrupted.
    state = EmulatorState(pid=process.pid, port=port, endpoint_url=endpoint_url)
    state.write(home)
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedError(
                    f"the AWS emulator exited with code {process.returncode}; "
                    f"see {home.root / LOG_FILE}"
                )
            if is_ready(endpoint_url, timeout=0.5):
                return state
            time.sleep(0.1)
        raise EmbeddedError(
            f"the AWS emulator did not answer on {endpoint_url} within {READY_TIMEOUT_S:.0f} s"
        )
    except BaseException:  # Ctrl-C included: never leave a half-started emulator behind
        stop_emulator(home)
        raise


def stop_emulator(home: Home) -> bool:
    """Stop the background emulator; True if one was running."""
    state = EmulatorState.read(home)
    home.state_file.unlink(missing_ok=True)
    if state is None or not _alive(state.pid) or not _is_emulator(state.pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(state.pid):
        time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(state.pid, os.WNOHANG)
    if _alive(state.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state.pid, signal.SIGKILL)
    return True


def bootstrap(target: AwsTarget, config: PlatformConfig) -> PlatformResources:
    """Create in the emulator what the storage and registry stacks create in AWS. Idempotent."""
    if not target.is_emulator:
        raise EmbeddedError("bootstrap only targets the emulator; use `cdk deploy` for AWS")
    kms = target.client("kms")
    key_arn = emulator_key_arn(target, config)
    if key_arn is None:
        key = kms.create_key(Description=f"{config.prefix}: data key (embedded default)")
        key_arn = str(key["KeyMetadata"]["Arn"])
        kms.enable_key_rotation(KeyId=key_arn)
        kms.create_alias(
            AliasName=names.data_key_alias(config), TargetKeyId=key["KeyMetadata"]["KeyId"]
        )
    resources = PlatformResources.conventional(config, key_arn)

    s3 = target.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for role in ("datasets", "artifacts", "capture", "reports"):
        bucket = resources.bucket(role)
        if bucket not in existing:
            create: dict[str, Any] = {"Bucket": bucket}
            if target.region != "us-east-1":
                create["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
            s3.create_bucket(**create)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key_arn,
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )

    sagemaker = target.client("sagemaker")
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=resources.model_package_group)
    except ClientError:
        sagemaker.create_model_package_group(
            ModelPackageGroupName=resources.model_package_group,
            ModelPackageGroupDescription=f"{config.prefix}: {config.model_family} (embedded default)",
        )
    return resources
