"""`mlops traffic`: traffic between the champion and challenger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.cli.common import (
    EndpointOption,
    LazyModule,
    ReasonOption,
    State,
    checked,
    fail,
    number,
    parse_pairs,
    usage_error,
    variant_name,
)
from mlops.cli.output import JsonOption, Report

if TYPE_CHECKING:
    from mlops.adapters import endpoints
    from mlops.adapters import resources as platform_resources
    from mlops.core import functions, traffic
    from mlops.usecases import apply_traffic
else:
    endpoints = LazyModule("mlops.adapters.endpoints")
    platform_resources = LazyModule("mlops.adapters.resources")
    functions = LazyModule("mlops.core.functions")
    traffic = LazyModule("mlops.core.traffic")
    apply_traffic = LazyModule("mlops.usecases.apply_traffic")

app = typer.Typer(
    help="Traffic between the champion and challenger: shift, rollback, rollout steps.",
    no_args_is_help=True,
)


def _apply_traffic(state: State, endpoint: str | None, as_json: bool, **request: Any) -> None:
    target = state.target()
    resources = state.resources(target)
    name = endpoint or state.config.endpoint_name
    settings = functions.TrafficSettings.for_platform(
        state.config,
        audit_bucket=resources.reports_bucket,
        topic_arn=platform_resources.alerts_topic_arn(target, state.config),
        endpoint=name,
    )
    controller = apply_traffic.traffic_controller(
        settings,
        target,
        send_instance_counts=target.is_emulator,
        aliases=state.mlflow_aliases(target),
    )
    try:
        outcome = controller.apply(
            apply_traffic.TrafficRequest.parse(
                {"endpoint": name, "requested_by": target.caller(), **request}
            )
        )
    except (traffic.TrafficError, endpoints.EndpointError) as exc:
        fail(str(exc))
    report = Report(as_json)
    report.add(**vars(outcome))
    before = ", ".join(f"{k} {v:g}" for k, v in sorted(outcome.weights_before.items()))
    after = ", ".join(f"{k} {v:g}" for k, v in sorted(outcome.weights_after.items()))
    verb = "changed" if outcome.changed else "unchanged"
    report.line(f"{outcome.action} on [bold]{name}[/bold]: {verb}")
    report.line(f"  before: {before}")
    report.line(f"  after:  {after}")
    report.line(f"  {outcome.decision}")
    if outcome.seconds_to_request is not None:
        report.line(
            f"  new weights requested {outcome.seconds_to_request * 1000:.0f} ms after the trigger, "
            f"{sum(outcome.api_calls.values())} API calls"
        )
    report.line(f"  audit: {outcome.audit_uri}")
    if outcome.aliases_error:
        report.add(mlflow_aliases_error=outcome.aliases_error)
        report.line(f"  [yellow]{outcome.aliases_error}[/yellow]")
    report.emit()


@app.command("rollback")
def traffic_rollback(
    ctx: typer.Context,
    reason: ReasonOption,
    endpoint: EndpointOption = None,
    as_json: JsonOption = False,
) -> None:
    """All traffic to the champion, now."""
    _apply_traffic(ctx.obj, endpoint, as_json, action="rollback", reason=reason)


@app.command("shift")
def traffic_shift(
    ctx: typer.Context,
    reason: ReasonOption,
    challenger: Annotated[
        float | None,
        typer.Option(
            help="the challenger's share of traffic, 0 to 1", callback=checked(number(0, 1))
        ),
    ] = None,
    weight: Annotated[
        list[str] | None, typer.Option("--weight", "-w", help="variant=weight (repeatable)")
    ] = None,
    endpoint: EndpointOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the variants' weights: --challenger 0.25, or --weight champion=3 --weight challenger=1."""
    weights = parse_pairs(weight or [], "--weight") if weight else None
    if weights is not None and challenger is not None:
        usage_error("--weight", "give --challenger or --weight, not both")
    if weights is None and challenger is None:
        usage_error("--challenger", "give --challenger 0.25, or --weight variant=weight")
    if weights is not None:
        for variant in weights:
            if problem := variant_name(variant):
                usage_error("--weight", problem)
        try:  # the values here, before AWS; the variants against the endpoint's, later
            traffic.validate_weights(weights, list(weights))
        except traffic.TrafficError as exc:
            usage_error("--weight", str(exc))
    _apply_traffic(
        ctx.obj,
        endpoint,
        as_json,
        action="shift",
        reason=reason,
        challenger=challenger,
        weights=weights,
    )


@app.command("rollout-step")
def traffic_rollout_step(
    ctx: typer.Context,
    reason: ReasonOption = "gated rollout step",
    endpoint: EndpointOption = None,
    as_json: JsonOption = False,
) -> None:
    """Raise the challenger to the next configured step if its alarms are OK; else roll back."""
    _apply_traffic(ctx.obj, endpoint, as_json, action="rollout-step", reason=reason)
