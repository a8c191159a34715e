"""`--json` on the embedded default: every command that reports a result prints exactly one
JSON document on stdout (the human text on stderr), with whole ids and ARNs; piped, the human
output keeps ARNs on one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking._tracking_service.client import TrackingServiceClient
from typer.testing import CliRunner

from mlops.adapters.registry import PackageLineage
from mlops.adapters.target import AwsTarget
from mlops.cli import app

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/{}"


def environment(emulator: AwsTarget, tmp_path: Path) -> dict[str, str]:
    return {"MLOPS_ENDPOINT_URL": emulator.endpoint_url or "", "MLOPS_HOME": str(tmp_path / "home")}


def cli(emulator: AwsTarget, tmp_path: Path, *args: str) -> Any:
    # No COLUMNS: stdout is not a terminal here, as in a pipe.
    return CliRunner().invoke(app, list(args), env=environment(emulator, tmp_path))


def document(emulator: AwsTarget, tmp_path: Path, *args: str, code: int = 0) -> Any:
    """The one JSON document a command prints with --json (json.loads refuses two)."""
    result = cli(emulator, tmp_path, *args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_every_result_parses_as_one_json_document(
    emulator: AwsTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As MLflow does when it tracks to a server (a RestStore): run links printed on stdout.
    monkeypatch.setattr(
        TrackingServiceClient,
        "_log_url",
        lambda self, run_id: sys.stdout.write(f"View run at: http://mlflow/#/runs/{run_id}\n"),
    )
    first = document(emulator, tmp_path, "pipeline", "run-local")
    assert first["registered"] is True
    assert first["model_package_arn"] == ARN.format(1)
    assert [s["name"] for s in first["steps"]] == [
        "Preprocess", "Train", "Evaluate", "CheckMetric", "Register"
    ]  # fmt: skip
    second = document(emulator, tmp_path, "pipeline", "run-local", "--algorithm",
                      "gradient_boosting", "--max-iter", "50")  # fmt: skip
    assert second["model_package_arn"] == ARN.format(2)
    refused = document(emulator, tmp_path, "pipeline", "run-local", "--threshold", "0.99", code=1)
    assert refused["registered"] is False
    assert "below the threshold" in refused["reason"]

    # The registry: whole ids in the document and with --full; cut to 12 in the table.
    listed = document(emulator, tmp_path, "registry", "list")
    assert [p["version"] for p in listed["packages"]] == [2, 1]
    lineage = PackageLineage.from_description(
        emulator.client("sagemaker").describe_model_package(ModelPackageName=ARN.format(1))
    )
    package = listed["packages"][1]
    assert package["mlflow_run_id"] == lineage.mlflow_run_id == first["mlflow_run_id"]
    assert package["dataset_sha256"] == lineage.dataset_sha256
    assert len(package["dataset_sha256"]) == 64
    assert package["auc"] == first["metrics"]["auc"]
    table = cli(emulator, tmp_path, "registry", "list").stdout
    assert package["dataset_sha256"][:12] in table
    assert package["dataset_sha256"] not in table
    full = cli(emulator, tmp_path, "registry", "list", "--full").stdout
    assert package["dataset_sha256"] in full
    assert ARN.format(1) in full
    shown = document(emulator, tmp_path, "registry", "show", "1")
    assert shown["model_package_arn"] == ARN.format(1)
    assert shown["reference_data_uri"] == first["reference_uri"]

    # Serving and traffic.
    approved = document(emulator, tmp_path, "registry", "approve", "1", "--reason", "baseline")
    assert approved["approval_status"] == "Approved"
    assert approved["serving"]["after"]["champion"] == ARN.format(1)
    challenger = document(emulator, tmp_path, "registry", "approve", "2", "--reason", "better")
    assert challenger["serving"]["after"]["challenger"] == ARN.format(2)
    status = document(emulator, tmp_path, "endpoint", "status")
    assert status["endpoint"] == "mlops-dev-visits"
    weights = {v["variant"]: v["weight"] for v in status["variants"]}
    assert weights["challenger"] > 0
    (champion,) = [v for v in status["variants"] if v["variant"] == "champion"]
    assert champion["alarms"]["mlops-dev-visits-champion-drift"] in ("OK", "INSUFFICIENT_DATA")
    step = document(emulator, tmp_path, "traffic", "rollout-step")
    assert step["action"] == "rollout-step"
    assert step["weights_after"] == {"champion": 0.75, "challenger": 0.25}
    shifted = document(emulator, tmp_path, "traffic", "shift", "-r", "half", "--challenger", "0.5")
    assert shifted["weights_after"] == {"champion": 0.5, "challenger": 0.5}
    assert shifted["audit_uri"].startswith("s3://mlops-dev-reports/")
    rolled = document(emulator, tmp_path, "traffic", "rollback", "-r", "latency")
    assert rolled["weights_after"]["challenger"] == 0

    # Drift, on demand and as scheduled (no capture yet: not enough data, exit 0).
    checked = document(emulator, tmp_path, "drift", "check", "--fail-on-drift")
    assert {v["variant"] for v in checked["variants"]} == {"champion", "challenger"}
    assert {v["status"] for v in checked["variants"]} == {"not-enough-data"}
    assert checked["drifted"] == []
    assert all(v["result"].startswith("s3://mlops-dev-reports/") for v in checked["variants"])
    scheduled = document(emulator, tmp_path, "drift", "scheduled")
    assert scheduled["ok"] is True
    assert {v["variant"] for v in scheduled["variants"]} == {"champion", "challenger"}

    promoted = document(emulator, tmp_path, "serving", "promote", "-r", "challenger wins")
    assert promoted["after"]["champion"] == ARN.format(2)
    deployed = document(emulator, tmp_path, "serving", "deploy", "1", "-r", "back as challenger")
    assert deployed["changed"] is False  # older than what serves: refused, and said so
    assert "is older than the packages serving" in deployed["summary"]

    # Piped, as `mlops registry show 1 | tee`: the line with the ARN is whole (over 80 columns).
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    piped = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "registry", "show", "1"],
        capture_output=True, text=True, cwd=ROOT, check=True, timeout=120,
        env=env | environment(emulator, tmp_path),
    )  # fmt: skip
    line = f"   model_package_arn: {ARN.format(1)}"
    assert len(line) > 80
    assert f"{line}\n" in piped.stdout
