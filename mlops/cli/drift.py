"""`mlops drift`: drift checks over endpoint data capture, on demand and as scheduled."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mlops.cli.common import (
    EndpointOption,
    LazyModule,
    State,
    checked,
    errors,
    fail,
    input_location,
    output_folder,
    output_location,
    usage_error,
    variant_name,
)
from mlops.cli.output import Column, JsonOption, Report, progress

if TYPE_CHECKING:
    from mlops.adapters import resources as platform_resources
    from mlops.core import names
    from mlops.local import aws_services
    from mlops.local.aws_services import ScheduledRun
    from mlops.usecases import drift_on_demand as on_demand
    from mlops.usecases.check_drift import VariantOutcome
else:
    platform_resources = LazyModule("mlops.adapters.resources")
    names = LazyModule("mlops.core.names")
    aws_services = LazyModule("mlops.local.aws_services")
    # The check imports numpy and pandas (and renders its reports with Evidently).
    on_demand = LazyModule("mlops.usecases.drift_on_demand")

DRIFT_EXIT_CODE = 3  # --fail-on-drift: distinct from errors (1) and usage errors (2)

app = typer.Typer(
    help="Drift checks over endpoint data capture (data, prediction and concept drift).",
    no_args_is_help=True,
)


@app.command("check")
def drift_check(
    ctx: typer.Context,
    capture: Annotated[
        str | None,
        typer.Option(
            help="capture files: a folder or S3 prefix of .jsonl files "
            "(default: the endpoint's capture location)",
            callback=checked(input_location),
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            help="reference.csv, or the folder / S3 prefix holding it (default: the "
            "reference of the model package each variant serves)",
            callback=checked(input_location),
        ),
    ] = None,
    reference_scores: Annotated[
        str | None,
        typer.Option(
            help="the model's scores.csv, for prediction drift", callback=checked(input_location)
        ),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            "-v",
            help="variant(s) to check (default: every variant)",
            callback=checked(variant_name),
        ),
    ] = None,
    endpoint: EndpointOption = None,
    since: Annotated[str | None, typer.Option(help="window start, ISO time (UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="window end, ISO time (default: now)")] = None,
    last: Annotated[str, typer.Option(help="window length when --since is not given")] = "1h",
    output: Annotated[
        str | None,
        typer.Option(
            help="folder or S3 prefix for the JSON results and HTML reports "
            "(default: the reports bucket; ./drift-reports with --capture)",
            callback=checked(output_location),
        ),
    ] = None,
    html: Annotated[bool, typer.Option(help="render Evidently's HTML report")] = True,
    min_rows: Annotated[
        int | None, typer.Option(min=1, help="rows needed for a verdict (default: config)")
    ] = None,
    fail_on_drift: Annotated[
        bool, typer.Option(help=f"exit {DRIFT_EXIT_CODE} when any variant drifts (for CI)")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check captured requests for drift against the model's reference, and write the reports.

    Without --capture: the endpoint's variants, each against the reference of the model it serves, over the last hour (or --since/--until). With --capture: any capture files against --reference, for example a folder copied from S3.
    """
    state: State = ctx.obj
    config = state.config
    if capture is None and (reference or reference_scores):
        fail("--reference and --reference-scores go with --capture; without it each variant "
             "is checked against the reference of the model it serves", code=2)  # fmt: skip
    if capture is not None and reference is None:
        fail("--capture needs --reference (the reference.csv to compare with)", code=2)
    if capture is not None and len(variant or []) > 1:
        fail("--capture files are one variant's: give at most one --variant", code=2)
    if (
        capture is not None
        and output is None
        and (problem := output_folder(on_demand.DEFAULT_FOLDER))
    ):
        usage_error("--output", f"not given, and the default folder cannot be used: {problem}")
    try:
        window = on_demand.window(since, until, last)
    except on_demand.DriftRequestError as exc:
        fail(str(exc), code=2)
    needs_aws = capture is None or any(
        loc and loc.startswith("s3://") for loc in (capture, reference, reference_scores, output)
    )
    target = state.target() if needs_aws else None
    resources = state.resources(target) if target and capture is None else None
    if min_rows is not None:
        config = config.model_copy(update={"min_rows_for_drift": min_rows})
    check = on_demand.OnDemandCheck(
        endpoint or config.endpoint_name, config, window, run_id=f"cli-{uuid.uuid4().hex[:8]}",
        target=target, output=output, html=html,
    )  # fmt: skip
    try:
        with progress("capture read and checked", unit="variant(s)") as checked_one:
            if capture is not None:
                outcomes = check.capture_files(
                    capture, str(reference), reference_scores, (variant or ["capture"])[0]
                )
                checked_one(1)
            else:
                outcomes = check.endpoint_variants(
                    resources, variant or [], on_outcome=lambda _: checked_one(1)
                )
    except on_demand.DriftRequestError as exc:
        fail(str(exc), code=2)
    except on_demand.INPUT_ERRORS as exc:
        fail(str(exc))
    report = Report(as_json)
    drifted = [o.variant for o in outcomes if o.drifted]
    report.add(run_id=check.run_id, drifted=drifted)
    _print_drift(report, outcomes)
    report.emit()
    if drifted and fail_on_drift:
        errors.print(f"[bold red]drift[/bold red] on {', '.join(drifted)}")
        raise typer.Exit(DRIFT_EXIT_CODE)


