"""The serving stack as CloudFormation answers for it, for tests: moto does not run the stack.

``FakeStack`` answers DescribeStacks and UpdateStack for one stack from its state, through
botocore's ``before-call`` hook (as ``Stubber`` does, but for any number and order of calls,
which fault injection needs). An update takes the parameters it is given (``UsePreviousValue``
keeps one), resolves the weights from SSM as the template's ``{{resolve:ssm:...}}`` references
do at that moment, and stays ``UPDATE_IN_PROGRESS`` until ``settle()``. CloudFormation's
refusals are its own: "No updates are to be performed." and "... is in UPDATE_IN_PROGRESS
state and can not be updated.", both ValidationError.

Attach faults first, then the fake: a call a fault fails never reaches the stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

PARAMS = "fake-cloudformation-params"


@dataclass
class FakeStack:
    name: str
    parameters: dict[str, str]
    ssm: Any  # reads the weights at each update, as the template's SSM references are resolved
    weight_parameters: dict[str, str]
    status: str = "UPDATE_COMPLETE"
    weights: dict[str, str] = field(default_factory=dict)  # resolved by the last update
    updates: int = 0  # updates started
    # An error code to answer an update that started all the same (a 5xx after the fact).
    fail_after_update: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)  # UpdateStack's, started or not

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.cloudformation.*", self._keep)
        client.meta.events.register("before-call.cloudformation.*", self._answer)
        return client

    def settle(self) -> None:
        """The update in progress completes."""
        if self.status.endswith("_IN_PROGRESS"):
            self.status = "UPDATE_COMPLETE"

    def resolve(self) -> dict[str, str]:
        return {
            variant: str(self.ssm.get_parameter(Name=name)["Parameter"]["Value"])
            for variant, name in self.weight_parameters.items()
        }

    # -- the service --------------------------------------------------------------------------
    def _keep(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[PARAMS] = dict(params)

    def _answer(
        self, model: Any, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]]:
        params = context.get(PARAMS, {})
        if params.get("StackName") != self.name:
            return _error(
                "ValidationError", f"Stack with id {params.get('StackName')} does not exist"
            )
        if model.name == "DescribeStacks":
            return _ok({"Stacks": [self._described()]})
        if model.name == "UpdateStack":
            return self._update(params)
        raise AssertionError(f"FakeStack does not answer {model.name}")

    def _described(self) -> dict[str, Any]:
        return {
            "StackName": self.name,
            "StackId": f"arn:aws:cloudformation:us-east-1:123456789012:stack/{self.name}/1",
            "StackStatus": self.status,
            "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
            "Parameters": [
                {"ParameterKey": key, "ParameterValue": value}
                for key, value in self.parameters.items()
            ],
        }

    def _update(self, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        self.requests.append(params)
        assert params.get("UsePreviousTemplate") is True, params
        if self.status.endswith("_IN_PROGRESS"):
            return _error(
                "ValidationError",
                f"Stack:{self.name} is in {self.status} state and can not be updated.",
            )
        given = {p["ParameterKey"]: p for p in params.get("Parameters", [])}
        assert set(given) == set(self.parameters), f"every parameter is passed: {sorted(given)}"
        wanted = {
            key: self.parameters[key] if p.get("UsePreviousValue") else p["ParameterValue"]
            for key, p in given.items()
        }
        if wanted == self.parameters:
            return _error("ValidationError", "No updates are to be performed.")
        self.parameters = wanted
        self.weights = self.resolve()
        self.status = "UPDATE_IN_PROGRESS"
        self.updates += 1
        if self.fail_after_update:
            code, self.fail_after_update = self.fail_after_update, None
            return _error(code, "injected after the update started", status=500)
        return _ok({"StackId": self._described()["StackId"]})


def _ok(body: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    metadata = {"HTTPStatusCode": 200, "HTTPHeaders": {}}
    return AWSResponse("https://fake.invalid", 200, HTTPHeaders(), None), {
        **body,
        "ResponseMetadata": metadata,
    }


def _error(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse("https://fake.invalid", status, HTTPHeaders(), None), {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }
