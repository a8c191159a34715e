"""The traffic and deploy functions' answer to events they do not accept: {"ok": false,
"error": <one line naming the field>}, returned, never raised (a malformed event fails the same
way on every retry: raising it would only retry it into the dead-letter queue), and no AWS call.

Built for the class of input, not instances: a table of known bad events; every field of each
accepted event (the alarm, a console request, a shift, the approval, a promotion) removed or set
to values of the wrong type or range; and, drawn at random (hypothesis), any JSON value at all
and the accepted events with any field replaced by any JSON value.

No AWS call is possible: botocore's request method raises, the traffic controller and the
serving change are stubs that record what reached them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.client import BaseClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas.deploy import handler as deploy_lambda
from lambdas.events import MAX_ERROR
from lambdas.traffic import handler as traffic_lambda
from mlops.core.config import PlatformConfig
from mlops.core.functions import DeploySettings, TrafficSettings
from tests.unit.test_events import ENVELOPE  # the EventBridge envelope, as AWS documents it

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics")

CONFIG = PlatformConfig()
TRAFFIC = TrafficSettings.for_platform(CONFIG, audit_bucket="mlops-dev-reports", topic_arn=None)
DEPLOY = DeploySettings.for_platform(
    CONFIG, audit_bucket="mlops-dev-reports", topic_arn=None, cloudformation_role_arn=None
)
ENDPOINT = TRAFFIC.endpoint_name
ALARM: dict[str, Any] = {
    **ENVELOPE,
    "source": "aws.cloudwatch",
    "detail-type": "CloudWatch Alarm State Change",
    "detail": {
        "alarmName": TRAFFIC.gate_alarms[0],
        "state": {"value": "ALARM", "reason": "Threshold Crossed: 3 datapoints >= 1"},
    },
}
ROLLBACK: dict[str, Any] = {
    "action": "rollback",
    "endpoint": ENDPOINT,
    "reason": "p99 latency doubled",
    "requested_by": "oncall@example.com",
    "request_id": "console-1",
    "requested_at": "2026-11-30T10:00:00Z",
}
SHIFT: dict[str, Any] = {
    "action": "shift",
    "reason": "next step",
    "requested_by": "oncall@example.com",
    "challenger": 0.25,
}
WEIGHTS: dict[str, Any] = {**SHIFT, "challenger": None, "weights": {"champion": 3, "challenger": 1}}
PACKAGE = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{DEPLOY.model_package_group}/3"
APPROVAL: dict[str, Any] = {
    **ENVELOPE,
    "source": "aws.sagemaker",
    "detail-type": "SageMaker Model Package State Change",
    "detail": {
        "ModelPackageGroupName": DEPLOY.model_package_group,
        "ModelPackageArn": PACKAGE,
        "ModelApprovalStatus": "Approved",
        "ModelPackageVersion": 3,
    },
}
PROMOTE: dict[str, Any] = {
    "action": "promote",
    "reason": "challenger won",
    "requested_by": "oncall@example.com",
    "request_id": "promote-1",
}


@dataclass
class Context:
    aws_request_id: str = "7c2fd1a4-3e8b-4c5e-9f0e-6b1d2a3c4e5f"
    function_name: str = "mlops-dev-traffic"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-traffic"


@dataclass
class Reached:
    """What got past the handlers' checks to the work (the controller, the serving change)."""

    requests: list[Any] = field(default_factory=list)


@dataclass
class Outcome:
    endpoint: str = ENDPOINT
    changed: bool = False
    seconds_to_request: float | None = None
    notice_error: str | None = None


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> Reached:
    for key, value in {**TRAFFIC.environment(), **DEPLOY.environment()}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_REGION", "us-east-1")

    def no_aws(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"an AWS call: {args[1:2]}")

    monkeypatch.setattr(BaseClient, "_make_api_call", no_aws)
    seen = Reached()

    class Controller:
        def apply(self, request: Any) -> Outcome:
            seen.requests.append(request)
            return Outcome()

    def change_serving(request: Any, **_: Any) -> Any:
        seen.requests.append(request)
        return type(
            "Outcome",
            (),
            {"duplicate": True, "notice_error": None, "record": type("R", (), {"request_id": "r"})},
        )

    monkeypatch.setattr(traffic_lambda, "traffic_controller", lambda *a, **k: Controller())
    monkeypatch.setattr(deploy_lambda, "change_serving", change_serving)
    return seen


