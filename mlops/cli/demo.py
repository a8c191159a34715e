"""`mlops demo`: the whole lifecycle on the embedded default, narrated."""

from __future__ import annotations

import shlex
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlops.cli.common import LazyModule, checked, console, errors, fail, output_folder, usage_error
from mlops.cli.output import Advance, progress

if TYPE_CHECKING:
    from mlops.local import demo as lifecycle
else:
    # The demo trains and serves models (pandas, scikit-learn, MLflow).
    lifecycle = LazyModule("mlops.local.demo")


def demo(
    folder_name: Annotated[
        str,
        typer.Option(
            "--folder",
            help="everything the demo leaves goes here (cleared first)",
            callback=checked(output_folder),
        ),
    ] = "demo-output",
    normal_rows: Annotated[
        int, typer.Option(min=200, help="ordinary requests (rows), in each traffic phase")
    ] = 3000,
    drifted_rows: Annotated[
        int, typer.Option(min=200, help="rows from a shifted population, to the challenger")
    ] = 1500,
    keep_running: Annotated[
        bool,
        typer.Option(
            help="leave the emulator up with the demo's state, for the CLI and `mlflow ui` "
            "(`mlops local down` stops it)"
        ),
    ] = False,
) -> None:
    """The whole lifecycle on the embedded default, narrated: train, register, approve, deploy,
    roll out, serve, drift, alarm, roll back. No AWS account. It times each stage
    (summary.json) and prints the total; the README gives a measured run."""
    folder = Path(folder_name).expanduser()
    marker = lifecycle.MARKER
    if folder.is_dir() and any(folder.iterdir()) and not (folder / marker).exists():
        usage_error("--folder", f"{folder} is not empty and was not made by the demo (no "
                    f"{marker} in it): it would be cleared; choose another folder")  # fmt: skip

    class RichNarrator(lifecycle.Narrator):
        def stage(self, number: int, total: int, title: str) -> None:
            console.print(f"\n[bold cyan][{number}/{total}][/bold cyan] [bold]{title}[/bold]")

        def say(self, text: str) -> None:
            console.print(f"      {text}")

        def progress(
            self, description: str, total: int | None = None, unit: str = ""
        ) -> AbstractContextManager[Advance]:
            return progress(f"      {description}", total, unit)

    console.print("[bold]The MLOps platform's lifecycle on the embedded default[/bold] "
                  "(AWS emulator + local MLflow; the same code as in AWS)")  # fmt: skip
    options = lifecycle.DemoOptions(
        folder=folder, normal_rows=normal_rows, drifted_rows=drifted_rows, keep_running=keep_running
    )
    try:
        summary = lifecycle.Demo(options, RichNarrator()).run()
    except lifecycle.DemoFailed as exc:
        fail(f"the demo stopped: {exc} (nothing it started is left running)")
    except KeyboardInterrupt:
        errors.print(f"\ninterrupted: every process the demo started is stopped; {folder} kept")
        raise typer.Exit(130) from None
    table = Table(title="summary", show_header=True)
    table.add_column("variant")
    table.add_column("weight before rollback")
    table.add_column("weight after")
    table.add_column("baseline check")
    table.add_column("after the drift")
    for variant in ("champion", "challenger"):
        checks = [summary.checks[phase][variant] for phase in ("baseline", "drift")]
        table.add_row(
            variant,
            f"{summary.weights_before_rollback.get(variant, 0):g}",
            f"{summary.weights_after_rollback.get(variant, 0):g}",
            *(
                f"{c['status']}, share {c['drift_share']:.2f}" if c["drift_share"] is not None
                else c["status"]
                for c in checks
            ),
        )  # fmt: skip
    console.print()
    console.print(table)
    rollback = summary.rollback
    console.print(
        f"rollback: {rollback['decision']} - the controller requested the new weights "
        f"{rollback['controller_seconds'] * 1000:.0f} ms after it started "
        f"({rollback['api_calls']} API calls); alarm to weights requested "
        f"{rollback['alarm_to_rollback_seconds'] * 1000:.0f} ms here (in AWS add the alarm "
        "period, EventBridge and a cold start)"
    )
    console.print(f"models: v1 AUC {summary.auc['v1']:.4f}, v2 AUC {summary.auc['v2']:.4f}")
    downloads = Path(summary.folder) / "downloads"
    console.print(f"drift report (open in a browser): {summary.report_html}")
    console.print(f"audit record of the rollback:     {summary.audit_record}")
    console.print(f"timeline of the endpoint:         {summary.timeline_html}")
    console.print(f"every report, drift result and audit record: {downloads} "
                  f"({len(summary.downloads)} files)")  # fmt: skip
    console.print(f"MLflow: {summary.mlflow_runs} runs in {summary.mlflow_tracking_uri}")
    # Commands to paste, with this environment's own executables: exact wherever the shell is.
    bin_dir = Path(sys.executable).parent
    # The runs' artifacts are in the emulated artifacts bucket (summary.mlflow_artifact_root):
    # MLflow's S3 client reaches it with this environment while the emulator runs.
    mlflow_ui = " ".join(
        [f"{k}={shlex.quote(v)}" for k, v in summary.mlflow_environment.items()]
        + [shlex.join([str(bin_dir / "mlflow"), "ui",
                       "--backend-store-uri", summary.mlflow_tracking_uri])]
    )  # fmt: skip
    console.print(f"summary: {Path(summary.folder) / 'summary.json'}")
    slowest = max(summary.stages, key=summary.stages.__getitem__)
    console.print(f"[bold green]done in {summary.seconds:.0f} s[/bold green] (slowest stage: "
                  f"{slowest}, {summary.stages[slowest]:.0f} s; every stage's time in "
                  "summary.json)")  # fmt: skip
    if summary.kept_running is None:
        console.print(
            "every process the demo started is stopped (MLflow's artifacts, from the emulated "
            f"bucket, copied to {downloads / 'mlflow'}); `mlops demo --keep-running` keeps "
            "the emulator up, for the CLI and `mlflow ui` on the demo's state"
        )
        return
    kept = summary.kept_running
    console.print(
        f"\n[bold]kept running[/bold] (--keep-running): the AWS emulator at "
        f"{kept['endpoint_url']} (pid {kept['pid']}) with the demo's registry, endpoint, "
        f"alarms and buckets; its MLflow store is in {kept['home']}. Then, in a shell:"
    )
    mlops = shlex.quote(str(bin_dir / "mlops"))
    for line in (
        f"export MLOPS_HOME={shlex.quote(kept['home'])}   # the CLI then uses the demo's state",
        f"{mlops} registry list",
        f"{mlops} endpoint status",
        f"{mlops} drift check          # the last hour's capture, per variant",
        f"{mlops} local serve --port 0   # serve the endpoint again",
        mlflow_ui,
        f"{mlops} local down           # stop it (the emulator forgets its state)",
    ):
        console.print(f"  {line}", markup=False)
