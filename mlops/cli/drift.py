"""`mlops drift`: drift checks over endpoint data capture, on demand and as scheduled."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlops.cli.common import (
    EndpointOption,
    LazyModule,
    State,
    checked,
    console,
    errors,
    fail,
    input_location,
    output_folder,
    output_location,
    usage_error,
    variant_name,
)

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
        if capture is not None:
            outcomes = check.capture_files(
                capture, str(reference), reference_scores, (variant or ["capture"])[0]
            )
        else:
            outcomes = check.endpoint_variants(resources, variant or [])
    except on_demand.DriftRequestError as exc:
        fail(str(exc), code=2)
    except on_demand.INPUT_ERRORS as exc:
        fail(str(exc))
    _print_drift(outcomes)
    drifted = [o.variant for o in outcomes if o.drifted]
    if drifted and fail_on_drift:
        errors.print(f"[bold red]drift[/bold red] on {', '.join(drifted)}")
        raise typer.Exit(DRIFT_EXIT_CODE)


def _print_drift(outcomes: list[VariantOutcome]) -> None:
    table = Table(title="drift check")
    for column in (
        "variant",
        "status",
        "rows",
        "malformed",
        "drift share",
        "drifted features",
        "prediction",
        "AUC (eval)",
    ):
        table.add_column(column)  # fmt: skip
    colour = {"drift": "bold red", "no-drift": "green", "not-enough-data": "yellow"}
    for o in outcomes:
        report = o.report
        data, prediction, quality = report.data, report.prediction, report.quality
        table.add_row(
            o.variant,
            f"[{colour[report.status]}]{report.status}[/]",
            f"{report.rows} (min {report.min_rows})",
            str(report.malformed),
            f"{data.drift_share:.2f}" if data else "-",
            ", ".join(c.column for c in data.columns if c.drifted) or "none" if data else "-",
            f"{prediction.score:.3f}{' drifted' if prediction.drifted else ''}"
            if prediction else "-",
            f"{quality.value:.3f} ({quality.baseline:.3f})"
            if quality and quality.value is not None else "-",
        )  # fmt: skip
    console.print(table)
    for o in outcomes:
        console.print(
            f"{o.variant}: window {o.window_start:%Y-%m-%d %H:%M:%S} - {o.window_end:%H:%M:%S} UTC"
        )
        console.print(f"  result: {o.json_uri}")
        if o.html_uri:
            console.print(f"  report: {o.html_uri}")
        for note in o.notes:
            console.print(f"  [dim]{note}[/dim]")
        if o.report.malformed_by_kind:
            kinds = ", ".join(f"{n} {k}" for k, n in o.report.malformed_by_kind.items())
            console.print(f"  [yellow]malformed:[/yellow] {escape(kinds)} (examples in the result)")
        for error in o.report.errors[:5]:
            console.print(f"  [yellow]malformed:[/yellow] {escape(error)}")


@app.command("scheduled")
def drift_scheduled(ctx: typer.Context) -> None:
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
        run = aws_services.scheduled_drift_check(target, state.config, resources)
        result = run.result
    else:
        outputs = platform_resources.stack_outputs(target, names.serving_stack(state.config))
        function = outputs["DriftFunctionName"]
        # A run may take minutes: wait for it, and never invoke twice on a read timeout.
        client = target.client("lambda", read_timeout=910, retries={"max_attempts": 1})
        response = client.invoke(FunctionName=function, Payload=json.dumps({"action": "check"}))
        result = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            fail(f"the drift function failed: {result}")
    _print_scheduled(result)
    if run is not None:
        for event in run.alarm_events:
            detail = event["detail"]
            console.print(f"alarm {detail['alarmName']}: {detail['previousState']['value']} -> "
                          f"{detail['state']['value']}")  # fmt: skip
        for route, outcome in run.actions:
            console.print(f"{route} function: {outcome.get('decision') or outcome}")


def _print_scheduled(result: dict[str, Any]) -> None:
    if not result.get("ok"):
        fail(str(result.get("error")))
    table = Table(title=f"scheduled drift check {result['run_id']}")
    for column in ("variant", "status", "rows", "malformed", "drift share", "result"):
        table.add_column(column)
    for v in result["variants"]:
        share = "-" if v["drift_share"] is None else f"{v['drift_share']:.2f}"
        table.add_row(v["variant"], v["status"], str(v["rows"]), str(v["malformed"]), share,
                      v["result"])  # fmt: skip
    console.print(table)
    for v in result["variants"]:
        if v["report"]:
            console.print(f"{v['variant']} report: {v['report']}")
