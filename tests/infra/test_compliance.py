"""cdk-nag: zero unacknowledged findings, and a reason on every acknowledgement."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

from stacks.compliance import (
    NAG_METADATA_KEY,
    NIST_BASELINE_RULES,
    NIST_NOT_ADOPTED,
    acknowledge,
)
from stacks.platform import Platform

PACKS = {"AwsSolutions": AwsSolutionsChecks, "NIST.800.53.R5": NIST80053R5Checks}


def findings(app: cdk.App, pack: str) -> list[tuple[str, list[str | None]]]:
    report = PACKS[pack](app).validate_scope(app)
    return [
        (v.rule_name, [r.construct_path for r in v.violating_resources]) for v in report.violations
    ]


def acknowledgements(app: cdk.App) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) for every acknowledgement in the app."""
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    found = []
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == key:
                for rule, reason in entry.data.items():
                    found.append((construct.node.path, rule.removeprefix("Annotation::"), reason))
    return found


@pytest.mark.parametrize(
    "platform_fixture", ["default_platform", "mlflow_platform", "own_mlflow_platform"]
)
@pytest.mark.parametrize("pack", sorted(PACKS))
def test_no_unacknowledged_findings(
    request: pytest.FixtureRequest, platform_fixture: str, pack: str
) -> None:
    app, _ = request.getfixturevalue(platform_fixture)
    assert findings(app, pack) == []


def test_checks_fail_on_an_insecure_bucket(build: Any) -> None:
    # The packs really run on our resources: a plain bucket in the storage stack is caught.
    app, platform = build()
    s3.Bucket(platform.storage, "Insecure")
    aws = {rule for rule, _ in findings(app, "AwsSolutions")}
    nist = {rule for rule, _ in findings(app, "NIST.800.53.R5")}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= aws
    assert {
        "NIST.800.53.R5-S3BucketVersioningEnabled",
        "NIST.800.53.R5-S3DefaultEncryptionKMS",
        "NIST.800.53.R5-S3BucketSSLRequestsOnly",
    } <= nist


def test_synth_fails_on_a_finding(build: Any) -> None:
    app, platform = build()
    s3.Bucket(platform.storage, "Insecure")
    with pytest.raises(RuntimeError, match="ValidationFailed") as failed:
        app.synth()
    assert "mlops-dev-storage/Insecure/Resource" in str(failed.value)
    assert "NIST.800.53.R5-S3BucketVersioningEnabled" in str(failed.value)


def test_every_acknowledgement_has_a_reason(mlflow_platform: tuple[cdk.App, Platform]) -> None:
    app, _ = mlflow_platform
    found = acknowledgements(app)
    assert found, "expected the documented acknowledgements"
    for path, rule, reason in found:
        assert len(reason.split()) >= 8, f"{path}: {rule} has no real reason: {reason!r}"


def test_baseline_rules_are_never_acknowledged_platform_wide(
    mlflow_platform: tuple[cdk.App, Platform],
) -> None:
    # Versioning/KMS findings may only be acknowledged on one named resource, never on a
    # stack or the app, where the acknowledgement would cover every future resource too.
    app, platform = mlflow_platform
    wide = {app.node.path, platform.storage.node.path, platform.registry.node.path}
    for path, rule, _ in acknowledgements(app):
        if rule in NIST_BASELINE_RULES:
            assert path not in wide, f"{rule} acknowledged platform-wide at {path!r}"
    assert not NIST_BASELINE_RULES & set(NIST_NOT_ADOPTED)


def test_only_the_access_log_bucket_skips_kms(mlflow_platform: tuple[cdk.App, Platform]) -> None:
    app, _ = mlflow_platform
    kms_exceptions = [
        path for path, rule, _ in acknowledgements(app)
        if rule == "NIST.800.53.R5-S3DefaultEncryptionKMS"
    ]  # fmt: skip
    assert kms_exceptions == ["mlops-dev-storage/AccessLogsBucket"]


def test_acknowledge_refuses_an_empty_reason() -> None:
    # Any construct will do (the reason is checked first): a whole platform build is not needed.
    stack = cdk.Stack(cdk.App(), "Storage")
    with pytest.raises(ValueError, match="needs a real reason"):
        acknowledge(stack, "AwsSolutions-S1", "ok")


def test_every_acknowledgement_is_needed(monkeypatch: pytest.MonkeyPatch, build: Any) -> None:
    # An acknowledgement that matches no finding is misleading (and hides a future one).
    import stacks.compliance  # noqa: PLC0415
    import stacks.pipeline  # noqa: PLC0415
    import stacks.registry  # noqa: PLC0415
    import stacks.serving.deploy_function  # noqa: PLC0415
    import stacks.serving.drift_function  # noqa: PLC0415
    import stacks.serving.endpoint  # noqa: PLC0415
    import stacks.serving.function  # noqa: PLC0415
    import stacks.serving.traffic_function  # noqa: PLC0415
    import stacks.storage  # noqa: PLC0415

    recorded: list[tuple[str, str]] = []
    for module in (
        stacks.compliance,
        stacks.pipeline,
        stacks.registry,
        stacks.serving.deploy_function,
        stacks.serving.drift_function,
        stacks.serving.endpoint,
        stacks.serving.function,
        stacks.serving.traffic_function,
        stacks.storage,
    ):
        if not hasattr(module, "acknowledge"):  # grants acknowledge through function.Grants
            continue
        monkeypatch.setattr(
            module,
            "acknowledge",
            lambda scope, rule, reason: recorded.append((scope.node.path, rule)),
        )
    app, _ = build(enable_mlflow_server=True)
    found = {
        (path or "", rule)
        for pack in PACKS
        for rule, paths in findings(app, pack)
        for path in paths
    }
    assert recorded
    for scope, rule in recorded:
        matched = any(
            r == rule and (scope in ("", p) or (p or "").startswith(scope + "/")) for p, r in found
        )
        assert matched, f"{rule} acknowledged on {scope or 'the app'} but nothing there violates it"


def test_every_acknowledgement_is_written_into_its_template(
    mlflow_platform: tuple[cdk.App, Platform],
) -> None:
    """A reader of a template (or cdk-nag in its aspect mode) sees each acknowledgement and
    its reason: on the resources it covers, or in the template's metadata (app-wide ones)."""
    app, platform = mlflow_platform
    stacks = (platform.storage, platform.registry, platform.pipeline, platform.serving)
    written: set[tuple[str, str]] = set()
    for stack in stacks:
        template = Template.from_stack(stack).to_json()
        places = [template.get("Metadata", {})] + [
            r.get("Metadata", {}) for r in template["Resources"].values()
        ]
        for metadata in places:
            for entry in metadata.get(NAG_METADATA_KEY, {}).get("rules_to_suppress", []):
                assert len(entry["reason"]) >= 20, entry
                rule = entry["id"] + "".join(f"[{a}]" for a in entry.get("applies_to", []))
                written.add((rule, entry["reason"]))
    acknowledged = {(rule, reason) for _, rule, reason in acknowledgements(app)}
    assert acknowledged <= written, acknowledged - written
    assert any(rule.startswith("AwsSolutions-IAM5[Resource::") for rule, _ in written)
