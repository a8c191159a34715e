"""Serving in AWS: change which packages the serving stack's variants serve.

The serving stack's parameters name the champion and challenger packages and SSM holds the
weights in force (see stacks/serving/endpoint.py). A deployment writes the new weights first, then
updates the stack with the previous template and the new parameter values; CloudFormation
(with the CDK deploy role) creates the models and endpoint config and updates the endpoint.

Nothing is left half-applied: when the weights cannot all be written, or the update does not
start, the weights in force are put back; when even that fails, ``WeightsNotRestored`` says so,
naming the weights in force and the ones written (SSM then disagrees with the endpoint).
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


class WeightsNotRestored(RuntimeError):
    """A deployment failed after writing weights, and the weights in force could not be put
    back: SSM holds weights the endpoint does not serve. Not a refusal: it fails loudly."""


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
            # Only "does not exist" means not deployed; throttling or a server error is not an
            # answer about the stack, and raises (the caller retries).
            error = exc.response["Error"]
            if error.get("Code") == "ValidationError" and "does not exist" in error.get(
                "Message", ""
            ):
                raise DeploymentError(
                    f"stack {self.stack_name} is not deployed ({error['Message']})"
                ) from None
            raise
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
        written = {v: f"{change.weights.get(v, 0.0):g}" for v in (CHAMPION, CHALLENGER)}
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
        held = dict(previous)  # what SSM holds, as far as this deployment knows
        try:
            self._write_weights(written, held)
        except Exception as exc:
            # Some may be written: put back the weights in force before anything else runs.
            self._restore(previous, held, exc)
            raise
        try:
            self.cloudformation.update_stack(**request)
        except ClientError as exc:
            error = exc.response["Error"]
            message = error.get("Message", "")
            if error.get("Code") != "ValidationError" and self._update_started(wanted):
                # A server error can come back for an update that started: it resolved the
                # weights just written, so they stay.
                return "UPDATE_IN_PROGRESS"
            # Nothing was started: put back the weights in force.
            self._restore(previous, held, exc)
            if "No updates are to be performed" in message:
                return "UNCHANGED"
            if "_IN_PROGRESS state" in message:
                raise DeploymentBusy(message) from None
            raise
        return "UPDATE_IN_PROGRESS"

    def _update_started(self, wanted: Mapping[str, str]) -> bool:
        """Whether an update to ``wanted`` is under way (False when that cannot be told)."""
        try:
            stack = self.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
        except ClientError:
            return False
        values = {
            p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])
        }
        return stack["StackStatus"] == "UPDATE_IN_PROGRESS" and all(
            values.get(key) == value for key, value in wanted.items()
        )

    def _restore(self, previous: dict[str, str], held: dict[str, str], cause: Exception) -> None:
        """Put back the weights in force; if that fails, say loudly what SSM holds now."""
        try:
            self._write_weights(previous, held)
        except Exception as exc:
            where = ", ".join(f"{self.weight_parameters[v]}={held[v]}" for v in held)
            raise WeightsNotRestored(
                f"the deployment to stack {self.stack_name} failed "
                f"({type(cause).__name__}: {cause}), and putting back the weights in force "
                f"{previous} failed too ({type(exc).__name__}: {exc}): SSM holds {where}, "
                f"which the endpoint does not serve; write {previous} back before anything "
                "else deploys"
            ) from exc

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

    def _write_weights(self, weights: dict[str, str], held: dict[str, str]) -> None:
        """Write ``weights``; ``held`` follows what SSM holds after each write."""
        for variant, value in weights.items():
            self.ssm.put_parameter(
                Name=self.weight_parameters[variant],
                Value=value,
                Type="String",
                Overwrite=True,
            )
            held[variant] = value
