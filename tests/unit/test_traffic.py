"""Traffic decisions (pure): validation, shifts, rollback, gated rollout."""

from __future__ import annotations

import math

import pytest

from mlops.core.names import CHALLENGER, CHAMPION, VARIANTS
from mlops.core.traffic import (
    TrafficError,
    challenger_share,
    next_rollout_step,
    normalized,
    rollback,
    same,
    shift_to,
    validate_weights,
)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, "no weights given"),
        ({"canary": 1.0}, "unknown variant.s. canary; this endpoint has champion, challenger"),
        ({CHAMPION: -0.1}, "weight of champion must be >= 0, got -0.1"),
        ({CHAMPION: math.nan}, "weight of champion must be finite"),
        ({CHAMPION: "nan"}, "weight of champion must be finite"),
        ({CHAMPION: math.inf}, "must be finite"),
        ({CHAMPION: "lots"}, "weight of champion must be a number, got 'lots'"),
        ({CHAMPION: True}, "must be a number, got True"),
        ({CHAMPION: 0, CHALLENGER: 0}, "all-zero weights route nothing"),
        ({CHALLENGER: 0.0}, "all-zero weights route nothing"),
    ],
)
def test_bad_weights_are_refused_with_a_reason(weights: dict[str, object], message: str) -> None:
    with pytest.raises(TrafficError, match=message):
        validate_weights(weights, VARIANTS)


def test_valid_weights() -> None:
    assert validate_weights({CHAMPION: "0.9", CHALLENGER: 0.1}, VARIANTS) == {
        CHAMPION: 0.9,
        CHALLENGER: 0.1,
    }
    assert validate_weights({CHAMPION: 3}, VARIANTS) == {CHAMPION: 3.0}


def test_shares() -> None:
    assert normalized({CHAMPION: 3, CHALLENGER: 1}) == {CHAMPION: 0.75, CHALLENGER: 0.25}
    assert challenger_share({CHAMPION: 3, CHALLENGER: 1}) == 0.25
    assert same({CHAMPION: 2, CHALLENGER: 2}, {CHAMPION: 0.5, CHALLENGER: 0.5})
    assert not same({CHAMPION: 1, CHALLENGER: 0}, {CHAMPION: 0.9, CHALLENGER: 0.1})


def test_shift_and_rollback() -> None:
    assert shift_to(0.25) == {CHAMPION: 0.75, CHALLENGER: 0.25}
    assert rollback() == {CHAMPION: 1.0, CHALLENGER: 0.0}
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(TrafficError, match="between 0 and 1"):
            shift_to(bad)


def test_gated_rollout_advances_step_by_step() -> None:
    steps = [0.1, 0.25, 0.5]
    decision = next_rollout_step({CHAMPION: 1.0, CHALLENGER: 0.0}, steps, alarms_ok=True)
    assert (decision.action, decision.weights) == ("advance", {CHAMPION: 0.9, CHALLENGER: 0.1})
    decision = next_rollout_step({CHAMPION: 0.9, CHALLENGER: 0.1}, steps, alarms_ok=True)
    assert decision.weights == {CHAMPION: 0.75, CHALLENGER: 0.25}
    decision = next_rollout_step({CHAMPION: 0.5, CHALLENGER: 0.5}, steps, alarms_ok=True)
    assert (decision.action, decision.weights) == ("complete", None)


def test_gated_rollout_rolls_back_on_alarm() -> None:
    decision = next_rollout_step(
        {CHAMPION: 0.75, CHALLENGER: 0.25}, [0.1, 0.25, 0.5], alarms_ok=False
    )
    assert (decision.action, decision.weights) == ("rollback", {CHAMPION: 1.0, CHALLENGER: 0.0})
    assert "ALARM" in decision.reason


def test_gated_rollout_refuses_bad_steps() -> None:
    with pytest.raises(TrafficError, match="rising, non-empty"):
        next_rollout_step({CHAMPION: 1.0, CHALLENGER: 0.0}, [0.5, 0.2], alarms_ok=True)
