"""Traffic decisions between the champion and challenger variants. Pure: no AWS here.

Weights are SageMaker variant weights: non-negative, finite, not all zero; a variant's share
of traffic is its weight over the sum. The platform keeps the sum at 1 so that a weight *is*
a share, which is what an on-call engineer reads on the console.

A requested weight is at most ``MAX_WEIGHT``: weights are relative, so a larger one says
nothing a smaller one cannot, and 1.7e308 twice overflows the sum to infinity (every share
0/inf = 0 while the endpoint keeps the huge weights). Weights read from an endpoint are not
bounded (someone may have set any finite value in the console), so shares are computed by
dividing by the largest weight before summing, which cannot overflow.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mlops.core.names import CHALLENGER, CHAMPION

_EPSILON = 1e-9
# The largest weight a request may give. Relative weights need no more range than this (a
# share of 1e-6 is below the 6 decimals shares are kept to), and with SageMaker's at most 10
# variants the sum stays far inside the float range.
MAX_WEIGHT = 1e6


class TrafficError(ValueError):
    """A traffic request that cannot be applied; the message says why."""


class Action(StrEnum):
    SHIFT = "shift"
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    ROLLOUT_STEP = "rollout-step"


def validate_weights(weights: Mapping[str, object], variants: Sequence[str]) -> dict[str, float]:
    """Check requested weights against the endpoint's variants; return them as floats."""
    if not weights:
        raise TrafficError("no weights given")
    unknown = sorted(set(weights) - set(variants))
    if unknown:
        raise TrafficError(
            f"unknown variant(s) {', '.join(unknown)}; this endpoint has {', '.join(variants)}"
        )
    checked: dict[str, float] = {}
    for name, raw in weights.items():
        if isinstance(raw, bool):
            raise TrafficError(f"weight of {name} must be a number, got {raw!r}")
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise TrafficError(f"weight of {name} must be a number, got {raw!r}") from None
        except OverflowError:  # an integer beyond the float range
            raise TrafficError(f"weight of {name} must be finite, got {raw!r}") from None
        if math.isnan(value) or math.isinf(value):
            raise TrafficError(f"weight of {name} must be finite, got {raw!r}")
        if value < 0:
            raise TrafficError(f"weight of {name} must be >= 0, got {value:g}")
        if value > MAX_WEIGHT:
            raise TrafficError(
                f"weight of {name} must be at most {MAX_WEIGHT:g} (weights are relative: "
                f"0.25 and 0.75 say the same as 25 and 75), got {value:g}"
            )
        checked[name] = value
    merged = {name: checked.get(name, 0.0) for name in variants}
    if max(merged.values()) <= 0:
        raise TrafficError(
            "at least one variant needs a weight above 0: all-zero weights route nothing"
        )
    return checked


def normalized(weights: Mapping[str, float]) -> dict[str, float]:
    """Each weight's share of the sum (6 decimals). Divided by the largest weight first, so
    that any finite weights, 1.7e308 included, sum without overflow."""
    bad = {name: value for name, value in weights.items() if not math.isfinite(value)}
    if bad:
        raise TrafficError(
            "weights must be finite numbers, got "
            + ", ".join(f"{name} {value!r}" for name, value in sorted(bad.items()))
        )
    if any(value < 0 for value in weights.values()):
        raise TrafficError(f"weights must be >= 0, got {dict(weights)}")
    largest = max(weights.values(), default=0.0)
    if largest <= 0:
        raise TrafficError("at least one variant needs a weight above 0")
    scaled = {name: value / largest for name, value in weights.items()}
    total = sum(scaled.values())
    return {name: round(value / total, 6) for name, value in scaled.items()}


def same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Equal routing: the same shares, whatever the scale of the weights."""
    if set(a) != set(b):
        return False
    na, nb = normalized(a), normalized(b)
    return all(abs(na[k] - nb[k]) < 1e-6 for k in na)


def challenger_share(weights: Mapping[str, float]) -> float:
    return normalized(weights).get(CHALLENGER, 0.0)


def shift_to(challenger: float) -> dict[str, float]:
    """Weights that send ``challenger`` of the traffic to the challenger, the rest to the champion."""
    if isinstance(challenger, bool) or not isinstance(challenger, int | float):
        raise TrafficError(f"challenger share must be a number, got {challenger!r}")
    if math.isnan(challenger) or not 0.0 <= challenger <= 1.0:
        raise TrafficError(f"challenger share must be between 0 and 1, got {challenger!r}")
    return {CHAMPION: round(1.0 - challenger, 6), CHALLENGER: round(float(challenger), 6)}


def rollback() -> dict[str, float]:
    """All traffic to the champion."""
    return shift_to(0.0)


@dataclass(frozen=True)
class RolloutDecision:
    """What one step of a gated rollout does."""

    action: str  # "advance" | "rollback" | "complete"
    weights: dict[str, float] | None
    reason: str


def next_rollout_step(
    current: Mapping[str, float], steps: Sequence[float], *, alarms_ok: bool
) -> RolloutDecision:
    """Raise the challenger to the next configured step while its alarms stay OK.

    An alarm in ALARM rolls back to the champion; past the last step the rollout is complete
    (promotion is a separate, deliberate action).
    """
    if not steps or any(b <= a for a, b in itertools.pairwise(steps)):
        raise TrafficError(f"rollout steps must be a rising, non-empty list, got {list(steps)}")
    share = challenger_share(current)
    if not alarms_ok:
        return RolloutDecision("rollback", rollback(), "a challenger alarm is in ALARM")
    upcoming = [s for s in steps if s > share + _EPSILON]
    if not upcoming:
        return RolloutDecision(
            "complete", None, f"challenger already at {share:g}, the last step is {steps[-1]:g}"
        )
    target = upcoming[0]
    return RolloutDecision("advance", shift_to(target), f"challenger {share:g} -> {target:g}")
