"""A synthesized template's IAM, as concrete policy documents an evaluator can judge.

CloudFormation resolves intrinsics at deploy time; here they are resolved from a fixed account,
region and physical names (``Resolution``), so that the policies of each role can be handed to
``mlops.local.iam.simulator``:

    roles = role_policies(template, Resolution(exports=exports_of(storage_template)))
    identity = Identity(roles[role_id].arn, roles[role_id].policies)

A resource absent from ``Resolution.names`` is named after its logical id (an S3 bucket after
its lowercased logical id) unless its template sets a name property (``BucketName``,
``TopicName``...); its Ref and attributes follow CloudFormation's return values for its type.
An intrinsic that cannot be resolved raises ``UnresolvableIntrinsic`` naming where it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops.local.iam.calls import PLACEHOLDER_STACK_ID

NO_VALUE = object()  # what {"Ref": "AWS::NoValue"} resolves to: dropped from lists and maps


class UnresolvableIntrinsic(ValueError):
    """An intrinsic function the resolver cannot evaluate, with the path to it."""


@dataclass(frozen=True)
class Resolution:
    """What CloudFormation would know at deploy time."""

    account: str = "123456789012"
    region: str = "us-east-1"
    partition: str = "aws"
    stack_name: str = "stack"
    names: Mapping[str, str] = field(default_factory=dict)  # logical id -> physical name
    refs: Mapping[str, str] = field(default_factory=dict)  # logical id -> its Ref, overriding
    attributes: Mapping[str, str] = field(default_factory=dict)  # "LogicalId.Attr" -> value
    exports: Mapping[str, str] = field(default_factory=dict)  # export name -> value
    parameters: Mapping[str, str] = field(default_factory=dict)  # stack parameter values

    @property
    def stack_id(self) -> str:
        return (
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:"
            f"stack/{self.stack_name}/{PLACEHOLDER_STACK_ID}"
        )


@dataclass(frozen=True)
class ResolvedRole:
    """One AWS::IAM::Role: its ARN and its identity policies, name -> document."""

    logical_id: str
    arn: str
    policies: dict[str, dict[str, Any]]
    trust_policy: dict[str, Any]
    # ManagedPolicyArns outside the template (AWS managed policies): not in ``policies``.
    external_policy_arns: tuple[str, ...] = ()


# Per type: the name property, what Ref returns, and attributes ({n} name, {a} account,
# {r} region, {p} partition). Types not listed: Ref is the name, Arn a generic ARN.
NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Events::Rule": "Name",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::SSM::Parameter": "Name",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
    "AWS::SageMaker::Model": "ModelName",
    "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
    "AWS::SageMaker::Pipeline": "PipelineName",
}
SM = "arn:{p}:sagemaker:{r}:{a}"
TYPES: dict[str, dict[str, str]] = {
    "AWS::S3::Bucket": {
        "Ref": "{n}",
        "Arn": "arn:{p}:s3:::{n}",
        "DomainName": "{n}.s3.amazonaws.com",
        "RegionalDomainName": "{n}.s3.{r}.amazonaws.com",
    },
    "AWS::SQS::Queue": {
        "Ref": "https://sqs.{r}.amazonaws.com/{a}/{n}",
        "QueueUrl": "https://sqs.{r}.amazonaws.com/{a}/{n}",
        "Arn": "arn:{p}:sqs:{r}:{a}:{n}",
        "QueueName": "{n}",
    },
    "AWS::SNS::Topic": {"Ref": "arn:{p}:sns:{r}:{a}:{n}", "TopicArn": "arn:{p}:sns:{r}:{a}:{n}"},
    "AWS::Logs::LogGroup": {"Ref": "{n}", "Arn": "arn:{p}:logs:{r}:{a}:log-group:{n}:*"},
    "AWS::IAM::Role": {"Ref": "{n}", "Arn": "arn:{p}:iam::{a}:role/{n}", "RoleId": "AROA{n}"},
    "AWS::IAM::ManagedPolicy": {
        "Ref": "arn:{p}:iam::{a}:policy/{n}",
        "PolicyArn": "arn:{p}:iam::{a}:policy/{n}",
    },
    "AWS::KMS::Key": {"Ref": "{n}", "Arn": "arn:{p}:kms:{r}:{a}:key/{n}", "KeyId": "{n}"},
    "AWS::KMS::Alias": {"Ref": "{n}"},
    "AWS::Lambda::Function": {"Ref": "{n}", "Arn": "arn:{p}:lambda:{r}:{a}:function:{n}"},
    "AWS::Events::Rule": {"Ref": "{n}", "Arn": "arn:{p}:events:{r}:{a}:rule/{n}"},
    "AWS::ECR::Repository": {"Ref": "{n}", "Arn": "arn:{p}:ecr:{r}:{a}:repository/{n}"},
    "AWS::CloudWatch::Alarm": {"Ref": "{n}", "Arn": "arn:{p}:cloudwatch:{r}:{a}:alarm:{n}"},
    "AWS::SSM::Parameter": {"Ref": "{n}"},
    "AWS::SageMaker::Endpoint": {"Ref": SM + ":endpoint/{n}", "EndpointName": "{n}"},
    "AWS::SageMaker::EndpointConfig": {
        "Ref": SM + ":endpoint-config/{n}",
        "EndpointConfigName": "{n}",
    },
    "AWS::SageMaker::Model": {"Ref": SM + ":model/{n}", "ModelName": "{n}"},
    "AWS::SageMaker::ModelPackageGroup": {
        "Ref": SM + ":model-package-group/{n}",
        "ModelPackageGroupArn": SM + ":model-package-group/{n}",
        "ModelPackageGroupName": "{n}",
    },
    "AWS::SageMaker::Pipeline": {"Ref": "{n}", "PipelineName": "{n}"},
}
SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Resolves the intrinsics of one template under one Resolution."""

    def __init__(self, template: Mapping[str, Any], resolution: Resolution) -> None:
        self.template = template
        self.resolution = resolution
        self.resources: Mapping[str, Any] = template.get("Resources", {})
        self._conditions: dict[str, bool] = {}

    # Conditions --------------------------------------------------------------------------------

    def condition(self, name: str, path: str = "Conditions") -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions", {})
            if name not in conditions:
                raise UnresolvableIntrinsic(f"{path}: no condition {name!r} in the template")
            self._conditions[name] = self.truth(conditions[name], f"Conditions.{name}")
        return self._conditions[name]

    def truth(self, expression: Any, path: str) -> bool:
        if isinstance(expression, Mapping) and len(expression) == 1:
            ((function, argument),) = expression.items()
            where = f"{path}.{function}"
            operators: dict[str, Any] = {
                "Condition": lambda: self.condition(argument, path),
                "Fn::Equals": lambda: (
                    self.text(argument[0], where) == self.text(argument[1], where)
                ),
                "Fn::Not": lambda: not self.truth(argument[0], where),
                "Fn::And": lambda: all(self.truth(a, where) for a in argument),
                "Fn::Or": lambda: any(self.truth(a, where) for a in argument),
            }
            if function in operators:
                return bool(operators[function]())
        if isinstance(expression, bool):
            return expression
        if isinstance(expression, str) and expression.lower() in ("true", "false"):
            return expression.lower() == "true"
        raise UnresolvableIntrinsic(f"{path}: not a condition: {expression!r}")

    def exists(self, logical_id: str) -> bool:
        """A resource whose Condition is false is not created."""
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition, f"Resources.{logical_id}")

    # Values ------------------------------------------------------------------------------------

    def resolve(self, value: Any, path: str) -> Any:
        """``value`` with every intrinsic replaced by what CloudFormation would put there."""
        if isinstance(value, list):
            items = (self.resolve(v, f"{path}[{i}]") for i, v in enumerate(value))
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument, path)
            if key.startswith("Fn::"):
                return self.function(key, argument, f"{path}.{key}")
        resolved = {k: self.resolve(v, f"{path}.{k}") for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def function(self, name: str, argument: Any, path: str) -> Any:
        method = getattr(self, "fn_" + name.removeprefix("Fn::").lower(), None)
        if method is None:
            raise UnresolvableIntrinsic(f"{path}: {name} is not supported")
        return method(argument, path)

    def fn_getatt(self, argument: Any, path: str) -> str:
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        return self.attribute(logical_id, self.text(attribute, path), path)

    def fn_join(self, argument: Any, path: str) -> str:
        delimiter, items = argument
        return self.text(delimiter, path).join(self.text(i, path) for i in self.list(items, path))

    def fn_importvalue(self, argument: Any, path: str) -> str:
        export = self.text(argument, path)
        if export not in self.resolution.exports:
            raise UnresolvableIntrinsic(f"{path}: no export {export!r} in Resolution.exports")
        return self.resolution.exports[export]

    def fn_select(self, argument: Any, path: str) -> Any:
        index, items = argument
        return self.list(items, path)[int(self.text(index, path))]

    def fn_split(self, argument: Any, path: str) -> list[str]:
        delimiter, text = argument
        return self.text(text, path).split(self.text(delimiter, path))

    def fn_if(self, argument: Any, path: str) -> Any:
        condition, when_true, when_false = argument
        return self.resolve(when_true if self.condition(condition, path) else when_false, path)

    def fn_findinmap(self, argument: Any, path: str) -> Any:
        mapping, top, second = (self.text(a, path) for a in argument[:3])
        try:
            return self.resolve(self.template["Mappings"][mapping][top][second], path)
        except KeyError:
            raise UnresolvableIntrinsic(f"{path}: no {mapping}.{top}.{second}") from None

    def fn_base64(self, argument: Any, path: str) -> str:
        return self.text(argument, path)  # the text itself serves for IAM purposes

    def text(self, value: Any, path: str) -> str:
        resolved = self.resolve(value, path)
        if not isinstance(resolved, str | int | float) or isinstance(resolved, bool):
            raise UnresolvableIntrinsic(f"{path}: expected a string, got {resolved!r}")
        return str(resolved)

    def list(self, value: Any, path: str) -> list[Any]:
        resolved = self.resolve(value, path)
        if not isinstance(resolved, list):
            raise UnresolvableIntrinsic(f"{path}: expected a list, got {resolved!r}")
        return resolved

    def fn_sub(self, argument: Any, path: str) -> str:
        if isinstance(argument, list):
            text, variables = argument
            values = {k: self.text(v, f"{path}.{k}") for k, v in variables.items()}
        else:
            text, values = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is written as ${Literal}
                return "${" + name[1:] + "}"
            if name in values:
                return values[name]
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.attribute(logical_id, attribute, path)
            return self.text(self.ref(name, path), path)

        return SUB_VARIABLE.sub(replace, self.text(text, path))

    def ref(self, name: str, path: str) -> Any:
        r = self.resolution
        pseudo: dict[str, Any] = {
            "AWS::AccountId": r.account,
            "AWS::Region": r.region,
            "AWS::Partition": r.partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if r.partition == "aws-cn" else "amazonaws.com",
            "AWS::StackName": r.stack_name,
            "AWS::StackId": r.stack_id,
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.parameter(name, path)
        if name in self.resources:
            if name in r.refs:
                return r.refs[name]
            return self.attribute(name, "Ref", path)
        raise UnresolvableIntrinsic(f"{path}: Ref {name!r} is no parameter or resource")

    def parameter(self, name: str, path: str) -> Any:
        if name in self.resolution.parameters:
            return self.resolution.parameters[name]
        declared = self.template["Parameters"][name]
        if str(declared.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
            raise UnresolvableIntrinsic(
                f"{path}: parameter {name} holds an SSM parameter's value: "
                "give it in Resolution.parameters"
            )
        if "Default" not in declared:
            raise UnresolvableIntrinsic(f"{path}: parameter {name} has no default")
        value = declared["Default"]
        if str(declared.get("Type", "")).startswith("List<") or declared.get("Type") == (
            "CommaDelimitedList"
        ):
            return str(value).split(",")
        return value

    def name(self, logical_id: str) -> str:
        """The resource's physical name: given, from its name property, or its logical id."""
        if logical_id in self.resolution.names:
            return self.resolution.names[logical_id]
        resource = self.resources[logical_id]
        prop = NAME_PROPERTY.get(resource["Type"])
        if prop and prop in resource.get("Properties", {}):
            return self.text(resource["Properties"][prop], f"Resources.{logical_id}.{prop}")
        return logical_id.lower() if resource["Type"] == "AWS::S3::Bucket" else logical_id

    def attribute(self, logical_id: str, attribute: str, path: str) -> str:
        key = f"{logical_id}.{attribute}"
        if key in self.resolution.attributes:
            return self.resolution.attributes[key]
        if logical_id not in self.resources:
            raise UnresolvableIntrinsic(f"{path}: no resource {logical_id!r} in the template")
        kind = self.resources[logical_id]["Type"]
        name = self.name(logical_id)
        r = self.resolution
        known = TYPES.get(kind, {})
        if attribute in known:
            return known[attribute].format(n=name, a=r.account, r=r.region, p=r.partition)
        if attribute == "Ref" or attribute.endswith("Name"):
            return name
        if attribute == "Arn" or attribute.endswith("Arn"):  # a generic ARN for other types
            _, service, resource_type = kind.split("::")
            return (
                f"arn:{r.partition}:{service.lower()}:{r.region}:{r.account}:"
                f"{resource_type.lower()}/{name}"
            )
        raise UnresolvableIntrinsic(
            f"{path}: Fn::GetAtt {logical_id}.{attribute} ({kind}): give it in "
            "Resolution.attributes"
        )


# What tests ask ---------------------------------------------------------------------------------


def role_policies(
    template: Mapping[str, Any], resolution: Resolution | None = None
) -> dict[str, ResolvedRole]:
    """Each AWS::IAM::Role's identity policies: inline ``Policies``, template ManagedPolicies
    (named in ``ManagedPolicyArns`` or naming the role in ``Roles``) and AWS::IAM::Policy
    resources attached through ``Roles``."""
    resolver = Resolver(template, resolution or Resolution())
    resources = resolver.resources
    roles = {
        lid: r
        for lid, r in resources.items()
        if r["Type"] == "AWS::IAM::Role" and resolver.exists(lid)
    }
    attached: dict[str, dict[str, dict[str, Any]]] = {lid: {} for lid in roles}
    external: dict[str, list[str]] = {lid: [] for lid in roles}
    for role_id, role in roles.items():
        props = role.get("Properties", {})
        for i, inline in enumerate(props.get("Policies", [])):
            where = f"Resources.{role_id}.Properties.Policies[{i}]"
            name = resolver.text(inline["PolicyName"], f"{where}.PolicyName")
            attached[role_id][name] = resolver.resolve(inline["PolicyDocument"], where)
        for i, arn in enumerate(props.get("ManagedPolicyArns", [])):
            target = arn.get("Ref") if isinstance(arn, Mapping) else None
            if isinstance(target, str) and resources.get(target, {}).get("Type") == (
                "AWS::IAM::ManagedPolicy"
            ):
                continue  # attached below, as the policy's own Roles would
            where = f"Resources.{role_id}.Properties.ManagedPolicyArns[{i}]"
            external[role_id].append(resolver.text(arn, where))
    for policy_id, policy in resources.items():
        if policy["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        if not resolver.exists(policy_id):
            continue
        where = f"Resources.{policy_id}.Properties"
        document = resolver.resolve(policy["Properties"]["PolicyDocument"], where)
        for role_id in _policy_roles(policy_id, policy, roles, resolver):
            attached[role_id][policy_id] = document
    return {
        role_id: ResolvedRole(
            logical_id=role_id,
            arn=resolver.attribute(role_id, "Arn", f"Resources.{role_id}"),
            policies=attached[role_id],
            trust_policy=resolver.resolve(
                role.get("Properties", {}).get("AssumeRolePolicyDocument", {}),
                f"Resources.{role_id}.Properties.AssumeRolePolicyDocument",
            ),
            external_policy_arns=tuple(external[role_id]),
        )
        for role_id, role in roles.items()
    }


def _policy_roles(
    policy_id: str, policy: Mapping[str, Any], roles: Mapping[str, Any], resolver: Resolver
) -> list[str]:
    """The template roles a policy is attached to: its Roles, and roles naming it by Ref."""
    found = []
    by_name = {resolver.name(lid): lid for lid in roles}
    for i, entry in enumerate(policy["Properties"].get("Roles", [])):
        if isinstance(entry, Mapping) and entry.get("Ref") in roles:
            found.append(entry["Ref"])
        else:  # a role named by a string (or an intrinsic giving its name)
            name = resolver.text(entry, f"Resources.{policy_id}.Properties.Roles[{i}]")
            if name in by_name:
                found.append(by_name[name])
    for role_id, role in roles.items():
        arns = role.get("Properties", {}).get("ManagedPolicyArns", [])
        if any(isinstance(a, Mapping) and a.get("Ref") == policy_id for a in arns):
            found.append(role_id)
    return list(dict.fromkeys(found))


def roles_assumed_by(
    template: Mapping[str, Any], service_principal: str, resolution: Resolution | None = None
) -> list[str]:
    """The roles whose trust policy lets ``service_principal`` (e.g. "lambda.amazonaws.com")
    assume them."""
    resolver = Resolver(template, resolution or Resolution())
    found = []
    for lid, resource in resolver.resources.items():
        if resource["Type"] != "AWS::IAM::Role" or not resolver.exists(lid):
            continue
        trust = resolver.resolve(
            resource.get("Properties", {}).get("AssumeRolePolicyDocument", {}),
            f"Resources.{lid}.Properties.AssumeRolePolicyDocument",
        )
        for statement in _as_list(trust.get("Statement", [])):
            principal = statement.get("Principal", {})
            services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
            actions = _as_list(statement.get("Action", []))
            if (
                statement.get("Effect") == "Allow"
                and service_principal in services
                and any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions)
            ):
                found.append(lid)
                break
    return found


def function_roles(template: Mapping[str, Any]) -> dict[str, str]:
    """Each AWS::Lambda::Function's role, by logical id (its ``Role`` is a GetAtt of it)."""
    found = {}
    for lid, resource in template.get("Resources", {}).items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role = resource.get("Properties", {}).get("Role")
        getatt = role.get("Fn::GetAtt") if isinstance(role, Mapping) else None
        if not getatt:
            raise UnresolvableIntrinsic(
                f"Resources.{lid}.Properties.Role: not a role of this template: {role!r}"
            )
        found[lid] = getatt[0] if isinstance(getatt, list) else getatt.split(".")[0]
    return found


def function_role(template: Mapping[str, Any], function_id: str) -> str:
    return function_roles(template)[function_id]


def resource_policies(
    template: Mapping[str, Any], resolution: Resolution | None = None
) -> dict[str, dict[str, Any]]:
    """Resource policies by the ARN they govern (keys: key policies; buckets, topics, queues:
    their policy resources), for the simulator's ``resource_policies``."""
    resolver = Resolver(template, resolution or Resolution())
    found: dict[str, dict[str, Any]] = {}
    for lid, resource in resolver.resources.items():
        if not resolver.exists(lid):
            continue
        props, where = resource.get("Properties", {}), f"Resources.{lid}.Properties"
        kind = resource["Type"]
        if kind == "AWS::KMS::Key" and "KeyPolicy" in props:
            arn = resolver.attribute(lid, "Arn", where)
            found[arn] = resolver.resolve(props["KeyPolicy"], f"{where}.KeyPolicy")
        elif kind == "AWS::S3::BucketPolicy":
            bucket = resolver.text(props["Bucket"], f"{where}.Bucket")
            found[f"arn:{resolver.resolution.partition}:s3:::{bucket}"] = resolver.resolve(
                props["PolicyDocument"], f"{where}.PolicyDocument"
            )
        elif kind in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
            document = resolver.resolve(props["PolicyDocument"], f"{where}.PolicyDocument")
            targets = props.get("Topics") or props.get("Queues") or []
            for i, target in enumerate(targets):
                value = resolver.text(target, f"{where}[{i}]")
                found[_queue_arn(value, resolver.resolution) if "://" in value else value] = (
                    document
                )
    return found


def exports_of(template: Mapping[str, Any], resolution: Resolution | None = None) -> dict[str, str]:
    """The values a template exports (Outputs with Export.Name), for a consumer's
    ``Resolution.exports``."""
    resolver = Resolver(template, resolution or Resolution())
    found = {}
    for key, output in template.get("Outputs", {}).items():
        if "Export" in output:
            name = resolver.text(output["Export"]["Name"], f"Outputs.{key}.Export.Name")
            found[name] = resolver.text(output["Value"], f"Outputs.{key}.Value")
    return found


def ssm_parameters(template: Mapping[str, Any]) -> dict[str, str]:
    """Parameters typed AWS::SSM::Parameter::Value<...>: key -> SSM parameter name (default),
    for ``CallFacts.stack_ssm_parameters``."""
    return {
        key: str(p["Default"])
        for key, p in template.get("Parameters", {}).items()
        if str(p.get("Type", "")).startswith("AWS::SSM::Parameter::Value<") and "Default" in p
    }


def resolve(template: Mapping[str, Any], value: Any, resolution: Resolution | None = None) -> Any:
    """Any value of ``template`` (a property, a statement) resolved."""
    return Resolver(template, resolution or Resolution()).resolve(value, "value")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _queue_arn(url: str, resolution: Resolution) -> str:
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:{resolution.partition}:sqs:{resolution.region}:{account}:{name}"
