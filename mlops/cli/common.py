"""What every command group shares: the global options, their parsed `State`, the consoles,
`fail`, and the option types more than one group takes."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import AwsTarget
from mlops.core.config import ConfigError, PlatformConfig, read_cdk_json_context
from mlops.local.emulator import Home, bootstrap, running_emulator, start_emulator

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _console(*, stderr: bool = False) -> Console:
    """A console that wraps for a terminal, and never off one: piped into a file, CI or
    `| tee`, paths, ARNs and URIs stay whole on one line, tables at their natural width."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=100_000)


console = _console()
errors = _console(stderr=True)


def _named(value: str | None) -> str | None:
    # An unset shell variable ($ENDPOINT) must not quietly mean the default endpoint.
    if value is not None and not value.strip():
        raise typer.BadParameter("is empty: name the endpoint, or leave the option out")
    return value


EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        "-e",
        help="endpoint name (default: <prefix>-<model_family>)",
        callback=_named,
    ),
]
ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="why: kept in the audit record")]


class Target(StrEnum):
    local = "local"
    aws = "aws"


@dataclass
class State:
    config: PlatformConfig
    target_kind: Target
    home: Home
    endpoint_url: str | None
    profile: str | None

    def target(self, *, start: bool = False) -> AwsTarget:
        """The AWS target; on the embedded default, start the emulator if asked to."""
        if self.target_kind is Target.aws:
            return AwsTarget(region=self.config.region, profile=self.profile)
        if self.endpoint_url:
            return AwsTarget(region=self.config.region, endpoint_url=self.endpoint_url)
        emulator = running_emulator(self.home)
        if emulator is None:
            if not start:
                fail("the embedded default is not running: start it with `mlops local up`")
            emulator = start_emulator(self.home)
            target = AwsTarget(region=self.config.region, endpoint_url=emulator.endpoint_url)
            bootstrap(target, self.config)
            console.print(f"[dim]started the embedded default at {emulator.endpoint_url}[/dim]")
            return target
        return AwsTarget(region=self.config.region, endpoint_url=emulator.endpoint_url)

    def resources(self, target: AwsTarget) -> PlatformResources:
        if target.is_emulator:
            bootstrap(target, self.config)  # idempotent: the emulator may have been restarted
        return PlatformResources.resolve(target, self.config)


def fail(message: str, code: int = 1) -> NoReturn:
    # The message is text, not markup: "[...]" in it (a list, an ARN pattern) is printed as is.
    errors.print(f"[bold red]error:[/bold red] {escape(message)}")
    raise typer.Exit(code)


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"{what} must look like key=value, got {pair!r}", code=2)
        parsed[key.strip()] = value.strip()
    return parsed


def main_options(
    ctx: typer.Context,
    target: Annotated[
        Target,
        typer.Option(
            "--target",
            "-t",
            envvar="MLOPS_TARGET",
            help="local: the embedded default; aws: your AWS profile",
        ),
    ] = Target.local,
    context: Annotated[
        list[str] | None,
        typer.Option("--context", "-c", help="override a cdk.json context value: key=value"),
    ] = None,
    profile: Annotated[
        str | None, typer.Option(envvar="AWS_PROFILE", help="AWS profile (--target aws)")
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            envvar="MLOPS_ENDPOINT_URL",
            help="an already running AWS emulator to use (--target local)",
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(envvar="MLOPS_HOME", help="where the embedded default keeps its state"),
    ] = None,
) -> None:
    """Operate the MLOps platform: the embedded default or a real AWS account."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "botocore", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    cdk_json = PROJECT_ROOT / "cdk.json"
    try:
        values = read_cdk_json_context(cdk_json) if cdk_json.exists() else {}
        values |= parse_pairs(context or [], "-c")
        config = PlatformConfig.from_context(
            values,
            default_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        )
    except ConfigError as exc:
        fail(str(exc), code=2)
    ctx.obj = State(
        config=config,
        target_kind=target,
        home=Home(home.resolve()) if home else Home.default(),
        endpoint_url=endpoint_url,
        profile=profile,
    )
