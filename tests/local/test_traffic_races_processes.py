"""Traffic decisions racing from separate processes (the traffic function's invocations, an
operator's CLI): the same rounds and checks as tests/local/test_traffic_races.py, with each
racer a process of its own talking to the emulator over HTTP."""

from __future__ import annotations

import multiprocessing

from mlops.adapters.target import AwsTarget
from mlops.usecases.apply_traffic import TrafficController
from tests.local.test_traffic_races import ROUNDS, raced, reset
from tests.support import races

__all__ = ["raced"]  # the fixture, imported


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
