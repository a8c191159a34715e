"""Which approved model packages serve as champion and challenger: the decisions, and the
record each change leaves. Pure: no AWS here (``mlops.usecases.approve`` applies them)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops.core.names import CHALLENGER, CHAMPION
from mlops.core.traffic import TrafficError, shift_to


@dataclass(frozen=True)
class ServingState:
    """The model package ARN each variant serves (None: the variant does not exist)."""

    champion: str | None = None
    challenger: str | None = None


@dataclass(frozen=True)
class ServingChange:
    state: ServingState
    weights: dict[str, float]
    changed: bool
    summary: str


def _version(arn: str | None) -> int:
    tail = (arn or "").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else -1


class PackageRefused(TrafficError):
    """A package that must not serve: not approved, or not this family's or account's."""


@dataclass(frozen=True)
class PackageScope:
    """Which packages may serve: this family's group, in this account and region."""

    group: str
    account: str
    region: str


def foreign_package(arn: str, scope: PackageScope) -> str | None:
    """Why ``arn`` is not a package of this account and region, or None. Checked before the
    registry is asked: another account's package is refused, not looked up."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "sagemaker" or not parts[5].startswith("model-package/"):
        return f"{arn!r} is not a model package ARN"
    region, account = parts[3], parts[4]
    if account != scope.account:
        return f"{arn} belongs to account {account}, not {scope.account}"
    if region != scope.region:
        return f"{arn} is in {region}, not {scope.region}"
    return None


def package_refusal(
    arn: str, status: str | None, group: str | None, scope: PackageScope
) -> str | None:
    """Why the registry's description of ``arn`` forbids serving it, or None if it may serve.

    The registry is asked, not the event: whoever may invoke the deploy function could name
    an unapproved package, or one of another group or account."""
    if foreign := foreign_package(arn, scope):
        return foreign
    if group != scope.group:
        return f"{arn} is in group {group}, not {scope.group}"
    if status != "Approved":
        return f"{arn} is {status}: only approved packages serve"
    return None


def on_approval(
    current: ServingState, approved: str, *, initial_challenger_weight: float
) -> ServingChange:
    """A newly approved package becomes the challenger; the first one becomes the champion.

    An approval event also fires when an approved package is edited: a version older than
    the one serving as challenger (or champion) is not deployed again.
    """
    serving = {current.champion, current.challenger}
    if approved in serving:
        role = CHALLENGER if approved == current.challenger else CHAMPION
        weights = (
            {CHAMPION: 1.0} if current.challenger is None else shift_to(initial_challenger_weight)
        )
        return ServingChange(current, weights, False, f"{approved} already serves as {role}")
    newest = max(_version(current.champion), _version(current.challenger))
    if current.champion is not None and 0 <= _version(approved) < newest:
        return ServingChange(
            current, {}, False, f"{approved} is older than the packages serving: not deployed"
        )
    if current.champion is None:
        return ServingChange(
            ServingState(champion=approved),
            {CHAMPION: 1.0},
            True,
            f"{approved} is the first champion",
        )
    replaced = (
        f" (replacing {current.challenger})"
        if current.challenger not in (None, current.champion)
        else ""
    )
    return ServingChange(
        ServingState(champion=current.champion, challenger=approved),
        shift_to(initial_challenger_weight),
        True,
        f"{approved} is the challenger at {initial_challenger_weight:g}{replaced}",
    )


def on_promote(current: ServingState) -> ServingChange:
    """The challenger's package becomes the champion's and takes all traffic.

    The challenger variant stays (serving the same package at weight 0): removing a variant
    that autoscaling is registered on makes UpdateEndpoint fail, and the next approval
    replaces its model anyway.
    """
    if current.challenger is None or current.challenger == current.champion:
        raise TrafficError("there is no challenger to promote")
    return ServingChange(
        ServingState(champion=current.challenger, challenger=current.challenger),
        {CHAMPION: 1.0, CHALLENGER: 0.0},
        True,
        f"{current.challenger} promoted to champion (was {current.champion})",
    )


@dataclass
class DeploymentRecord:
    request_id: str
    action: str
    requested_by: str
    reason: str
    requested_at: str
    before: dict[str, str | None]
    after: dict[str, str | None]
    weights: dict[str, float]
    changed: bool
    summary: str
    stack_status: str = ""
    audit_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def record(
    *,
    action: str,
    requested_by: str,
    reason: str,
    before: ServingState,
    change: ServingChange,
    request_id: str | None = None,
) -> DeploymentRecord:
    return DeploymentRecord(
        request_id=request_id or str(uuid.uuid4()),
        action=action,
        requested_by=requested_by,
        reason=reason,
        requested_at=datetime.now(UTC).isoformat(),
        before=asdict(before),
        after=asdict(change.state),
        weights=dict(change.weights),
        changed=change.changed,
        summary=change.summary,
    )
