"""Every function's environment in the synthesized template satisfies its contract.

The serving stack writes each function's environment from its settings class
(mlops.core.functions) and the handler parses it back with the same class. These tests read
the environments CloudFormation will actually set, and check that each one parses, holds every
variable its contract declares and nothing it does not, so a variable renamed, dropped or
added on one side only fails here rather than at the function's first invocation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from mlops.core import specs
from mlops.core.functions import CONTRACTS, FunctionSettings, SettingsError
from stacks.platform import Platform
from tests.infra.conftest import VARIED_CONTEXT

# Variables a function reads that are not its settings: Powertools' and libraries' own.
LIBRARY_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "DO_NOT_TRACK"}
CONFIGS = {"default": {}, "varied": VARIED_CONTEXT}

Build = Callable[..., tuple[cdk.App, Platform]]


def placeholder(name: str, value: Any) -> str:
    """A string in place of a CloudFormation intrinsic, shaped as what it resolves to."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(placeholder(name, p) for p in parts)
    if name.endswith("_ARN"):
        return "arn:aws:service:us-east-1:123456789012:resource"
    return "resolved-by-cloudformation"


def environments(template: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Function (by the handler its image runs) -> its environment, intrinsics resolved."""
    found: dict[str, dict[str, str]] = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        properties = resource["Properties"]
        command = properties.get("ImageConfig", {}).get("Command", [])
        (function,) = [f for f, handler in specs.HANDLERS.items() if command == [handler]]
        variables = properties.get("Environment", {}).get("Variables", {})
        found[function] = {k: placeholder(k, v) for k, v in variables.items()}
    return found


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def functions(request: pytest.FixtureRequest, built: Build) -> dict[str, dict[str, str]]:
    _, platform = built(**CONFIGS[request.param])
    return environments(Template.from_stack(platform.serving).to_json())


def check(contract: type[FunctionSettings], environment: dict[str, str]) -> FunctionSettings:
    declared = {name.upper() for name in contract.model_fields}
    unknown = set(environment) - declared - LIBRARY_VARIABLES
    assert not unknown, f"{contract.__name__}: the stack sets variables it does not declare"
    required = {
        name.upper() for name, field in contract.model_fields.items() if field.is_required()
    }
    missing = required - set(environment)
    assert not missing, f"{contract.__name__}: the stack leaves out {sorted(missing)}"
    return contract.from_environment(environment)


def test_every_function_has_a_contract(functions: dict[str, dict[str, str]]) -> None:
    assert set(functions) == set(CONTRACTS) == set(specs.HANDLERS)


@pytest.mark.parametrize("function", sorted(CONTRACTS))
def test_each_environment_satisfies_its_contract(
    functions: dict[str, dict[str, str]], function: str
) -> None:
    settings = check(CONTRACTS[function], functions[function])
    # Optional resources the stack always has are set, not left to None.
    assert getattr(settings, "topic_arn", "n/a") is not None
    assert functions[function]["POWERTOOLS_SERVICE_NAME"] == function


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda env: env.pop("ENDPOINT_NAME"), "leaves out"),
        (lambda env: env.update(ENDPOINT="renamed"), "does not declare"),
        (lambda env: env.update(ROLLOUT_STEPS="0.1,0.25"), "ROLLOUT_STEPS"),
        (lambda env: env.update(GATE_ALARMS="[1, 2"), "GATE_ALARMS"),
    ],
    ids=["dropped", "renamed", "not-json", "malformed-json"],
)
def test_a_change_on_one_side_fails(
    functions: dict[str, dict[str, str]], change: Callable[[dict[str, str]], Any], problem: str
) -> None:
    environment = dict(functions["traffic"])
    change(environment)
    with pytest.raises((AssertionError, SettingsError), match=problem):
        check(CONTRACTS["traffic"], environment)
