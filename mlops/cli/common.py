"""What every command group shares: the global options, their parsed `State`, the consoles,
`fail`, the option types more than one group takes, and the checks of option values.

Bad input is a usage error: exit 2 and one line that names the option (`usage_error`). A value
that can be checked without AWS is checked as the command line is parsed (`checked` callbacks),
before any work and before the emulator or an AWS account is reached.

Nothing heavy is imported here or by a command module when it is imported, so that `mlops --help`
and every command's help stay quick (tests/unit/test_cli_startup.py): a command module names the
modules it uses with `LazyModule`, and each is imported when a command first uses it.
"""

from __future__ import annotations

import errno
import functools
import importlib
import importlib.metadata
import logging
import math
import os
import re
import socket
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape


class LazyModule:
    """A module imported when a name in it is first used. At the top of a command module,
    with the import itself for mypy (and for the architecture test's import graph)::

        if TYPE_CHECKING:
            from mlops.core import names
        else:
            names = LazyModule("mlops.core.names")
    """

    __slots__ = ("_lazy_name",)

    def __init__(self, name: str) -> None:
        self._lazy_name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # introspection (copy, inspect.unwrap) imports nothing
            raise AttributeError(attribute)
        return getattr(importlib.import_module(self._lazy_name), attribute)

    def __repr__(self) -> str:
        return f"<module {self._lazy_name!r}, imported when used>"


if TYPE_CHECKING:
    from mlops.adapters import mlflow_aliases
    from mlops.adapters import resources as platform_resources
    from mlops.adapters import target as aws_target
    from mlops.adapters.mlflow_aliases import MlflowAliases
    from mlops.adapters.resources import PlatformResources
    from mlops.adapters.target import AwsTarget
    from mlops.core import config as platform_config
    from mlops.core.config import PlatformConfig
    from mlops.local import emulator as embedded
    from mlops.local.emulator import EmulatorState, Home
else:
    platform_resources = LazyModule("mlops.adapters.resources")
    aws_target = LazyModule("mlops.adapters.target")
    mlflow_aliases = LazyModule("mlops.adapters.mlflow_aliases")
    platform_config = LazyModule("mlops.core.config")
    embedded = LazyModule("mlops.local.emulator")

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


def fail(message: str, code: int = 1) -> NoReturn:
    # The message is text, not markup: "[...]" in it (a list, an ARN pattern) is printed as is.
    errors.print(f"[bold red]error:[/bold red] {escape(message)}")
    raise typer.Exit(code)


def usage_error(option: str, problem: str) -> NoReturn:
    """Exit 2, as typer does for a value of the wrong type, with one line naming the option."""
    fail(f"{option}: {' '.join(problem.split())}", code=2)


