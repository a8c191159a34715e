"""CloudFormation's deployment role (the one the deploy function passes to UpdateStack), proven
from AWS's own data: it holds every create/update/delete handler permission of every resource
type a parameter change makes CloudFormation touch (the provider schemas cfn-lint ships), on
the resources it will name, with the tags they carry; the deploy role can update the stack
only with it. Judged by the policy evaluator, not by matching strings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from mlops.core import names, permissions, processing_permissions
from mlops.core.config import PlatformConfig
from mlops.local.iam.simulator import IamRequest, Identity, PolicySimulator
from tests.support.iam_template import (
    Resolution,
    exports_of,
    resolve,
    resource_policies,
    role_policies,
    roles_assumed_by,
)

CONFIG = PlatformConfig()
ACCOUNT, REGION = "123456789012", "us-east-1"
# Found without importing cfnlint (5 s, paid by every xdist worker at collection).
_CFNLINT = find_spec("cfnlint")
assert _CFNLINT is not None, "cfn-lint is a dev dependency"
assert _CFNLINT.origin is not None
SCHEMAS = Path(_CFNLINT.origin).parent / "data" / "schemas"
HANDLERS = ("create", "update", "delete")
# Handler permissions that cannot apply to this stack's resources, and why.
NOT_APPLICABLE = {
    "lambda:GetProvisionedConcurrencyConfig": "ScalableTarget: Lambda targets only",
    "lambda:PutProvisionedConcurrencyConfig": "ScalableTarget: Lambda targets only",
    "lambda:DeleteProvisionedConcurrencyConfig": "ScalableTarget: Lambda targets only",
}


@cache
def handler_permissions(resource_type: str) -> dict[str, list[str]]:
    providers = json.loads((SCHEMAS / "providers" / f"{REGION}.json").read_text())
    schema = json.loads((SCHEMAS / "resources" / f"{providers[resource_type]}.json").read_text())
    return {op: schema["handlers"][op]["permissions"] for op in HANDLERS}


def references(value: Any) -> Iterator[str]:
    """The parameters and resources a template value names (Ref, GetAtt, Sub, Fn::If)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                yield inner
            elif key == "Fn::GetAtt":
                yield inner[0] if isinstance(inner, list) else inner.split(".")[0]
            else:
                yield from references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from references(inner)


