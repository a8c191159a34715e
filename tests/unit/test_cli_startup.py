"""`mlops --help` starts quickly: the CLI module and every command's help import no heavy library.

Heavy libraries (boto3, numpy, pandas, MLflow, ...) and the platform's modules below the CLI
(the config's pydantic models, the adapters, the embedded default) are imported by the commands
that use them, when they run. That they stay off the help paths is checked here by which modules
a fresh interpreter holds, not by timing (benchmarks/startup.py measures the time).

pydantic: typer (0.29) imports it itself to process any option of a group it runs, so it is kept
off `import mlops.cli` and `mlops --help` only; a subcommand's help page loads it through typer.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.cli import REPORTED

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "pandas", "scipy", "sklearn", "boto3", "botocore", "s3transfer", "evidently",
         "mlflow", "moto", "aws_cdk", "aws_lambda_powertools", "pydantic")  # fmt: skip
TYPER_LOADS = ("pydantic",)  # for a subcommand's help page (above)
NO_SUBCOMMAND = ("import mlops.cli", "mlops --help")


def not_for_help(modules: list[str]) -> list[str]:
    """The heavy libraries, and the platform's modules outside the CLI, among ``modules``."""
    return sorted(
        m for m in modules
        if m.partition(".")[0] in HEAVY or (m.startswith("mlops.") and not m.startswith("mlops.cli"))
    )  # fmt: skip


# In a fresh interpreter: import the CLI, then render every group's and every command's help
# (found by walking the command tree), and list the modules each step left imported.
WALK = """
import json, sys

import typer
from typer.testing import CliRunner

steps = {}
from mlops.cli import app
steps["import mlops.cli"] = {"modules": sorted(sys.modules), "exit_code": 0, "usage": True}

def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, [*path, name])

for path in walk(typer.main.get_command(app), []):
    result = CliRunner().invoke(app, [*path, "--help"])
    steps[" ".join(["mlops", *path, "--help"])] = {
        "modules": sorted(sys.modules), "exit_code": result.exit_code, "usage": "Usage:" in result.output
    }
print(json.dumps(steps))
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def walked() -> dict[str, dict[str, object]]:
    done = _run("-c", WALK)
    assert done.returncode == 0, done.stderr
    steps: dict[str, dict[str, object]] = json.loads(done.stdout)
    return steps


def test_every_help_is_walked(walked: dict[str, dict[str, object]]) -> None:
    for expected in ("mlops --help", "mlops drift --help", "mlops drift check --help",
                     "mlops local up --help", "mlops aws preflight --help", "mlops demo --help"):  # fmt: skip
        assert expected in walked
    assert len(walked) > 25


def test_the_cli_and_its_help_import_no_heavy_library(
    walked: dict[str, dict[str, object]],
) -> None:
    rendered = {step: (o["exit_code"], o["usage"]) for step, o in walked.items()}
    assert rendered == dict.fromkeys(walked, (0, True))
    found = {}
    for step, outcome in walked.items():  # each step's modules include the earlier steps'
        allowed = () if step in NO_SUBCOMMAND else TYPER_LOADS
        modules = outcome["modules"]
        assert isinstance(modules, list)
        if wrong := [m for m in not_for_help(modules) if m.partition(".")[0] not in allowed]:
            found[step] = wrong
    assert found == {}  # the first step named imported them


@pytest.mark.parametrize(
    ("args", "allowed"), [(["--help"], ()), (["drift", "check", "--help"], TYPER_LOADS)]
)
def test_the_console_script_help_imports_no_heavy_library(
    args: list[str], allowed: tuple[str, ...]
) -> None:
    """Through `main()`, as the `mlops` console script runs: its error handling included."""
    done = _run("-X", "importtime", "-m", "mlops.cli", *args)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    imported = [
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert "mlops.cli" in imported
    assert [m for m in not_for_help(imported) if m.partition(".")[0] not in allowed] == []


@pytest.mark.parametrize(("module", "name", "heading"), REPORTED)
def test_the_errors_main_reports_exist(module: str, name: str, heading: str) -> None:
    """`main` names them by module and class (so as not to import them): the names hold."""
    assert issubclass(getattr(importlib.import_module(module), name), Exception)
    assert heading in ("error", "AWS error")
