"""`mlops endpoint history` on the emulator: the page is made from the records the platform
wrote (traffic audit records by the traffic controller, drift results in the reports bucket,
the alarms' states), opens offline, and names what it cannot show; bad input is refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mlops.adapters.target import AwsTarget
from mlops.cli import app
from mlops.core.drift_stats import ColumnDrift, DriftResult
from mlops.core.finite import dumps
from mlops.core.variant_check import VariantDriftReport
from mlops.usecases.apply_traffic import TrafficController, TrafficRequest
from mlops.usecases.drift_results import VariantOutcome
from mlops.usecases.endpoint_history import write_history
from tests.local.test_traffic_control import make_endpoint

ENDPOINT = "mlops-dev-visits"  # the configured endpoint of the default cdk.json
BUCKET = "mlops-dev-reports"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/2"


def cli(emulator: AwsTarget, tmp_path: Path, *args: str) -> Any:
    env = {"MLOPS_ENDPOINT_URL": emulator.endpoint_url or "", "MLOPS_HOME": str(tmp_path / "home")}
    return CliRunner().invoke(app, ["endpoint", "history", *args], env=env)


def write_result(s3: Any, variant: str, end: datetime, drifted: int) -> None:
    """A drift result as mlops.usecases.drift_results writes it, under its layout."""
    columns = tuple(
        ColumnDrift(f"f{i}", "wasserstein", "distance", 0.3 if i < drifted else 0.01, 0.1,
                    i < drifted, 3000, 1500)
        for i in range(9)
    )  # fmt: skip
    report = VariantDriftReport(
        variant=variant, status="drift" if drifted > 4 else "no-drift", rows=1500, records=300,
        malformed=0, min_rows=1000,
        data=DriftResult(columns, drifted, drifted / 9, 0.5, drifted > 4),
        prediction=ColumnDrift("prediction_score", "wasserstein", "distance", 0.02, 0.1, False,
                               3000, 1500),
    )  # fmt: skip
    outcome = VariantOutcome(
        endpoint=ENDPOINT, variant=variant, package_arn=ARN, weight=0.25,
        window_start=end - timedelta(minutes=10), window_end=end, report=report, files=3,
        labelled_events=0, json_uri="", html_uri=None,
    )  # fmt: skip
    key = f"drift/{ENDPOINT}/{variant}/{end:%Y/%m/%d}/{end:%Y%m%dT%H%M%SZ}-run.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=dumps(outcome.as_dict()).encode())


def test_the_page_shows_what_was_recorded(emulator: AwsTarget, tmp_path: Path) -> None:
    # Given: nothing recorded yet for the endpoint (the first call bootstraps the buckets).
    make_endpoint(emulator.client("sagemaker"), {"champion": 1.0, "challenger": 0.0}, ENDPOINT)
    empty = cli(emulator, tmp_path, "--out", str(tmp_path))
    assert empty.exit_code == 0, empty.output
    assert f"{ENDPOINT}: no records yet" in empty.output
    assert "No records yet" in Path(empty.output.strip().splitlines()[-1]).read_text()

    # When: traffic decisions through the controller, two checks, the drift alarm fires.
    s3 = emulator.client("s3")
    controller = TrafficController(
        sagemaker=emulator.client("sagemaker"), s3=s3, audit_bucket=BUCKET,
        sleep=lambda _: None, send_instance_counts=True,
    )  # fmt: skip
    for action, reason, extra in (
        ("shift", "canary for v2", {"challenger": 0.25}),
        ("rollback", "alarm mlops-dev-visits-challenger-drift: ALARM", {}),
    ):
        controller.apply(TrafficRequest.parse(
            {"action": action, "endpoint": ENDPOINT, "reason": reason, "requested_by": "test",
             **extra}
        ))  # fmt: skip
    write_result(s3, "challenger", T0, drifted=8)
    write_result(s3, "champion", T0, drifted=0)
    cloudwatch = emulator.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=f"{ENDPOINT}-challenger-drift", Namespace="MLOps", MetricName="drift",
        Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )  # fmt: skip
    cloudwatch.set_alarm_state(
        AlarmName=f"{ENDPOINT}-challenger-drift", StateValue="ALARM", StateReason="drift found"
    )
    page_file = tmp_path / "pages" / "history.html"
    result = cli(emulator, tmp_path, ENDPOINT, "--out", str(page_file))

    # Then: the path, whole, on the last line; the page holds the reasons and the variants.
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(page_file.resolve())
    assert f"{ENDPOINT}: 2 actions, 2 drift checks, 1 alarm changes" in result.output
    assert "the emulator keeps no alarm history" in result.output
    page = page_file.read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    for text in ("canary for v2", "alarm mlops-dev-visits-challenger-drift: ALARM", "drift found",
                 "champion weight", "challenger weight", "f0, f1, f2, f3, f4, f5, f6, f7",
                 "mlops-dev-visits/2"):  # fmt: skip
        assert text in page, text

    # A page is never written over a file.
    again = cli(emulator, tmp_path, ENDPOINT, "--out", str(page_file))
    assert again.exit_code == 2
    assert f"{page_file} exists" in again.output
    assert page_file.read_text() == page
    # Pages into a folder, in the same second: each its own file, each whole, nothing partial.
    folder = tmp_path / "many"
    folder.mkdir()
    for _ in range(2):  # at one and the same time
        write_history(emulator, BUCKET, ENDPOINT, folder, now=T0)
    pages = sorted(folder.iterdir())
    assert [p.suffix for p in pages] == [".html", ".html"], pages
    assert all(p.read_text().rstrip().endswith("</html>") for p in pages)


def test_an_unknown_endpoint_is_named(emulator: AwsTarget, tmp_path: Path) -> None:
    result = cli(emulator, tmp_path, "no-such-endpoint", "--out", str(tmp_path))

    assert result.exit_code == 1
    assert "endpoint no-such-endpoint does not exist here and has no records" in result.output
    assert list(tmp_path.glob("*.html")) == []
    bad = cli(emulator, tmp_path, "not an endpoint")
    assert bad.exit_code == 2
    assert "is not an endpoint name" in bad.output
