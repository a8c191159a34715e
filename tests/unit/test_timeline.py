"""An endpoint's timeline from hand-built records: order, weights as steps, a rollback and its
reason, checks with and without drift, alarm history read through botocore's Stubber (the
emulator has no DescribeAlarmHistory), and the page: self-contained, with the reasons in it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.stub import Stubber

from mlops.adapters import timeline_page
from mlops.adapters.endpoint_history import alarm_changes, result_keys
from mlops.adapters.timeline_page import render
from mlops.core import timeline
from mlops.core.timeline import alarm_history_change, build

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/{}"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def serving(minutes: float, action: str, weights: dict[str, float], **after: str) -> Any:
    return (f"s3://r/audit/serving/ep/{action}-{minutes}.json", {
        "request_id": f"{action}-{minutes}", "action": action, "requested_by": "demo",
        "reason": f"approved at {minutes}", "requested_at": at(minutes), "before": {},
        "after": after, "weights": weights, "changed": True, "summary": f"{action} done",
    })  # fmt: skip


def traffic(minutes: float, action: str, before: dict[str, float], after: dict[str, float],
            reason: str, sequence: int) -> Any:  # fmt: skip
    return (f"s3://r/audit/traffic/ep/t{sequence}.json", {
        "request_id": f"t{sequence}", "action": action, "endpoint": "ep", "requested_by": "alarm",
        "reason": reason, "requested_at": at(minutes), "weights_before": before,
        "weights_after": after, "changed": before != after, "decision": f"{action} decided",
        "sequence": sequence,
    })  # fmt: skip


def result(minutes: float, variant: str, drifted: list[str], score: float) -> Any:
    columns = [{"column": f"f{i}", "drifted": f"f{i}" in drifted} for i in range(9)]
    return (f"s3://r/drift/ep/{variant}/{minutes}.json", {
        "endpoint": "ep", "variant": variant, "model_package_arn": ARN.format(2),
        "window": {"start": at(minutes - 10), "end": at(minutes)}, "status":
        "drift" if drifted else "no-drift", "rows": 1500, "report_html": f"s3://r/{variant}.html",
        "data": {"columns": columns, "drift_share": len(drifted) / 9, "share_threshold": 0.5},
        "prediction": {"score": score, "threshold": 0.1, "statistic": "distance",
                       "drifted": score >= 0.1},
    })  # fmt: skip


def lifecycle() -> dict[str, Any]:
    """Deploy v1, deploy v2 as challenger, two rollout steps, a clean check, a drifted one,
    the rollback; handed over shuffled."""
    return {
        "serving": [
            serving(2, "deploy", {"champion": 0.9, "challenger": 0.1},
                    champion=ARN.format(1), challenger=ARN.format(2)),
            serving(0, "deploy", {"champion": 1.0}, champion=ARN.format(1)),
        ],
        "traffic": [
            traffic(30, "rollback", {"champion": 0.75, "challenger": 0.25},
                    {"champion": 1.0, "challenger": 0.0}, "alarm ep-challenger-drift: ALARM", 3),
            traffic(4, "rollout-step", {"champion": 0.9, "challenger": 0.1},
                    {"champion": 0.75, "challenger": 0.25}, "demo rollout", 1),
            traffic(5, "rollout-step", {"champion": 0.75, "challenger": 0.25},
                    {"champion": 0.75, "challenger": 0.25}, "demo rollout", 2),
        ],
        "results": [
            result(29, "challenger", ["f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"], 0.4),
            result(15, "champion", [], 0.01),
            result(15, "challenger", [], 0.02),
            result(29, "champion", [], 0.02),
        ],
    }  # fmt: skip


def test_records_in_any_order_come_out_in_time_order() -> None:
    built = build("ep", **lifecycle())

    assert [(a.source, a.action) for a in built.actions] == [
        ("serving", "deploy"), ("serving", "deploy"), ("traffic", "rollout-step"),
        ("traffic", "rollout-step"), ("traffic", "rollback"),
    ]  # fmt: skip
    assert [(c.at, c.variant) for c in built.checks] == [
        (T0 + timedelta(minutes=15), "challenger"), (T0 + timedelta(minutes=15), "champion"),
        (T0 + timedelta(minutes=29), "challenger"), (T0 + timedelta(minutes=29), "champion"),
    ]  # fmt: skip
    assert built.variants == ["challenger", "champion"]
    assert built.notes == []


def test_weights_are_steps_of_the_changes_and_hold_until_the_end() -> None:
    built = build("ep", **lifecycle())

    def minute(m: float) -> datetime:
        return T0 + timedelta(minutes=m)

    # The unchanged rollout step (sequence 2, held at 0.25) adds no step.
    assert built.weights["champion"] == [
        (minute(0), 1.0), (minute(2), 0.9), (minute(4), 0.75), (minute(30), 1.0),
    ]  # fmt: skip
    assert built.weights["challenger"] == [
        (minute(2), 0.1), (minute(4), 0.25), (minute(30), 0.0),
    ]  # fmt: skip
    rollback = built.actions[-1]
    assert rollback.reason == "alarm ep-challenger-drift: ALARM"
    assert rollback.weights_after == {"champion": 1.0, "challenger": 0.0}


def test_a_change_no_record_shows_is_a_step_at_the_next_record() -> None:
    # Weights changed outside the platform between two records: the second's "before" says so.
    records = [
        traffic(1, "shift", {"champion": 1.0, "challenger": 0.0},
                {"champion": 0.5, "challenger": 0.5}, "try half", 1),
        traffic(9, "rollback", {"champion": 0.8, "challenger": 0.2},
                {"champion": 1.0, "challenger": 0.0}, "latency", 2),
    ]  # fmt: skip
    built = build("ep", traffic=records)

    assert [w for _, w in built.weights["challenger"]] == [0.0, 0.5, 0.2, 0.0]


def test_a_check_with_no_drift_keeps_its_values() -> None:
    built = build("ep", results=[result(15, "champion", [], 0.01)])

    (check,) = built.checks
    assert check.status == "no-drift"
    assert check.drift_share == 0.0
    assert check.drifted_features == ()
    assert check.features == 9
    assert check.prediction_score == 0.01
    assert check.prediction_drifted is False
    assert built.weights == {}


def test_bad_records_are_skipped_and_named_duplicates_count_once() -> None:
    good = traffic(4, "rollout-step", {"champion": 1.0}, {"champion": 0.9}, "step", 1)
    built = build(
        "ep",
        traffic=[good, good, ("s3://r/bad.json", {"action": "shift", "requested_at": "yesterday"})],
        results=[("s3://r/r.json", {"variant": "champion"}),
                 ("s3://r/p.json", {"variant": "champion", "status": "pending"})],
    )  # fmt: skip

    assert len(built.actions) == 1
    assert built.checks == []
    assert built.notes == [
        "skipped traffic record s3://r/bad.json: 'yesterday' is not an ISO 8601 time",
        "skipped drift result s3://r/r.json: no window",
    ]


def test_only_result_files_are_read_from_the_drift_prefix() -> None:
    keys = [
        "drift/ep/challenger/2026/11/30/20261130T120000Z-run.json",
        "drift/ep/challenger/2026/11/30/20261130T120000Z-run.html",
        "drift/ep/challenger/state.json",
        "drift/ep/jobs/mlops-dev-drift-ab/run.json",
        "drift/ep-2/champion/2026/11/30/x.json",
    ]
    assert result_keys(keys, "ep") == keys[:1]


def history_item(alarm: str, minutes: float, old: str, new: str) -> dict[str, Any]:
    data = {"oldState": {"stateValue": old},
            "newState": {"stateValue": new, "stateReason": f"{old} to {new} reason"}}  # fmt: skip
    return {
        "AlarmName": alarm,
        "Timestamp": T0 + timedelta(minutes=minutes),
        "HistoryItemType": "StateUpdate",
        "HistorySummary": f"Alarm updated from {old} to {new}",
        "HistoryData": json.dumps(data),
    }


def test_alarm_history_is_read_through_describe_alarm_history() -> None:
    cloudwatch = boto3.client(
        "cloudwatch",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",  # noqa: S106 - a stubbed client's dummy key
    )
    alarms = ["ep-challenger-drift", "ep-champion-5xx"]
    with Stubber(cloudwatch) as stub:
        stub.add_response(
            "describe_alarm_history",
            {
                "AlarmHistoryItems": [
                    history_item(alarms[0], 29, "INSUFFICIENT_DATA", "OK"),
                    history_item(alarms[0], 30, "OK", "ALARM"),
                    {
                        **history_item(alarms[0], 31, "ALARM", "OK"),
                        "HistoryData": '{"oldState": "ALARM", "newState": ["OK"]}',
                    },
                ]
            },
            {"AlarmName": alarms[0], "HistoryItemType": "StateUpdate"},
        )
        stub.add_response(
            "describe_alarm_history",
            {"AlarmHistoryItems": []},
            {"AlarmName": alarms[1], "HistoryItemType": "StateUpdate"},
        )
        changes, notes = alarm_changes(cloudwatch, "ep", alarms, history=True)
        stub.assert_no_pending_responses()

    # An item not as CloudWatch writes it is skipped and named, not fatal to the page.
    assert notes == ["skipped an alarm history item: ep-challenger-drift: a state in HistoryData "
                     "is not a JSON object"]  # fmt: skip
    built = build("ep", alarms=reversed(changes))
    assert [(a.variant, a.old, a.new) for a in built.alarms] == [
        ("challenger", "INSUFFICIENT_DATA", "OK"), ("challenger", "OK", "ALARM"),
    ]  # fmt: skip
    assert built.alarms[1].reason == "OK to ALARM reason"


def test_an_alarm_name_of_another_endpoint_has_no_variant() -> None:
    change = alarm_history_change("ep", history_item("other-champion-5xx", 1, "OK", "ALARM"))
    assert change.variant is None
    assert timeline.alarm_variant("ep", "ep-challenger-latency") == "challenger"


def test_the_page_is_self_contained_and_holds_the_reasons() -> None:
    records = lifecycle()
    records["traffic"].append(
        traffic(31, "shift", {"champion": 1.0, "challenger": 0.0},
                {"champion": 0.5, "challenger": 0.5}, "<script>alert(1)</script>", 4)
    )  # fmt: skip
    alarms = [alarm_history_change("ep", history_item("ep-challenger-drift", 30, "OK", "ALARM"))]
    page = render(build("ep", alarms=alarms, **records), generated_at=T0 + timedelta(hours=1))

    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", page, re.IGNORECASE)
    assert "plotly.js" in page.lower()
    assert len(page) > 1_000_000  # plotly.js is inside the page
    for text in (
        "alarm ep-challenger-drift: ALARM",
        "demo rollout",
        "approved at 0",
        "champion weight",
        "challenger weight",
        "mlops-dev-visits/2",
        "OK to ALARM reason",
    ):
        assert text in page, text  # fmt: skip
    # A reason is text, never markup: escaped in the tables and in the hover text.
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # plotly's JSON hides a "<" either way: the hover text is checked where it is made.
    (shift,) = [a for a in build("ep", **records).actions if "script" in a.reason]
    assert "reason: &lt;script&gt;alert(1)&lt;/script&gt;" in timeline_page._action_hover(shift)


def test_an_endpoint_with_no_records_gets_a_page_that_says_so() -> None:
    page = render(build("ep"), generated_at=T0)

    assert "No records yet" in page
    assert "<script" not in page
