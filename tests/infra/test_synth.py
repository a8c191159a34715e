"""The app as `cdk synth` runs it: a subprocess reading CDK_CONTEXT_JSON, offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from mlops.core.config import read_cdk_json_context
from stacks.platform import Platform

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent / "support"
STACKS = ("mlops-dev-storage", "mlops-dev-registry", "mlops-dev-pipeline", "mlops-dev-serving")


def _can_unshare_network() -> bool:
    if shutil.which("unshare") is None:
        return False
    return (
        subprocess.run(["unshare", "--net", "true"], check=False, capture_output=True).returncode
        == 0
    )


def synth(
    outdir: Path, *, offline: bool = False, **overrides: Any
) -> subprocess.CompletedProcess[str]:
    """Run app.py the way the CDK CLI does: context in CDK_CONTEXT_JSON, output in CDK_OUTDIR."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))
    }  # no credentials, no profile: synth must not need them
    env |= {
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({**read_cdk_json_context(ROOT / "cdk.json"), **overrides}),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    command = [sys.executable, "app.py"]
    if offline:
        env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
        env["NETWORK_GUARD_LOG"] = str(outdir.parent / "network-attempts.log")
        if _can_unshare_network():  # also cuts off the jsii node process: no interfaces at all
            command = ["unshare", "--net", "--", *command]
    return subprocess.run(
        command, cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def offline_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("offline") / "cdk.out"
    result = synth(outdir, offline=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return outdir


@pytest.fixture(scope="module")
def second_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("second") / "cdk.out"
    result = synth(outdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return outdir


def test_synth_with_network_blocked_writes_every_stack(offline_out: Path) -> None:
    assert sorted(p.name for p in offline_out.glob("*.template.json")) == sorted(
        f"{s}.template.json" for s in STACKS
    )
    # The guard wrote its marker (it was active) and nothing else (no connection attempted).
    attempts = offline_out.parent / "network-attempts.log"
    assert attempts.read_text() == "guard loaded\n"


def test_stateful_stacks_are_termination_protected(offline_out: Path) -> None:
    # Read from the cloud assembly the CLI deploys, not from the Python objects.
    manifest = json.loads((offline_out / "manifest.json").read_text())
    protected = {
        name: artifact.get("properties", {}).get("terminationProtection", False)
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert protected == {
        "mlops-dev-storage": True,
        "mlops-dev-registry": True,
        "mlops-dev-pipeline": False,  # stateless: replaced freely
        "mlops-dev-serving": False,  # run-time state lives in parameters and the endpoint
    }


def test_synth_twice_gives_byte_identical_templates(offline_out: Path, second_out: Path) -> None:
    for stack in STACKS:
        first = (offline_out / f"{stack}.template.json").read_bytes()
        second = (second_out / f"{stack}.template.json").read_bytes()
        assert first == second, f"{stack} differs between two synths"


def test_compliance_report_is_clean(offline_out: Path) -> None:
    report = json.loads((offline_out / "policy-validation-report.json").read_text())
    assert report["pluginReports"] == [], report


def cfn_lint(*templates: Path) -> subprocess.CompletedProcess[str]:
    # cwd=ROOT so the project's .cfnlintrc applies, exactly as `make synth` users see it.
    return subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--", *map(str, templates)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cfn_lint_reports_nothing(
    offline_out: Path, mlflow_platform: tuple[cdk.App, Platform]
) -> None:
    # The MLflow context's templates as its app writes them, synthesized in this process from
    # the session's build (the subprocess path is the offline synth's above; a third
    # subprocess synth would cost about half a minute, for the same template files).
    mlflow_out = Path(mlflow_platform[0].synth().directory)
    templates = [*offline_out.glob("*.template.json"), *mlflow_out.glob("*.template.json")]
    assert len(templates) == 2 * len(STACKS)
    linted = cfn_lint(*templates)
    assert (linted.returncode, linted.stdout, linted.stderr) == (0, "", "")


def test_cfn_lint_can_fail(offline_out: Path, tmp_path: Path) -> None:
    # The lint test above is only worth something if cfn-lint sees these templates at all.
    template = json.loads((offline_out / "mlops-dev-storage.template.json").read_text())
    template["Resources"]["DataKey17AFBB84"]["Properties"]["EnableKeyRotation"] = "yes please"
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps(template))
    linted = cfn_lint(broken)
    assert linted.returncode != 0
    assert "E3012 'yes please' is not of type 'boolean'" in linted.stdout


def test_bad_context_value_stops_synth_with_a_clear_message(tmp_path: Path) -> None:
    outdir = tmp_path / "cdk.out"
    result = synth(outdir, stage="", mlflow_server_size="Huge")
    assert result.returncode == 2
    assert "'stage': must be 1-10 lowercase letters or digits" in result.stderr
    assert "'mlflow_server_size': Input should be 'Small', 'Medium' or 'Large'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(outdir.glob("*.template.json"))


def test_cdk_cli_rejects_an_empty_stage(tmp_path: Path) -> None:
    # The user-facing path: the pinned CDK CLI, cdk.json's app command, `-c stage=`.
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk.exists(), "run `make install` (the CDK CLI is pinned in package.json)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env["PATH"] = f"{cdk.parent}{os.pathsep}{env['PATH']}"
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    result = subprocess.run(
        [str(cdk), "synth", "--quiet", "--no-notices", "-o", str(tmp_path / "out"), "-c", "stage="],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "'stage': must be 1-10 lowercase letters or digits" in result.stderr


def test_network_guard_catches_a_request(tmp_path: Path) -> None:
    # The offline synth test proves something only if the guard really refuses connections.
    log = tmp_path / "attempts.log"
    env = {**os.environ, "PYTHONPATH": str(SUPPORT), "NETWORK_GUARD_LOG": str(log)}
    code = "import urllib.request; urllib.request.urlopen('https://sts.amazonaws.com', timeout=5)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "network access blocked" in result.stderr
    assert log.read_text().splitlines()[0] == "guard loaded"
    assert "sts.amazonaws.com" in log.read_text()
