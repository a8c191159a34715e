"""`mlops`: everything an operator does, against the embedded default or a real account.

    mlops local up|down|status            the embedded default (AWS emulator + local MLflow)
    mlops pipeline run-local [...]        run the training pipeline's steps on this machine
    mlops pipeline start [...]            start the deployed SageMaker Pipeline and follow it
    mlops registry list|show|approve      the model registry
    mlops serving deploy|promote          which packages serve as champion and challenger
    mlops traffic shift|rollback|rollout-step
    mlops drift check|scheduled           drift checks over data capture
    mlops aws preflight|retained          before a deploy, and after a destroy, to a real account

`--target local` (the default) talks to the emulator; `--target aws` to your AWS profile.
Context overrides work as with `cdk synth`: `-c stage=prod -c region=eu-west-1`.

One module per command group; what they share (global options, State, consoles) is in
`mlops.cli.common`. Heavy libraries are imported when a command uses them (`LazyModule`), so
`mlops --help` and every command's help stay quick (tests/unit/test_cli_startup.py).
"""

from __future__ import annotations

import sys

import typer

from mlops.cli import aws, data, demo, drift, endpoint, local, pipeline, registry, serving, traffic
from mlops.cli.common import errors, main_options
from mlops.cli.drift import DRIFT_EXIT_CODE
from mlops.cli.group import MainGroup

__all__ = ["DRIFT_EXIT_CODE", "app", "main"]

app = typer.Typer(
    cls=MainGroup,
    help=__doc__.split("\n\n")[0] if __doc__ else None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.callback()(main_options)
app.add_typer(local.app, name="local")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(registry.app, name="registry")
app.add_typer(data.app, name="data")
app.add_typer(endpoint.app, name="endpoint")
app.add_typer(serving.app, name="serving")
app.add_typer(traffic.app, name="traffic")
app.add_typer(drift.app, name="drift")
app.add_typer(aws.app, name="aws")
app.command("demo")(demo.demo)

# What `main` reports in one line, exit 1: (module, exception, heading). Matched only when the
# module is imported (nothing else can have raised its exceptions), so that exiting, after a
# help page too, imports none of them.
REPORTED = (
    ("mlops.local.emulator", "EmbeddedError", "error"),
    ("mlops.adapters.resources", "ResourcesNotFound", "error"),
    ("botocore.exceptions", "ClientError", "AWS error"),
    ("botocore.exceptions", "BotoCoreError", "AWS error"),
)


def _heading(exc: Exception) -> str | None:
    for module, name, heading in REPORTED:
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(exc, getattr(loaded, name)):
            return heading
    return None


def main() -> None:
    try:
        app()
    except Exception as exc:
        heading = _heading(exc)
        if heading is None:
            raise
        errors.print(f"[bold red]{heading}:[/bold red] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
