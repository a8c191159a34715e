"""The events the platform's functions accept, as Powertools parser models.

EventBridge's envelope is Powertools' ``EventBridgeModel``; each detail is typed here. An event
of any other shape (``None``, a list, ``detail: null``, a state given as a string) is refused
with a message that says what was expected, and the handler returns that refusal: a malformed
event fails the same way on every retry, so retrying it into the dead-letter queue helps no one.
A refusal is one line of at most ``MAX_ERROR`` characters that names the field (``refusal``),
whatever the event holds: huge strings, newlines, control characters.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
SCHEDULED_EVENT = "Scheduled Event"
PROCESSING_JOB_STATE_CHANGE = "SageMaker Processing Job State Change"


MAX_ERROR = 300  # characters in a refusal's error: one line, whatever the event held
_LONG_WORD = 80  # a longer run of non-blanks (a 5 MB name, say) is cut short
_LONG_WORDS = re.compile(rf"\S{{{_LONG_WORD + 1},}}")

# An event's id names an audit record or a run (S3 keys): EventBridge's are UUIDs.
EventId = Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
# SageMaker's names (model package groups, endpoints, variants): ^[a-zA-Z0-9](-*[a-zA-Z0-9])*$
SageMakerName = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
]
PackageArn = Annotated[
    str,
    Field(
        max_length=2048,
        pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:model-package/[^\s/]+/[0-9]+$",
    ),
]


class NoticeNotSent(RuntimeError):
    """A decision stands (applied and audited) but its notice failed: the invocation fails so
    that Lambda retries it, and the retry, finding the request completed, only sends it."""


class EventRefused(ValueError):
    """An event this function does not accept; the message says what it expected."""


class _Event(EventBridgeModel):
    id: EventId


class AlarmState(BaseModel):
    value: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    reason: str = "no reason given"


class AlarmDetail(BaseModel):
    alarm_name: str = Field(alias="alarmName", min_length=1, max_length=255)
    state: AlarmState


class AlarmStateChange(_Event):
    """CloudWatch's "CloudWatch Alarm State Change" event (EventBridge)."""

    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    detail: AlarmDetail


class ModelPackageDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model_package_arn: PackageArn = Field(alias="ModelPackageArn")
    model_package_group_name: SageMakerName = Field(alias="ModelPackageGroupName")
    model_approval_status: Literal["Approved", "Rejected", "PendingManualApproval"] = Field(
        alias="ModelApprovalStatus"
    )


class ModelPackageStateChange(_Event):
    """SageMaker's "SageMaker Model Package State Change" event (EventBridge)."""

    detail_type: Literal["SageMaker Model Package State Change"] = Field(alias="detail-type")
    detail: ModelPackageDetail


class ScheduledEvent(EventBridgeModel):
    """EventBridge's "Scheduled Event": a rule's schedule fired (its time names the run)."""

    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    detail: dict[str, Any] = Field(default_factory=dict)


class ProcessingJobDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the rest of DescribeProcessingJob's answer

    processing_job_name: SageMakerName = Field(alias="ProcessingJobName")
    processing_job_status: Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"] = (
        Field(alias="ProcessingJobStatus")
    )


class ProcessingJobStateChange(_Event):
    """SageMaker's "SageMaker Processing Job State Change" event (EventBridge): its detail is
    DescribeProcessingJob's answer."""

    detail_type: Literal["SageMaker Processing Job State Change"] = Field(alias="detail-type")
    detail: ProcessingJobDetail


class CheckRequest(BaseModel):
    """A direct invocation of the drift function: check now (console, ``mlops drift scheduled``)."""

    model_config = ConfigDict(extra="ignore")  # as the console's test events may carry more

    action: Literal["check"]
    id: str | None = Field(default=None, min_length=1, max_length=128)  # names the run
    time: datetime | None = None  # the run's time (default: now)


Model = TypeVar("Model", bound=BaseModel)


def problems(exc: ValidationError, most: int = 3) -> str:
    """The first ``most`` problems, each as ``field: what is wrong``."""
    errors = exc.errors()
    shown = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in errors[:most]
    )
    return shown + (f" (and {len(errors) - most} more)" if len(errors) > most else "")


def _shorter(word: re.Match[str]) -> str:
    text = word.group()
    return f"{text[: _LONG_WORD - 20]}...({len(text)} chars)"


def one_line(message: object) -> str:
    """``message`` as one printable line of at most ``MAX_ERROR`` characters: control
    characters escaped, whitespace runs collapsed, over-long words and the end cut."""
    text = _LONG_WORDS.sub(_shorter, " ".join(str(message).split()))[: 2 * MAX_ERROR]
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


def refusal(error: object) -> dict[str, Any]:
    """A handler's answer to an event it does not accept (returned, never raised)."""
    return {"ok": False, "error": one_line(error)}


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
