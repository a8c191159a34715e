"""Change which approved model packages serve: deploy an approved package, or promote.

One flow for every caller (the deploy function on an approval event, ``mlops serving
deploy|promote``, the demo): read what serves, decide (``mlops.core.approval``), deploy the
change, record it once under the request id, notify. Where the change is deployed is the
caller's ``Deployment``: the serving stack's parameters in AWS, the emulator's endpoint on
the embedded default.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import ClientError

from mlops.adapters import registry
from mlops.adapters.audit import create, read, write_once
from mlops.adapters.lease import EndpointLease, Held, LeaseLost, now_iso
from mlops.adapters.mlflow_aliases import MlflowAliases, follow
from mlops.core import names
from mlops.core.approval import (
    DeploymentRecord,
    PackageRefused,
    PackageScope,
    ServingChange,
    ServingState,
    foreign_package,
    on_approval,
    on_promote,
    package_refusal,
    record,
)
from mlops.core.lease import Decision, Holder, Ledger, refusal
from mlops.core.traffic import TrafficError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient

ServingAction = Literal["deploy", "promote"]
log = logging.getLogger(__name__)


class Deployment(Protocol):
    """Where serving changes go."""

    def current(self) -> ServingState: ...

    def deploy(self, change: ServingChange) -> str:
        """Apply ``change``; return a status to record (``UPDATE_IN_PROGRESS``, ...)."""
        ...


@dataclass(frozen=True)
class ServingRequest:
    action: ServingAction
    requested_by: str
    reason: str
    package_arn: str | None = None  # action=deploy: the approved package
    request_id: str | None = None  # names the audit record: a redelivery is recorded once


@dataclass
class ServingOutcome:
    record: DeploymentRecord
    duplicate: bool  # this request id was recorded before: nothing recorded or notified again
    notice_error: str | None = None  # deployed and audited; the request's retry sends it
    aliases_error: str | None = None  # deployed and audited; MLflow's aliases lag (why)


def audit(s3: S3Client, bucket: str, endpoint: str, entry: DeploymentRecord) -> bool:
    """Write the record under its request id, never over another; False if it exists."""
    key = _audit_key(endpoint, entry.request_id)
    entry.audit_uri = f"s3://{bucket}/{key}"
    return write_once(
        s3, bucket, key, json.dumps(asdict(entry), indent=2, sort_keys=True, allow_nan=False)
    )


def approve_package(
    sagemaker: SageMakerClient,
    package_arn: str,
    status: str,
    reason: str = "",
    *,
    aliases: MlflowAliases | None = None,
) -> str | None:
    """Set a package's approval status (``mlops registry approve``, the demo) and move MLflow's
    aliases with it; returns why the aliases did not move, if they did not."""
    registry.set_approval(sagemaker, package_arn, status, reason)
    if aliases is None:
        return None
    return follow("approval", lambda: aliases.approved(package_arn, status, reason))


def verify_package(sagemaker: SageMakerClient, arn: str, scope: PackageScope) -> None:
    """Raise ``PackageRefused`` unless the registry says ``arn`` may serve (``scope``)."""
    if foreign := foreign_package(arn, scope):
        raise PackageRefused(foreign)
    try:
        described = sagemaker.describe_model_package(ModelPackageName=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            raise PackageRefused(
                f"{arn}: {exc.response['Error'].get('Message', 'not found')}"
            ) from None
        raise
    refused = package_refusal(
        str(described.get("ModelPackageArn", arn)),
        described.get("ModelApprovalStatus"),
        described.get("ModelPackageGroupName"),
        scope,
    )
    if refused:
        raise PackageRefused(refused)


def change_serving(
    request: ServingRequest,
    *,
    deployment: Deployment,
    registry: SageMakerClient,
    scope: PackageScope,
    endpoint: str,
    initial_challenger_weight: float,
    s3: S3Client,
    audit_bucket: str,
    sns: SNSClient | None = None,
    topic_arn: str | None = None,
    lease_wait_s: float = 240.0,
    aliases: MlflowAliases | None = None,
) -> ServingOutcome:
    """Decide, deploy, record and notify one serving change.

    Made while holding the endpoint's lease (mlops.core.lease), like every weight change: a
    redelivered request returns its record and deploys nothing. ``TrafficError`` (nothing to
    promote, a package that may not serve, a promotion a rollback superseded, ...) and the
    deployment's own errors propagate before anything is recorded.
    """
    if request.package_arn:
        verify_package(registry, request.package_arn, scope)
    request_id = request.request_id or str(uuid.uuid4())
    lease = EndpointLease(s3, audit_bucket, endpoint, wait_s=lease_wait_s)
    held = lease.acquire(Holder(request_id, request.action, request.requested_by, now_iso()))
    try:
        outcome, ledger, claim, claim_etag = _deploy_held(
            request,
            request_id,
            held,
            deployment,
            endpoint,
            initial_challenger_weight,
            s3,
            audit_bucket,
        )
    except BaseException:
        with contextlib.suppress(Exception):
            lease.release(held, held.ledger.released())
        raise
    lease.release(held, ledger)
    if aliases is not None and not outcome.duplicate:
        after = ServingState(**outcome.record.after)
        outcome.aliases_error = follow(request.action, lambda: aliases.serving(after))
    if sns is not None and topic_arn and not claim.get("notified"):
        # Once the lease is let go; a notice that fails is sent by the request's retry (the
        # claim says it was not sent), which deploys nothing again.
        try:
            sns.publish(
                TopicArn=topic_arn,
                Subject=f"{request.action} on {endpoint}"[:100],
                Message=outcome.record.summary,
            )
        except ClientError as exc:
            # Deployed and audited: a lost notice must not make the caller deploy again.
            log.warning("notification failed: %s", exc)
            outcome.notice_error = f"the notice was not sent ({exc.response['Error']['Code']})"
            return outcome
        claim["notified"] = True
        key = f"{names.SERVING_CLAIMS_PREFIX}/{endpoint}/{request_id}.json"
        if create(s3, audit_bucket, key, json.dumps(claim), if_match=claim_etag) is None:
            log.warning("claim %s changed before it was marked as notified", key)
    return outcome


def _deploy_held(
    request: ServingRequest,
    request_id: str,
    held: Held,
    deployment: Deployment,
    endpoint: str,
    initial_challenger_weight: float,
    s3: S3Client,
    audit_bucket: str,
) -> tuple[ServingOutcome, Ledger, dict[str, Any], str]:
    """The change, made while holding the endpoint's lease; its claim and the claim's ETag."""
    if refused := refusal(held.ledger, action=request.action, seen_sequence=held.seen_sequence):
        raise TrafficError(refused)
    # Claimed before anything changes; a claim that exists says this is a redelivery.
    claim_key = f"{names.SERVING_CLAIMS_PREFIX}/{endpoint}/{request_id}.json"
    claim: dict[str, Any] = {
        **asdict(request),
        "request_id": request_id,
        "sequence": held.ledger.sequence,
        "record": None,
        "notified": False,
    }
    claim_etag = create(s3, audit_bucket, claim_key, json.dumps(claim))
    if claim_etag is None:
        text, claim_etag = read(s3, audit_bucket, claim_key)
        claim = json.loads(text)
        if claim.get("record"):
            return _duplicate(claim["record"]), held.ledger.released(), claim, claim_etag
    current = deployment.current()
    if claim.get("decided"):
        # Interrupted after deciding: finish what was decided, not a new decision from what
        # serves now (which the interrupted attempt may have changed already).
        entry, change = _finish(claim, current, deployment)
    else:
        if request.action == "promote":
            change = on_promote(current)
        else:
            if not request.package_arn:
                raise ValueError("a deploy request names the approved package")
            change = on_approval(
                current, request.package_arn, initial_challenger_weight=initial_challenger_weight
            )
        entry = record(
            action=request.action,
            requested_by=request.requested_by,
            reason=request.reason,
            before=current,
            change=change,
            request_id=request_id,
        )
        if change.changed:
            # The decision, in the claim before anything changes: a retry finishes it.
            claim["decided"] = asdict(entry)
            claim_etag = create(s3, audit_bucket, claim_key, json.dumps(claim), if_match=claim_etag)
            if claim_etag is None:
                raise LeaseLost(f"the claim of {request_id} changed while we held the lease")
        entry.stack_status = deployment.deploy(change) if change.changed else "UNCHANGED"
    if not audit(s3, audit_bucket, endpoint, entry):
        # Audited by an interrupted earlier delivery that could not complete its claim (so it
        # notified no one): complete the claim with the record it wrote, and notify.
        text, _ = read(s3, audit_bucket, _audit_key(endpoint, request_id))
        entry = DeploymentRecord(**json.loads(text))
        change = ServingChange(ServingState(**entry.after), entry.weights, entry.changed, "")
    claim["record"] = asdict(entry)
    claim_etag = create(s3, audit_bucket, claim_key, json.dumps(claim), if_match=claim_etag)
    if claim_etag is None:
        raise LeaseLost(f"the claim of {request_id} changed while we held the lease")
    decision = Decision(
        request_id=request_id,
        action=request.action,
        requested_by=request.requested_by,
        sequence=held.ledger.sequence + 1,
        at=now_iso(),
        weights=dict(change.weights) if change.changed else None,
        reason=request.reason[:200],
    )
    ledger = held.ledger.completed(decision, changed=change.changed)
    return ServingOutcome(entry, duplicate=False), ledger, claim, claim_etag


def _finish(
    claim: dict[str, Any], current: ServingState, deployment: Deployment
) -> tuple[DeploymentRecord, ServingChange]:
    """The change a claim decided: made now unless it was made already, or what serves is no
    longer what it was decided from (another change came first)."""
    entry = DeploymentRecord(**claim["decided"])
    change = ServingChange(ServingState(**entry.after), entry.weights, entry.changed, entry.summary)
    if current == change.state:
        entry.stack_status = "DEPLOYED_BEFORE_THE_RETRY"
    elif current == ServingState(**entry.before):
        entry.stack_status = deployment.deploy(change)
    else:
        entry.changed = False
        entry.stack_status = "NOT_DEPLOYED"
        entry.summary = (
            f"not deployed: serving changed since this request was decided (now "
            f"{current.champion} / {current.challenger}); it was: {entry.summary}"
        )
        change = ServingChange(current, {}, False, entry.summary)
    return entry, change


def _audit_key(endpoint: str, request_id: str) -> str:
    return f"{names.SERVING_AUDIT_PREFIX}/{endpoint}/{request_id}.json"


def _duplicate(fields: dict[str, Any]) -> ServingOutcome:
    """A completed request's record, returned to its redelivery: nothing deployed now."""
    entry = DeploymentRecord(**fields)
    entry.changed = False
    return ServingOutcome(entry, duplicate=True)
