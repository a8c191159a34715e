"""`mlops endpoint`: the serving endpoint's status."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mlops.cli.common import EndpointOption, LazyModule, State, fail
from mlops.cli.output import Column, JsonOption, Report

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
