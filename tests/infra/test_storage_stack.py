"""Security properties of the storage stack, asserted on the synthesized template."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from stacks.platform import Platform

DATA_BUCKETS = ("Datasets", "Artifacts", "Capture", "Reports")


def buckets(template: Template) -> dict[str, Any]:
    return dict(template.find_resources("AWS::S3::Bucket"))


def bucket_id(template: Template, prefix: str) -> str:
    (logical_id,) = [i for i in buckets(template) if i.startswith(f"{prefix}Bucket")]
    return logical_id


def key_id(template: Template) -> str:
    (logical_id,) = template.find_resources("AWS::KMS::Key")
    return str(logical_id)


def test_one_customer_managed_key_with_rotation_retained(storage_template: Template) -> None:
    storage_template.resource_count_is("AWS::KMS::Key", 1)
    storage_template.has_resource(
        "AWS::KMS::Key",
        {
            "Properties": {"EnableKeyRotation": True, "PendingWindowInDays": 30},
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    # The alias goes with the stack (its fixed name would block a redeploy); the key stays.
    storage_template.has_resource("AWS::KMS::Alias", {"DeletionPolicy": "Delete"})


def test_bucket_policies_outlive_the_stack(storage_template: Template) -> None:
    policies = storage_template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 5
    for logical_id, policy in policies.items():
        assert policy["DeletionPolicy"] == "Retain", logical_id


@pytest.mark.parametrize("name", DATA_BUCKETS)
def test_writes_under_another_key_or_encryption_are_denied(
    storage_template: Template, name: str
) -> None:
    statements = {s.get("Sid"): s for s in policy_for(storage_template, name)}
    objects = {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id(storage_template, name), "Arn"]}, "/*"]]}
    key_arn = {"Fn::GetAtt": [key_id(storage_template), "Arn"]}
    header = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    expected = {
        "DenyOtherKmsKeys": {
            "StringNotEqualsIfExists": {header: key_arn},
            "Null": {header: "false"},
        },
        "DenyOtherEncryption": {
            "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"},
            "Null": {"s3:x-amz-server-side-encryption": "false"},
        },
        "DenyCustomerKeys": {
            "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}
        },
    }
    for sid, condition in expected.items():
        statement = statements[sid]
        assert statement["Effect"] == "Deny"
        assert statement["Principal"] == {"AWS": "*"}
        assert statement["Action"] == "s3:PutObject"
        assert statement["Resource"] == objects
        assert statement["Condition"] == condition
    storage_template.has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": "alias/mlops-dev-data"}
    )


def test_five_buckets_all_retained(storage_template: Template) -> None:
    assert len(buckets(storage_template)) == 5
    for logical_id, bucket in buckets(storage_template).items():
        assert bucket["DeletionPolicy"] == "Retain", logical_id
        assert bucket["UpdateReplacePolicy"] == "Retain", logical_id


def test_every_bucket_is_versioned_private_and_owner_enforced(storage_template: Template) -> None:
    for logical_id, bucket in buckets(storage_template).items():
        props = bucket["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
        assert props["OwnershipControls"] == {
            "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]
        }, logical_id


@pytest.mark.parametrize("name", DATA_BUCKETS)
def test_data_buckets_use_the_platform_key(storage_template: Template, name: str) -> None:
    props = buckets(storage_template)[bucket_id(storage_template, name)]["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [key_id(storage_template), "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True


@pytest.mark.parametrize("name", DATA_BUCKETS)
def test_data_buckets_log_access_to_the_log_bucket(storage_template: Template, name: str) -> None:
    props = buckets(storage_template)[bucket_id(storage_template, name)]["Properties"]
    assert props["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": bucket_id(storage_template, "AccessLogs")},
        "LogFilePrefix": f"{name.lower()}/",
    }


def test_access_log_bucket_uses_sse_s3_because_s3_logging_cannot_use_kms(
    storage_template: Template,
) -> None:
    props = buckets(storage_template)[bucket_id(storage_template, "AccessLogs")]["Properties"]
    assert props["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    }
    assert "LoggingConfiguration" not in props
    # Log delivery is granted through the bucket policy (no ACLs), scoped to each source.
    policy = policy_for(storage_template, "AccessLogs")
    delivery = [s for s in policy if s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}]
    assert len(delivery) == len(DATA_BUCKETS)
    for statement in delivery:
        assert statement["Action"] == "s3:PutObject"
        assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]


def policy_for(template: Template, prefix: str) -> list[dict[str, Any]]:
    target = {"Ref": bucket_id(template, prefix)}
    for policy in template.find_resources("AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == target:
            statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
            return statements
    raise AssertionError(f"no bucket policy for {prefix}")


@pytest.mark.parametrize("name", [*DATA_BUCKETS, "AccessLogs"])
def test_every_bucket_denies_plain_http_and_old_tls(storage_template: Template, name: str) -> None:
    statements = policy_for(storage_template, name)
    arn = {"Fn::GetAtt": [bucket_id(storage_template, name), "Arn"]}
    denies = {
        next(iter(s["Condition"])): s
        for s in statements
        if s["Effect"] == "Deny" and s["Action"] == "s3:*" and s["Principal"] == {"AWS": "*"}
    }
    assert denies["Bool"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert denies["NumericLessThan"]["Condition"] == {"NumericLessThan": {"s3:TlsVersion": 1.2}}
    for deny in denies.values():
        # Both the bucket and every object in it.
        assert arn in deny["Resource"]
        assert {"Fn::Join": ["", [arn, "/*"]]} in deny["Resource"]


def lifecycle(template: Template, name: str) -> dict[str, dict[str, Any]]:
    props = buckets(template)[bucket_id(template, name)]["Properties"]
    return {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}


@pytest.mark.parametrize("name", ["Datasets", "Artifacts", "Reports"])
def test_noncurrent_versions_expire_after_the_configured_days(
    storage_template: Template, name: str
) -> None:
    rules = lifecycle(storage_template, name)
    # Current data never expires here; a drift job's working files do (test_drift_job_files).
    jobs = {"expire-drift-job-files", "remove-drift-job-delete-markers"}
    assert set(rules) == {"noncurrent-versions", *(jobs if name == "Reports" else ())}
    rule = rules["noncurrent-versions"]
    assert rule["Status"] == "Enabled"
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_capture_data_is_gone_a_day_after_it_expires(storage_template: Template) -> None:
    rules = lifecycle(storage_template, "Capture")
    assert rules["expire-objects"] == {
        "Id": "expire-objects",
        "Status": "Enabled",
        "ExpirationInDays": 30,
    }
    assert rules["noncurrent-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    # A separate rule: S3 rejects ExpiredObjectDeleteMarker next to ExpirationInDays.
    assert rules["remove-expired-delete-markers"] == {
        "Id": "remove-expired-delete-markers",
        "Status": "Enabled",
        "ExpiredObjectDeleteMarker": True,
    }
    assert (
        lifecycle(storage_template, "AccessLogs")["expire-access-logs"]["ExpirationInDays"] == 365
    )


def test_lifecycle_days_come_from_config(build: Any) -> None:
    _, platform = build(capture_expiration_days=7, noncurrent_version_expiration_days=14)
    template = Template.from_stack(platform.storage)
    assert lifecycle(template, "Capture")["expire-objects"]["ExpirationInDays"] == 7
    for name in ("Datasets", "Artifacts", "Reports"):
        assert lifecycle(template, name)["noncurrent-versions"]["NoncurrentVersionExpiration"] == {
            "NoncurrentDays": 14
        }


def test_stateful_stacks_have_termination_protection(
    default_platform: tuple[cdk.App, Platform],
) -> None:
    _, platform = default_platform
    assert platform.storage.termination_protection is True
    assert platform.registry.termination_protection is True


def test_named_exports_form_the_storage_contract(storage_template: Template) -> None:
    outputs = storage_template.to_json()["Outputs"]
    exports = {o["Export"]["Name"] for o in outputs.values() if "Export" in o}
    assert exports == {
        "mlops-dev-data-key-arn",
        *(f"mlops-dev-{b.lower()}-bucket-{what}" for b in DATA_BUCKETS for what in ("name", "arn")),
    }
    storage_template.has_output(
        "DataKeyArn",
        {"Value": {"Fn::GetAtt": [key_id(storage_template), "Arn"]}, "Export": Match.any_value()},
    )
