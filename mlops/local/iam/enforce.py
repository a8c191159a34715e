"""The offline twin's IAM: every AWS call a platform function makes on the embedded default is
judged against its role's grants (mlops.core.permissions, the same grants the serving stack
renders) by the policy evaluator, and refused with AWS's AccessDenied when they do not allow
it. The emulator itself enforces nothing; this is what makes a missing permission fail
``make demo`` and the tests instead of the first deploy in a real account.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import EMULATOR_ACCOUNT, observe_calls
from mlops.core import names, permissions, processing_permissions, specs
from mlops.core.config import PlatformConfig
from mlops.local.iam.calls import CallFacts, requests_for_call
from mlops.local.iam.simulator import Decision, Identity, PolicySimulator, access_denied

# The drift checks' Processing job role: what SageMaker does with it around a job (the twin's
# runner, mlops.local.processing) is judged against its grants like a function's calls.
PROCESSING: Literal["drift-processing"] = "drift-processing"
Principal = specs.Function | Literal["drift-processing"]

_SIMULATOR: PolicySimulator | None = None
_LOCK = threading.Lock()
# Calls judged per function in this process (the demo reports them).
CHECKED: Counter[str] = Counter()


def simulator() -> PolicySimulator:
    """One evaluator process for the life of this process (started on first use)."""
    global _SIMULATOR  # noqa: PLW0603 - a process-wide Node process, closed at exit
    with _LOCK:
        if _SIMULATOR is None:
            _SIMULATOR = PolicySimulator()
            atexit.register(_SIMULATOR.close)
        return _SIMULATOR


def key_policy(account: str) -> dict[str, Any]:
    """The default key policy CDK gives the platform's keys: the account's IAM policies
    decide (so the role's grant is what counts, as in AWS)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


@dataclass
class TwinIam:
    """The roles of the platform's functions on the embedded default, with its resources."""

    config: PlatformConfig
    region: str
    resources: PlatformResources
    topic_arn: str | None = None
    account: str = EMULATOR_ACCOUNT
    # Roles other than the grants' own rendering (tests judge calls by a synthesized template).
    identities: Mapping[Principal, Identity] | None = None
    ops_key: str | None = None  # the serving stack's key (the alerts topic's), if known
    cloudformation_role_arn: str | None = None
    # Every decision made while enforcing, in order (tests read it).
    decisions: list[tuple[Principal, str, Decision]] = field(default_factory=list)

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    @property
    def data_key_arn(self) -> str:
        return self.resources.key_arn or self._arn("kms", "key/data-key")

    @property
    def processing_role_arn(self) -> str:
        """The drift checks' Processing job role (the stack names it so too)."""
        return f"arn:aws:iam::{self.account}:role/{names.drift_processing_role(self.config)}"

    @property
    def ops_key_arn(self) -> str:
        return self.ops_key or self._arn("kms", "key/ops-key")

    def refs(self, function: Principal | None = None) -> dict[str, str]:
        """The values of the grants' ARN fields on the embedded default."""
        name = f"{self.config.prefix}-{function or 'cloudformation'}"
        return {
            "partition": "aws",
            "region": self.region,
            "account": self.account,
            **{
                f"{role}_bucket_arn": f"arn:aws:s3:::{self.resources.bucket(role)}"
                for role in ("reports", "capture", "artifacts")
            },
            "data_key_arn": self.data_key_arn,
            "ops_key_arn": self.ops_key_arn,
            "topic_arn": self.topic_arn or self._arn("sns", f"{self.config.prefix}-alerts"),
            "cloudformation_role_arn": self.cloudformation_role_arn
            or f"arn:aws:iam::{self.account}:role/{self.config.prefix}-cfn",
            "model_role_arn": f"arn:aws:iam::{self.account}:role/{self.config.prefix}-model",
            "processing_role_arn": self.processing_role_arn,
            "dead_letters_arn": self._arn("sqs", f"{name}-dead-letters"),
            "log_group_arn": self._arn("logs", f"log-group:/aws/lambda/{name}:*"),
            "bootstrap_qualifier": "hnb659fds",
        }

    def identity(self, function: Principal) -> Identity:
        if self.identities is not None and function in self.identities:
            return self.identities[function]
        if function == "drift-processing":
            return Identity(
                self.processing_role_arn,
                {
                    f"{PROCESSING}-policy": permissions.policy(
                        processing_permissions.drift_processing(self.config), self.refs()
                    )
                },
                session_name="SageMaker",
            )
        if self.identities is not None:
            raise KeyError(function)
        grants = permissions.for_function(function, self.config)
        return Identity(
            f"arn:aws:iam::{self.account}:role/{self.config.prefix}-{function}",
            {f"{function}-policy": permissions.policy(grants, self.refs(function))},
            session_name=f"{self.config.prefix}-{function}",
        )

    def facts(self) -> CallFacts:
        """What AWS knows about the platform's resources: every bucket is encrypted with the
        data key, the alerts topic with the ops key."""
        topic = self.refs()["topic_arn"]
        return CallFacts(
            bucket_keys={
                self.resources.bucket(role): self.data_key_arn
                for role in ("datasets", "artifacts", "capture", "reports")
            },
            topic_keys={topic: self.ops_key_arn},
            stack_ssm_parameters={
                names.serving_stack(self.config): {
                    "BootstrapVersion": "/cdk-bootstrap/hnb659fds/version"
                }
            },
        )

    def key_policies(self) -> Mapping[str, Any]:
        return {arn: key_policy(self.account) for arn in (self.data_key_arn, self.ops_key_arn)}

    def check(
        self, function: Principal, service: str, operation: str, params: Mapping[str, Any]
    ) -> list[Decision]:
        """The decisions for one call made with ``function``'s role."""
        requests = requests_for_call(
            service, operation, params, account=self.account, region=self.region,
            facts=self.facts(),
        )  # fmt: skip
        decisions = simulator().evaluate_many(
            requests, self.identity(function), resource_policies=self.key_policies()
        )
        self.decisions.extend((function, operation, d) for d in decisions)
        return decisions

    @contextlib.contextmanager
    def enforced(self, function: Principal) -> Iterator[None]:
        """Refuse, as AWS would, every call inside the block that ``function``'s role does
        not allow (``PROCESSING``: the drift jobs' role, for what SageMaker does with it)."""
        identity = self.identity(function)

        def judge(service: str, operation: str, params: Mapping[str, Any]) -> None:
            with _LOCK:
                CHECKED[function] += 1
            for decision in self.check(function, service, operation, params):
                if not decision.allowed:
                    raise access_denied(decision, caller=identity.session_arn, operation=operation)

        with observe_calls(judge):
            yield
