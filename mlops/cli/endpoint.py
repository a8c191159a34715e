"""`mlops endpoint`: the serving endpoint's status, and its history as a page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.cli.common import (
    EndpointOption,
    LazyModule,
    State,
    checked,
    console,
    endpoint_name,
    fail,
    output_folder,
)
from mlops.cli.output import Column, JsonOption, Report

if TYPE_CHECKING:
    from mlops.adapters import endpoints
    from mlops.core import names, traffic
    from mlops.usecases import endpoint_history
else:
    endpoints = LazyModule("mlops.adapters.endpoints")
    names = LazyModule("mlops.core.names")
    traffic = LazyModule("mlops.core.traffic")
    endpoint_history = LazyModule("mlops.usecases.endpoint_history")

app = typer.Typer(help="The serving endpoint: status, history.", no_args_is_help=True)


def _watched(endpoint: str, variant: str) -> list[str]:
    """The alarms that watch a variant: its serving alarms and its drift alarm."""
    return [*names.variant_alarms(endpoint, variant), names.drift_alarm(endpoint, variant)]


@app.command("status")
def endpoint_status(
    ctx: typer.Context, endpoint: EndpointOption = None, as_json: JsonOption = False
) -> None:
    """The endpoint, its variants, their weights, instances and models, and their alarms."""
    state: State = ctx.obj
    target = state.target()
    name = endpoint or state.config.endpoint_name
    sagemaker = target.client("sagemaker")
    try:
        current = endpoints.describe(sagemaker, name)
    except endpoints.EndpointNotFound as exc:
        fail(str(exc))
    config = sagemaker.describe_endpoint_config(EndpointConfigName=current.config_name)
    models = {v["VariantName"]: v.get("ModelName", "-") for v in config["ProductionVariants"]}
    shares = traffic.normalized(current.weights)
    alarm_names = [a for v in current.variant_names for a in _watched(name, v)]
    alarms = {
        a["AlarmName"]: a["StateValue"]
        for a in target.client("cloudwatch")
        .describe_alarms(AlarmNames=alarm_names)
        .get("MetricAlarms", [])
    }
    report = Report(as_json)
    report.add(endpoint=name, status=current.status, config=current.config_name)
    report.line(f"[bold]{name}[/bold]: {current.status} (config {current.config_name})")
    rows = [
        {
            "variant": variant.name,
            "weight": variant.weight,
            "traffic": shares[variant.name],
            "instances": variant.instances,
            "model": models.get(variant.name),
            "alarms": {a: alarms.get(a) for a in _watched(name, variant.name)},
        }
        for variant in current.variants
    ]
    columns = [
        Column("variant", "variant"),
        Column("weight", "weight", lambda weight: f"{weight:g}"),
        Column("traffic", "traffic", lambda share: f"{share:.0%}"),
        Column("instances", "instances"),
        Column("model", "model"),
        # "5xx OK": the alarm's kind (the end of its name) and its state
        Column("alarms", "alarms", lambda states: ", ".join(
            f"{a.rsplit('-', 1)[1]} {state or 'none'}" for a, state in states.items()
        )),
    ]  # fmt: skip
    report.table("variants", rows, columns)
    report.emit()


def _page_path(value: Path) -> str | None:
    """A new page's path: a folder to write in, or a file name whose folder can be made."""
    if value.is_dir():
        return output_folder(value)
    if value.exists():
        return f"{value} exists: choose another path (the page is never written over a file)"
    return output_folder(value.parent)


@app.command("history")
def endpoint_history_page(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None,
        typer.Argument(
            help="endpoint name (default: <prefix>-<model_family>)",
            callback=checked(endpoint_name),
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="the page's file, or a folder for <endpoint>-history-<time>.html",
            callback=checked(_page_path),
        ),
    ] = Path(),
) -> None:
    """Write one HTML page (opens offline) of the endpoint over time: variant weights and each
    traffic or serving action with its reason, drift share and prediction drift per check and
    variant, alarm state changes; from the audit records, drift results and alarms."""
    state: State = ctx.obj
    target = state.target()
    resources = state.resources(target)
    name = endpoint or state.config.endpoint_name
    try:
        page = endpoint_history.write_history(target, resources.reports_bucket, name, out)
    except endpoint_history.HistoryError as exc:
        fail(str(exc))
    for note in page.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    if page.empty:
        console.print(f"{name}: no records yet (the page says so)", markup=False)
    else:
        console.print(
            f"{name}: {page.actions} actions, {page.checks} drift checks, "
            f"{page.alarm_changes} alarm changes",
            markup=False,
        )
    # The path alone on its line, never wrapped: a script (or a click) takes it whole.
    console.print(str(page.path), markup=False, soft_wrap=True, highlight=False)