def managed_by_deploys(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> type of every resource a change of the package parameters can create,
    update or delete: conditioned on them, or naming (transitively) something that is."""
    resources = template["Resources"]
    parameters = {"ChampionModelPackageArn", "ChallengerModelPackageArn"}
    touched = {
        lid
        for lid, r in resources.items()
        if r.get("Condition") or parameters & set(references(r.get("Properties", {})))
    }
    while True:
        more = {
            lid
            for lid, r in resources.items()
            if lid not in touched and touched & set(references(r.get("Properties", {})))
        }
        if not more:
            return {lid: resources[lid]["Type"] for lid in sorted(touched)}
        touched |= more


@pytest.fixture(scope="module")
def aws(
    storage_template: Template, serving_template: Template
) -> tuple[dict[str, Any], Resolution]:
    resolution = Resolution(
        account=ACCOUNT,
        region=REGION,
        stack_name=names.serving_stack(CONFIG),
        exports=exports_of(storage_template.to_json()),
    )
    return dict(serving_template.to_json()), resolution


@pytest.fixture(scope="module")
def key_policies(
    storage_template: Template, aws: tuple[dict[str, Any], Resolution]
) -> dict[str, Any]:
    """The storage and serving keys' policies (KMS honours IAM only where they trust it)."""
    template, resolution = aws
    return resource_policies(storage_template.to_json(), resolution) | resource_policies(
        template, resolution
    )


def role(template: dict[str, Any], resolution: Resolution, principal: str) -> Identity:
    # The drift checks' Processing job role is SageMaker's too; CloudFormation never passes it.
    (role_id,) = [
        r for r in roles_assumed_by(template, principal, resolution)
        if template["Resources"][r]["Properties"].get("RoleName")
        != names.drift_processing_role(CONFIG)
    ]  # fmt: skip
    resolved = role_policies(template, resolution)[role_id]
    return Identity(resolved.arn, resolved.policies)


def test_a_deploy_manages_the_models_config_endpoint_and_scaling(
    aws: tuple[dict[str, Any], Resolution],
) -> None:
    template, _ = aws
    assert sorted(set(managed_by_deploys(template).values())) == [
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::SageMaker::Endpoint",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Model",
    ]


def handler_requests(template: dict[str, Any], resolution: Resolution) -> list[IamRequest]:
    """Every handler permission of every managed resource, as the request CloudFormation makes:
    on the resource it names, with the tags the template gives it."""
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
    endpoint = CONFIG.endpoint_name
    model_role = role(template, resolution, "sagemaker.amazonaws.com").role_arn
    data_key = resolution.exports[f"{CONFIG.prefix}-data-key-arn"]
    found: list[IamRequest] = []
    (config_id,) = [
        lid for lid, kind in managed_by_deploys(template).items()
        if kind == "AWS::SageMaker::EndpointConfig"
    ]  # fmt: skip
    config_arn = f"{arn}:endpoint-config/{config_id.lower()}-x1y2z3a4b5c6"
    config_tags: dict[str, str | list[str]] = {
        f"aws:ResourceTag/{t['Key']}": t["Value"]
        for t in template["Resources"][config_id]["Properties"].get("Tags", [])
    }
    for lid, kind in managed_by_deploys(template).items():
        properties = template["Resources"][lid].get("Properties", {})
        tags = {t["Key"]: t["Value"] for t in properties.get("Tags", [])}
        # CloudFormation names a model or config <LogicalId>-<random> (SageMaker lowercases).
        resource = {
            "AWS::SageMaker::Model": f"{arn}:model/{lid.lower()}-x1y2z3a4b5c6",
            "AWS::SageMaker::EndpointConfig": f"{arn}:endpoint-config/{lid.lower()}-x1y2z3a4b5c6",
            "AWS::SageMaker::Endpoint": f"{arn}:endpoint/{endpoint}",
        }.get(kind, "*")
        for op, actions in handler_permissions(kind).items():
            for action in actions:
                if action in NOT_APPLICABLE:
                    continue
                target, context = _request(action, op, kind, resource, tags, model_role)
                found.append(IamRequest(action, target.replace("{data_key}", data_key), context))
                # Creating or updating an endpoint is also authorized on the config it names
                # (AWS's reference, as cfn-lint's Policies.json holds it).
                if action in ("sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"):
                    assert "endpoint-config" in resource_types(action)
                    found.append(IamRequest(action, config_arn, config_tags))
    return found


@cache
def resource_types(action: str) -> tuple[str, ...]:
    """The resource types IAM authorizes ``action`` on (cfn-lint's copy of AWS's reference)."""
    service, name = action.split(":")
    policies = json.loads((SCHEMAS.parent / "AdditionalSpecs" / "Policies.json").read_text())
    found = policies.get(service, {}).get("Actions", {}).get(name.lower(), {})
    return tuple(found.get("Resources", []))


SLR = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/sagemaker.application-autoscaling"
    ".amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


def _request(  # noqa: PLR0911 - one answer per kind of permission
    action: str, op: str, kind: str, resource: str, tags: dict[str, str], model_role: str
) -> tuple[str, dict[str, str | list[str]]]:
    """Where one handler permission is asked and with what context keys."""
    if action.startswith("sagemaker:") and resource != "*":
        if op == "create" or action == "sagemaker:AddTags":
            context: dict[str, str | list[str]] = {
                f"aws:RequestTag/{k}": v for k, v in tags.items()
            }
            context["aws:TagKeys"] = list(tags)
        else:
            context = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
        if action == "sagemaker:CreateModel":
            context["sagemaker:NetworkIsolation"] = "true"
        return resource, context
    if action == "iam:PassRole":
        if kind.startswith("AWS::SageMaker::"):
            return model_role, {"iam:PassedToService": "sagemaker.amazonaws.com"}
        return SLR, {}
    if action == "iam:CreateServiceLinkedRole":
        return SLR, {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
    if action.startswith("kms:"):
        return "{data_key}", {}
    if action.startswith("cloudwatch:") and action != "cloudwatch:GetMetricData":
        return (
            f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:TargetTracking-endpoint/"
            f"{CONFIG.endpoint_name}/variant/champion-AlarmHigh-0f1e2d3c"
        ), {}
    return resource, {}


def ssm_reads(template: dict[str, Any]) -> list[IamRequest]:
    """What CloudFormation reads with the role on every update: the SSM-typed parameters and
    the {{resolve:ssm:...}} references (the weights in force)."""
    text = json.dumps(template)
    parameters = [
        str(p["Default"])
        for p in template["Parameters"].values()
        if str(p["Type"]).startswith("AWS::SSM::Parameter::Value")
    ]
    references = sorted(set(text.split("{{resolve:ssm:")[1:]))
    named = parameters + [r.split("}}")[0] for r in references]
    assert len(named) >= 3, named  # the bootstrap version and both weights
    return [
        IamRequest("ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{n}")
        for n in named
    ]


def test_the_cloudformation_role_holds_every_handler_permission(
    aws: tuple[dict[str, Any], Resolution], key_policies: dict[str, Any]
) -> None:
    template, resolution = aws
    identity = role(template, resolution, "cloudformation.amazonaws.com")
    requests = handler_requests(template, resolution) + ssm_reads(template)
    with PolicySimulator() as simulator:
        decisions = simulator.evaluate_many(requests, identity, resource_policies=key_policies)
    denied = [str(d) for d in decisions if not d.allowed]
    assert not denied, "\n".join(denied)
    # Each type's delete handler is among them: a failed deploy can roll back.
    assert {r.action for r in requests} >= {
        "sagemaker:DeleteEndpoint",
        "sagemaker:DeleteModel",
        "sagemaker:DeleteEndpointConfig",
        "application-autoscaling:DeregisterScalableTarget",
        "application-autoscaling:DeleteScalingPolicy",
    }


def test_the_cloudformation_role_touches_only_this_endpoints_resources(
    aws: tuple[dict[str, Any], Resolution],
) -> None:
    template, resolution = aws
    identity = role(template, resolution, "cloudformation.amazonaws.com")
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
    other = {"aws:ResourceTag/mlops:endpoint": "someone-elses"}
    refused = [
        # Another team's model or config, or one without the tag.
        IamRequest("sagemaker:DeleteModel", f"{arn}:model/theirs", other),
        IamRequest("sagemaker:DeleteEndpointConfig", f"{arn}:endpoint-config/theirs", {}),
        IamRequest(
            "sagemaker:CreateModel",
            f"{arn}:model/x",
            {
                "aws:RequestTag/mlops:endpoint": "someone-elses",
                "sagemaker:NetworkIsolation": "true",
            },
        ),
        # A model that could reach out with the model role.
        IamRequest(
            "sagemaker:CreateModel",
            f"{arn}:model/x",
            {
                "aws:RequestTag/mlops:endpoint": CONFIG.endpoint_name,
                "sagemaker:NetworkIsolation": "false",
            },
        ),
        IamRequest("sagemaker:DeleteEndpoint", f"{arn}:endpoint/another-endpoint"),
        IamRequest(
            "iam:PassRole",
            role(template, resolution, "sagemaker.amazonaws.com").role_arn,
            {"iam:PassedToService": "lambda.amazonaws.com"},
        ),
    ]
    with PolicySimulator() as simulator:
        decisions = simulator.evaluate_many(refused, identity)
    assert [d.request for d in decisions if d.allowed] == []


def test_the_deploy_role_updates_the_stack_only_with_the_cloudformation_role(
    aws: tuple[dict[str, Any], Resolution],
) -> None:
    template, resolution = aws
    deploy_lid = next(
        lid
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["ImageConfig"]["Command"] == ["lambdas.deploy.handler.handler"]
    )
    role_id = template["Resources"][deploy_lid]["Properties"]["Role"]["Fn::GetAtt"][0]
    resolved = role_policies(template, resolution)[role_id]
    deploy = Identity(resolved.arn, resolved.policies)
    cfn_role = role(template, resolution, "cloudformation.amazonaws.com").role_arn
    stack = (
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{names.serving_stack(CONFIG)}/"
        "00000000-0000-0000-0000-000000000000"
    )
    weights = [
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{n}"
        for n in names.weight_parameters(CONFIG).values()
    ]
    bootstrap = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cdk-bootstrap/hnb659fds/version"
    package = (
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{CONFIG.model_package_group_name}/7"
    )
    allowed = [
        IamRequest("cloudformation:UpdateStack", stack, {"cloudformation:RoleArn": cfn_role}),
        IamRequest(
            "iam:PassRole", cfn_role, {"iam:PassedToService": "cloudformation.amazonaws.com"}
        ),
        IamRequest("ssm:GetParameters", bootstrap),
        *(IamRequest("ssm:GetParameter", w) for w in weights),
        IamRequest("sagemaker:DescribeModelPackage", package),
    ]
    refused = [
        # Without a role: CloudFormation would run as the stack's last role (CDK's, admin).
        IamRequest("cloudformation:UpdateStack", stack),
        IamRequest(
            "cloudformation:UpdateStack",
            stack,
            {"cloudformation:RoleArn": f"arn:aws:iam::{ACCOUNT}:role/cdk-hnb659fds-cfn-exec-role"},
        ),
        IamRequest("cloudformation:UpdateStack", stack.replace("serving", "storage"),
                   {"cloudformation:RoleArn": cfn_role}),
        IamRequest("sagemaker:DescribeModelPackage", package.replace(CONFIG.model_package_group_name, "other")),
    ]  # fmt: skip
    with PolicySimulator() as simulator:
        ok = simulator.evaluate_many(allowed, deploy)
        no = simulator.evaluate_many(refused, deploy)
    assert [str(d) for d in ok if not d.allowed] == []
    assert [str(d) for d in no if d.allowed] == []


def test_every_grant_is_rendered_into_the_template(
    aws: tuple[dict[str, Any], Resolution],
) -> None:
    """The template's statements are the grants of mlops.core.permissions, statement by
    statement (the twin enforces those grants): resolved, they are equal."""
    template, resolution = aws
    resources = template["Resources"]
    by_type = {r["Type"]: lid for lid, r in resources.items()}
    roles = role_policies(template, resolution)
    refs = {
        "partition": "aws",
        "region": REGION,
        "account": ACCOUNT,
        **{
            f"{b}_bucket_arn": resolution.exports[f"{CONFIG.prefix}-{b}-bucket-arn"]
            for b in ("reports", "capture", "artifacts")
        },
        "data_key_arn": resolution.exports[f"{CONFIG.prefix}-data-key-arn"],
        "topic_arn": resolve(template, {"Ref": by_type["AWS::SNS::Topic"]}, resolution),
        "ops_key_arn": resolve(template, {"Fn::GetAtt": [by_type["AWS::KMS::Key"], "Arn"]}, resolution),
        "cloudformation_role_arn": role(template, resolution, "cloudformation.amazonaws.com").role_arn,
        "model_role_arn": role(template, resolution, "sagemaker.amazonaws.com").role_arn,
        "processing_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{names.drift_processing_role(CONFIG)}",
        "bootstrap_qualifier": "hnb659fds",
    }  # fmt: skip
    functions = {
        r["Properties"]["ImageConfig"]["Command"][0].split(".")[1]: r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
    }
    for function, grants in (
        *((f, permissions.for_function(f, CONFIG)) for f in functions),
        ("cloudformation", permissions.cloudformation(CONFIG)),
        ("drift-processing", processing_permissions.drift_processing(CONFIG)),
    ):
        if function == "cloudformation":
            role_id = roles_assumed_by(template, "cloudformation.amazonaws.com", resolution)[0]
            own = refs
        elif function == "drift-processing":
            (role_id,) = [
                lid for lid, r in resources.items()
                if r["Type"] == "AWS::IAM::Role"
                and r["Properties"].get("RoleName") == names.drift_processing_role(CONFIG)
            ]  # fmt: skip
            own = refs
        else:
            properties = functions[function]["Properties"]
            role_id = properties["Role"]["Fn::GetAtt"][0]
            queue = properties["DeadLetterConfig"]["TargetArn"]
            logs = {"Fn::GetAtt": [properties["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]}
            own = refs | {
                "dead_letters_arn": resolve(template, queue, resolution),
                "log_group_arn": resolve(template, logs, resolution),
            }
        synthesized = {
            s["Sid"]: s
            for document in roles[role_id].policies.values()
            for s in document["Statement"]
            if "Sid" in s
        }
        expected = {g.sid: g.statement(own) for g in grants}
        assert normal(synthesized) == normal(expected), function


def normal(value: Any) -> Any:
    """Statements compared as IAM reads them: the order of a list does not matter."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted(json.dumps(normal(v), sort_keys=True) for v in value)
    return value


# Granted to CloudFormation's role although no create/update/delete handler lists it, and why.
CLOUDFORMATION_EXTRAS = {
    "sagemaker:DescribeModel": "the Model type's read handler (drift detection, rollback checks)",
    "sagemaker:DescribeEndpointConfig": "the EndpointConfig type's read handler",
    "sagemaker:DescribeModelPackage": "CreateModel from a ModelPackageName reads the package "
    "(AWS's cross-account deploy guide grants it with CreateModel)",
    "kms:CreateGrant": "SageMaker's API permissions reference: CreateEndpointConfig with a "
    "KmsKeyId needs it (the grant is for SageMaker, kms:GrantIsForAWSResource)",
}


def test_the_cloudformation_role_grants_nothing_unexplained(
    aws: tuple[dict[str, Any], Resolution],
) -> None:
    template, resolution = aws
    identity = role(template, resolution, "cloudformation.amazonaws.com")
    documents = identity.policies.values() if isinstance(identity.policies, dict) else []
    granted = {
        action
        for document in documents
        for statement in document["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    needed = {r.action for r in handler_requests(template, resolution) + ssm_reads(template)}
    assert granted - needed == set(CLOUDFORMATION_EXTRAS)


def test_every_statement_of_the_cloudformation_role_is_load_bearing(
    aws: tuple[dict[str, Any], Resolution], key_policies: dict[str, Any]
) -> None:
    """Removing any one statement denies some handler permission (or explained read)."""
    template, resolution = aws
    identity = role(template, resolution, "cloudformation.amazonaws.com")
    requests = handler_requests(template, resolution) + ssm_reads(template)
    documents = dict(identity.policies) if isinstance(identity.policies, dict) else {}
    idle = []
    with PolicySimulator() as simulator:
        for name, document in documents.items():
            for i, statement in enumerate(document["Statement"]):
                actions = statement["Action"]
                if set(actions if isinstance(actions, list) else [actions]) <= set(
                    CLOUDFORMATION_EXTRAS
                ):
                    continue  # reads no handler lists (explained above)
                reduced = {
                    **document,
                    "Statement": document["Statement"][:i] + document["Statement"][i + 1 :],
                }
                without = Identity(identity.role_arn, {**documents, name: reduced})
                decisions = simulator.evaluate_many(
                    requests, without, resource_policies=key_policies
                )
                if all(d.allowed for d in decisions):
                    idle.append(statement.get("Sid"))
    assert idle == []
