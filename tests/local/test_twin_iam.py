"""The twin enforces each function's grants: a missing permission fails on the embedded
default (and so `make demo`) as it would in AWS, with AWS's AccessDenied."""

from __future__ import annotations

from typing import Any

import pytest

from mlops.adapters.target import AwsTarget
from mlops.core import permissions, specs
from mlops.core.config import PlatformConfig
from mlops.local.aws_services import invoke_function
from mlops.local.emulator import bootstrap
from tests.local.test_traffic_control import make_endpoint

CONFIG = PlatformConfig()


def rollout_step(emulator: AwsTarget) -> Any:
    resources = bootstrap(emulator, CONFIG)
    make_endpoint(
        emulator.client("sagemaker"), {"champion": 0.9, "challenger": 0.1}, CONFIG.endpoint_name
    )
    event = {"action": "rollout-step", "endpoint": CONFIG.endpoint_name, "reason": "twin iam",
             "requested_by": "test"}  # fmt: skip
    try:
        outcome, _ = invoke_function(
            specs.TRAFFIC, event, target=emulator, config=CONFIG, resources=resources
        )
    except Exception as exc:
        return exc
    return outcome


def test_a_function_with_its_grants_works(emulator: AwsTarget) -> None:
    outcome = rollout_step(emulator)
    assert isinstance(outcome, dict)
    assert outcome["ok"], outcome


@pytest.mark.parametrize("sid", ["Endpoint", "WriteWeights", "TrafficAudit", "TrafficAuditKey"])
def test_a_missing_grant_is_access_denied(
    emulator: AwsTarget, monkeypatch: pytest.MonkeyPatch, sid: str
) -> None:
    granted = permissions.traffic

    def without(config: PlatformConfig) -> list[permissions.Grant]:
        return [g for g in granted(config) if g.sid != sid]

    monkeypatch.setitem(permissions.ROLES, specs.TRAFFIC, without)
    outcome = rollout_step(emulator)
    assert "AccessDenied" in str(outcome), outcome
    assert "is not authorized to perform" in str(outcome)
