"""What the embedded default does in AWS's place: EMF log lines to CloudWatch datapoints, the
drift alarms' evaluation and the state-change events it emits, and the alarm routes."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from lambdas.drift.handler import emit_metrics
from mlops.core.capture import CaptureRecord, encode_record, parse_line
from mlops.core.config import PlatformConfig
from mlops.core.names import schedule_seconds
from mlops.core.specs import (
    DRIFT,
    DRIFT_METRIC,
    DRIFT_NAMESPACE,
    TRAFFIC,
    RuleSpec,
    alarm_rules,
    drift_alarm_period,
    drift_alarms,
)
from mlops.core.variant_check import DRIFT as DRIFT_STATUS
from mlops.core.variant_check import NOT_ENOUGH_DATA, VariantDriftReport, check_variant
from mlops.local.aws_services import create_alarms, evaluate_alarms, ingest_emf
from mlops.usecases.check_drift import VariantOutcome
from pipeline_steps.data import synthetic_dataset
from pipeline_steps.schema import FEATURE_NAMES

REGION = "us-east-1"
CONFIG = PlatformConfig()
ENDPOINT = CONFIG.endpoint_name
WINDOW_END = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name=REGION)


# --- EMF ingestion ---------------------------------------------------------------------------


def capture(rows: int, seed: int, *, drifted: bool = False) -> list[CaptureRecord]:
    frame = synthetic_dataset(rows, seed=seed)
    if drifted:
        for name in ("lpi", "fmde", "disea", "lncoins", "physlm"):
            frame[name] = frame[name] * 0.3 + frame[name].max() * 0.5
        frame["idp"] = 1
    records = []
    for row in frame[list(FEATURE_NAMES)].to_numpy(dtype=float):
        output = json.dumps({"predictions": [{"score": 0.4, "label": 0}]})
        line = encode_record(
            request=",".join(str(v) for v in row).encode(),
            request_type="text/csv",
            response=output.encode(),
            response_type="application/json",
            inference_time=WINDOW_END,
        )
        records.append(parse_line(line))
    return records


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    frame = synthetic_dataset(3000, seed=1)
    return {name: frame[name].to_numpy(dtype=float) for name in FEATURE_NAMES}


def outcome(variant: str, report: VariantDriftReport, weight: float) -> VariantOutcome:
    return VariantOutcome(
        endpoint=ENDPOINT,
        variant=variant,
        package_arn=f"arn:aws:sagemaker:{REGION}:123456789012:model-package/visits/1",
        weight=weight,
        window_start=WINDOW_END - timedelta(hours=1),
        window_end=WINDOW_END,
        report=report,
        files=1,
        labelled_events=0,
        json_uri="s3://reports/drift/result.json",
        html_uri=None,
    )


def printed(*outcomes: VariantOutcome) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for o in outcomes:
            emit_metrics(o)
    return out.getvalue().splitlines()


def statistics(
    cloudwatch: Any, metric: str, variant: str, statistic: str = "Maximum"
) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = cloudwatch.get_metric_statistics(
        Namespace=DRIFT_NAMESPACE,
        MetricName=metric,
        Dimensions=[
            {"Name": "EndpointName", "Value": ENDPOINT},
            {"Name": "VariantName", "Value": variant},
        ],
        StartTime=WINDOW_END - timedelta(hours=2),
        EndTime=WINDOW_END + timedelta(hours=2),
        Period=60,
        Statistics=[statistic],
    )["Datapoints"]
    return points


def test_emitted_metrics_become_datapoints(
    cloudwatch: Any, reference: dict[str, np.ndarray]
) -> None:
    drifted = check_variant(
        "challenger", reference, capture(300, seed=4, drifted=True), min_rows=100
    )
    calm = check_variant("champion", reference, capture(300, seed=3), min_rows=100)
    assert (drifted.status, calm.status) == (DRIFT_STATUS, "no-drift")
    lines = printed(outcome("challenger", drifted, 0.25), outcome("champion", calm, 0.75))
    assert len(lines) == 2
    # Six metrics per checked variant: rows, malformed, weight, share, features, detected.
    assert ingest_emf(cloudwatch, lines) == 12

    for variant, report, expected in (("challenger", drifted, 1.0), ("champion", calm, 0.0)):
        points = statistics(cloudwatch, DRIFT_METRIC, variant)
        assert len(points) == 1
        assert points[0]["Maximum"] == expected
        assert points[0]["Timestamp"] == WINDOW_END
        rows = statistics(cloudwatch, "RowsChecked", variant, "Sum")
        assert [p["Sum"] for p in rows] == [300.0]
        assert rows[0]["Unit"] == "Count"
        share = statistics(cloudwatch, "DriftShare", variant)
        assert report.data is not None
        assert share[0]["Maximum"] == pytest.approx(report.data.drift_share)
    weight = statistics(cloudwatch, "VariantWeight", "challenger")
    assert [p["Maximum"] for p in weight] == [0.25]

    listed = cloudwatch.list_metrics(Namespace=DRIFT_NAMESPACE, MetricName=DRIFT_METRIC)["Metrics"]
    dimensions = sorted(
        tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in listed
    )
    assert dimensions == [
        (("EndpointName", ENDPOINT), ("VariantName", "challenger")),
        (("EndpointName", ENDPOINT), ("VariantName", "champion")),
    ]


def test_not_enough_data_emits_no_drift_datapoint(
    cloudwatch: Any, reference: dict[str, np.ndarray]
) -> None:
    thin = check_variant("challenger", reference, capture(20, seed=5), min_rows=100)
    assert thin.status == NOT_ENOUGH_DATA
    assert ingest_emf(cloudwatch, printed(outcome("challenger", thin, 0.25))) == 3
    assert statistics(cloudwatch, DRIFT_METRIC, "challenger") == []
    assert [p["Sum"] for p in statistics(cloudwatch, "RowsChecked", "challenger", "Sum")] == [20.0]


def test_lines_that_are_not_emf_are_ignored(
    cloudwatch: Any, reference: dict[str, np.ndarray]
) -> None:
    report = check_variant("challenger", reference, capture(150, seed=6), min_rows=100)
    emf = printed(outcome("challenger", report, 0.5))
    lines = [
        "START RequestId: 1 Version: $LATEST",
        '{"level": "INFO", "message": "variant checked"}',  # a JSON log line, not EMF
        "[1, 2, 3]",
        '{"_aws": "not an object"}',
        *emf,
        "END RequestId: 1",
    ]
    assert ingest_emf(cloudwatch, lines) == 6
    assert len(statistics(cloudwatch, DRIFT_METRIC, "challenger")) == 1


def test_emf_lists_become_one_datapoint_per_value(cloudwatch: Any) -> None:
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": int(WINDOW_END.timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": DRIFT_NAMESPACE,
                        "Dimensions": [["EndpointName", "VariantName"]],
                        "Metrics": [{"Name": "RowsChecked", "Unit": "Count"}],
                    }
                ],
            },
            "EndpointName": ENDPOINT,
            "VariantName": "champion",
            "RowsChecked": [3, 4, 5],
        }
    )
    assert ingest_emf(cloudwatch, [line]) == 3
    points = statistics(cloudwatch, "RowsChecked", "champion", "Sum")
    assert [(p["Sum"], p["Timestamp"]) for p in points] == [(12.0, WINDOW_END)]


# --- alarm evaluation ------------------------------------------------------------------------


def put_drift(cloudwatch: Any, variant: str, value: float, when: datetime) -> None:
    cloudwatch.put_metric_data(
        Namespace=DRIFT_NAMESPACE,
        MetricData=[
            {
                "MetricName": DRIFT_METRIC,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": ENDPOINT},
                    {"Name": "VariantName", "Value": variant},
                ],
                "Timestamp": when,
                "Value": value,
                "Unit": "Count",
            }
        ],
    )


def states(cloudwatch: Any, names: list[str]) -> dict[str, str]:
    alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    return {a["AlarmName"]: a["StateValue"] for a in alarms}


def test_drift_alarm_goes_to_alarm_once_and_back_to_ok(cloudwatch: Any) -> None:
    names = create_alarms(cloudwatch, drift_alarms(CONFIG))
    champion, challenger = f"{ENDPOINT}-champion-drift", f"{ENDPOINT}-challenger-drift"
    assert names == [champion, challenger]
    alarm = cloudwatch.describe_alarms(AlarmNames=[challenger])["MetricAlarms"][0]
    assert alarm["Period"] == drift_alarm_period(CONFIG) == 3600
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "EndpointName": ENDPOINT,
        "VariantName": "challenger",
    }
    start = states(cloudwatch, names)

    put_drift(cloudwatch, "challenger", 1.0, WINDOW_END)
    put_drift(cloudwatch, "champion", 0.0, WINDOW_END)
    now = WINDOW_END + timedelta(seconds=1)
    events = evaluate_alarms(cloudwatch, names, now, region=REGION)
    alarms = [e for e in events if e["detail"]["state"]["value"] == "ALARM"]
    assert len(alarms) == 1
    event = alarms[0]
    assert event["detail-type"] == "CloudWatch Alarm State Change"
    assert event["source"] == "aws.cloudwatch"
    assert event["region"] == REGION
    assert event["time"] == "2026-11-26T14:00:01Z"
    assert event["resources"] == [alarm["AlarmArn"]]
    assert event["detail"]["alarmName"] == challenger
    assert event["detail"]["previousState"] == {"value": start[challenger]}
    assert "1 datapoint(s)" in event["detail"]["state"]["reason"]
    # A 0 datapoint does not breach: the champion does not go to ALARM.
    assert champion not in {e["detail"]["alarmName"] for e in alarms}
    assert states(cloudwatch, names) == {champion: "OK", challenger: "ALARM"}

    # Evaluated again: still ALARM, and a state that stays emits nothing.
    assert evaluate_alarms(cloudwatch, names, now + timedelta(seconds=1), region=REGION) == []
    # The alarm looks at two periods: the next check's datapoint may land late in its period
    # without the alarm flapping to OK in between.
    for within in (WINDOW_END + timedelta(minutes=59), WINDOW_END + timedelta(minutes=119)):
        assert evaluate_alarms(cloudwatch, names, within, region=REGION) == []
        assert states(cloudwatch, names)[challenger] == "ALARM"

    # Two periods with no datapoints: missing data is not breaching, back to OK.
    later = WINDOW_END + timedelta(hours=2, minutes=1)
    recovered = evaluate_alarms(cloudwatch, names, later, region=REGION)
    assert [(e["detail"]["alarmName"], e["detail"]["state"]["value"]) for e in recovered] == [
        (challenger, "OK")
    ]
    assert recovered[0]["detail"]["previousState"] == {"value": "ALARM"}
    assert states(cloudwatch, names)[challenger] == "OK"


def test_zero_datapoint_raises_no_alarm(cloudwatch: Any) -> None:
    names = create_alarms(cloudwatch, drift_alarms(CONFIG))
    put_drift(cloudwatch, "challenger", 0.0, WINDOW_END)
    events = evaluate_alarms(cloudwatch, names, WINDOW_END + timedelta(seconds=1), region=REGION)
    assert [e for e in events if e["detail"]["state"]["value"] == "ALARM"] == []
    assert set(states(cloudwatch, names).values()) == {"OK"}


def test_emitted_drift_sets_off_the_alarm(
    cloudwatch: Any, reference: dict[str, np.ndarray]
) -> None:
    names = create_alarms(cloudwatch, drift_alarms(CONFIG))
    drifted = check_variant(
        "challenger", reference, capture(300, seed=4, drifted=True), min_rows=100
    )
    ingest_emf(cloudwatch, printed(outcome("challenger", drifted, 0.25)))
    events = evaluate_alarms(cloudwatch, names, WINDOW_END + timedelta(seconds=1), region=REGION)
    assert [(e["detail"]["alarmName"], e["detail"]["state"]["value"]) for e in events] == [
        (f"{ENDPOINT}-challenger-drift", "ALARM")
    ]


def test_create_alarms_keeps_an_alarm_in_alarm(cloudwatch: Any) -> None:
    names = create_alarms(cloudwatch, drift_alarms(CONFIG))
    put_drift(cloudwatch, "challenger", 1.0, WINDOW_END)
    evaluate_alarms(cloudwatch, names, WINDOW_END + timedelta(seconds=1), region=REGION)
    assert create_alarms(cloudwatch, drift_alarms(CONFIG)) == names
    assert states(cloudwatch, names)[f"{ENDPOINT}-challenger-drift"] == "ALARM"


# --- alarm routes and schedules --------------------------------------------------------------


def alarms_of(rule: RuleSpec) -> set[str]:
    assert rule.event_pattern is not None
    return set(rule.event_pattern["detail"]["alarmName"])


def test_default_routes_send_challenger_alarms_to_traffic() -> None:
    rules = alarm_rules(CONFIG)
    assert [r.target for r in rules] == [TRAFFIC]
    assert alarms_of(rules[0]) == {
        f"{ENDPOINT}-challenger-5xx",
        f"{ENDPOINT}-challenger-latency",
        f"{ENDPOINT}-challenger-drift",
    }
    assert not any("champion" in a for r in rules for a in alarms_of(r))


def test_challenger_drift_is_not_routed_without_auto_rollback() -> None:
    rules = alarm_rules(PlatformConfig(auto_rollback_on_challenger_drift=False))
    assert [r.target for r in rules] == [TRAFFIC]
    assert alarms_of(rules[0]) == {f"{ENDPOINT}-challenger-5xx", f"{ENDPOINT}-challenger-latency"}


def test_champion_drift_routes_to_the_drift_function_when_retraining() -> None:
    rules = alarm_rules(PlatformConfig(retrain_on_champion_drift=True))
    by_target = {r.target: alarms_of(r) for r in rules}
    assert by_target[DRIFT] == {f"{ENDPOINT}-champion-drift"}
    assert f"{ENDPOINT}-challenger-drift" in by_target[TRAFFIC]
    assert f"{ENDPOINT}-champion-drift" not in by_target[TRAFFIC]
    assert len({r.construct_id for r in rules}) == len(rules) == 2


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(1 hour)", 3600),
        ("rate(6 hours)", 6 * 3600),
        ("rate(1 day)", 86400),
        ("rate(2 days)", 2 * 86400),
        ("cron(0 * * * ? *)", 3600),
        ("cron(0/15 * * * ? *)", 3600),
    ],
)
def test_schedule_seconds(schedule: str, seconds: int) -> None:
    assert schedule_seconds(schedule) == seconds


@pytest.mark.parametrize(
    ("schedule", "period"),
    [("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(2 days)", 86400)],
)
def test_alarm_period_is_one_check_within_a_day(schedule: str, period: int) -> None:
    assert drift_alarm_period(PlatformConfig(drift_schedule=schedule)) == period
