"""Which packages may serve: the registry's word, this family's group, this account."""

from __future__ import annotations

import pytest

from mlops.core.approval import PackageScope, foreign_package, package_refusal

SCOPE = PackageScope(group="mlops-dev-visits", account="123456789012", region="us-east-1")
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/3"


def test_an_approved_package_of_this_group_may_serve() -> None:
    assert package_refusal(ARN, "Approved", "mlops-dev-visits", SCOPE) is None


@pytest.mark.parametrize(
    ("arn", "status", "group", "expected"),
    [
        (ARN, "PendingManualApproval", "mlops-dev-visits", "is PendingManualApproval"),
        (ARN, "Rejected", "mlops-dev-visits", "is Rejected"),
        (ARN, None, "mlops-dev-visits", "is None"),
        (ARN, "Approved", "other-family", "in group other-family, not mlops-dev-visits"),
        (ARN.replace("123456789012", "999999999999"), "Approved", "mlops-dev-visits",
         "belongs to account 999999999999"),
        (ARN.replace("us-east-1", "eu-west-1"), "Approved", "mlops-dev-visits", "is in eu-west-1"),
        ("arn:aws:sagemaker:us-east-1:123456789012:model/x", "Approved", "mlops-dev-visits",
         "is not a model package ARN"),
        ("mlops-dev-visits/3", "Approved", "mlops-dev-visits", "is not a model package ARN"),
    ],
)  # fmt: skip
def test_refusals_name_the_reason(arn: str, status: str | None, group: str, expected: str) -> None:
    refusal = package_refusal(arn, status, group, SCOPE)
    assert refusal is not None
    assert expected in refusal


def test_foreign_packages_are_refused_before_the_registry_is_asked() -> None:
    assert foreign_package(ARN, SCOPE) is None
    assert "account" in (foreign_package(ARN.replace("123456789012", "1" * 12), SCOPE) or "")
