"""An endpoint's history from the records the platform already writes: traffic and serving
audit records, drift results, alarm state changes -> one ordered timeline.

Pure: the records come in as parsed JSON (and alarm history items as CloudWatch returns
them); what comes out is what a picture of the endpoint needs: each variant's weight as a
step series, each action with its reason, each check's drift per variant, each alarm change.
A record that cannot be read is skipped and named in ``notes``, never fatal: one bad file
must not hide the rest of the history.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Where a record comes from, for notes and for the page's legend.
TRAFFIC = "traffic"  # audit/traffic/<endpoint>/<request id>.json (weight changes)
SERVING = "serving"  # audit/serving/<endpoint>/<request id>.json (deploy, promote)

Record = tuple[str, Mapping[str, Any]]  # (where it was read, its JSON document)


class RecordError(ValueError):
    """A record that does not hold what its kind must."""


@dataclass(frozen=True)
class Action:
    """A traffic decision or a serving change, as its audit record says."""

    at: datetime
    source: str  # TRAFFIC | SERVING
    action: str  # rollout-step, rollback, shift, deploy, promote
    reason: str
    requested_by: str
    outcome: str  # the decision (traffic) or the summary (serving)
    changed: bool
    weights_before: dict[str, float]  # empty when the record does not say (serving)
    weights_after: dict[str, float]  # empty: unchanged, or not said
    models: dict[str, str | None]  # serving: the package each role serves after the change
    request_id: str
    sequence: int | None = None  # the traffic decision's place in the endpoint's ledger


@dataclass(frozen=True)
class AlarmChange:
    at: datetime
    alarm: str
    variant: str | None  # from the alarm's name: <endpoint>-<variant>-<metric>
    old: str | None  # None: not known (the alarm's current state only)
    new: str
    reason: str


@dataclass(frozen=True)
class Check:
    """One drift check of one variant's window, as its JSON result says."""

    at: datetime  # the window's end
    window_start: datetime
    variant: str
    status: str  # drift | no-drift | not-enough-data
    rows: int
    drift_share: float | None
    share_threshold: float | None
    drifted_features: tuple[str, ...]
    features: int  # how many features the share is of
    prediction_score: float | None
    prediction_threshold: float | None
    prediction_statistic: str | None  # "distance" (drift at or above) or "p_value" (below)
    prediction_drifted: bool | None
    model: str
    report: str | None  # the HTML report's URI, when one was written
    where: str  # the result's own URI


@dataclass
class Timeline:
    endpoint: str
    actions: list[Action] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    alarms: list[AlarmChange] = field(default_factory=list)
    # variant -> (time, weight) steps: each holds until the next; the last until ``end``.
    weights: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.actions or self.checks or self.alarms)

    @property
    def start(self) -> datetime | None:
        return min(self._times(), default=None)

    @property
    def end(self) -> datetime | None:
        return max(self._times(), default=None)

    @property
    def variants(self) -> list[str]:
        found = set(self.weights) | {c.variant for c in self.checks}
        found |= {a.variant for a in self.alarms if a.variant}
        return sorted(found)

    def _times(self) -> Iterable[datetime]:
        yield from (a.at for a in self.actions)
        yield from (c.at for c in self.checks)
        yield from (c.window_start for c in self.checks)
        yield from (a.at for a in self.alarms)


def when(value: Any) -> datetime:
    """A record's time: an ISO 8601 text or a datetime; one without a zone is UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(f"{value!r} is not an ISO 8601 time") from None
    else:
        raise RecordError(f"no time (got {value!r})")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _weights(value: Any, name: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(f"{name} is not a mapping of variant to weight")
    weights: dict[str, float] = {}
    for variant, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise RecordError(f"{name}.{variant} is not a number: {weight!r}")
        if not math.isfinite(weight):
            raise RecordError(f"{name}.{variant} is not a finite number")
        weights[str(variant)] = float(weight)
    return weights


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    return "" if value is None else str(value)


def traffic_action(record: Mapping[str, Any]) -> Action:
    """A traffic audit record (mlops.usecases.apply_traffic.TrafficOutcome)."""
    if not record.get("action"):
        raise RecordError("no action")
    sequence = record.get("sequence")
    return Action(
        at=when(record.get("requested_at")),
        source=TRAFFIC,
        action=str(record["action"]),
        reason=_text(record, "reason"),
        requested_by=_text(record, "requested_by"),
        outcome=_text(record, "decision"),
        changed=bool(record.get("changed")),
        weights_before=_weights(record.get("weights_before"), "weights_before"),
        weights_after=_weights(record.get("weights_after"), "weights_after"),
        models={},
        request_id=_text(record, "request_id"),
        sequence=sequence if isinstance(sequence, int) else None,
    )


def serving_action(record: Mapping[str, Any]) -> Action:
    """A serving audit record (mlops.core.approval.DeploymentRecord): the weights it sets."""
    if not record.get("action"):
        raise RecordError("no action")
    changed = bool(record.get("changed"))
    after = record.get("after")
    return Action(
        at=when(record.get("requested_at")),
        source=SERVING,
        action=str(record["action"]),
        reason=_text(record, "reason"),
        requested_by=_text(record, "requested_by"),
        outcome=_text(record, "summary"),
        changed=changed,
        weights_before={},
        weights_after=_weights(record.get("weights"), "weights") if changed else {},
        models=dict(after) if isinstance(after, Mapping) else {},
        request_id=_text(record, "request_id"),
    )


def drift_check(record: Mapping[str, Any], where: str = "") -> Check:
    """A drift result (mlops.usecases.drift_results.VariantOutcome.as_dict)."""
    window = record.get("window")
    if not isinstance(window, Mapping):
        raise RecordError("no window")
    if not record.get("variant") or not record.get("status"):
        raise RecordError("no variant or status")
    data = _mapping(record.get("data"))
    columns = [c for c in data.get("columns") or () if isinstance(c, Mapping)]
    prediction = _mapping(record.get("prediction"))
    return Check(
        at=when(window.get("end")),
        window_start=when(window.get("start")),
        variant=str(record["variant"]),
        status=str(record["status"]),
        rows=int(record.get("rows") or 0),
        drift_share=_number(data.get("drift_share")),
        share_threshold=_number(data.get("share_threshold")),
        drifted_features=tuple(str(c.get("column")) for c in columns if c.get("drifted")),
        features=len(columns),
        prediction_score=_number(prediction.get("score")),
        prediction_threshold=_number(prediction.get("threshold")),
        prediction_statistic=prediction.get("statistic"),
        prediction_drifted=prediction.get("drifted") if prediction else None,
        model=_text(record, "model_package_arn"),
        report=record.get("report_html"),
        where=where,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def alarm_variant(endpoint: str, alarm: str) -> str | None:
    """The variant in an alarm's name (mlops.core.names: <endpoint>-<variant>-<metric>)."""
    if not alarm.startswith(f"{endpoint}-"):
        return None
    variant, _, metric = alarm[len(endpoint) + 1 :].rpartition("-")
    return variant if variant and metric else None


