"""Serving in AWS: change which packages the serving stack's variants serve.

The serving stack's parameters name the champion and challenger packages and SSM holds the
weights in force (see stacks/serving.py). A deployment writes the new weights first, then
updates the stack with the previous template and the new parameter values; CloudFormation
(with the CDK deploy role) creates the models and endpoint config and updates the endpoint.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from mlops.audit import write_once
from mlops.config import PlatformConfig
from mlops.serving import ServingChange, ServingState
from mlops.traffic import CHALLENGER, CHAMPION

PARAMETERS = {CHAMPION: "ChampionModelPackageArn", CHALLENGER: "ChallengerModelPackageArn"}
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
AUDIT_PREFIX = "audit/serving"


class DeploymentBusy(RuntimeError):
    """The serving stack is being updated already: try again when it settles."""


class DeploymentError(RuntimeError):
    """The serving stack cannot be updated as asked."""


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


class StackDeployment:
    def __init__(
        self, *, cloudformation: Any, ssm: Any, config: PlatformConfig, role_arn: str | None = None
    ) -> None:
        self.cloudformation = cloudformation
        self.ssm = ssm
        self.config = config
        self.role_arn = role_arn
        self.stack_name = f"{config.prefix}-serving"

    def _stack(self) -> dict[str, Any]:
        try:
            stack: dict[str, Any] = self.cloudformation.describe_stacks(StackName=self.stack_name)[
                "Stacks"
            ][0]
        except ClientError as exc:
            raise DeploymentError(
                f"stack {self.stack_name} is not deployed ({exc.response['Error']['Message']})"
            ) from None
        return stack

    def current(self) -> ServingState:
        values = {
            p["ParameterKey"]: p.get("ParameterValue", "")
            for p in self._stack().get("Parameters", [])
        }
        return ServingState(
            champion=values.get(PARAMETERS[CHAMPION]) or None,
            challenger=values.get(PARAMETERS[CHALLENGER]) or None,
        )

    def deploy(self, change: ServingChange) -> str:
        """Write the weights, then update the stack's parameters; return the stack status."""
        stack = self._stack()
        status = stack["StackStatus"]
        if status.endswith("_IN_PROGRESS"):
            raise DeploymentBusy(f"stack {self.stack_name} is {status}")
        previous = self._weights()
        self._write_weights({v: f"{change.weights.get(v, 0.0):g}" for v in (CHAMPION, CHALLENGER)})
        wanted = {
            PARAMETERS[CHAMPION]: change.state.champion or "",
            PARAMETERS[CHALLENGER]: change.state.challenger or "",
        }
        parameters: list[dict[str, Any]] = [
            {"ParameterKey": key, "ParameterValue": value} for key, value in wanted.items()
        ]
        # Every other parameter (CDK's BootstrapVersion, ...) keeps its value.
        parameters += [
            {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
            for p in stack.get("Parameters", [])
            if p["ParameterKey"] not in wanted
        ]
        request: dict[str, Any] = {
            "StackName": self.stack_name,
            "UsePreviousTemplate": True,
            "Parameters": parameters,
            "Capabilities": CAPABILITIES,
        }
        if self.role_arn:
            request["RoleARN"] = self.role_arn
        try:
            self.cloudformation.update_stack(**request)
        except ClientError as exc:
            # Nothing was started: put back the weights in force.
            self._write_weights(previous)
            message = exc.response["Error"].get("Message", "")
            if "No updates are to be performed" in message:
                return "UNCHANGED"
            if "_IN_PROGRESS state" in message:
                raise DeploymentBusy(message) from None
            raise
        return "UPDATE_IN_PROGRESS"

    def _weights(self) -> dict[str, str]:
        found = {}
        for variant in (CHAMPION, CHALLENGER):
            try:
                parameter = self.ssm.get_parameter(Name=self.config.weight_parameter(variant))
                found[variant] = str(parameter["Parameter"]["Value"])
            except ClientError:
                found[variant] = "1" if variant == CHAMPION else "0"
        return found

    def _write_weights(self, weights: dict[str, str]) -> None:
        for variant, value in weights.items():
            self.ssm.put_parameter(
                Name=self.config.weight_parameter(variant),
                Value=value,
                Type="String",
                Overwrite=True,
            )


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


def audit(s3: Any, bucket: str, endpoint: str, entry: DeploymentRecord) -> bool:
    key = f"{AUDIT_PREFIX}/{endpoint}/{entry.request_id}.json"
    entry.audit_uri = f"s3://{bucket}/{key}"
    return write_once(s3, bucket, key, json.dumps(asdict(entry), indent=2, sort_keys=True))
