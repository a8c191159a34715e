"""A traffic decision under AWS faults and redelivery: nothing lost, nothing half-applied.

A rollout step is the hardest case (applying it twice moves the challenger twice). It is run
once clean to learn its calls; then, for every call, once failing that call with throttling and
once with a server error (as botocore raises them once its own retries are spent), followed by
the retry Lambda (or the operator) makes with the same request id. Every time: the challenger
moved exactly one step, the endpoint, SSM and the single audit record agree, the notice went
out, and the lease is free for the next decision.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from mlops.adapters import endpoints
from mlops.usecases.apply_traffic import TrafficController, TrafficOutcome
from tests.local.test_traffic_control import REGION, World, make_endpoint, request, world
from tests.support.faults import SERVER_ERROR, THROTTLE, Faults

__all__ = ["world"]  # the fixture, imported


def controller(world: World, endpoint: str, faults: Faults | None = None) -> TrafficController:
    attach = faults.attach if faults is not None else (lambda client: client)
    return TrafficController(
        sagemaker=attach(boto3.client("sagemaker", region_name=REGION)),
        s3=attach(boto3.client("s3", region_name=REGION)),
        sns=attach(boto3.client("sns", region_name=REGION)),
        topic_arn=world.topic_arn,
        audit_bucket="mlops-dev-reports",
        rollout_steps=(0.1, 0.25, 0.5),
        ssm=attach(boto3.client("ssm", region_name=REGION)),
        weight_parameter=lambda variant: f"/{endpoint}/{variant}-weight",
        sleep=lambda _: None,
        lease_wait_s=1.0,
    )


def step(endpoint: str, request_id: str = "evt-1") -> Any:
    return request("rollout-step", endpoint=endpoint, request_id=request_id)


def audit(world: World, endpoint: str) -> list[dict[str, Any]]:
    prefix = f"audit/traffic/{endpoint}/"
    listed = world.s3.list_objects_v2(Bucket="mlops-dev-reports", Prefix=prefix)
    return [
        json.loads(world.s3.get_object(Bucket="mlops-dev-reports", Key=o["Key"])["Body"].read())
        for o in listed.get("Contents", [])
    ]


def notices(world: World) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while batch := world.notifications():
        found += batch
    return found


def check(world: World, endpoint: str, sent: list[dict[str, Any]], label: str) -> None:
    in_force = endpoints.describe(world.sagemaker, endpoint).weights
    assert in_force == {"champion": 0.75, "challenger": 0.25}, label  # one step, not two
    ssm = boto3.client("ssm", region_name=REGION)
    stored = {
        v: float(ssm.get_parameter(Name=f"/{endpoint}/{v}-weight")["Parameter"]["Value"])
        for v in in_force
    }
    assert stored == in_force, label
    (record,) = audit(world, endpoint)
    assert record["weights_before"] == {"champion": 0.9, "challenger": 0.1}, label
    assert record["weights_after"] == in_force, label
    assert record["changed"] is True, label
    mine = [n for n in sent if n["endpoint"] == endpoint]
    assert mine, f"{label}: the notice was lost"
    assert all(n == mine[0] for n in mine), label  # at least once, always the same decision
    # The lease is free: the next decision goes ahead at once (lease_wait_s is 1 s).
    after = controller(world, endpoint).apply(request(endpoint=endpoint, request_id="next"))
    assert after.changed, label
    assert after.seen_sequence == record["sequence"], label  # the ledger holds the step


def test_a_step_under_a_fault_at_every_call_then_retried_is_applied_once(world: World) -> None:
    make_endpoint(world.sagemaker, {"champion": 0.9, "challenger": 0.1}, name="clean")
    clean = Faults()
    controller(world, "clean", clean).apply(step("clean"))
    calls = list(clean.calls)
    assert len(calls) >= 10, calls  # ledger, describe, claim, update, SSM x2, audit, claim, ...
    cases = 0
    for index, (service, operation) in enumerate(calls):
        for code in (THROTTLE[service], SERVER_ERROR[service]):
            endpoint = f"ep-{index}-{code.lower()}"[:63]
            label = f"{service}.{operation} (call {index}) failing with {code}"
            make_endpoint(world.sagemaker, {"champion": 0.9, "challenger": 0.1}, name=endpoint)
            faults = Faults().fail_call(index, code)
            outcome: TrafficOutcome | None = None
            failure = ""
            try:
                outcome = controller(world, endpoint, faults).apply(step(endpoint))
            except Exception as exc:  # the caller sees the failure, and retries
                failure = str(exc)
            assert faults.raised, label
            assert outcome is not None or code in failure, f"{label}: {failure}"
            if outcome is None or outcome.notice_error:
                retried = controller(world, endpoint).apply(step(endpoint))
                assert retried.weights_after == {"champion": 0.75, "challenger": 0.25}, label
            check(world, endpoint, notices(world), label)
            cases += 1
    assert cases == 2 * len(calls)


def test_a_redelivered_step_returns_its_outcome_and_changes_nothing(world: World) -> None:
    make_endpoint(world.sagemaker, {"champion": 0.9, "challenger": 0.1}, name="again")
    first = controller(world, "again").apply(step("again"))
    second = controller(world, "again").apply(step("again"))
    assert first.changed
    assert second.duplicate
    assert not second.changed
    assert second.weights_after == first.weights_after
    assert second.sequence == first.sequence
    assert endpoints.describe(world.sagemaker, "again").weights["challenger"] == 0.25
    assert len(audit(world, "again")) == 1
    assert len([n for n in notices(world) if n["endpoint"] == "again"]) == 1


def test_an_interrupted_step_is_not_reapplied_after_another_decision(world: World) -> None:
    make_endpoint(world.sagemaker, {"champion": 0.9, "challenger": 0.1}, name="late")
    faults = Faults().fail("sagemaker", "UpdateEndpointWeightsAndCapacities", "ValidationException")
    with pytest.raises(Exception, match="ValidationException"):
        controller(world, "late", faults).apply(step("late"))  # claimed, then failed
    controller(world, "late").apply(request(endpoint="late", request_id="rb"))  # a rollback
    late = controller(world, "late").apply(step("late"))  # the step's redelivery
    assert not late.changed
    assert "not applied again" in late.decision
    assert endpoints.describe(world.sagemaker, "late").weights["challenger"] == 0.0


def test_a_completed_rollback_whose_release_failed_still_halts_the_rollout(world: World) -> None:
    make_endpoint(world.sagemaker, {"champion": 0.9, "challenger": 0.1}, name="halt")
    clean = Faults()
    controller(world, "halt", clean).apply(step("halt", "warm-up"))
    # The rollback's last S3 write before the notice is the lease's release.
    probe = Faults()
    controller(world, "halt", probe).apply(request(endpoint="halt", request_id="probe"))
    release = probe.calls.index(("sns", "Publish")) - 1  # let go before the notice
    assert probe.calls[release] == ("s3", "PutObject")
    controller(world, "halt").apply(request("shift", challenger=0.25, endpoint="halt"))
    faults = Faults().fail_call(release, "InternalError")  # the same calls as the probe
    with pytest.raises(Exception, match="InternalError"):
        controller(world, "halt", faults).apply(request(endpoint="halt", request_id="rb"))
    retried = controller(world, "halt").apply(request(endpoint="halt", request_id="rb"))
    assert retried.duplicate
    stepped = controller(world, "halt").apply(step("halt", "step-after"))
    assert not stepped.changed
    assert "rollout halted by rollback rb" in stepped.decision
