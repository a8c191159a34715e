"""cdk-nag rule packs and the platform's acknowledgements.

Both packs run as CDK policy-validation plugins, so any unacknowledged finding fails
`cdk synth`. AwsSolutions runs in full. NIST 800-53 R5 also runs in full, and the controls
this platform does not adopt are acknowledged once, below, each with its reason. The
versioning and KMS controls are never acknowledged platform-wide (tests enforce that).
"""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import (
    Acknowledgment,
    App,
    Aspects,
    Aws,
    CfnResource,
    IAspect,
    Stack,
    Stage,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import IConstruct

# Where each acknowledgement is written into the template, in cdk-nag's own suppression
# format, so a reader of the template (or cdk-nag in its aspect mode) sees it and its reason.
NAG_METADATA_KEY = "cdk_nag"

# The NIST 800-53 R5 rules that carry the platform's versioning and KMS baseline.
NIST_BASELINE_RULES = frozenset(
    {
        "NIST.800.53.R5-S3BucketVersioningEnabled",
        "NIST.800.53.R5-S3DefaultEncryptionKMS",
        "NIST.800.53.R5-KMSBackingKeyRotationEnabled",
        "NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured",
        "NIST.800.53.R5-SNSEncryptedKMS",
        "NIST.800.53.R5-CloudWatchLogGroupEncrypted",
        "NIST.800.53.R5-S3BucketSSLRequestsOnly",
    }
)

# NIST 800-53 R5 controls outside this platform's baseline, with the reason for each.
NIST_NOT_ADOPTED: dict[str, str] = {
    "NIST.800.53.R5-S3BucketReplicationEnabled": (
        "Cross-region replication doubles storage cost and needs a second region; "
        "versioning plus RETAIN is the recovery path. Add replication per deployment if required."
    ),
}


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on a construct (and its children), with a reason."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledgement of {rule_id} needs a real reason, got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
    rule, _, applies_to = rule_id.partition("[")
    entry: dict[str, Any] = {"id": rule, "reason": reason}
    if applies_to:
        entry["applies_to"] = [applies_to.removesuffix("]")]
    Aspects.of(scope).add(_WriteAcknowledgement(scope, entry))


@jsii.implements(IAspect)
class _WriteAcknowledgement:
    """Writes one acknowledgement into the template: on every resource under a construct, or
    in the template's metadata when an app, stage or stack acknowledges it."""

    def __init__(self, scope: IConstruct, entry: dict[str, Any]) -> None:
        self.stack_wide = isinstance(scope, App | Stage | Stack)
        self.entry = entry

    def visit(self, node: IConstruct) -> None:
        if self.stack_wide and isinstance(node, Stack):
            metadata = dict(node.template_options.metadata or {})
            rules = dict(metadata.get(NAG_METADATA_KEY, {}))
            rules["rules_to_suppress"] = [*rules.get("rules_to_suppress", []), self.entry]
            metadata[NAG_METADATA_KEY] = rules
            node.template_options.metadata = metadata
        elif not self.stack_wide and isinstance(node, CfnResource):
            rules = dict(node.get_metadata(NAG_METADATA_KEY) or {})
            rules["rules_to_suppress"] = [*rules.get("rules_to_suppress", []), self.entry]
            node.add_metadata(NAG_METADATA_KEY, rules)


def add_compliance_checks(app: App) -> None:
    """Run AwsSolutions and NIST 800-53 R5 on every stack of the app at synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app))
    for rule_id, reason in NIST_NOT_ADOPTED.items():
        acknowledge(app, rule_id, reason)


def logs_may_use(key: kms.Key, condition: dict[str, Any]) -> None:
    """Let CloudWatch Logs encrypt log groups with ``key``: only those its encryption context
    ``condition`` names (``kms:EncryptionContext:aws:logs:arn``)."""
    key.add_to_resource_policy(
        iam.PolicyStatement(
            actions=[
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
            resources=["*"],
            conditions=condition,
        )
    )