def _row(o: VariantOutcome) -> dict[str, Any]:
    """One variant's check, as the table shows it and --json prints it (whole)."""
    report = o.report
    data, prediction, quality = report.data, report.prediction, report.quality
    return {
        "variant": o.variant,
        "status": report.status,
        "rows": report.rows,
        "min_rows": report.min_rows,
        "malformed": report.malformed,
        "drift_share": data.drift_share if data else None,
        "drifted_features": [c.column for c in data.columns if c.drifted] if data else None,
        "prediction": prediction,
        "quality": quality,
        "package_arn": o.package_arn,
        "weight": o.weight,
        "window_start": o.window_start,
        "window_end": o.window_end,
        "result": o.json_uri,
        "report": o.html_uri,
        "notes": o.notes,
        "malformed_by_kind": report.malformed_by_kind,
        "errors": report.errors,
    }


_STATUS_COLOUR = {"drift": "bold red", "no-drift": "green", "not-enough-data": "yellow"}
_DRIFT_COLUMNS = (
    Column("variant", "variant"),
    Column("status", "status", lambda s: f"[{_STATUS_COLOUR.get(s, 'white')}]{s}[/]"),
    Column("rows", "rows", of_row=lambda row: f"{row['rows']} (min {row['min_rows']})"),
    Column("malformed", "malformed"),
    Column("drift_share", "drift share", lambda share: "-" if share is None else f"{share:.2f}"),
    Column("drifted_features", "drifted features",
           lambda found: "-" if found is None else ", ".join(found) or "none"),
    Column("prediction", "prediction", lambda p: "-" if p is None
           else f"{p.score:.3f}{' drifted' if p.drifted else ''}"),
    Column("quality", "AUC (eval)", lambda q: f"{q.value:.3f} ({q.baseline:.3f})"
           if q and q.value is not None else "-"),
)  # fmt: skip


def _print_drift(report: Report, outcomes: list[VariantOutcome]) -> None:
    report.table("variants", [_row(o) for o in outcomes], _DRIFT_COLUMNS, title="drift check")
    for o in outcomes:
        report.line(
            f"{o.variant}: window {o.window_start:%Y-%m-%d %H:%M:%S} - {o.window_end:%H:%M:%S} UTC"
        )
        report.line(f"  result: {o.json_uri}")
        if o.html_uri:
            report.line(f"  report: {o.html_uri}")
        for note in o.notes:
            report.line(f"  [dim]{note}[/dim]")
        if o.report.malformed_by_kind:
            kinds = ", ".join(f"{n} {k}" for k, n in o.report.malformed_by_kind.items())
            report.line(f"  [yellow]malformed:[/yellow] {escape(kinds)} (examples in the result)")
        for error in o.report.errors[:5]:
            report.line(f"  [yellow]malformed:[/yellow] {escape(error)}")


@app.command("scheduled")
def drift_scheduled(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Run the scheduled drift check now, as its schedule does.

    Embedded default: the drift Lambda's handler on a schedule event, its metrics into the
    emulator, the drift alarms evaluated and their actions run (rollback, retraining).
    AWS: invokes the deployed drift function.
    """
    state: State = ctx.obj
    target = state.target()
    resources = state.resources(target)
    run: ScheduledRun | None = None
    if target.is_emulator:
        with progress("scheduled drift check"):
            run = aws_services.scheduled_drift_check(target, state.config, resources)
        result = run.result
    else:
        outputs = platform_resources.stack_outputs(target, names.serving_stack(state.config))
        function = outputs["DriftFunctionName"]
        # A run may take minutes: wait for it, and never invoke twice on a read timeout.
        client = target.client("lambda", read_timeout=910, retries={"max_attempts": 1})
        with progress(f"scheduled drift check ({function})"):
            response = client.invoke(FunctionName=function, Payload=json.dumps({"action": "check"}))
        result = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            fail(f"the drift function failed: {result}")
    if not result.get("ok"):
        fail(str(result.get("error")))
    report = Report(as_json)
    report.add(**{k: v for k, v in result.items() if k != "variants"}, alarms=[], actions=[])
    report.table("variants", result["variants"], _SCHEDULED_COLUMNS,
                 title=f"scheduled drift check {result['run_id']}")  # fmt: skip
    for v in result["variants"]:
        if v["report"]:
            report.line(f"{v['variant']} report: {v['report']}")
    if run is not None:
        for event in run.alarm_events:
            detail = event["detail"]
            report.data["alarms"].append(
                {"alarm": detail["alarmName"], "from": detail["previousState"]["value"],
                 "to": detail["state"]["value"]}
            )  # fmt: skip
            report.line(f"alarm {detail['alarmName']}: {detail['previousState']['value']} -> "
                        f"{detail['state']['value']}")  # fmt: skip
        for route, outcome in run.actions:
            report.data["actions"].append({"function": route, "outcome": outcome})
            report.line(f"{route} function: {outcome.get('decision') or outcome}")
    report.emit()


_SCHEDULED_COLUMNS = (
    Column("variant", "variant"),
    Column("status", "status"),
    Column("rows", "rows"),
    Column("malformed", "malformed"),
    Column("drift_share", "drift share", lambda share: "-" if share is None else f"{share:.2f}"),
    Column("result", "result"),
)
