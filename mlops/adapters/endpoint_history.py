"""Read what the platform recorded about one endpoint: its traffic and serving audit records
and its drift results (the reports bucket), and its alarms' state changes (CloudWatch).

Nothing is written. A record that is not JSON is handed on as a note, not raised: the page
of an endpoint shows what can be read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlops.adapters import s3io
from mlops.core import names
from mlops.core.timeline import AlarmChange, Record, alarm_current_state, alarm_history_change

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_s3 import S3Client


@dataclass
class EndpointRecords:
    traffic: list[Record] = field(default_factory=list)
    serving: list[Record] = field(default_factory=list)
    results: list[Record] = field(default_factory=list)
    alarms: list[AlarmChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _documents(s3: S3Client, bucket: str, keys: list[str], notes: list[str]) -> list[Record]:
    read: list[Record] = []
    for key in keys:
        uri = f"s3://{bucket}/{key}"
        try:
            document = json.loads(s3io.read(s3, bucket, key))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            notes.append(f"skipped {uri}: not JSON ({exc})")
            continue
        if not isinstance(document, dict):
            notes.append(f"skipped {uri}: not a JSON object")
            continue
        read.append((uri, document))
    return read


def result_keys(keys: list[str], endpoint: str) -> list[str]:
    """The drift results among the keys under drift/<endpoint>/: <variant>/yyyy/mm/dd/*.json
    (mlops.usecases.drift_results), not the state files or the Processing jobs' files."""
    layout = re.compile(
        rf"{re.escape(names.DRIFT_REPORTS_PREFIX)}/{re.escape(endpoint)}/"
        r"(?!jobs/)[^/]+/\d{4}/\d{2}/\d{2}/[^/]+\.json"
    )
    return [k for k in keys if layout.fullmatch(k)]


def read_records(s3: S3Client, reports_bucket: str, endpoint: str) -> EndpointRecords:
    """The endpoint's audit records and drift results in the reports bucket."""
    found = EndpointRecords()

    def audit(prefix: str) -> list[Record]:
        keys = s3io.list_keys(s3, reports_bucket, f"{prefix}/{endpoint}/")
        return _documents(s3, reports_bucket, [k for k in keys if k.endswith(".json")], found.notes)

    found.traffic = audit(names.TRAFFIC_AUDIT_PREFIX)
    found.serving = audit(names.SERVING_AUDIT_PREFIX)
    drift = s3io.list_keys(s3, reports_bucket, f"{names.DRIFT_REPORTS_PREFIX}/{endpoint}/")
    found.results = _documents(s3, reports_bucket, result_keys(drift, endpoint), found.notes)
    return found


def alarm_changes(
    cloudwatch: CloudWatchClient, endpoint: str, alarms: list[str], *, history: bool
) -> tuple[list[AlarmChange], list[str]]:
    """The alarms' state changes (DescribeAlarmHistory, StateUpdate items, kept 14 days by
    CloudWatch), and notes. Without ``history`` (the emulator has no DescribeAlarmHistory),
    each alarm's current state since its last change (DescribeAlarms), and a note saying so."""
    notes: list[str] = []
    if not history:
        described = cloudwatch.describe_alarms(AlarmNames=alarms).get("MetricAlarms", [])
        notes.append(
            "alarms: the emulator keeps no alarm history (no DescribeAlarmHistory): each alarm "
            "shows only its current state, since its last change"
        )
        current: list[AlarmChange] = []
        for state in described:
            try:
                current.append(alarm_current_state(endpoint, state))
            except ValueError as exc:
                notes.append(f"skipped an alarm: {exc}")
        return current, notes
    changes: list[AlarmChange] = []
    paginator = cloudwatch.get_paginator("describe_alarm_history")
    for alarm in alarms:
        pages = paginator.paginate(AlarmName=alarm, HistoryItemType="StateUpdate")
        for page in pages:
            for item in page.get("AlarmHistoryItems", []):
                try:
                    changes.append(alarm_history_change(endpoint, item))
                except ValueError as exc:
                    notes.append(f"skipped an alarm history item: {exc}")
    return changes, notes
