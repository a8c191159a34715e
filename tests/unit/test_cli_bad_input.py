"""Every command's bad input is a usage error: exit 2 and one line naming the option, before
any work - no AWS call, no emulator started, no traceback.

The table walks `mlops --help` and each command's options that take names, numbers, weights,
files, URIs and ports (typer already refuses a value of the wrong type; these are the values
checked after parsing): empty strings, negative, NaN and infinite numbers, missing files, a file
where a folder goes, wrong schemes, a port that is out of range or in use.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from typer.testing import CliRunner

from mlops.cli import app, common, local

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/3"


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Files and folders the cases name, and a guard: any AWS call or emulator start fails."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    for name in ("MLOPS_ENDPOINT_URL", "AWS_PROFILE", "MLOPS_TARGET"):
        monkeypatch.delenv(name, raising=False)

    def no_aws(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an AWS call or the emulator, before the input was checked")

    monkeypatch.setattr(BaseClient, "_make_api_call", no_aws)
    monkeypatch.setattr(common.State, "target", no_aws)
    monkeypatch.setattr(common, "start_emulator", no_aws)
    monkeypatch.setattr(local, "start_emulator", no_aws)
    (tmp_path / "file.csv").write_text("a,b\n1,2\n")
    (tmp_path / "captures").mkdir()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("someone's work\n")
    return {"FILE": str(tmp_path / "file.csv"), "DIR": str(tmp_path / "captures"),
            "TAKEN": str(tmp_path / "taken"), "MISSING": str(tmp_path / "missing.csv")}  # fmt: skip


CAPTURE = ["drift", "check", "--capture", "DIR", "--reference", "FILE"]
SHIFT = ["traffic", "shift", "--reason", "a reason"]
CASES: list[tuple[list[str], str]] = [
    # the global options
    (["--endpoint-url", "", "endpoint", "status"], "--endpoint-url"),
    (["--endpoint-url", "ftp://127.0.0.1:5000", "endpoint", "status"], "--endpoint-url"),
    (["--endpoint-url", "localhost:5000", "endpoint", "status"], "--endpoint-url"),
    (["--endpoint-url", "http://127.0.0.1:99999", "endpoint", "status"], "--endpoint-url"),
    (["--profile", "", "-t", "aws", "registry", "list"], "--profile"),
    (["--home", "", "local", "status"], "--home"),
    (["--home", "FILE", "local", "status"], "--home"),
    (["--home", "FILE/sub", "local", "status"], "--home"),
    (["-c", "stage=", "local", "status"], "-c"),
    (["-c", "stage", "local", "status"], "-c"),
    # ... given after the subcommand, and given twice with different values
    (["local", "status", "--home", "FILE"], "--home"),
    (["local", "status", "-c", "stage="], "-c"),
    (["registry", "list", "--endpoint-url", "localhost:5000"], "--endpoint-url"),
    (["-t", "aws", "registry", "list", "--target", "local"], "--target"),
    (["-c", "stage=dev", "local", "status", "-c", "stage=prod"], "--context"),
    (["--home", "DIR", "local", "status", "--home=TAKEN"], "--home"),
    (["registry", "list", "-c"], "--context"),  # its value forgotten, at the end
    (["registry", "list", "--target"], "--target"),
    (["data", "upload", "TAKEN/notes.txt"], "PATH"),  # stored, but never trained on
    # required and not given
    (["traffic", "rollback"], "--reason"),
    (["registry", "show"], "VERSION"),
    # mlops local
    (["local", "up", "--port", "-1"], "--port"),
    (["local", "up", "--port", "70000"], "--port"),
    (["local", "up", "--port", "BUSY"], "--port"),
    (["local", "serve", "--port", "-1"], "--port"),
    (["local", "serve", "--port", "65536"], "--port"),
    (["local", "serve", "--port", "BUSY"], "--port"),
    # mlops pipeline
    (["pipeline", "run-local", "--algorithm", "forest"], "--algorithm"),
    (["pipeline", "run-local", "--seed", "-1"], "--seed"),
    (["pipeline", "run-local", "--max-iter", "0"], "--max-iter"),
    (["pipeline", "run-local", "--learning-rate", "nan"], "--learning-rate"),
    (["pipeline", "run-local", "--learning-rate", "0"], "--learning-rate"),
    (["pipeline", "run-local", "--learning-rate", "inf"], "--learning-rate"),
    (["pipeline", "run-local", "--c", "-1"], "--c"),
    (["pipeline", "run-local", "--c", "inf"], "--c"),
    (["pipeline", "run-local", "--threshold", "nan"], "--threshold"),
    (["pipeline", "run-local", "--threshold", "1.5"], "--threshold"),
    (["pipeline", "run-local", "--data", "MISSING"], "--data"),
    (["pipeline", "run-local", "--data", "DIR"], "--data"),
    (["pipeline", "run-local", "--input-uri", ""], "--input-uri"),
    (["pipeline", "run-local", "--input-uri", "https://bucket/raw/"], "--input-uri"),
    (["pipeline", "run-local", "--input-uri", "s3://"], "--input-uri"),
    (["pipeline", "run-local", "--approval-status", "approved"], "--approval-status"),
    (["pipeline", "start", "--param", "no-equals-sign"], "--param"),
    (["pipeline", "start", "--param", "=value"], "--param"),
    (["pipeline", "start", "--poll-seconds", "inf"], "--poll-seconds"),
    (["pipeline", "start", "--timeout-minutes", "0"], "--timeout-minutes"),
    (["pipeline", "start", "--timeout-minutes", "nan"], "--timeout-minutes"),
    # mlops registry, serving
    (["registry", "show", "latest"], "VERSION"),
    (["registry", "show", ""], "VERSION"),
    (["registry", "show", "0"], "VERSION"),
    (["registry", "approve", "1.5"], "VERSION"),
    (["registry", "approve", "arn:aws:s3:::bucket/model.tar.gz"], "VERSION"),
    (["serving", "deploy", "three"], "VERSION"),
    (["serving", "deploy", ARN + "/"], "VERSION"),
    (["serving", "promote", "--reason", ""], "--reason"),
    (["serving", "promote", "--reason", "x" * 1001], "--reason"),
    # mlops traffic, endpoint
    (["traffic", "rollback", "--reason", ""], "--reason"),
    (["traffic", "rollback", "--reason", " ab "], "--reason"),
    (["traffic", "rollout-step", "--reason", ""], "--reason"),
    (["traffic", "rollback", "--reason", "a reason", "--endpoint", "bad name!"], "--endpoint"),
    (["traffic", "rollback", "--reason", "a reason", "--endpoint", "a" * 64], "--endpoint"),
    (["traffic", "rollback", "--reason", "a reason", "--endpoint", "trailing-"], "--endpoint"),
    (["endpoint", "status", "--endpoint", "a b"], "--endpoint"),
    ([*SHIFT, "--challenger", "nan"], "--challenger"),
    ([*SHIFT, "--challenger", "inf"], "--challenger"),
    ([*SHIFT, "--challenger", "-0.1"], "--challenger"),
    ([*SHIFT, "--challenger", "1.5"], "--challenger"),
    ([*SHIFT], "--challenger"),
    ([*SHIFT, "--challenger", "0.2", "--weight", "champion=1"], "--weight"),
    ([*SHIFT, "--weight", "champion=abc"], "--weight"),
    ([*SHIFT, "--weight", "champion=-1"], "--weight"),
    ([*SHIFT, "--weight", "champion=nan"], "--weight"),
    ([*SHIFT, "--weight", "champion=inf"], "--weight"),
    ([*SHIFT, "--weight", "champion=2e6"], "--weight"),
    ([*SHIFT, "--weight", "champion="], "--weight"),
    ([*SHIFT, "--weight", "champion=0", "--weight", "challenger=0"], "--weight"),
    ([*SHIFT, "--weight", "bad name=1"], "--weight"),
    ([*SHIFT, "--weight", "champion"], "--weight"),
    # mlops drift: every output location before the check runs, every input that must exist
    ([*CAPTURE, "--output", "FILE"], "--output"),
    ([*CAPTURE, "--output", "FILE/reports"], "--output"),
    ([*CAPTURE, "--output", ""], "--output"),
    ([*CAPTURE, "--output", "https://example.com/reports"], "--output"),
    (["drift", "check", "--output", "s3://"], "--output"),
    (["drift", "check", "--output", "FILE"], "--output"),
    (["drift", "check", "--capture", "MISSING", "--reference", "FILE"], "--capture"),
    (["drift", "check", "--capture", "", "--reference", "FILE"], "--capture"),
    (["drift", "check", "--capture", "ftp://host/captures", "--reference", "FILE"], "--capture"),
    (["drift", "check", "--capture", "DIR", "--reference", "MISSING"], "--reference"),
    ([*CAPTURE, "--reference-scores", "MISSING"], "--reference-scores"),
    (["drift", "check", "--variant", ""], "--variant"),
    (["drift", "check", "--variant", "champion;rm"], "--variant"),
    (["drift", "check", "--last", "-1h"], "--last"),
    (["drift", "check", "--since", "yesterday"], "--since"),
    # mlops data, demo, aws
    (["data", "upload", "MISSING"], "PATH"),
    (["data", "upload", "DIR"], "PATH"),
    (["data", "upload", "FILE", "--prefix", " raw/"], "--prefix"),
    (["data", "upload", "FILE", "--prefix", "raw//x/"], "--prefix"),
    (["demo", "--folder", "FILE"], "--folder"),
    (["demo", "--folder", ""], "--folder"),
    (["demo", "--folder", "FILE/output"], "--folder"),
    (["demo", "--folder", "TAKEN"], "--folder"),
    (["aws", "preflight", "--qualifier", ""], "--qualifier"),
    (["aws", "preflight", "--qualifier", "elevenchars"], "--qualifier"),
    (["aws", "preflight", "--qualifier", "bad!"], "--qualifier"),
    (["aws", "preflight", "--cdk-out", "FILE"], "--cdk-out"),
    (["aws", "preflight", "--cdk-out", ""], "--cdk-out"),
]


def _filled(arg: str, named: dict[str, str]) -> str:
    """``arg`` with a leading FILE, DIR, TAKEN, MISSING or BUSY replaced by what it names."""
    head, sep, rest = arg.partition("/")
    return f"{named[head]}{sep}{rest}" if head in named else arg


@pytest.mark.parametrize(("args", "option"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_a_usage_error_naming_the_option(
    args: list[str], option: str, paths: dict[str, str], busy_port: int
) -> None:
    named = {**paths, "BUSY": str(busy_port)}
    result = CliRunner().invoke(app, [_filled(arg, named) for arg in args])
    assert not isinstance(result.exception, AssertionError), result.exception
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output  # one line says what is wrong
    assert lines[0].startswith("error: ")
    assert option in lines[0], lines[0]
    assert lines[0].partition(option)[2].strip(": "), lines[0]  # and says what is wrong


def test_a_busy_port_says_so(paths: dict[str, str], busy_port: int) -> None:
    result = CliRunner().invoke(app, ["local", "serve", "--port", str(busy_port)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: --port: port {busy_port} is in use"


def test_an_output_folder_that_cannot_be_written_is_refused_first(
    paths: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    # Root may write anywhere (CI runs as root): the OS says "not writable" for this folder.
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != locked and access(path, mode)
    )
    args = [*CAPTURE[:3], paths["DIR"], "--reference", paths["FILE"]]
    result = CliRunner().invoke(app, [*args, "--output", str(locked / "reports")])
    assert result.exit_code == 2, result.output
    assert f"error: --output: {locked} is not writable" in result.output


def test_drift_check_names_a_file_output_before_it_reads_anything(
    paths: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported case: --output naming a file failed only after the whole check ran."""
    from mlops.usecases import drift_on_demand  # noqa: PLC0415 - numpy and pandas: this test only

    def no_check(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the check ran")

    monkeypatch.setattr(drift_on_demand.OnDemandCheck, "capture_files", no_check)
    result = CliRunner().invoke(
        app, ["drift", "check", "--capture", paths["DIR"], "--reference", paths["FILE"],
              "--output", paths["FILE"]],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: --output: {paths['FILE']} is a file, not a folder"
