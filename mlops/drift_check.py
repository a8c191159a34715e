"""A drift check of one variant: captured requests against the model's reference data.

Pure (no AWS): the caller reads the reference and the capture files. Captured payloads are
parsed with the serving handlers' own parser, so columns map by the model's schema exactly as
the model saw them; a record that cannot be parsed is counted and described, never fatal. A
window with fewer rows than ``min_rows`` is reported as "not enough data", not as drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlops.capture import CaptureRecord
from mlops.drift import ColumnDrift, DriftResult, column_drift, dataset_drift
from pipeline_steps import inference
from pipeline_steps.schema import FEATURE_NAMES

DRIFT = "drift"
NO_DRIFT = "no-drift"
NOT_ENOUGH_DATA = "not-enough-data"
SCORE = "prediction_score"


@dataclass
class CaptureTable:
    """Captured requests as columns: one row per scored instance."""

    features: dict[str, np.ndarray]
    scores: np.ndarray
    rows: int
    records: int
    malformed: int = 0
    errors: list[str] = field(default_factory=list)


def _scores(output: str, content_type: str) -> list[float]:
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind == "text/csv":
        return [float(line) for line in output.split() if line.strip()]
    document = json.loads(output)
    return [float(p["score"]) for p in document["predictions"]]


def table_from_records(records: Sequence[CaptureRecord], *, keep_errors: int = 20) -> CaptureTable:
    """Parse every record's input (by the model's schema) and output (its scores)."""
    rows: list[np.ndarray] = []
    scores: list[float] = []
    malformed = 0
    errors: list[str] = []
    for record in records:
        try:
            matrix = inference.input_fn(record.input.data, record.input.content_type)
            if record.output is None:
                raise ValueError("no captured output")
            predicted = _scores(record.output.data, record.output.content_type)
            if len(predicted) != len(matrix):
                raise ValueError(f"{len(matrix)} input rows but {len(predicted)} predictions")
        except (ValueError, KeyError, TypeError) as exc:  # InvalidRequest is a ValueError
            malformed += 1
            if len(errors) < keep_errors:
                errors.append(f"event {record.event_id}: {exc}")
            continue
        rows.append(matrix)
        scores.extend(predicted)
    table = np.vstack(rows) if rows else np.empty((0, len(FEATURE_NAMES)))
    return CaptureTable(
        features={name: table[:, i] for i, name in enumerate(FEATURE_NAMES)},
        scores=np.asarray(scores, dtype=float),
        rows=len(table),
        records=len(records),
        malformed=malformed,
        errors=errors,
    )


@dataclass
class VariantDriftReport:
    variant: str
    status: str  # drift | no-drift | not-enough-data
    rows: int
    records: int
    malformed: int
    min_rows: int
    data: DriftResult | None = None
    prediction: ColumnDrift | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def drift_share(self) -> float | None:
        return None if self.data is None else self.data.drift_share

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_variant(
    variant: str,
    reference: Mapping[str, np.ndarray],
    records: Sequence[CaptureRecord],
    *,
    reference_scores: np.ndarray | None = None,
    min_rows: int = 200,
    share_threshold: float = 0.5,
    distance_threshold: float = 0.1,
) -> VariantDriftReport:
    """Data drift per feature and for the dataset; prediction drift when reference scores exist."""
    table = table_from_records(records)
    report = VariantDriftReport(
        variant=variant,
        status=NOT_ENOUGH_DATA,
        rows=table.rows,
        records=table.records,
        malformed=table.malformed,
        min_rows=min_rows,
        errors=table.errors,
    )
    if table.rows < min_rows:
        return report
    report.data = dataset_drift(
        reference,
        table.features,
        columns=list(FEATURE_NAMES),
        share_threshold=share_threshold,
        distance_threshold=distance_threshold,
    )
    if reference_scores is not None and len(reference_scores):
        report.prediction = column_drift(
            SCORE, reference_scores, table.scores, distance_threshold=distance_threshold
        )
    drifted = report.data.dataset_drift or bool(report.prediction and report.prediction.drifted)
    report.status = DRIFT if drifted else NO_DRIFT
    return report
