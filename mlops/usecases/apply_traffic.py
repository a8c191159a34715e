"""Apply a traffic decision to an endpoint: validate, decide, request, audit, notify.

One request is one audited decision. Weights already at the target are not requested again,
so repeating a request changes nothing. Requests carry an id (the EventBridge event id, the
Lambda request id, or one the CLI makes) that names the audit record: a redelivered request
finds its record and is neither recorded nor notified twice. Records are written with
If-None-Match, never overwritten, and say who asked, why, when, and the weights before and
after.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlops.adapters import endpoints
from mlops.adapters.audit import create, read, write_once
from mlops.adapters.lease import EndpointLease, Held, LeaseLost, now_iso
from mlops.adapters.mlflow_aliases import MlflowAliases, follow
from mlops.adapters.target import AwsTarget
from mlops.core import names
from mlops.core.functions import TrafficSettings
from mlops.core.lease import Claim, Decision, Holder, Ledger, refusal
from mlops.core.names import CHALLENGER
from mlops.core.traffic import (
    Action,
    TrafficError,
    next_rollout_step,
    normalized,
    rollback,
    same,
    shift_to,
    validate_weights,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient

AUDIT_PREFIX = names.TRAFFIC_AUDIT_PREFIX
CLAIMS_PREFIX = names.TRAFFIC_CLAIMS_PREFIX
log = logging.getLogger("mlops.usecases.apply_traffic")


class TrafficRequest(BaseModel):
    """What an operator, an alarm or a schedule asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    endpoint: str = Field(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
    reason: str = Field(min_length=3, max_length=1000)
    requested_by: str = Field(min_length=1, max_length=256)
    request_id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=128)
    requested_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # For action=shift: explicit weights, or the challenger's share.
    weights: dict[str, Any] | None = None
    challenger: float | None = None

    @field_validator("request_id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError("may hold only letters, digits, '-', '_' and '.'")
        return value

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> TrafficRequest:
        try:
            return cls.model_validate(dict(payload))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors()
            )
            raise TrafficError(f"invalid traffic request: {problems}") from None


@dataclass
class TrafficOutcome:
    request_id: str
    action: str
    endpoint: str
    requested_by: str
    reason: str
    requested_at: str
    weights_before: dict[str, float]
    weights_after: dict[str, float]
    changed: bool
    decision: str
    seconds_to_request: float | None = None
    api_calls: dict[str, int] = field(default_factory=dict)
    duplicate: bool = False  # a redelivery of a recorded request: its outcome, nothing changed
    audit_uri: str | None = None
    sequence: int | None = None  # this decision's place in the endpoint's ledger
    seen_sequence: int | None = None  # the ledger's sequence when this request first looked
    notice_error: str | None = None  # the decision stands; a retry of the request sends it
    aliases_error: str | None = None  # the decision stands; MLflow's aliases lag (why)

    def to_json(self) -> str:
        # allow_nan=False: the audit record and the notice are JSON, never NaN/Infinity.
        return json.dumps(asdict(self), indent=2, sort_keys=True, allow_nan=False)


VARIANT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # SageMaker's variant names


def refuse_early(request: TrafficRequest) -> None:
    """TrafficError for what is wrong with ``request`` whatever the endpoint holds, before
    any AWS call (the controller checks again against the endpoint's variants)."""
    if request.action is Action.PROMOTE:
        raise TrafficError(
            "action: promote changes which model serves: run it through the serving deployment "
            '(mlops serving promote, or the deploy function with {"action": "promote"}), not a '
            "weight change"
        )
    if request.action is not Action.SHIFT:
        return
    if request.weights is not None and request.challenger is not None:
        raise TrafficError("weights, challenger: give either weights or a challenger share")
    if request.weights is not None:
        for name in request.weights:
            if not VARIANT_NAME.fullmatch(name):
                raise TrafficError(f"weights: {name!r} is not a variant name")
        try:
            validate_weights(request.weights, list(request.weights))
        except TrafficError as exc:
            raise TrafficError(f"weights: {exc}") from None
    elif request.challenger is None:
        raise TrafficError("action shift needs weights or a challenger share (0 to 1)")
    else:
        shift_to(request.challenger)


