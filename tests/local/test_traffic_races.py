"""Decisions on one endpoint racing, from threads and from separate processes, on the emulator.

Each round starts from the challenger at 0.25 and sends a rollback, a rollout step and a
shift to 0.5 at the same moment (a barrier). Whatever the interleaving: the decisions form one
chain (each starts from the weights the previous left), the rollback wins (no step after it
moves the challenger, and no shift that was in flight when it completed), and the endpoint
and the SSM weights agree with the last decision. Without the lease, a rollback was undone in
27 of 30 such races.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
from typing import Any

import pytest

from mlops.adapters.target import AwsTarget
from mlops.usecases.apply_traffic import TrafficController, TrafficRequest
from tests.local.test_traffic_control import make_endpoint
from tests.support import races

ROUNDS = 50


@pytest.fixture
def raced(emulator: AwsTarget) -> TrafficController:
    make_endpoint(
        emulator.client("sagemaker"), {"champion": 0.75, "challenger": 0.25}, races.ENDPOINT
    )
    emulator.client("s3").create_bucket(Bucket=races.BUCKET)
    return races.controller(emulator.endpoint_url or "")


def reset(made: TrafficController, round_: int) -> dict[str, Any]:
    """The challenger back at 0.25 (a deliberate shift, which also lifts the rollout's halt)."""
    outcome = made.apply(
        TrafficRequest.parse(
            {
                "action": "shift",
                "challenger": 0.25,
                "endpoint": races.ENDPOINT,
                "reason": "start of a round",
                "requested_by": "test",
                "request_id": f"reset-{round_}",
            }
        )
    )
    return dataclasses.asdict(outcome)


def race(
    barrier: threading.Barrier,
    results: list[dict[str, Any]],
    made: TrafficController,
    role: str,
    round_: int,
) -> None:
    barrier.wait()
    results.append(races.decide(made, role, round_))


def test_threads_racing_leave_one_chain_and_the_rollback_wins(
    raced: TrafficController, emulator: AwsTarget
) -> None:
    url = emulator.endpoint_url or ""
    controllers = {role: races.controller(url) for role in races.ROLES}
    problems: list[str] = []
    for round_ in range(ROUNDS):
        start = reset(raced, round_)
        barrier = threading.Barrier(len(controllers))
        results: list[dict[str, Any]] = []

        threads = [
            threading.Thread(target=race, args=(barrier, results, made, role, round_))
            for role, made in controllers.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        problems += [f"round {round_}: {p}" for p in races.check_round(raced, start, results)]
    assert not problems, "\n".join(problems[:10])


def test_processes_racing_leave_one_chain_and_the_rollback_wins(
    raced: TrafficController, emulator: AwsTarget
) -> None:
    context = multiprocessing.get_context("spawn")  # no fork of a process running a server
    roles = list(races.ROLES)
    start, done = context.Barrier(len(roles) + 1), context.Barrier(len(roles) + 1)
    out = context.Queue()
    workers = [
        context.Process(
            target=races.process_racer,
            args=(emulator.endpoint_url, role, ROUNDS, start, done, out),
            daemon=True,
        )
        for role in roles
    ]
    for worker in workers:
        worker.start()
    problems: list[str] = []
    try:
        for round_ in range(ROUNDS):
            first = reset(raced, round_)
            start.wait(timeout=120)  # the racers start together
            results = [out.get(timeout=120) for _ in roles]
            done.wait(timeout=120)
            assert {r for r, _ in results} == {round_}
            outcomes = [outcome for _, outcome in results]
            problems += [f"round {round_}: {p}" for p in races.check_round(raced, first, outcomes)]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    assert not problems, "\n".join(problems[:10])
