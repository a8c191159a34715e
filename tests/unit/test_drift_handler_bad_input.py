"""The drift function's answer to events it does not accept: one line, {"ok": false, "error"},
naming what is wrong, and no AWS call (a malformed event fails alike on every retry, so it is
answered, not raised into the dead-letter queue).

Malformed events are drawn at random (hypothesis): any JSON value at all, and the three events
it accepts with one field removed or replaced by a wrong value. A run's id names its reports'
keys and its time their window, so an id that is not a plain name, a time in the future (the
window would run ahead of its capture, and the rows written later never be checked) or before
2000 are refused too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas.drift import handler as drift_lambda
from lambdas.events import MAX_ERROR
from mlops.core.config import PlatformConfig
from mlops.core.functions import DriftSettings

SETTINGS = DriftSettings.for_platform(
    PlatformConfig(retrain_on_champion_drift=True),
    reports_bucket="mlops-dev-reports",
    capture_bucket="mlops-dev-capture",
    topic_arn=None,
)
NOW = datetime.now(UTC).replace(microsecond=0)
ENVELOPE: dict[str, Any] = {
    "version": "0",
    "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
    "account": "123456789012",
    "time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "region": "us-east-1",
    "resources": [],
}
SCHEDULE: dict[str, Any] = {
    **ENVELOPE,
    "source": "aws.events",
    "detail-type": "Scheduled Event",
    "detail": {},
}
ALARM: dict[str, Any] = {
    **ENVELOPE,
    "source": "aws.cloudwatch",
    "detail-type": "CloudWatch Alarm State Change",
    "detail": {
        "alarmName": SETTINGS.champion_drift_alarm,
        "state": {"value": "ALARM", "reason": "Threshold Crossed"},
    },
}
CHECK: dict[str, Any] = {"action": "check", "id": "console-test-1", "time": ENVELOPE["time"]}
VALID = {"schedule": SCHEDULE, "alarm": ALARM, "check": CHECK}


class ReachedAws(Exception):
    """The event was accepted: the function went on to make its clients."""


@dataclass
class Context:
    function_name: str = "mlops-dev-drift"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-drift"
    aws_request_id: str = "7c2fd1a4-3e8b-4c5e-9f0e-6b1d2a3c4e5f"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SETTINGS.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_REGION", "us-east-1")

    def no_aws() -> Any:
        raise ReachedAws

    monkeypatch.setattr(drift_lambda, "_aws", no_aws)


def answer(event: Any) -> dict[str, Any] | None:
    """The handler's refusal, or None if it accepted the event (and went on to AWS)."""
    try:
        result: dict[str, Any] = drift_lambda.handler(event, Context())  # type: ignore[arg-type]
    except ReachedAws:
        return None
    return result


def assert_refused(result: dict[str, Any] | None, *names: str) -> str:
    assert result is not None, "accepted"
    assert set(result) == {"ok", "error"}
    assert result["ok"] is False
    error = result["error"]
    assert isinstance(error, str)
    assert error
    assert error == error.strip()
    assert error.isprintable()  # one line: no newline, no control character
    assert len(error) <= MAX_ERROR
    for name in names:
        assert name in error, f"{name!r} not named in {error!r}"
    return error


def test_the_accepted_events_reach_aws() -> None:
    for event in VALID.values():
        assert answer(json.loads(json.dumps(event))) is None, event


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(event=JSON)
def test_any_json_is_answered_in_one_line(event: Any) -> None:
    result = answer(event)
    if result is None:
        # Accepted only as one of its events (a bare {"action": "check"} is one).
        assert isinstance(event, dict)
        assert event.get("action") == "check" or event.get("detail-type") in (
            "Scheduled Event",
            "CloudWatch Alarm State Change",
        )
        return
    assert_refused(result)


WRONG = (
    st.none()
    | st.booleans()
    | st.lists(st.integers(), min_size=1, max_size=2)
    | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)
)
BAD_IDS = st.sampled_from(
    ["", " ", "a/b", "../state", "x" * 129, "id with spaces", "line\nbreak", "-leading", "é"]
)
# An hour at least past the clock at the time of drawing: NOW is the module's import time,
# which a loaded machine may leave minutes behind by the time this test runs.
FUTURE = st.integers(min_value=60, max_value=10**6).map(
    lambda minutes: (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
)
BAD_TIMES = FUTURE | st.sampled_from(
    ["yesterday", "", "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2026-13-01T00:00:00Z"]
)
# The fields each event needs, and values none of them accept.
REQUIRED = {
    "schedule": ("version", "id", "source", "account", "time", "region", "resources"),
    "alarm": ("version", "id", "source", "account", "time", "region", "resources", "detail"),
    "check": ("action",),
}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(sorted(VALID)),
    data=st.data(),
)
def test_a_field_missing_or_wrong_is_refused_by_name(kind: str, data: st.DataObject) -> None:
    event = json.loads(json.dumps(VALID[kind]))
    field = data.draw(st.sampled_from([*REQUIRED[kind], "id", "time"]), label="field")
    how = data.draw(st.sampled_from(["missing", "wrong"]), label="how")
    if field == "id" and kind == "check":
        # Optional (the request id names the run): only a wrong one is refused.
        how = "wrong"
    if field == "time" and kind == "check" and how == "missing":
        how = "wrong"  # optional too (now)
    # null is "not given" for the request's optional fields.
    wrong = WRONG.filter(lambda v: v is not None) if kind == "check" else WRONG
    if how == "missing":
        del event[field]
    elif field == "id":
        event[field] = data.draw(BAD_IDS | wrong, label="id")
    elif field == "time":
        event[field] = data.draw(BAD_TIMES | wrong, label="time")
    else:
        event[field] = data.draw(WRONG, label=field)
    assert_refused(answer(event), field)


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({**SCHEDULE, "id": "a/b"}, "id"),
        ({**SCHEDULE, "id": "x" * 2000}, "id"),
        ({**CHECK, "id": "../../state"}, "id"),
        ({**ALARM, "id": "a b"}, "id"),
        ({**SCHEDULE, "time": "9999-12-31T23:59:59Z"}, "time"),
        ({**CHECK, "time": (NOW + timedelta(hours=2)).isoformat()}, "in the future"),
        ({**SCHEDULE, "time": "0001-01-01T00:00:00Z"}, "time"),
        ({**ALARM, "time": "9999-12-31T23:59:59Z"}, "time"),
        ({**ALARM, "detail": {**ALARM["detail"], "alarmName": "other\nalarm"}}, "not a champion"),
        ({**ALARM, "detail": {"alarmName": "x", "state": "ALARM"}}, "detail.state"),
        ({"action": "retrain"}, "action"),
        ({"detail-type": "Scheduled Event"}, "id"),
        (None, "expected"),
        ([SCHEDULE], "expected"),
        ("check", "expected"),
    ],
)  # fmt: skip
def test_known_bad_events(event: Any, named: str) -> None:
    assert_refused(answer(event), named)


def test_a_time_without_a_zone_is_utc_and_a_little_skew_is_allowed() -> None:
    naive = (NOW + timedelta(minutes=2)).replace(tzinfo=None).isoformat()
    assert answer({**CHECK, "time": naive}) is None
    assert answer({**SCHEDULE, "time": (NOW + timedelta(minutes=4)).isoformat()}) is None