class TrafficController:
    def __init__(
        self,
        *,
        sagemaker: SageMakerClient,
        s3: S3Client,
        audit_bucket: str,
        sns: SNSClient | None = None,
        topic_arn: str | None = None,
        cloudwatch: CloudWatchClient | None = None,
        challenger_alarms: Callable[[str], Sequence[str]] = lambda endpoint: (),
        rollout_steps: Sequence[float] = (0.1, 0.25, 0.5),
        ssm: SSMClient | None = None,
        weight_parameter: Callable[[str], str] | None = None,
        send_instance_counts: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        lease_wait_s: float = 240.0,
        settle_timeout_s: float = 60.0,
        aliases: MlflowAliases | None = None,
    ) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.audit_bucket = audit_bucket
        self.sns = sns
        self.topic_arn = topic_arn
        self.cloudwatch = cloudwatch
        self.challenger_alarms = challenger_alarms
        self.rollout_steps = tuple(rollout_steps)
        self.ssm = ssm
        self.weight_parameter = weight_parameter
        self.send_instance_counts = send_instance_counts
        self.sleep = sleep
        self.clock = clock
        self.lease_wait_s = lease_wait_s
        self.settle_timeout_s = settle_timeout_s
        self.aliases = aliases

    # -- idempotency and audit -------------------------------------------------------------

    def _audit(self, outcome: TrafficOutcome) -> bool:
        """Write the record under the request id; False if that request was recorded before.

        If-None-Match makes the write fail rather than replace: an audit record is never
        overwritten, and a redelivered request (same id) leaves the first record as it was.
        """
        key = f"{AUDIT_PREFIX}/{outcome.endpoint}/{outcome.request_id}.json"
        outcome.audit_uri = f"s3://{self.audit_bucket}/{key}"
        return write_once(self.s3, self.audit_bucket, key, outcome.to_json())

    def _record_weights(self, weights: Mapping[str, float], calls: endpoints.CallLog) -> None:
        """Keep the weights in force where the serving stack's endpoint config reads them."""
        if self.ssm is None or self.weight_parameter is None:
            return
        for variant, weight in sorted(weights.items()):
            self.ssm.put_parameter(
                Name=self.weight_parameter(variant),
                Value=f"{weight:g}",
                Type="String",
                Overwrite=True,
            )
            calls.record("PutParameter")

    def _notify(self, outcome: TrafficOutcome) -> str | None:
        """Announce the decision; the error if the notice could not be sent."""
        if not (self.sns and self.topic_arn):
            return None
        after = ", ".join(f"{k} {v:g}" for k, v in sorted(outcome.weights_after.items()))
        subject = f"{outcome.action} on {outcome.endpoint}: {after}"
        if not outcome.changed:
            subject = f"{outcome.action} on {outcome.endpoint}: no change ({after})"
        try:
            self.sns.publish(
                TopicArn=self.topic_arn, Subject=subject[:100], Message=outcome.to_json()
            )
        except ClientError as exc:
            log.warning("notification failed: %s", exc)
            return f"the notice was not sent ({exc.response['Error']['Code']})"
        return None

    def _announce(self, outcome: TrafficOutcome, claim: Claim, etag: str, key: str) -> None:
        """Send the notice once the lease is let go, and mark the claim as announced. A notice
        that fails is not lost: the claim says so, and a redelivery of the request (a retry)
        sends it without acting again."""
        if claim.notified:
            return
        recorded = TrafficOutcome(**claim.outcome) if claim.outcome else outcome
        outcome.notice_error = self._notify(recorded)
        if outcome.notice_error is None:
            claim.notified = True
            if create(self.s3, self.audit_bucket, key, claim.to_json(), if_match=etag) is None:
                log.warning("claim %s changed before it was marked as announced", key)

    # -- decisions ---------------------------------------------------------------------------

    def _alarms_ok(self, endpoint: str, calls: endpoints.CallLog) -> tuple[bool, list[str]]:
        names = list(self.challenger_alarms(endpoint))
        if not names or self.cloudwatch is None:
            return True, []
        described = self.cloudwatch.describe_alarms(AlarmNames=names)
        calls.record("DescribeAlarms")
        firing = [
            a["AlarmName"] for a in described.get("MetricAlarms", []) if a["StateValue"] == "ALARM"
        ]
        return not firing, firing

    def _target(
        self, request: TrafficRequest, state: endpoints.EndpointState, calls: endpoints.CallLog
    ) -> tuple[dict[str, float] | None, str]:
        variants = state.variant_names
        if request.action is Action.ROLLBACK:
            if CHALLENGER not in variants:
                return normalized(state.weights), "no challenger: all traffic is on the champion"
            return rollback(), "all traffic to the champion"
        # The request's own shape (one of weights or a share, no promote) was checked by
        # refuse_early before the lease: only what depends on the endpoint is checked here.
        if request.action is Action.SHIFT:
            if request.weights is not None:
                checked = validate_weights(request.weights, variants)
                return {**state.weights, **checked}, "weights as requested"
            if request.challenger is None:  # refuse_early refuses it; this narrows the type
                raise TrafficError("shift needs weights or a challenger share")
            if CHALLENGER not in variants:
                raise TrafficError(f"endpoint {state.name} has no challenger variant")
            return shift_to(request.challenger), f"challenger at {request.challenger:g}"
        if request.action is Action.ROLLOUT_STEP:
            if CHALLENGER not in variants:
                raise TrafficError(f"endpoint {state.name} has no challenger variant")
            ok, firing = self._alarms_ok(state.name, calls)
            decision = next_rollout_step(state.weights, self.rollout_steps, alarms_ok=ok)
            reason = decision.reason + (f" ({', '.join(firing)})" if firing else "")
            return decision.weights, f"{decision.action}: {reason}"
        raise TrafficError(
            f"{request.action} changes which model serves a variant: run it through the "
            "serving deployment (mlops promote), not a weight change"
        )

    def apply(self, request: TrafficRequest) -> TrafficOutcome:
        """Decide and apply ``request`` holding the endpoint's lease; notify after letting go."""
        refuse_early(request)  # what no endpoint could take is refused before any AWS call
        started = self.clock()
        calls = endpoints.CallLog()
        lease = EndpointLease(
            self.s3,
            self.audit_bucket,
            request.endpoint,
            wait_s=self.lease_wait_s,
            sleep=self.sleep,
            clock=self.clock,
        )
        held = lease.acquire(
            Holder(request.request_id, str(request.action), request.requested_by, now_iso())
        )
        calls.record("GetObject")
        calls.record("PutObject")
        try:
            outcome, ledger, claim, etag = self._decide(request, held, calls, started)
        except BaseException:
            # Nothing completed: let go at once (a failed release waits out the TTL instead).
            with contextlib.suppress(Exception):
                lease.release(held, held.ledger.released())
            raise
        lease.release(held, ledger)
        aliases = self.aliases
        if aliases is not None and outcome.changed and request.action is Action.ROLLBACK:
            # The rolled-back model is no longer the challenger (mlops.adapters.mlflow_aliases).
            outcome.aliases_error = follow(
                "rollback", lambda: aliases.rolled_back(f"{request.request_id}: {request.reason}")
            )
        self._announce(outcome, claim, etag, self._claim_key(request))
        return outcome

    def _decide(
        self,
        request: TrafficRequest,
        held: Held,
        calls: endpoints.CallLog,
        started: float,
    ) -> tuple[TrafficOutcome, Ledger, Claim, str]:
        ledger = held.ledger
        state = self._settled(request.endpoint, calls)
        outcome = TrafficOutcome(
            request_id=request.request_id,
            action=str(request.action),
            endpoint=request.endpoint,
            requested_by=request.requested_by,
            reason=request.reason,
            requested_at=request.requested_at.isoformat(),
            weights_before=normalized(state.weights),
            weights_after=normalized(state.weights),
            changed=False,
            decision="",
            sequence=ledger.sequence + 1,
            seen_sequence=held.seen_sequence,
        )
        refused = refusal(ledger, action=str(request.action), seen_sequence=held.seen_sequence)
        target, outcome.decision = (
            (None, refused) if refused else self._target(request, state, calls)
        )
        if target is not None:
            # The endpoint gets shares (summing to 1), as SSM and the audit record do: weights
            # of 25 and 75 are stored as 0.25 and 0.75, so all three read alike.
            target = normalized({**state.weights, **target})
        claim = Claim(
            request_id=request.request_id,
            action=str(request.action),
            sequence=ledger.sequence,
            before=outcome.weights_before,
            target=target,
            decision=outcome.decision,
            payload=request.model_dump(mode="json"),
        )
        # Claimed before anything changes; a claim that exists says this is a redelivery.
        calls.record("PutObject")
        claim_etag = create(self.s3, self.audit_bucket, self._claim_key(request), claim.to_json())
        if claim_etag is None:
            calls.record("GetObject")
            text, claim_etag = read(self.s3, self.audit_bucket, self._claim_key(request))
            claim = Claim.from_json(text)
            if claim.outcome is not None:
                return (
                    self._recorded(claim.outcome),
                    self._caught_up(ledger, claim),
                    claim,
                    claim_etag,
                )
            target = claim.target
            outcome.weights_before = claim.before
            outcome.decision = f"{claim.decision} (completed on redelivery)"
            if claim.sequence != ledger.sequence:
                # Interrupted, and other decisions completed since: it is not the same world.
                target = None
                outcome.decision = (
                    f"interrupted earlier, and {ledger.sequence - claim.sequence} decision(s) "
                    "completed since; not applied again"
                )
        if target is not None and not same(target, state.weights):
            endpoints.update_weights(
                self.sagemaker,
                request.endpoint,
                target,
                # The API takes counts as optional; sending a count read a moment ago could undo a
                # concurrent scale-out. The emulator needs them (it drops counts not sent).
                instances=(
                    {v.name: v.desired_instances or v.instances for v in state.variants}
                    if self.send_instance_counts
                    else None
                ),
                calls=calls,
                sleep=self.sleep,
            )
        # Measured here: the new weights are requested; what follows is bookkeeping.
        outcome.seconds_to_request = round(self.clock() - started, 4)
        if target is not None:
            outcome.weights_after = normalized({**state.weights, **target})
            outcome.changed = not same(outcome.weights_after, outcome.weights_before)
        # Every run (changed or not) leaves SSM holding the weights now in force, so a failed
        # write in an earlier run is repaired by the next one.
        self._record_weights(outcome.weights_after, calls)
        calls.record("PutObject")  # the audit record, next
        outcome.api_calls = dict(calls.calls)
        if not self._audit(outcome):
            # Audited by an interrupted earlier delivery that could not complete its claim.
            text, _ = read(self.s3, self.audit_bucket, self._audit_key(request))
            claim.outcome = json.loads(text)
            return self._recorded(claim.outcome), self._caught_up(ledger, claim), claim, claim_etag
        claim.outcome = asdict(outcome)
        # Nothing to announce without a topic.
        claim.notified = self.sns is None or not self.topic_arn
        completed = create(
            self.s3,
            self.audit_bucket,
            self._claim_key(request),
            claim.to_json(),
            if_match=claim_etag,
        )
        if completed is None:
            raise LeaseLost(f"the claim of {request.request_id} changed while we held the lease")
        claim_etag = completed
        decision = Decision(
            request_id=request.request_id,
            action=str(request.action),
            requested_by=request.requested_by,
            sequence=ledger.sequence + 1,
            at=now_iso(),
            weights=outcome.weights_after,
            reason=request.reason[:200],
        )
        return outcome, ledger.completed(decision, changed=outcome.changed), claim, claim_etag

    # -- what a redelivery finds ---------------------------------------------------------------

    def _claim_key(self, request: TrafficRequest) -> str:
        return f"{CLAIMS_PREFIX}/{request.endpoint}/{request.request_id}.json"

    def _audit_key(self, request: TrafficRequest) -> str:
        return f"{AUDIT_PREFIX}/{request.endpoint}/{request.request_id}.json"

    @staticmethod
    def _caught_up(ledger: Ledger, claim: Claim) -> Ledger:
        """The ledger after a completed request whose attempt could not write it (the release
        failed): its decision is entered now, so a rollback still halts the rollout."""
        if claim.outcome is None or ledger.sequence != claim.sequence:
            return ledger.released()
        recorded = TrafficOutcome(**claim.outcome)
        decision = Decision(
            request_id=recorded.request_id,
            action=recorded.action,
            requested_by=recorded.requested_by,
            sequence=claim.sequence + 1,
            at=now_iso(),
            weights=recorded.weights_after,
            reason=recorded.reason[:200],
        )
        return ledger.completed(decision, changed=recorded.changed)

    @staticmethod
    def _recorded(fields: Mapping[str, Any]) -> TrafficOutcome:
        """A completed request's outcome, returned to its redelivery: nothing changed now."""
        recorded = TrafficOutcome(**fields)
        recorded.duplicate = True
        recorded.changed = False
        recorded.decision = f"request {recorded.request_id} was handled before; {recorded.decision}"
        return recorded

    def _settled(self, endpoint: str, calls: endpoints.CallLog) -> endpoints.EndpointState:
        """The endpoint's weights once no update is in flight: a decision is computed from the
        weights it will replace, not from ones an update (a deployment's) is about to change."""
        state = endpoints.describe(self.sagemaker, endpoint, calls)
        if state.status in ("Updating", "Creating", "SystemUpdating", "UpdateRollbackFailed"):
            state = endpoints.wait_until_in_service(
                self.sagemaker,
                endpoint,
                calls=calls,
                timeout=self.settle_timeout_s,
                sleep=self.sleep,
                clock=self.clock,
            )
        return state


def traffic_controller(
    settings: TrafficSettings,
    aws: AwsTarget,
    *,
    send_instance_counts: bool = False,
    aliases: MlflowAliases | None = None,
) -> TrafficController:
    """The controller of one endpoint, wired from its settings: the traffic function's, the
    CLI's (``TrafficSettings.for_platform``) and the demo's alike."""
    return TrafficController(
        sagemaker=aws.client("sagemaker"),
        s3=aws.client("s3"),
        sns=aws.client("sns") if settings.topic_arn else None,
        topic_arn=settings.topic_arn,
        cloudwatch=aws.client("cloudwatch"),
        audit_bucket=settings.audit_bucket,
        challenger_alarms=lambda _endpoint: settings.gate_alarms,
        rollout_steps=settings.rollout_steps,
        ssm=aws.client("ssm") if settings.weight_parameters else None,
        weight_parameter=settings.weight_parameters.__getitem__
        if settings.weight_parameters
        else None,
        send_instance_counts=send_instance_counts,
        aliases=aliases,
    )
