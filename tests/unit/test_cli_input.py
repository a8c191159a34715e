"""Bad command-line input gets one clear line, before any work starts."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from mlops.cli import app
from mlops.cli.common import fail


@pytest.mark.parametrize(
    "args",
    [
        ["traffic", "rollback", "--endpoint", "", "--reason", "unset variable"],
        ["traffic", "rollout-step", "-e", "  ", "--reason", "unset variable"],
        ["endpoint", "status", "--endpoint", ""],
        ["drift", "check", "--endpoint", ""],
    ],
)
def test_an_empty_endpoint_is_a_usage_error_not_the_default(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--endpoint" in result.output
    assert "is empty" in result.output


def test_error_messages_keep_their_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit):
        fail("weights must be in [0, 1]; got [1.5, -0.5] for [champion, challenger]")
    assert "[0, 1]; got [1.5, -0.5] for [champion, challenger]" in capsys.readouterr().err
