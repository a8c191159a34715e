"""What the CLI prints for a script and through a pipe: `--json` (one document on stdout),
`--version`, the global options after the subcommand, choices, progress off a terminal."""

from __future__ import annotations

import importlib.metadata
import io
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import get_args

import pandas as pd
import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner, Result

from mlops.adapters.registry import APPROVAL_STATUSES
from mlops.cli import app
from mlops.cli.group import MainGroup
from mlops.cli.output import Column, Report, jsonable, progress
from mlops.cli.pipeline import Algorithm, ApprovalStatus
from mlops.local.replay import send
from pipeline_steps import hyperparameters
from pipeline_steps.schema import FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_version_is_the_installed_distributions() -> None:
    expected = importlib.metadata.version("sagemaker-mlops-platform")
    for args in (["--version"], ["local", "status", "--version"]):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"mlops {expected}\n"


def test_local_status_json_is_one_document_on_stdout(tmp_path: Path) -> None:
    result = invoke("--home", str(tmp_path), "local", "status", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["running"] is False
    assert document["home"] == str(tmp_path)
    assert document["mlflow_tracking_uri"].startswith("sqlite:///")
    assert "not running" in result.stderr  # the human text, off stdout


def test_global_options_after_the_subcommand(tmp_path: Path) -> None:
    after = invoke("local", "status", "--json", "--home", str(tmp_path), "-c", "stage=dev")
    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout)["home"] == str(tmp_path)
    same_twice = invoke("--home", str(tmp_path), "local", "status", f"--home={tmp_path}")
    assert same_twice.exit_code == 0, same_twice.output


def moved(*args: str) -> list[str]:
    group = get_command(app)
    assert isinstance(group, MainGroup)
    ctx = group.make_context("mlops", ["local"], resilient_parsing=True)
    return group._global_options_first(ctx, list(args))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("registry list --target local -c stage=dev", "--target local -c stage=dev registry list"),
        ("-t aws registry show 1 -cregion=eu-west-1", "-t aws -cregion=eu-west-1 registry show 1"),
        ("traffic shift --json --home=/h -w champion=1", "--home=/h traffic shift --json -w champion=1"),
        # a value of the subcommand's own option stays, even one that looks like a global option
        ("traffic rollback --reason -c", "traffic rollback --reason -c"),
        ("drift check -- -t aws", "drift check -- -t aws"),  # nothing after -- moves
        ("registry --help", "registry --help"),
    ],
)  # fmt: skip
def test_which_arguments_move(args: str, expected: str) -> None:
    assert moved(*args.split()) == expected.split()


def test_no_subcommand_takes_a_global_options_name() -> None:
    """Otherwise `--target` after that subcommand would be ambiguous."""
    group = get_command(app)
    ctx = group.make_context("mlops", ["local"], resilient_parsing=True)
    ours = {o for p in group.get_params(ctx) for o in getattr(p, "opts", [])} - {"--help"}
    assert {"--target", "-t", "--context", "-c", "--home", "--version"} <= ours

    def leaves(command: object) -> list[object]:
        if isinstance(command, typer.core.TyperGroup):
            return [leaf for name in command.list_commands(ctx)
                    for leaf in leaves(command.get_command(ctx, name))]  # fmt: skip
        return [command]

    for leaf in leaves(group):
        theirs = {o for p in leaf.get_params(ctx) for o in getattr(p, "opts", [])}  # type: ignore[attr-defined]
        assert not theirs & ours, (leaf.name, theirs & ours)  # type: ignore[attr-defined]


def test_choices_are_the_pipelines() -> None:
    assert [a.value for a in Algorithm] == list(get_args(hyperparameters.Algorithm))
    assert [a.value for a in Algorithm] == list(hyperparameters.ALGORITHMS)
    assert sorted(s.value for s in ApprovalStatus) == sorted(APPROVAL_STATUSES)


@pytest.mark.parametrize(
    ("option", "value", "choices"),
    [
        ("--algorithm", "xgboost", ("logistic", "gradient_boosting")),
        ("--approval-status", "approved", ("PendingManualApproval", "Approved", "Rejected")),
    ],
)
def test_a_bad_choice_names_the_option_and_the_choices(
    option: str, value: str, choices: tuple[str, ...]
) -> None:
    result = invoke("pipeline", "run-local", option, value)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {option}: {value!r} is not one of"), line
    assert all(repr(choice) in line for choice in choices), line
    shown = CliRunner().invoke(app, ["pipeline", "run-local", "--help"], env={"COLUMNS": "300"})
    assert all(choice in shown.output for choice in choices)


class Colour(StrEnum):
    red = "red"


@dataclass
class Row:
    when: datetime
    path: Path
    score: float
    colour: Colour


def test_jsonable_keeps_full_values() -> None:
    when = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    value = {"rows": [Row(when, Path("/a/b"), math.nan, Colour.red)], "n": (1, 2)}
    assert jsonable(value) == {
        "rows": [{"when": "2026-11-30T12:00:00+00:00", "path": "/a/b", "score": None,
                  "colour": "red"}],
        "n": [1, 2],
    }  # fmt: skip
    with pytest.raises(TypeError, match="no JSON form"):
        jsonable(object())


def test_a_report_prints_one_document_and_keeps_ids_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    long_id = "f" * 64
    report = Report(as_json=True)
    report.line("a note for a person")
    report.table("rows", [{"id": long_id}], [Column("id", "id", lambda v: v[:12])])
    report.emit()
    out, err = capsys.readouterr()
    assert json.loads(out) == {"rows": [{"id": long_id}]}
    assert "a note for a person" in err


def test_progress_off_a_terminal_prints_its_last_state_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress("requests sent", total=300, unit="rows") as sent:
        for _ in range(30):
            sent(10)
    _, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert "requests sent" in line
    assert "300/300 rows" in line
    assert "0:00:0" in line  # the elapsed time
    assert "\x1b[" not in err


def test_piped_output_keeps_long_paths_whole(tmp_path: Path) -> None:
    """Piped (no terminal, no COLUMNS), a path longer than 80 columns stays on one line."""
    home = tmp_path / ("a-folder-with-a-long-name-" * 4) / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "--home", str(home), "local", "status"],
        capture_output=True, text=True, env=env, cwd=ROOT, check=True, timeout=60,
    )  # fmt: skip
    assert len(str(home)) > 80
    assert f"home: {home}\n" in done.stdout
    assert "\x1b[" not in done.stdout


class Runtime:
    """The sagemaker-runtime client's invoke_endpoint, answered at once."""

    def invoke_endpoint(self, **request: object) -> dict[str, object]:
        return {"Body": io.BytesIO(b"{}"), "InvokedProductionVariant": "champion"}


def test_sent_requests_report_each_batch_of_rows() -> None:
    frame = pd.DataFrame([[1.0] * len(FEATURE_NAMES)] * 25, columns=list(FEATURE_NAMES))
    reported: list[int] = []
    served = send(Runtime(), "ep", frame, batch=10, on_sent=reported.append)  # type: ignore[arg-type]
    assert reported == [10, 10, 5]
    assert served == {"champion": 25}
