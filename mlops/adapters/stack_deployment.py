"""Serving in AWS: change which packages the serving stack's variants serve.

The serving stack's parameters name the champion and challenger packages and SSM holds the
weights in force (see stacks/serving/endpoint.py). A deployment writes the new weights first, then
updates the stack with the previous template and the new parameter values; CloudFormation
(with the CDK deploy role) creates the models and endpoint config and updates the endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mlops.core.approval import ServingChange, ServingState
from mlops.core.names import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, StackTypeDef
    from mypy_boto3_ssm import SSMClient

PARAMETERS = {CHAMPION: "ChampionModelPackageArn", CHALLENGER: "ChallengerModelPackageArn"}
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


class DeploymentBusy(RuntimeError):
    """The serving stack is being updated already: try again when it settles."""


class DeploymentError(RuntimeError):
    """The serving stack cannot be updated as asked."""


class StackDeployment:
    """The serving stack's parameters (which packages serve) and the weights in force (SSM)."""

    def __init__(
        self,
        *,
        cloudformation: CloudFormationClient,
        ssm: SSMClient,
        stack_name: str,
        weight_parameters: Mapping[str, str],
        role_arn: str | None = None,
    ) -> None:
        self.cloudformation = cloudformation
        self.ssm = ssm
        self.stack_name = stack_name
        self.weight_parameters = dict(weight_parameters)
        self.role_arn = role_arn

    def _stack(self) -> StackTypeDef:
        try:
            stack = self.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
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
        parameters: list[ParameterTypeDef] = [
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
                parameter = self.ssm.get_parameter(Name=self.weight_parameters[variant])
                found[variant] = str(parameter["Parameter"]["Value"])
            except ClientError as exc:
                # Only a parameter that was never written has the default; any other error
                # (AccessDenied, throttling) stops the deploy before a weight is written, or
                # the restore-on-failure path would overwrite the weights in force.
                if exc.response["Error"]["Code"] != "ParameterNotFound":
                    raise
                found[variant] = "1" if variant == CHAMPION else "0"
        return found

    def _write_weights(self, weights: dict[str, str]) -> None:
        for variant, value in weights.items():
            self.ssm.put_parameter(
                Name=self.weight_parameters[variant],
                Value=value,
                Type="String",
                Overwrite=True,
            )
