"""One decision at a time per endpoint: the ledger every weight change goes through. Pure.

Every caller that changes an endpoint's weights (the traffic function, ``mlops traffic``, the
deploy function, ``mlops serving``, the demo) holds the endpoint's lease while it reads the
weights, decides, applies and records. The lease is one small JSON object per endpoint, the
*ledger*, written only with a condition on the version read (``If-Match`` its ETag, or
``If-None-Match: *`` for the first), so of two writers racing from the same version exactly
one wins. The ledger says who holds the lease, how many decisions were completed
(``sequence``), the last one, and the rollback that halts the rollout, if any.

Rules (``refusal``):
- A rollback always wins over a concurrent step, shift or promotion. A request remembers the
  sequence it first saw; if a rollback completed after that, it is superseded, not applied.
- A rollback halts the gated rollout: rollout steps do not raise the challenger again until a
  deliberate shift or a deployment (a new challenger, a promotion) lifts the halt.
- A lease held longer than ``LEASE_TTL_S`` is taken to be abandoned (its holder crashed or timed
  out) and may be taken over; the TTL exceeds the longest a live holder works (see below).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# A holder waits at most ~60 s for an endpoint to leave Updating and ~270 s of backoff while
# requesting weights (mlops.adapters.endpoints), within the traffic function's 5 minutes. A
# lease older than this was abandoned.
LEASE_TTL_S = 420.0
# Actions that lift the rollout's halt: an operator's deliberate choice or a new deployment.
LIFTS_HALT = frozenset({"shift", "deploy", "promote"})


class LedgerError(ValueError):
    """The ledger object is not what this code writes: refuse to guess."""


@dataclass(frozen=True)
class Holder:
    request_id: str
    action: str
    requested_by: str
    since: str  # ISO time the lease was taken (for people reading it; expiry uses the server's)


@dataclass(frozen=True)
class Decision:
    request_id: str
    action: str
    requested_by: str
    sequence: int
    at: str
    weights: dict[str, float] | None = None
    reason: str = ""


@dataclass(frozen=True)
class Ledger:
    endpoint: str
    sequence: int = 0
    holder: Holder | None = None
    last: Decision | None = None
    halted_by: Decision | None = None  # the rollback that halts the rollout

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, endpoint: str) -> Ledger:
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or raw.get("endpoint") != endpoint:
                raise LedgerError(f"not the ledger of endpoint {endpoint!r}")
            sequence = raw["sequence"]
            if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
                raise LedgerError(f"sequence must be a whole number >= 0, got {sequence!r}")
            return cls(
                endpoint=endpoint,
                sequence=sequence,
                holder=Holder(**raw["holder"]) if raw.get("holder") else None,
                last=_decision(raw.get("last")),
                halted_by=_decision(raw.get("halted_by")),
            )
        except LedgerError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise LedgerError(f"unreadable ledger of endpoint {endpoint!r}: {exc}") from None

    def held_by(self, holder: Holder) -> Ledger:
        return Ledger(self.endpoint, self.sequence, holder, self.last, self.halted_by)

    def released(self) -> Ledger:
        """Let go without a completed decision (it failed, or was a redelivery)."""
        return Ledger(self.endpoint, self.sequence, None, self.last, self.halted_by)

    def completed(self, decision: Decision, *, changed: bool) -> Ledger:
        """Let go after ``decision``, which is the next in sequence."""
        halted_by = self.halted_by
        if decision.action == "rollback":
            halted_by = decision
        elif decision.action in LIFTS_HALT and changed:
            halted_by = None
        return Ledger(self.endpoint, decision.sequence, None, decision, halted_by)


def _decision(raw: Any) -> Decision | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise LedgerError(f"a decision must be an object, got {type(raw).__name__}")
    weights = raw.get("weights")
    if weights is not None and not all(
        isinstance(v, int | float) and math.isfinite(v) for v in weights.values()
    ):
        raise LedgerError(f"decision weights must be finite numbers, got {weights!r}")
    return Decision(**raw)


@dataclass
class Claim:
    """What a request decided, created under its id (``If-None-Match``) before anything changes,
    and completed with its outcome (``If-Match``) once the outcome is audited.

    A redelivery of the request finds the claim: completed, its recorded outcome is returned
    and nothing changes; not completed, the request was interrupted, and the claimed target is
    applied again (it is absolute, so applying it twice is applying it once) unless another
    decision completed since (``sequence``).
    """

    request_id: str
    action: str
    sequence: int  # the ledger's sequence when claimed: the decision will be sequence + 1
    before: dict[str, float]
    target: dict[str, float] | None
    decision: str
    payload: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, Any] | None = None  # set when completed
    notified: bool = False  # the notice went out (a redelivery sends one that did not)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False, default=str)

    @classmethod
    def from_json(cls, text: str) -> Claim:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"unreadable claim: {exc}") from None


def refusal(ledger: Ledger, *, action: str, seen_sequence: int) -> str | None:
    """Why a request may not change the weights now, or None if it may."""
    halt = ledger.halted_by
    # A rollback is never refused; a new challenger's deployment replaces the model that was
    # rolled back (it starts at its initial weight and lifts the halt).
    if halt is None or action in ("rollback", "deploy"):
        return None
    if halt.sequence > seen_sequence:
        return (
            f"superseded: rollback {halt.request_id} by {halt.requested_by} completed while "
            f"this request waited ({halt.reason}); not applied"
        )
    if action == "rollout-step":
        return (
            f"rollout halted by rollback {halt.request_id} at {halt.at} ({halt.reason}); a "
            "shift or a new deployment resumes it"
        )
    return None


def expired(age_s: float | None, *, ttl_s: float = LEASE_TTL_S) -> bool:
    """Whether a lease held for ``age_s`` seconds (None: unknown) is abandoned."""
    return age_s is not None and age_s > ttl_s


def same_weights(a: Mapping[str, float] | None, b: Mapping[str, float] | None) -> bool:
    if a is None or b is None:
        return a is b
    return set(a) == set(b) and all(abs(a[k] - b[k]) < 1e-6 for k in a)
