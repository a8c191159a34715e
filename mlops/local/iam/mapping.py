"""The table behind ``calls``: the call being mapped, the facts it may need, the registry.

Each ``*_calls`` module registers its services' operations with ``@maps`` (or ``TABLE[...]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops.local.iam.simulator import IamRequest

# CloudFormation stack ARNs end in a stack id AWS assigns; requests (and the template resolver)
# use this one. Policies grant "stack/<name>/*", which covers it.
PLACEHOLDER_STACK_ID = "00000000-0000-0000-0000-000000000000"

# botocore's service name -> IAM service prefix, where they differ.
IAM_PREFIX = {"sagemaker-runtime": "sagemaker"}

Context = dict[str, str | list[str]]


class UnmappedCall(LookupError):
    """A call with no entry in the table: map it in mlops/local/iam/calls.py."""

    def __init__(self, service: str, operation: str, reason: str = "") -> None:
        self.service, self.operation = service, operation
        detail = f": {reason}" if reason else ""
        super().__init__(
            f"{service}.{operation} is not mapped to IAM requests{detail} "
            "(add it to mlops/local/iam/calls.py)"
        )


@dataclass(frozen=True)
class CallFacts:
    """What the parameters of a call do not say but its authorization depends on."""

    bucket_keys: Mapping[str, str] = field(default_factory=dict)  # bucket name -> key ARN
    topic_keys: Mapping[str, str] = field(default_factory=dict)  # topic ARN -> key ARN
    queue_keys: Mapping[str, str] = field(default_factory=dict)  # queue ARN -> key ARN
    key_aliases: Mapping[str, str] = field(default_factory=dict)  # "alias/x" -> key ARN
    # stack name -> {parameter key: SSM parameter name} for parameters of type
    # AWS::SSM::Parameter::Value<...> (the name is the parameter's default or current value).
    stack_ssm_parameters: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One call being mapped, with the ARN builders of its account and region."""

    service: str
    operation: str
    params: Mapping[str, Any]
    account: str
    region: str
    partition: str
    facts: CallFacts

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        where = f"{self.region if region else ''}:{self.account if account else ''}"
        return f"arn:{self.partition}:{service}:{where}:{resource}"

    def request(self, action: str, resource: str, context: Context | None = None) -> IamRequest:
        prefix = (
            action if ":" in action else f"{IAM_PREFIX.get(self.service, self.service)}:{action}"
        )
        full = {"aws:RequestedRegion": self.region, **(context or {})}
        return IamRequest(prefix, resource, full)

    def require(self, name: str) -> Any:
        if name not in self.params:
            raise UnmappedCall(self.service, self.operation, f"no {name} parameter")
        return self.params[name]

    def kms(
        self, actions: Iterable[str], key: str | None, via: str, context: Context | None = None
    ) -> list[IamRequest]:
        """The requests a service makes to KMS for the caller (none when no key)."""
        if not key:
            return []
        full: Context = {
            "kms:ViaService": f"{via}.{self.region}.amazonaws.com",
            "kms:CallerAccount": self.account,
            **(context or {}),
        }
        return [self.request(f"kms:{action}", self.key_arn(key), full) for action in actions]

    def derived(self, service: str, operation: str, params: Mapping[str, Any]) -> Call:
        """Another call made on this one's behalf (the service's, with the caller's rights)."""
        return Call(
            service, operation, params, self.account, self.region, self.partition, self.facts
        )

    def key_arn(self, key: str) -> str:
        """A KMS key ARN from a key id, key ARN or alias (aliases through the facts)."""
        name = key.split(":", 5)[5] if key.startswith("arn:") else key
        if name.startswith("alias/"):
            if name not in self.facts.key_aliases:
                raise UnmappedCall(self.service, self.operation, f"{name} is not in key_aliases")
            return self.facts.key_aliases[name]
        return key if key.startswith("arn:") else self.arn("kms", f"key/{key}")


Mapper = Callable[[Call], list[IamRequest]]
TABLE: dict[tuple[str, str], Mapper] = {}


def maps(service: str, *operations: str) -> Callable[[Mapper], Mapper]:
    def register(mapper: Mapper) -> Mapper:
        for operation in operations:
            TABLE[(service, operation)] = mapper
        return mapper

    return register


def simple(action: str, resource: Callable[[Call], str]) -> Mapper:
    return lambda call: [call.request(action, resource(call))]