def alarm_history_change(endpoint: str, item: Mapping[str, Any]) -> AlarmChange:
    """A StateUpdate item of CloudWatch's DescribeAlarmHistory (HistoryData is JSON with the
    old and new states)."""
    alarm = _text(item, "AlarmName")
    try:
        data = json.loads(item.get("HistoryData") or "{}")
    except json.JSONDecodeError:
        raise RecordError(f"{alarm}: HistoryData is not JSON") from None
    if not isinstance(data, dict):
        raise RecordError(f"{alarm}: HistoryData is not a JSON object")
    old_state, new_state = data.get("oldState") or {}, data.get("newState") or {}
    if not isinstance(old_state, dict) or not isinstance(new_state, dict):
        raise RecordError(f"{alarm}: a state in HistoryData is not a JSON object")
    new = new_state.get("stateValue")
    if not new:
        raise RecordError(f"{alarm}: no new state in HistoryData")
    return AlarmChange(
        at=when(item.get("Timestamp")),
        alarm=alarm,
        variant=alarm_variant(endpoint, alarm),
        old=old_state.get("stateValue"),
        new=str(new),
        reason=str(new_state.get("stateReason") or item.get("HistorySummary") or ""),
    )


def alarm_current_state(endpoint: str, alarm: Mapping[str, Any]) -> AlarmChange:
    """An alarm's last change as DescribeAlarms says it (the state it is in, since when): all
    that is known where there is no alarm history (the emulator keeps none)."""
    name = _text(alarm, "AlarmName")
    return AlarmChange(
        at=when(alarm.get("StateUpdatedTimestamp")),
        alarm=name,
        variant=alarm_variant(endpoint, name),
        old=None,
        new=_text(alarm, "StateValue"),
        reason=_text(alarm, "StateReason"),
    )


def build(
    endpoint: str,
    *,
    traffic: Iterable[Record] = (),
    serving: Iterable[Record] = (),
    results: Iterable[Record] = (),
    alarms: Iterable[AlarmChange] = (),
    notes: Iterable[str] = (),
) -> Timeline:
    """The endpoint's timeline, every series in time order whatever order the records came in.
    A request recorded twice (the same id) counts once."""
    timeline = Timeline(endpoint, notes=list(notes))
    seen: set[tuple[str, str]] = set()
    for source, records, parse in ((TRAFFIC, traffic, traffic_action),
                                   (SERVING, serving, serving_action)):  # fmt: skip
        for where, record in records:
            try:
                action = parse(record)
            except (RecordError, TypeError, ValueError) as exc:
                timeline.notes.append(f"skipped {source} record {where}: {exc}")
                continue
            if action.request_id and (source, action.request_id) in seen:
                continue
            seen.add((source, action.request_id))
            timeline.actions.append(action)
    for where, record in results:
        if record.get("status") == "pending":  # handed to a Processing job: no verdict yet
            continue
        try:
            timeline.checks.append(drift_check(record, where))
        except (RecordError, TypeError, ValueError) as exc:
            timeline.notes.append(f"skipped drift result {where}: {exc}")
    timeline.actions.sort(key=lambda a: (a.at, a.sequence or 0, a.request_id))
    timeline.checks.sort(key=lambda c: (c.at, c.variant))
    timeline.alarms = sorted(alarms, key=lambda a: (a.at, a.alarm))
    timeline.weights = weight_steps(timeline.actions, timeline.end)
    return timeline


def weight_steps(
    actions: Iterable[Action], end: datetime | None
) -> dict[str, list[tuple[datetime, float]]]:
    """Each variant's weight over time from the actions in time order: a step where a record
    says the weights changed, and one where a record's "before" differs from what the
    previous record left (a change no record shows). The last weight holds until ``end``."""
    steps: dict[str, list[tuple[datetime, float]]] = {}
    current: dict[str, float] = {}

    def move(at: datetime, weights: Mapping[str, float]) -> None:
        for variant, weight in weights.items():
            series = steps.setdefault(variant, [])
            if not series or series[-1][1] != weight:
                series.append((at, weight))
        current.update(weights)

    for action in actions:
        if action.weights_before and any(
            current.get(v) != w for v, w in action.weights_before.items()
        ):
            move(action.at, action.weights_before)
        if action.changed and action.weights_after:
            move(action.at, action.weights_after)
    if end is not None:
        for series in steps.values():
            if series[-1][0] < end:
                series.append((end, series[-1][1]))
    return steps
