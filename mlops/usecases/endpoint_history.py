"""Draw an endpoint's history: read its records (mlops.adapters.endpoint_history), order them
(mlops.core.timeline), write one self-contained page (mlops.adapters.timeline_page).

One flow for `mlops endpoint history` and the demo. Nothing is recorded or changed: the page
is made from what the platform wrote already, and written where nothing is (never over a file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mlops.adapters import endpoints, local_files, timeline_page
from mlops.adapters.endpoint_history import alarm_changes, read_records
from mlops.adapters.target import AwsTarget
from mlops.core import names, timeline


class HistoryError(RuntimeError):
    """The page cannot be made: the message says why (an unknown endpoint, a file in the way)."""


@dataclass
class HistoryPage:
    path: Path
    endpoint: str
    actions: int
    checks: int
    alarm_changes: int
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.actions or self.checks or self.alarm_changes)


def default_name(endpoint: str, at: datetime) -> str:
    """A page's file name: the endpoint and when it was made (a new page, a new name)."""
    return f"{endpoint}-history-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}.html"


def write_history(
    target: AwsTarget,
    reports_bucket: str,
    endpoint: str,
    out: Path,
    *,
    now: datetime | None = None,
) -> HistoryPage:
    """Write ``endpoint``'s page at ``out`` (a folder: a new file named by ``default_name`` in
    it). HistoryError for an endpoint with neither a description nor records, or for a file
    already at ``out``."""
    made = now or datetime.now(UTC)
    named = out.is_dir()  # a folder: a new name in it, never a file there already
    path = out / default_name(endpoint, made) if named else out
    if path.exists() and not named:
        raise HistoryError(f"{path} exists: choose another --out, or move that file away")
    s3 = target.client("s3")
    records = read_records(s3, reports_bucket, endpoint)
    notes = list(records.notes)
    try:
        variants = set(endpoints.describe(target.client("sagemaker"), endpoint).variant_names)
    except endpoints.EndpointNotFound:
        if not (records.traffic or records.serving or records.results):
            raise HistoryError(
                f"endpoint {endpoint} does not exist here and has no records in "
                f"s3://{reports_bucket} (audit/, drift/): check its name (`mlops endpoint "
                "status` shows the configured endpoint)"
            ) from None
        variants = set()
        notes.append(f"endpoint {endpoint} does not exist (any more): its records are shown")
    # The alarms of every variant that serves or was checked, and of both roles.
    variants |= {str(doc.get("variant")) for _, doc in records.results if doc.get("variant")}
    variants |= set(names.VARIANTS)
    alarms = [a for v in sorted(variants)
              for a in (*names.variant_alarms(endpoint, v), names.drift_alarm(endpoint, v))]  # fmt: skip
    changes, alarm_notes = alarm_changes(
        target.client("cloudwatch"), endpoint, alarms, history=not target.is_emulator
    )
    built = timeline.build(
        endpoint,
        traffic=records.traffic,
        serving=records.serving,
        results=records.results,
        alarms=changes,
        notes=notes + alarm_notes,
    )
    sources = [
        f"s3://{reports_bucket}/{names.TRAFFIC_AUDIT_PREFIX}/{endpoint}/",
        f"s3://{reports_bucket}/{names.SERVING_AUDIT_PREFIX}/{endpoint}/",
        f"s3://{reports_bucket}/{names.DRIFT_REPORTS_PREFIX}/{endpoint}/",
        "CloudWatch " + ("alarms (current states)" if target.is_emulator else "alarm history"),
    ]
    page = timeline_page.render(built, generated_at=made, sources=sources)
    path.parent.mkdir(parents=True, exist_ok=True)
    for number in range(2, 1000):
        try:
            local_files.write_new(path, page)
            break
        except FileExistsError:
            if not named:
                raise HistoryError(
                    f"{path} exists: choose another --out, or move that file away"
                ) from None
            # Another page of the same second in this folder: the next free number.
            path = path.with_name(f"{default_name(endpoint, made)[:-5]}-{number}.html")
    else:
        raise HistoryError(f"{out} holds 999 pages of {made:%Y-%m-%d %H:%M:%S}: write elsewhere")
    return HistoryPage(
        path=path.resolve(),
        endpoint=endpoint,
        actions=len(built.actions),
        checks=len(built.checks),
        alarm_changes=len(built.alarms),
        notes=built.notes,
    )
