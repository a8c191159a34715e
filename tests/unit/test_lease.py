"""The endpoint's ledger and lease: the rules (pure) and the S3 protocol (moto, faults)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from mlops.adapters.lease import EndpointLease, LeaseBusy, LeaseLost
from mlops.core.lease import (
    LEASE_TTL_S,
    Decision,
    Holder,
    Ledger,
    LedgerError,
    expired,
    refusal,
)
from tests.support.faults import Faults

HOLDER = Holder("r1", "rollback", "oncall", "2026-11-30T12:00:00+00:00")


def decision(action: str, sequence: int) -> Decision:
    return Decision(f"{action}-{sequence}", action, "someone", sequence, "t", {"champion": 1.0})


# -- rules ----------------------------------------------------------------------------------------


def test_a_rollback_halts_the_rollout_until_a_shift_or_a_deployment() -> None:
    ledger = Ledger("ep", 3).completed(decision("rollback", 4), changed=True)
    assert ledger.halted_by is not None
    assert ledger.halted_by.sequence == 4
    assert "rollout halted" in (refusal(ledger, action="rollout-step", seen_sequence=4) or "")
    assert refusal(ledger, action="shift", seen_sequence=4) is None  # deliberate, afterwards
    assert refusal(ledger, action="rollback", seen_sequence=0) is None  # never refused
    # A step completed after the rollback (refused) keeps the halt; a shift that moved lifts it.
    assert ledger.completed(decision("rollout-step", 5), changed=False).halted_by is not None
    assert ledger.completed(decision("shift", 5), changed=False).halted_by is not None
    assert ledger.completed(decision("shift", 5), changed=True).halted_by is None
    assert ledger.completed(decision("deploy", 5), changed=True).halted_by is None


@pytest.mark.parametrize("action", ["shift", "rollout-step", "promote"])
def test_a_request_in_flight_when_a_rollback_completed_is_superseded(action: str) -> None:
    ledger = Ledger("ep", 6).completed(decision("rollback", 7), changed=True)
    assert "superseded" in (refusal(ledger, action=action, seen_sequence=6) or "")


def test_a_new_challenger_deployment_is_not_refused_by_an_old_rollback() -> None:
    ledger = Ledger("ep", 6).completed(decision("rollback", 7), changed=True)
    assert refusal(ledger, action="deploy", seen_sequence=6) is None


def test_the_ledger_round_trips_and_refuses_what_it_did_not_write() -> None:
    ledger = Ledger("ep", 2, HOLDER, decision("shift", 2), decision("rollback", 1))
    assert Ledger.from_json(ledger.to_json(), "ep") == ledger
    for text, problem in [
        ("not json", "unreadable"),
        ('{"endpoint": "other", "sequence": 1}', "not the ledger of endpoint 'ep'"),
        ('{"endpoint": "ep", "sequence": -1}', "sequence must be"),
        ('{"endpoint": "ep", "sequence": true}', "sequence must be"),
        ('{"endpoint": "ep"}', "unreadable"),
        ('{"endpoint": "ep", "sequence": 1, "last": 3}', "must be an object"),
    ]:
        with pytest.raises(LedgerError, match=problem):
            Ledger.from_json(text, "ep")


def test_expiry_needs_an_age_past_the_ttl() -> None:
    assert not expired(None)
    assert not expired(LEASE_TTL_S)
    assert expired(LEASE_TTL_S + 1)


# -- the S3 protocol --------------------------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="reports")
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def lease(s3: Any, clock: Clock, **kwargs: Any) -> EndpointLease:
    return EndpointLease(s3, "reports", "ep", sleep=clock.sleep, clock=clock, **kwargs)


def test_the_lease_is_one_holder_at_a_time_and_released_with_the_decision(s3: Any) -> None:
    clock = Clock()
    held = lease(s3, clock).acquire(HOLDER)
    assert held.seen_sequence == 0
    with pytest.raises(LeaseBusy, match=r"busy: rollback r1 by oncall"):
        lease(s3, clock, wait_s=5).acquire(Holder("r2", "shift", "ops", "t"))
    assert clock.now >= 5  # it waited its budget first
    lease(s3, clock).release(held, held.ledger.completed(decision("rollback", 1), changed=True))
    again = lease(s3, clock).acquire(Holder("r2", "shift", "ops", "t"))
    assert again.seen_sequence == 1
    assert again.ledger.halted_by is not None


def test_an_abandoned_lease_is_taken_over_and_its_holder_cannot_release_it(s3: Any) -> None:
    clock = Clock()
    crashed = lease(s3, clock).acquire(HOLDER)
    taker = lease(s3, clock, wait_s=LEASE_TTL_S * 2)
    held = taker.acquire(Holder("r2", "rollback", "alarm", "t"))  # waits out the TTL
    assert clock.now > LEASE_TTL_S
    assert held.ledger.holder is not None
    assert held.ledger.holder.request_id == "r2"
    with pytest.raises(LeaseLost, match="taken over"):
        lease(s3, clock).release(crashed, crashed.ledger.released())


def test_a_missing_ledger_answered_403_is_created_and_a_real_denial_is_raised(s3: Any) -> None:
    # Without s3:ListBucket (the functions do not have it) S3 answers a missing key with 403.
    clock = Clock()
    faults = Faults().fail("s3", "GetObject", "AccessDenied")
    faults.attach(s3)
    held = lease(s3, clock).acquire(HOLDER)
    assert held.ledger.holder == HOLDER
    lease(s3, clock).release(held, held.ledger.released())
    faults.fail("s3", "GetObject", "AccessDenied")  # now the ledger exists: a real denial
    with pytest.raises(ClientError, match="AccessDenied"):
        lease(s3, clock).acquire(HOLDER)


def test_a_lost_race_for_the_ledger_reads_it_again(s3: Any) -> None:
    clock = Clock()
    first = lease(s3, clock)
    held = first.acquire(HOLDER)
    first.release(held, held.ledger.released())
    # Between our read and our write another caller writes: our If-Match fails, we re-read.
    faults = Faults().fail("s3", "PutObject", "PreconditionFailed")
    faults.attach(s3)
    again = lease(s3, clock).acquire(Holder("r2", "shift", "ops", "t"))
    assert again.ledger.holder is not None
    assert [c for c in faults.calls if c == ("s3", "GetObject")] == [("s3", "GetObject")] * 2
