"""cdk-nag rule packs and the platform's acknowledgements.

Both packs run as CDK policy-validation plugins, so any unacknowledged finding fails
`cdk synth`. AwsSolutions runs in full. NIST 800-53 R5 also runs in full, and the controls
this platform does not adopt are acknowledged once, below, each with its reason. The
versioning and KMS controls are never acknowledged platform-wide (tests enforce that).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import IConstruct

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


def add_compliance_checks(app: App) -> None:
    """Run AwsSolutions and NIST 800-53 R5 on every stack of the app at synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app))
    for rule_id, reason in NIST_NOT_ADOPTED.items():
        acknowledge(app, rule_id, reason)