def shown(value: object, limit: int = 80) -> str:
    """``value`` quoted for a message, cut short if long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 4]}...{text[-1]}"


Check = Callable[[Any], str | None]  # the problem with a value, or None


def checked(*checks: Check) -> Callable[..., Any]:
    """A typer callback: exit 2 naming the option with the first problem ``checks`` find (in
    each value of a repeated option). It runs as the command line is parsed, before any work."""

    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if ctx.resilient_parsing or value is None:
            return value
        argument = param.param_type_name == "argument"
        name = (param.name or "").upper() if argument else max(param.opts, key=len)
        for item in value if isinstance(value, list | tuple) else [value]:
            for check in checks:
                if problem := check(item):
                    usage_error(name, problem)
        return value

    return callback


SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # endpoints, variants
PACKAGE_ARN = re.compile(
    r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:model-package/[^\s/]+/[0-9]+"
)


def endpoint_name(value: str) -> str | None:
    # An unset shell variable ($ENDPOINT) must not quietly mean the default endpoint.
    if not value.strip():
        return "the name is empty: name the endpoint, or leave the option out"
    if not SAGEMAKER_NAME.fullmatch(value):
        return f"{shown(value)} is not an endpoint name (1-63 letters, digits and hyphens)"
    return None


def variant_name(value: str) -> str | None:
    if not SAGEMAKER_NAME.fullmatch(value):
        return f"{shown(value)} is not a variant name (such as champion or challenger)"
    return None


def package_version(value: str) -> str | None:
    if value.startswith("arn:"):
        if PACKAGE_ARN.fullmatch(value):
            return None
        return (
            f"{shown(value)} is not a model package ARN "
            "(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)"
        )
    if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
        return f"a package is named by its version number (1, 2, ...) or ARN, got {shown(value)}"
    return None


def reason_text(value: str) -> str | None:
    if len(value.strip()) < 3:
        return f"say why in at least 3 characters (kept in the audit record), got {shown(value)}"
    if len(value) > 1000:
        return f"at most 1000 characters, got {len(value)}"
    return None


def number(low: float | None = None, high: float | None = None, *, above: bool = False) -> Check:
    """Finite, at least ``low`` (above it, if ``above``) and at most ``high``."""

    def check(value: float) -> str | None:
        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        if low is not None and (value <= low if above else value < low):
            return f"must be {'above' if above else 'at least'} {low:g}, got {value:g}"
        if high is not None and value > high:
            return f"must be at most {high:g}, got {value:g}"
        return None

    return check


def port_number(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"must be a port from 0 to 65535, got {value}"


def port_free(value: int) -> str | None:
    """Whether a server can listen on ``value`` on 127.0.0.1 (0: any free port)."""
    if value == 0:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind(("127.0.0.1", value))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {value} is in use"
            return f"cannot listen on port {value}: {exc.strerror or exc}"
    return None


def _existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def output_folder(value: str | Path, *, writable: bool = True) -> str | None:
    """A folder a command writes in: not a file, its nearest existing ancestor a folder
    (writable, if ``writable``) so that it can be made."""
    if not str(value).strip():
        return "the path is empty"
    path = Path(value).expanduser()
    try:
        if path.exists() and not path.is_dir():
            return f"{value} is a file, not a folder"
        found = _existing(path.absolute())
        if not found.is_dir():
            return f"{found} is a file, so {value} cannot be a folder"
        if writable and not os.access(found, os.W_OK | os.X_OK):
            return f"{found} is not writable"
    except (OSError, ValueError) as exc:  # a name too long, a NUL, a folder we may not read
        return f"{shown(str(value))} is not a usable path: {exc}"
    return None


def input_file(value: str | Path) -> str | None:
    if not str(value).strip():
        return "the path is empty"
    path = Path(value).expanduser()
    try:
        if not path.exists():
            return f"{value} does not exist"
        if not path.is_file():
            return f"{value} is not a file"
    except (OSError, ValueError) as exc:
        return f"{shown(str(value))} is not a usable path: {exc}"
    return None


def s3_uri(value: str) -> str | None:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "s3" or not parts.netloc:
        return f"must be an s3://bucket/prefix URI, got {shown(value)}"
    return None


def _scheme(value: str) -> str | None:
    found = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", value)
    return found.group(1) if found else None


def input_location(value: str) -> str | None:
    """A local file or folder that exists, or an S3 URI (read later, with the target)."""
    if _scheme(value) is not None:
        return s3_uri(value)
    if not value.strip():
        return "the path is empty"
    try:
        return None if Path(value).expanduser().exists() else f"{value} does not exist"
    except (OSError, ValueError) as exc:
        return f"{shown(value)} is not a usable path: {exc}"


def output_location(value: str) -> str | None:
    """A local folder a command can write in, or an S3 prefix."""
    return output_folder(value) if _scheme(value) is None else s3_uri(value)


def http_url(value: str) -> str | None:
    parts = urllib.parse.urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return f"{shown(value)} has no valid port"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            f"must be an http:// or https:// URL such as http://127.0.0.1:5000, got {shown(value)}"
        )
    return None


def not_empty(value: str) -> str | None:
    return "the value is empty" if not value.strip() else None


EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        "-e",
        help="endpoint name (default: <prefix>-<model_family>)",
        callback=checked(endpoint_name),
    ),
]
ReasonOption = Annotated[
    str,
    typer.Option(
        "--reason", "-r", help="why: kept in the audit record", callback=checked(reason_text)
    ),
]
VersionArgument = Annotated[
    str, typer.Argument(help="version number or ARN", callback=checked(package_version))
]


class Target(StrEnum):
    local = "local"
    aws = "aws"


def start_emulator(home: Home, port: int | None = None) -> EmulatorState:
    """Start the embedded default's emulator (`mlops.local.emulator.start_emulator`)."""
    return embedded.start_emulator(home, port)


