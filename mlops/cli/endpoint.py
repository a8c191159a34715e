"""`mlops endpoint`: the serving endpoint's status."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from mlops.cli.common import EndpointOption, LazyModule, State, console, fail

if TYPE_CHECKING:
    from mlops.adapters import endpoints
    from mlops.core import names, traffic
else:
    endpoints = LazyModule("mlops.adapters.endpoints")
    names = LazyModule("mlops.core.names")
    traffic = LazyModule("mlops.core.traffic")

app = typer.Typer(help="The serving endpoint: status.", no_args_is_help=True)


def _watched(endpoint: str, variant: str) -> list[str]:
    """The alarms that watch a variant: its serving alarms and its drift alarm."""
    return [*names.variant_alarms(endpoint, variant), names.drift_alarm(endpoint, variant)]


@app.command("status")
def endpoint_status(ctx: typer.Context, endpoint: EndpointOption = None) -> None:
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
    console.print(f"[bold]{name}[/bold]: {current.status} (config {current.config_name})")
    table = Table()
    for column in ("variant", "weight", "traffic", "instances", "model", "alarms"):
        table.add_column(column)
    for variant in current.variants:
        states = [
            f"{a.rsplit('-', 1)[1]} {alarms.get(a, 'none')}" for a in _watched(name, variant.name)
        ]
        table.add_row(
            variant.name,
            f"{variant.weight:g}",
            f"{shares[variant.name]:.0%}",
            str(variant.instances if variant.instances is not None else "-"),
            models.get(variant.name, "-"),
            ", ".join(states),
        )
    console.print(table)
