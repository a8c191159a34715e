"""The synthesized roles resolve to concrete policies the evaluator accepts (built templates)."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from mlops.local.iam.simulator import IamRequest, Identity, PolicySimulator
from tests.support.iam_template import (
    Resolution,
    exports_of,
    function_roles,
    resource_policies,
    role_policies,
    roles_assumed_by,
)


def intrinsics(value: Any) -> list[str]:
    text = json.dumps(value)
    return [key for key in ('"Ref"', '"Fn::', '"Condition": "') if key in text]


def test_every_role_of_the_app_resolves_to_valid_policies(
    storage_template: Template, serving_template: Template, pipeline_template: Template
) -> None:
    storage = storage_template.to_json()
    resolution = Resolution(exports=exports_of(storage))
    serving_roles = role_policies(serving_template.to_json(), resolution)
    pipeline_roles = role_policies(pipeline_template.to_json(), resolution)
    functions = function_roles(serving_template.to_json())
    assert set(functions.values()) <= set(serving_roles)
    assert set(roles_assumed_by(serving_template.to_json(), "lambda.amazonaws.com")) == set(
        functions.values()
    )
    with PolicySimulator() as simulator:
        for role in [*serving_roles.values(), *pipeline_roles.values()]:
            assert role.policies, role.logical_id
            assert intrinsics(role.policies) == [], role.logical_id
            # iam-simulate validates every policy of the identity on each request.
            decision = simulator.evaluate(
                IamRequest("sts:GetCallerIdentity", "*"), Identity(role.arn, role.policies)
            )
            assert decision.result == "Allowed", (role.logical_id, decision.explanation)
    keys = resource_policies(storage, resolution) | resource_policies(
        serving_template.to_json(), resolution
    )
    assert intrinsics(keys) == []
    assert any(":key/" in arn for arn in keys)
