"""Retraining when the champion drifts: one drift episode starts one pipeline execution.

An episode is one transition of the champion's drift alarm to ALARM (CloudWatch emits one
state-change event per transition, however long the alarm stays there). Each event is
recorded once under its id, so a redelivered event starts nothing; and after a retraining has
started, no other starts for ``cooldown`` (a flapping alarm is still one episode's worth).
Decisions, taken or not, are audit records that are never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops.adapters import s3io
from mlops.adapters.audit import write_once
from mlops.core import names

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

AUDIT_PREFIX = names.RETRAINING_AUDIT_PREFIX


@dataclass(frozen=True)
class RetrainDecision:
    started: bool
    reason: str
    endpoint: str
    pipeline: str
    event_id: str
    decided_at: str
    execution_arn: str | None = None
    audit_uri: str | None = None


def _latest(s3: S3Client, bucket: str, endpoint: str) -> dict[str, Any] | None:
    key = f"{AUDIT_PREFIX}/{endpoint}/latest.json"
    if not s3io.exists(s3, bucket, key):
        return None
    document: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return document


def retrain_on_drift(
    *,
    sagemaker: SageMakerClient,
    s3: S3Client,
    bucket: str,
    pipeline: str,
    endpoint: str,
    event_id: str,
    reason: str,
    now: datetime,
    cooldown: timedelta,
) -> RetrainDecision:
    key = f"{AUDIT_PREFIX}/{endpoint}/{event_id}.json"
    decided_at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    decision = RetrainDecision(False, "", endpoint, pipeline, event_id, decided_at)
    if s3io.exists(s3, bucket, key):
        return RetrainDecision(
            False, "this alarm event was handled before", endpoint, pipeline, event_id, decided_at
        )
    latest = _latest(s3, bucket, endpoint)
    started_at = datetime.fromisoformat(latest["started_at"]) if latest else None
    if started_at is not None and now - started_at < cooldown:
        decision = RetrainDecision(
            False,
            f"retraining {latest['execution_arn'] if latest else ''} started at "
            f"{started_at.isoformat()}, within the {cooldown} cooldown",
            endpoint,
            pipeline,
            event_id,
            decided_at,
        )
    else:
        # The token makes a retried call after a lost response start nothing new.
        token = hashlib.sha256(f"{pipeline}/{event_id}".encode()).hexdigest()[:64]
        started = sagemaker.start_pipeline_execution(
            PipelineName=pipeline,
            PipelineExecutionDisplayName=f"drift-{now:%Y%m%d-%H%M%S}",
            PipelineExecutionDescription=f"Retraining: {reason}"[:3072],
            ClientRequestToken=token,
        )
        decision = RetrainDecision(
            True,
            reason,
            endpoint,
            pipeline,
            event_id,
            decided_at,
            execution_arn=started["PipelineExecutionArn"],
        )
        s3.put_object(
            Bucket=bucket,
            Key=f"{AUDIT_PREFIX}/{endpoint}/latest.json",
            Body=json.dumps(
                {"started_at": now.isoformat(), "execution_arn": decision.execution_arn},
                allow_nan=False,
            ).encode(),
            ContentType="application/json",
        )
    audit_uri = f"s3://{bucket}/{key}"
    write_once(s3, bucket, key, json.dumps(asdict(decision), indent=2, allow_nan=False) + "\n")
    return RetrainDecision(**{**asdict(decision), "audit_uri": audit_uri})