@dataclass
class State:
    """The global options. The config and the home are made when first used (`main_options`
    makes the config before any work): a help page needs neither, nor their imports."""

    target_kind: Target
    endpoint_url: str | None
    profile: str | None
    overrides: list[str]  # -c key=value, as given
    home_root: Path | None  # --home (MLOPS_HOME), resolved; None: the default

    @functools.cached_property
    def config(self) -> PlatformConfig:
        return _platform_config(self.overrides)

    @functools.cached_property
    def home(self) -> Home:
        return embedded.Home(self.home_root) if self.home_root else embedded.Home.default()

    def target(self, *, start: bool = False) -> AwsTarget:
        """The AWS target; on the embedded default, start the emulator if asked to."""
        if self.target_kind is Target.aws:
            return aws_target.AwsTarget(region=self.config.region, profile=self.profile)
        if self.endpoint_url:
            return aws_target.AwsTarget(region=self.config.region, endpoint_url=self.endpoint_url)
        emulator = embedded.running_emulator(self.home)
        if emulator is None:
            if not start:
                fail("the embedded default is not running: start it with `mlops local up`")
            emulator = start_emulator(self.home)
            target = aws_target.AwsTarget(
                region=self.config.region, endpoint_url=emulator.endpoint_url
            )
            embedded.bootstrap(target, self.config)
            # A note, not the result: on stderr, so that stdout holds only --json's document.
            errors.print(f"[dim]started the embedded default at {emulator.endpoint_url}[/dim]")
            return target
        return aws_target.AwsTarget(region=self.config.region, endpoint_url=emulator.endpoint_url)

    def mlflow_tracking_uri(self, target: AwsTarget) -> str | None:
        """Where runs and models are tracked: the home's store on the embedded default; for
        AWS the config's ``mlflow_tracking_uri``, else $MLFLOW_TRACKING_URI (None: untracked)."""
        if target.is_emulator:
            return self.home.mlflow_tracking_uri
        return self.config.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None

    def mlflow_aliases(self, target: AwsTarget) -> MlflowAliases | None:
        """MLflow's champion/challenger aliases, moved by approve, deploy, promote, rollback;
        None where nothing is tracked (a home with no MLflow store yet included)."""
        uri = self.mlflow_tracking_uri(target)
        if uri is None or (target.is_emulator and not self.home.mlflow_database.is_file()):
            return None
        return mlflow_aliases.MlflowAliases(uri, self.config.model_package_group_name)

    def resources(self, target: AwsTarget) -> PlatformResources:
        if target.is_emulator:
            embedded.bootstrap(target, self.config)  # idempotent: the emulator may have restarted
        return platform_resources.PlatformResources.resolve(target, self.config)


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
        str | None,
        typer.Option(
            envvar="AWS_PROFILE", help="AWS profile (--target aws)", callback=checked(not_empty)
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            envvar="MLOPS_ENDPOINT_URL",
            help="an already running AWS emulator to use (--target local)",
            callback=checked(http_url),
        ),
    ] = None,
    home: Annotated[
        str | None,
        typer.Option(
            envvar="MLOPS_HOME",
            help="where the embedded default keeps its state",
            callback=checked(lambda value: output_folder(value, writable=False)),
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            expose_value=False,
            callback=lambda value: _print_version() if value else None,
            help="print the installed version and exit",
        ),
    ] = False,
) -> None:
    """Operate the MLOps platform: the embedded default or a real AWS account."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "botocore", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    state = State(
        target_kind=target,
        endpoint_url=endpoint_url,
        profile=profile,
        overrides=context or [],
        home_root=Path(home).expanduser().resolve() if home else None,
    )
    if not ctx.meta.get(HELP_ASKED):
        state.config  # noqa: B018 - made now, before any work: a bad setting is a usage error
    ctx.obj = state


DISTRIBUTION = "sagemaker-mlops-platform"  # pyproject.toml's [project] name


def _print_version() -> NoReturn:
    try:
        found = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        fail(f"{DISTRIBUTION} is not installed: run `uv sync` (or pip install -e .)")
    typer.echo(f"mlops {found}")
    raise typer.Exit


def _platform_config(overrides: list[str]) -> PlatformConfig:
    """cdk.json's context with the -c overrides, as the CDK app reads them; a bad setting exits 2
    with one line naming each."""
    cdk_json = PROJECT_ROOT / "cdk.json"
    try:
        values = platform_config.read_cdk_json_context(cdk_json) if cdk_json.exists() else {}
        values |= parse_pairs(overrides, "-c")
        return platform_config.PlatformConfig.from_context(
            values,
            default_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        )
    except platform_config.ConfigError as exc:  # one line: the header, then each problem
        header, *problems = str(exc).splitlines()
        fail(f"{header} {'; '.join(p.strip().removeprefix('- ') for p in problems)}", code=2)


HELP_ASKED = "mlops.help_asked"  # set by mlops.cli.group.MainGroup
