"""`mlops local`: the embedded default (AWS emulator and local MLflow)."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.cli.common import (
    LazyModule,
    State,
    checked,
    console,
    fail,
    port_free,
    port_number,
    start_emulator,
    usage_error,
)
from mlops.cli.output import JsonOption, Report

if TYPE_CHECKING:
    from mlops.adapters import target as aws_target
    from mlops.local import emulator as embedded
    from mlops.local import endpoint as local_endpoint
else:
    aws_target = LazyModule("mlops.adapters.target")
    embedded = LazyModule("mlops.local.emulator")
    # The local endpoint loads models with pandas and scikit-learn.
    local_endpoint = LazyModule("mlops.local.endpoint")

app = typer.Typer(help="The embedded default: AWS emulator and local MLflow.", no_args_is_help=True)


@app.command("up")
def local_up(
    ctx: typer.Context,
    port: Annotated[
        int | None,
        typer.Option(
            help="port for the emulator (default: a free one)", callback=checked(port_number)
        ),
    ] = None,
) -> None:
    """Start the AWS emulator in the background and create the platform's resources in it."""
    state: State = ctx.obj
    # A running emulator is reused whatever the port; a new one needs the port free.
    if port and embedded.running_emulator(state.home) is None and (problem := port_free(port)):
        usage_error("--port", problem)
    emulator = start_emulator(state.home, port)
    target = aws_target.AwsTarget(region=state.config.region, endpoint_url=emulator.endpoint_url)
    resources = embedded.bootstrap(target, state.config)
    console.print(
        f"[green]embedded default running[/green] at {emulator.endpoint_url} (pid {emulator.pid})"
    )
    console.print(
        f"  buckets: {', '.join(resources.bucket(r) for r in ('datasets', 'artifacts', 'capture', 'reports'))}"
    )
    console.print(f"  model package group: {resources.model_package_group}")
    console.print(f"  state and MLflow store: {state.home.root}")


@app.command("down")
def local_down(ctx: typer.Context) -> None:
    """Stop the AWS emulator (its buckets and registry are in memory and are forgotten)."""
    state: State = ctx.obj
    if embedded.stop_emulator(state.home):
        console.print("stopped the embedded default's emulator")
    else:
        console.print("the embedded default was not running")


@app.command("status")
def local_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Is the emulator running, and where is everything."""
    state: State = ctx.obj
    emulator = embedded.running_emulator(state.home)
    home = state.home
    report = Report(as_json)
    report.add(
        running=emulator is not None,
        endpoint_url=emulator.endpoint_url if emulator else None,
        pid=emulator.pid if emulator else None,
        home=home.root,
        mlflow_tracking_uri=home.mlflow_tracking_uri,
    )
    if emulator is None:
        report.line("emulator: [yellow]not running[/yellow] (`mlops local up`)")
    else:
        report.line(
            f"emulator: [green]running[/green] at {emulator.endpoint_url} (pid {emulator.pid})"
        )
    report.line(f"home: {home.root}")
    report.line(f"MLflow: {home.mlflow_tracking_uri}")
    if emulator is not None:
        # The artifacts are in the emulated artifacts bucket: MLflow reaches it with these.
        target = aws_target.AwsTarget(
            region=state.config.region, endpoint_url=emulator.endpoint_url
        )
        env = " ".join(f"{k}={v}" for k, v in embedded.mlflow_environment(target).items())
        ui = f"{env} mlflow ui --backend-store-uri {home.mlflow_tracking_uri}"
        report.add(mlflow_ui=ui)
        report.line(f"  UI: {ui}")
    else:
        report.add(mlflow_ui=None)
        report.line("  UI: start the emulator first (`mlops local up`): it holds the artifacts")
    report.emit()


@app.command("serve")
def local_serve(
    ctx: typer.Context,
    port: Annotated[
        int,
        typer.Option(
            help="port on 127.0.0.1 (0: a free one)", callback=checked(port_number, port_free)
        ),
    ] = 8080,
) -> None:
    """Serve the emulator's endpoints over the SageMaker runtime protocol, until Ctrl-C or SIGTERM."""
    state: State = ctx.obj
    target = state.target()
    if not target.is_emulator:
        fail("local serve serves the embedded default's endpoints; use --target local", code=2)
    cache = state.home.root / "models"
    cache.mkdir(parents=True, exist_ok=True)
    stopping = threading.Event()

    def stop_on_signal(signum: int, frame: object) -> None:
        if stopping.is_set():  # a second signal: stop without waiting for the capture
            raise KeyboardInterrupt
        stopping.set()

    # SIGTERM (a process manager, `kill`) and SIGINT (Ctrl-C) both stop cleanly: requests in
    # flight finish and the buffered capture is written (a `kill -9` loses what is buffered).
    previous = {sig: signal.signal(sig, stop_on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            endpoints = local_endpoint.LocalEndpoints(target, cache_dir=cache)
            server = local_endpoint.LocalEndpointServer(endpoints, port=port)
        except OSError as exc:  # taken since the command line was checked
            usage_error("--port", port_free(port) or f"cannot listen on port {port}: {exc}")
        server.start()
        console.print(
            f"serving [bold]{state.config.endpoint_name}[/bold] at {server.url} "
            "(Ctrl-C or SIGTERM stops)"
        )
        console.print(
            f'  boto3.client("sagemaker-runtime", endpoint_url="{server.url}").invoke_endpoint('
            f'EndpointName="{state.config.endpoint_name}", ContentType="text/csv", Body="4.6,1,6.9,0,0,13.7,1,0,0")'
        )
        try:
            while not stopping.wait(1):
                pass
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    capture = server.endpoints.capture
    console.print(f"stopped; capture written: {len(capture.files_written)} file(s)")
    if capture.pending_records:
        fail(f"{capture.pending_records} captured record(s) could not be written to S3")
