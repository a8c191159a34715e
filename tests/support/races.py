"""Races between traffic decisions on one endpoint of the emulator: the parts that threads and
separate processes share (processes import this module by name, so it holds no test state)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from mlops.adapters import endpoints
from mlops.adapters.target import AwsTarget
from mlops.core.functions import TrafficSettings
from mlops.usecases.apply_traffic import TrafficController, TrafficRequest, traffic_controller

ENDPOINT = "race"
BUCKET = "race-reports"
PARAMETERS = {"champion": "/race/champion-weight", "challenger": "/race/challenger-weight"}
# Who races in every round: a rollback against a rollout step and a shift.
ROLES: dict[str, dict[str, Any]] = {
    "rollback": {"action": "rollback"},
    "step": {"action": "rollout-step"},
    "shift": {"action": "shift", "challenger": 0.5},
}


def controller(endpoint_url: str) -> TrafficController:
    settings = TrafficSettings(
        endpoint_name=ENDPOINT,
        audit_bucket=BUCKET,
        topic_arn=None,
        rollout_steps=(0.1, 0.25, 0.5, 0.75),
        gate_alarms=(),
        weight_parameters=PARAMETERS,
    )
    target = AwsTarget(region="us-east-1", endpoint_url=endpoint_url)
    made = traffic_controller(settings, target, send_instance_counts=True)
    made.sleep = _short_sleep
    return made


def _short_sleep(seconds: float) -> None:
    import time  # noqa: PLC0415

    time.sleep(min(seconds, 0.05))


def request(role: str, round_: int) -> TrafficRequest:
    return TrafficRequest.parse(
        {
            **ROLES[role],
            "endpoint": ENDPOINT,
            "reason": f"race round {round_}",
            "requested_by": role,
            "request_id": f"{role}-{round_}",
        }
    )


def decide(made: TrafficController, role: str, round_: int) -> dict[str, Any]:
    """One racer's decision, as a plain dict (it crosses process boundaries)."""
    try:
        return dataclasses.asdict(made.apply(request(role, round_)))
    except Exception as exc:  # reported to the test, which fails on it
        return {"error": f"{type(exc).__name__}: {exc}", "requested_by": role}


def process_racer(
    endpoint_url: str, role: str, rounds: int, start: Any, done: Any, out: Any
) -> None:
    """A racer in its own process: waits at ``start`` with the others, decides, reports."""
    made = controller(endpoint_url)
    for round_ in range(rounds):
        start.wait()
        out.put((round_, decide(made, role, round_)))
        done.wait()


def check_round(
    made: TrafficController,
    reset: Mapping[str, Any],
    outcomes: Sequence[Mapping[str, Any]],
) -> list[str]:
    """What went wrong in one round (empty: nothing). ``reset`` is the shift that started it."""
    problems = [f"{o['requested_by']}: {o['error']}" for o in outcomes if "error" in o]
    if problems:
        return problems
    chain = sorted(outcomes, key=lambda o: o["sequence"])
    sequences = [o["sequence"] for o in chain]
    if sequences != list(range(reset["sequence"] + 1, reset["sequence"] + 1 + len(chain))):
        problems.append(f"sequences {sequences} do not follow {reset['sequence']} one by one")
    # Serialized: each decision starts from the weights the previous one left.
    previous = reset["weights_after"]
    for outcome in chain:
        if outcome["weights_before"] != previous:
            problems.append(
                f"{outcome['requested_by']} decided from {outcome['weights_before']}, "
                f"but {previous} were in force"
            )
        previous = outcome["weights_after"]
    rollback = next(o for o in chain if o["action"] == "rollback")
    for outcome in chain:
        if outcome["sequence"] <= rollback["sequence"] or not outcome["changed"]:
            continue
        # A rollback wins: after it, only a request that first looked after it completed may
        # change the weights, and a rollout step never does.
        if outcome["action"] == "rollout-step" or outcome["seen_sequence"] < rollback["sequence"]:
            problems.append(f"{outcome['requested_by']} undid the rollback: {outcome}")
    in_force = endpoints.describe(made.sagemaker, ENDPOINT).weights
    if {k: round(v, 6) for k, v in in_force.items()} != previous:
        problems.append(f"the endpoint holds {in_force}, the last decision says {previous}")
    assert made.ssm is not None
    stored = {
        variant: float(made.ssm.get_parameter(Name=name)["Parameter"]["Value"])
        for variant, name in PARAMETERS.items()
    }
    if stored != previous:
        problems.append(f"SSM holds {stored}, the endpoint {previous}")
    return problems
