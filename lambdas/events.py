"""The events the platform's functions accept, as Powertools parser models.

EventBridge's envelope is Powertools' ``EventBridgeModel``; each detail is typed here. An event
of any other shape (``None``, a list, ``detail: null``, a state given as a string) is refused
with a message that says what was expected, and the handler returns that refusal: a malformed
event fails the same way on every retry, so retrying it into the dead-letter queue helps no one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
SCHEDULED_EVENT = "Scheduled Event"


class EventRefused(ValueError):
    """An event this function does not accept; the message says what it expected."""


class AlarmState(BaseModel):
    value: str = Field(min_length=1)
    reason: str = "no reason given"


class AlarmDetail(BaseModel):
    alarm_name: str = Field(alias="alarmName", min_length=1)
    state: AlarmState


class AlarmStateChange(EventBridgeModel):
    """CloudWatch's "CloudWatch Alarm State Change" event (EventBridge)."""

    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    detail: AlarmDetail


class ModelPackageDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model_package_arn: str = Field(alias="ModelPackageArn", min_length=1)
    model_package_group_name: str = Field(alias="ModelPackageGroupName", min_length=1)
    model_approval_status: str = Field(alias="ModelApprovalStatus", min_length=1)


class ModelPackageStateChange(EventBridgeModel):
    """SageMaker's "SageMaker Model Package State Change" event (EventBridge)."""

    detail_type: Literal["SageMaker Model Package State Change"] = Field(alias="detail-type")
    detail: ModelPackageDetail


class ScheduledEvent(EventBridgeModel):
    """EventBridge's "Scheduled Event": a rule's schedule fired (its time names the run)."""

    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    detail: dict[str, Any] = Field(default_factory=dict)


class CheckRequest(BaseModel):
    """A direct invocation of the drift function: check now (console, ``mlops drift scheduled``)."""

    model_config = ConfigDict(extra="ignore")  # as the console's test events may carry more

    action: Literal["check"]
    id: str | None = Field(default=None, min_length=1, max_length=128)  # names the run
    time: datetime | None = None  # the run's time (default: now)


Model = TypeVar("Model", bound=BaseModel)


def problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors())


def parse_event(event: object, model: type[Model]) -> Model:
    """``event`` as ``model``, or EventRefused naming what is wrong with it."""
    if not isinstance(event, dict):
        raise EventRefused(f"expected a JSON object as the event, got {type(event).__name__}")
    try:
        return parse(event=event, model=model)
    except ValidationError as exc:
        raise EventRefused(f"malformed {model.__name__} event: {problems(exc)}") from None


def detail_type(event: object) -> str | None:
    """The EventBridge detail type of ``event``, if it is an EventBridge event at all."""
    if isinstance(event, dict) and isinstance(event.get("detail-type"), str):
        return str(event["detail-type"])
    return None