def traffic(event: Any) -> dict[str, Any]:
    result: dict[str, Any] = traffic_lambda.handler(event, Context())
    return result


def deploy(event: Any) -> dict[str, Any]:
    result: dict[str, Any] = deploy_lambda.handler(event, Context())  # type: ignore[arg-type]
    return result


HANDLERS = {"traffic": traffic, "deploy": deploy}


def assert_refused(result: dict[str, Any], *names: str) -> str:
    """A refusal: one printable line of at most MAX_ERROR characters naming each of ``names``."""
    assert set(result) == {"ok", "error"}, result
    assert result["ok"] is False
    error = result["error"]
    assert isinstance(error, str)
    assert error
    assert error.isprintable(), error  # no newline, no control character
    assert len(error) <= MAX_ERROR
    assert "Traceback" not in error
    assert "pydantic.dev" not in error  # pydantic's own multi-line report is not passed on
    for name in names:
        assert name in error, f"{name!r} not named in {error!r}"
    return error


def with_field(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``event`` with the field at ``path`` set to ``value`` (removed, if ``value`` is MISSING)."""
    changed = copy.deepcopy(event)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    if value is MISSING:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return changed


MISSING = object()
HUGE = "x" * 1_000_000
ODD = "é\u202e\x00\nline\r\x1b[31m"
NOT_STRINGS: list[Any] = [None, 7, 1.5, True, [], {}, ["a"], {"a": 1}]
NOT_OBJECTS: list[Any] = [None, 7, "x", [], [{}], True]

# Every field of each accepted event, with what it must refuse: (fixture, path, bad values).
FIELDS: list[tuple[str, dict[str, Any], tuple[str, ...], list[Any]]] = [
    ("traffic", ALARM, ("version",), [MISSING, *NOT_STRINGS]),
    ("traffic", ALARM, ("id",), [MISSING, *NOT_STRINGS, "", "a/b", "../x", " id", ODD, HUGE]),
    ("traffic", ALARM, ("detail-type",), [*NOT_STRINGS, "", "Scheduled Event", ODD, HUGE]),
    ("traffic", ALARM, ("source",), [MISSING, *NOT_STRINGS]),
    ("traffic", ALARM, ("account",), [MISSING, *NOT_STRINGS]),
    ("traffic", ALARM, ("time",), [MISSING, None, [], {}, "yesterday", "2026-13-01T00:00Z"]),
    ("traffic", ALARM, ("region",), [MISSING, *NOT_STRINGS]),
    ("traffic", ALARM, ("resources",), [MISSING, None, 7, "x", [7], {}]),
    ("traffic", ALARM, ("detail",), [MISSING, *NOT_OBJECTS, {}]),
    ("traffic", ALARM, ("detail", "alarmName"),
     [MISSING, *NOT_STRINGS, "", "other-alarm", f"{ENDPOINT}-champion-5xx", ODD, HUGE]),
    ("traffic", ALARM, ("detail", "state"), [MISSING, *NOT_OBJECTS, "ALARM", {}]),
    ("traffic", ALARM, ("detail", "state", "value"),
     [MISSING, *NOT_STRINGS, "", "alarm", "BOGUS", "OK", "INSUFFICIENT_DATA", ODD, HUGE]),
    ("traffic", ALARM, ("detail", "state", "reason"), NOT_STRINGS),
    ("traffic", ROLLBACK, ("action",), [MISSING, *NOT_STRINGS, "", "dance", "ROLLBACK", HUGE]),
    ("traffic", ROLLBACK, ("action",), ["promote"]),
    ("traffic", ROLLBACK, ("endpoint",),
     [*NOT_STRINGS, "", "bad name!", "a" * 64, "other-endpoint", ODD, HUGE]),
    ("traffic", ROLLBACK, ("reason",), [MISSING, *NOT_STRINGS, "", "ab", "x" * 1001, HUGE]),
    ("traffic", ROLLBACK, ("requested_by",), [MISSING, *NOT_STRINGS, "", "x" * 257]),
    ("traffic", ROLLBACK, ("request_id",), [*NOT_STRINGS, "", "a/b", "x" * 129, ODD]),
    ("traffic", ROLLBACK, ("requested_at",), [None, [], {}, "yesterday", ODD]),
    ("traffic", ROLLBACK, ("x" * 300,), [1]),  # an unknown field, with a long name
    ("traffic", ROLLBACK, (ODD,), [1]),
    ("traffic", SHIFT, ("challenger",),
     [MISSING, None, "abc", [], {}, -0.1, 1.5, float("nan"), float("inf"), -float("inf"), 10**400]),
    ("traffic", WEIGHTS, ("weights",),
     [None, "x", 7, [], {}, {"champion": "abc"}, {"champion": -1}, {"champion": float("nan")},
      {"champion": float("inf")}, {"champion": 10**400}, {"champion": True}, {"champion": 0},
      {"champion": 2e6}, {"": 1}, {"bad name": 1}, {ODD: 1}, {"champion": [1]}]),
    ("traffic", WEIGHTS, ("challenger",), [0.5]),  # both weights and a share
    ("deploy", APPROVAL, ("version",), [MISSING, *NOT_STRINGS]),
    ("deploy", APPROVAL, ("id",), [MISSING, *NOT_STRINGS, "", "a/b", "x" * 129, ODD]),
    ("deploy", APPROVAL, ("detail-type",), [*NOT_STRINGS, "", "Scheduled Event", HUGE]),
    ("deploy", APPROVAL, ("time",), [MISSING, None, [], "yesterday"]),
    ("deploy", APPROVAL, ("detail",), [MISSING, *NOT_OBJECTS, {}]),
    ("deploy", APPROVAL, ("detail", "ModelPackageArn"),
     [MISSING, *NOT_STRINGS, "", "not an arn", "arn:aws:s3:::bucket/key", PACKAGE + "\n",
      PACKAGE.replace("123456789012", "12345"), HUGE, ODD]),
    ("deploy", APPROVAL, ("detail", "ModelPackageGroupName"),
     [MISSING, *NOT_STRINGS, "", "other-group", "bad group!", "g" * 64, ODD, HUGE]),
    ("deploy", APPROVAL, ("detail", "ModelApprovalStatus"),
     [MISSING, *NOT_STRINGS, "", "approved", "Approved ", ODD, HUGE]),
    ("deploy", PROMOTE, ("action",), [*NOT_STRINGS, "", "dance", "PROMOTE", HUGE]),
    ("deploy", PROMOTE, ("reason",), [*NOT_STRINGS, "", "ab", "x" * 1001]),
    ("deploy", PROMOTE, ("requested_by",), [*NOT_STRINGS, "", "x" * 257]),
    ("deploy", PROMOTE, ("request_id",), [*NOT_STRINGS[1:], "", "a/b", "x" * 129, ODD]),
]  # fmt: skip


def _named(path: tuple[str, ...]) -> str:
    """What a refusal must name: the field (a long or odd unknown field is named shortened)."""
    name = path[-1]
    return name[:40] if name.isprintable() else "line"


@pytest.mark.parametrize(
    ("handler", "event", "path", "value"),
    [
        pytest.param(h, event, path, value, id=f"{h}-{_named(path)[:20]}-{i}")
        for h, event, path, values in FIELDS
        for i, value in enumerate(values)
    ],
)
def test_every_field_wrong_or_missing_is_refused_by_name(
    reached: Reached, handler: str, event: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    result = HANDLERS[handler](with_field(event, path, value))
    assert_refused(result, _named(path))
    assert reached.requests == []


@pytest.mark.parametrize(
    ("handler", "event", "named"),
    [
        ("traffic", None, "got NoneType"),
        ("traffic", [ROLLBACK], "got list"),
        ("traffic", "rollback", "got str"),
        ("traffic", 3, "got int"),
        ("traffic", {}, "action"),
        ("traffic", [[[[]]]], "got list"),
        ("traffic", {"detail-type": None}, "detail-type"),
        ("traffic", {"detail-type": "CloudWatch Alarm State Change"}, "id"),
        ("traffic", {**ALARM, "detail": {"alarmName": ODD * 10_000, "state": {}}}, "alarmName"),
        ("traffic", {**SHIFT, "challenger": None}, "challenger"),
        ("traffic", {**ROLLBACK, **{f"extra{i}": i for i in range(50)}}, "extra0"),
        ("deploy", None, "got NoneType"),
        ("deploy", [APPROVAL], "got list"),
        ("deploy", "promote", "got str"),
        ("deploy", {}, "action"),
        ("deploy", {"action": None}, "action"),
        ("deploy", {"detail-type": "SageMaker Model Package State Change"}, "id"),
        ("deploy", {**APPROVAL, "detail": {"ModelApprovalStatus": "Approved"}}, "ModelPackageArn"),
    ],
)  # fmt: skip
def test_known_bad_events(reached: Reached, handler: str, event: Any, named: str) -> None:
    assert_refused(HANDLERS[handler](event), named)
    assert reached.requests == []


@pytest.mark.parametrize(
    ("handler", "event"),
    [
        ("traffic", ALARM),
        ("traffic", ROLLBACK),
        ("traffic", SHIFT),
        ("traffic", WEIGHTS),
        ("deploy", APPROVAL),
        ("deploy", PROMOTE),
    ],
)
def test_the_accepted_events_reach_the_work(reached: Reached, handler: str, event: Any) -> None:
    """The fixtures above are valid: each refusal is the change made to it."""
    result = HANDLERS[handler](json.loads(json.dumps(event)))
    assert result["ok"] is True, result
    assert len(reached.requests) == 1


def test_a_rejected_package_is_skipped_without_aws(reached: Reached) -> None:
    result = deploy(with_field(APPROVAL, ("detail", "ModelApprovalStatus"), "Rejected"))
    assert result == {"ok": True, "skipped": f"{PACKAGE} is Rejected"}
    assert reached.requests == []


# -- drawn at random -------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)
FIXTURES = {"traffic": [ALARM, ROLLBACK, SHIFT, WEIGHTS], "deploy": [APPROVAL, PROMOTE]}


def _paths(event: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for key, value in event.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found += _paths(value, (*prefix, key))
    return found


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(handler=st.sampled_from(sorted(HANDLERS)), event=JSON)
def test_any_json_is_refused_in_one_line(reached: Reached, handler: str, event: Any) -> None:
    assert_refused(HANDLERS[handler](event))
    assert reached.requests == []


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), handler=st.sampled_from(sorted(HANDLERS)))
def test_an_accepted_event_with_any_field_changed(
    reached: Reached, data: st.DataObject, handler: str
) -> None:
    """Refused in one line naming the field changed; or still valid, and on to the work (an
    alarm's time as epoch seconds, another request id, a package Rejected: skipped)."""
    event = data.draw(st.sampled_from(FIXTURES[handler]), label="event")
    path = data.draw(st.sampled_from(_paths(event)), label="path")
    value = data.draw(st.just(MISSING) | JSON, label="value")
    before = len(reached.requests)
    result = HANDLERS[handler](with_field(event, path, value))
    if result["ok"] is False:
        assert_refused(result, _named(path))
        assert len(reached.requests) == before
    else:
        assert len(reached.requests) == before + 1 or "skipped" in result
