"""A drift check of one variant: captured requests against the model's reference data.

Pure (no AWS): the caller reads the reference and the capture files. Captured payloads are
parsed with the serving handlers' own parser, so columns map by the model's schema exactly as
the model saw them; a record that cannot be parsed is counted and described, never fatal. A
window with fewer rows than ``min_rows`` is reported as "not enough data", not as drift.

Three checks: data drift (every feature, and the share of drifted features), prediction drift
(the scores against the model's test-set scores) and, when ground-truth labels have arrived
for the window's events, concept drift: the model's AUC on those rows against the AUC it had
at evaluation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from mlops.core.capture import EXAMPLES_PER_KIND, CaptureRecord, HasMalformed, Malformed
from mlops.core.config import PlatformConfig
from mlops.core.drift_stats import ColumnDrift, DriftResult, column_drift, dataset_drift
from mlops.core.functions import DriftThresholds
from mlops.core.summaries import LabelledScores
from mlops.core.window_summary import LabelledRows, WindowSummary, summarize_table
from pipeline_steps.payloads import read_request
from pipeline_steps.schema import FEATURE_NAMES

DRIFT = "drift"
NO_DRIFT = "no-drift"
NOT_ENOUGH_DATA = "not-enough-data"
SCORE = "prediction_score"

# The kinds of malformed record found in the payloads (the capture lines' own kinds are
# mlops.core.capture's). A non-finite number keeps its own kind, whichever side carries it.
NON_FINITE = "non-finite value"
BAD_INPUT = "bad input"
NO_OUTPUT = "no output"
BAD_OUTPUT = "bad output"
ROW_MISMATCH = "rows and predictions differ"


@dataclass
class CaptureTable(HasMalformed):
    """Captured requests as columns: one row per scored instance."""

    features: dict[str, np.ndarray]
    scores: np.ndarray
    event_ids: np.ndarray  # the capture event each row came from (labels join on it)
    rows: int
    records: int
    problems: Malformed = field(default_factory=Malformed)  # records whose payloads do not parse


def _finite(value: Any, where: str) -> float:
    """``value`` as a finite float; ValueError naming it otherwise. ``float`` alone takes "nan",
    "inf", "Infinity" and 1e999 (and JSON's NaN and Infinity): a score of that kind is a
    malformed record, never a number averaged into a distance (one inf makes it NaN, and a
    NaN distance reads as "no drift")."""
    if isinstance(value, bool):
        raise ValueError(f"{where} is not a number: {value!r}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond the float range
        raise ValueError(f"{where} is not a finite number: {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where} is not a finite number: {value!r}")
    return number


def _scores(output: str, content_type: str) -> list[float]:
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind == "text/csv":
        return [
            _finite(line, f"score {i}")
            for i, line in enumerate(v for v in output.split() if v.strip())
        ]
    document = json.loads(output)
    return [_finite(p["score"], f"score {i}") for i, p in enumerate(document["predictions"])]


# The common case, parsed in bulk: a CSV request of one row of plain numbers, answered with one
# JSON score. Anything else (headers, several rows, JSON requests, odd values) takes the serving
# handlers' own parser record by record, with its error messages. At 1M records the bulk path
# is what keeps a window's parse in seconds rather than tens of seconds.
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# Spaces and tabs around values, a line break only at the end: one row, never two.
_ONE_CSV_ROW = re.compile(
    rf"[ \t]*{_NUMBER}[ \t]*(?:,[ \t]*{_NUMBER}[ \t]*){{{len(FEATURE_NAMES) - 1}}}\r?\n?"
)
_ONE_SCORE = re.compile(
    rf'\{{"predictions":\s*\[\{{"score":\s*({_NUMBER}),\s*"label":\s*-?\d+\}}\]\}}\s*'
)


def _bulk(record: CaptureRecord) -> str | None:
    """The score text when ``record`` is the common case (see above), else None."""
    output = record.output
    if (
        output is None
        or not record.input.content_type.startswith("text/csv")
        or not output.content_type.startswith("application/json")
        or not _ONE_CSV_ROW.fullmatch(record.input.data)
    ):
        return None
    match = _ONE_SCORE.fullmatch(output.data)
    return match.group(1) if match else None


@dataclass
class RecordRows:
    """Rows parsed from records, each tagged with its record's position in the file; and the
    records that did not parse, as (position, kind, example)."""

    values: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    event_ids: list[np.ndarray] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    problems: list[tuple[int, str, str]] = field(default_factory=list)


def record_rows(
    records: Sequence[CaptureRecord],
    positions: Sequence[int],
    source: str = "",
    lines: Sequence[int] | None = None,
) -> RecordRows:
    """Parse every record's input (by the model's schema) and output (its scores): the common
    case in bulk, the others with the serving handlers' parser one by one. A record that does
    not parse is a problem of its kind ("source:line: event id: reason" when ``lines`` gives
    each record's line)."""
    bulk_records: list[CaptureRecord] = []
    bulk_scores: list[str] = []
    bulk_positions: list[int] = []
    others: list[tuple[int, CaptureRecord, int | None]] = []
    for index, (position, record) in enumerate(zip(positions, records, strict=True)):
        line = lines[index] if lines is not None else None
        score = _bulk(record)
        if score is None:
            others.append((position, record, line))
        else:
            bulk_records.append(record)
            bulk_scores.append(score)
            bulk_positions.append(index)
    width = len(FEATURE_NAMES)
    bulk = np.array(
        ",".join(r.input.data for r in bulk_records).split(",") if bulk_records else [],
        dtype=float,
    ).reshape(len(bulk_records), width)
    finite = np.isfinite(bulk).all(axis=1) & np.isfinite(
        np.asarray(bulk_scores, dtype=float).reshape(len(bulk_scores))
    )
    if not finite.all():  # 1e999 parses as inf: let the record-by-record parser name it
        others.extend(
            (positions[i], r, lines[i] if lines is not None else None)
            for i, r, ok in zip(bulk_positions, bulk_records, finite, strict=True)
            if not ok
        )
        others.sort(key=lambda item: item[0])
        bulk_records = [r for r, ok in zip(bulk_records, finite, strict=True) if ok]
        bulk_scores = [v for v, ok in zip(bulk_scores, finite, strict=True) if ok]
        bulk_positions = [i for i, ok in zip(bulk_positions, finite, strict=True) if ok]
        bulk = bulk[finite]
    rows = RecordRows(
        values=[bulk],
        scores=[np.asarray([float(v) for v in bulk_scores], dtype=float)],
        event_ids=[np.asarray([r.event_id for r in bulk_records], dtype=object)],
        positions=[np.asarray([positions[i] for i in bulk_positions], dtype=np.int64)],
    )
    for position, record, line in others:
        kind = BAD_INPUT
        try:
            matrix = read_request(record.input.data, record.input.content_type)
            kind = NO_OUTPUT
            if record.output is None:
                raise ValueError("no captured output")
            kind = BAD_OUTPUT
            predicted = _scores(record.output.data, record.output.content_type)
            kind = ROW_MISMATCH
            if len(predicted) != len(matrix):
                raise ValueError(f"{len(matrix)} input rows but {len(predicted)} predictions")
        # InvalidRequest is a ValueError; OverflowError: a JSON integer beyond the float range.
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            # read_request's and _finite's words for a NaN, an infinity or 1e999.
            if "not a finite number" in str(exc):
                kind = NON_FINITE
            where = f"{source}:{line}: " if line is not None else ""
            rows.problems.append((position, kind, f"{where}event {record.event_id}: {exc}"))
            continue
        rows.values.append(matrix)
        rows.scores.append(np.asarray(predicted, dtype=float))
        rows.event_ids.append(np.asarray([record.event_id] * len(matrix), dtype=object))
        rows.positions.append(np.full(len(matrix), position, dtype=np.int64))
    return rows


def assemble_table(
    parts: Sequence[RecordRows], *, records: int, keep_errors: int = EXAMPLES_PER_KIND
) -> CaptureTable:
    """One table from rows parsed apart: rows, and the examples of each kind of problem, in the
    order of the records they came from."""
    width = len(FEATURE_NAMES)
    values = [v for p in parts for v in p.values] or [np.empty((0, width))]
    positions = np.concatenate([q for p in parts for q in p.positions] or [np.empty(0, np.int64)])
    order = np.argsort(positions, kind="stable")
    table = np.vstack([v.reshape(len(v), width) for v in values])[order]
    problems = Malformed(keep=keep_errors)
    for _, kind, example in sorted(
        (problem for p in parts for problem in p.problems), key=lambda item: item[0]
    ):
        problems.add(kind, example)
    return CaptureTable(
        features={name: table[:, i] for i, name in enumerate(FEATURE_NAMES)},
        scores=np.concatenate([s for p in parts for s in p.scores] or [np.empty(0)])[order],
        event_ids=np.concatenate(
            [e for p in parts for e in p.event_ids] or [np.empty(0, dtype=object)]
        )[order],
        rows=len(table),
        records=records,
        problems=problems,
    )


def table_from_records(
    records: Sequence[CaptureRecord],
    *,
    keep_errors: int = EXAMPLES_PER_KIND,
    source: str = "",
    lines: Sequence[int] | None = None,
) -> CaptureTable:
    """Parse every record's input (by the model's schema) and output (its scores). A record
    that does not parse is counted by kind, with the first ``keep_errors`` examples of each
    kind ("source:line: event id: reason" when ``lines`` gives each record's line)."""
    rows = record_rows(records, range(len(records)), source, lines)
    return assemble_table([rows], records=len(records), keep_errors=keep_errors)


def concat_tables(
    chunks: Sequence[CaptureTable], *, keep_errors: int = EXAMPLES_PER_KIND
) -> CaptureTable:
    """One table from per-file tables (rows in file order)."""
    if not chunks:
        return table_from_records([])
    return CaptureTable(
        features={
            name: np.concatenate([c.features[name] for c in chunks]) for name in FEATURE_NAMES
        },
        scores=np.concatenate([c.scores for c in chunks]),
        event_ids=np.concatenate([c.event_ids for c in chunks]),
        rows=sum(c.rows for c in chunks),
        records=sum(c.records for c in chunks),
        problems=Malformed.merged(*(c.problems for c in chunks), keep=keep_errors),
    )


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U; ties count half). Needs both classes."""
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs labels of both classes")
    from scipy import stats  # noqa: PLC0415 - labelled windows only: ~1 s to import

    ranks = stats.rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class QualityResult:
    """Concept drift: the model's quality on labelled window rows against its evaluation."""

    metric: str
    value: float | None  # None: too few labelled rows, or a single class
    baseline: float
    tolerance: float
    labelled_rows: int
    drifted: bool
    note: str = ""


def quality_check(
    table: CaptureTable,
    labels: Mapping[str, Sequence[float]],
    *,
    baseline_auc: float,
    tolerance: float,
    min_rows: int,
) -> QualityResult:
    """AUC on the rows whose event has labels (one label per row of the request, in order)."""
    keep: list[int] = []
    values: list[float] = []
    position: dict[str, int] = {}
    for row, event_id in enumerate(table.event_ids):
        given = labels.get(event_id)
        index = position.get(event_id, 0)
        position[event_id] = index + 1
        if given is not None and index < len(given):
            keep.append(row)
            values.append(float(given[index]))
    result = QualityResult("auc", None, baseline_auc, tolerance, len(keep), False)
    if len(keep) < min_rows:
        return replace(result, note=f"{len(keep)} labelled rows, fewer than {min_rows}")
    y = np.asarray(values)
    if len(np.unique(y)) < 2:
        return replace(result, note="labelled rows hold one class only: AUC is undefined")
    value = auc(y, table.scores[keep])
    return replace(result, value=value, drifted=baseline_auc - value > tolerance)


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
    quality: QualityResult | None = None
    errors: list[str] = field(default_factory=list)  # the first examples of each kind
    malformed_by_kind: dict[str, int] = field(default_factory=dict)
    malformed_files: list[str] = field(default_factory=list)  # "name: reason": none read
    skipped_files: list[str] = field(default_factory=list)  # not capture files

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
    thresholds: DriftThresholds | None = None,
    min_rows: int | None = None,
    **options: Any,
) -> VariantDriftReport:
    """``check_table`` over parsed capture records; the platform's thresholds unless given."""
    chosen = thresholds or DriftThresholds.from_config(PlatformConfig())
    if min_rows is not None:
        chosen = replace(chosen, min_rows=min_rows)
    return check_table(
        variant, reference, table_from_records(records), thresholds=chosen, **options
    )


def check_table(
    variant: str,
    reference: Mapping[str, np.ndarray],
    table: CaptureTable,
    *,
    reference_scores: np.ndarray | None = None,
    labels: Mapping[str, Sequence[float]] | None = None,
    baseline_auc: float | None = None,
    thresholds: DriftThresholds,
) -> VariantDriftReport:
    """Data drift per feature and for the dataset; prediction drift when reference scores exist;
    concept drift when labels and the evaluation's AUC are given. The table is summarized as
    one shard and judged by ``check_summary``, as a window merged from shards is."""
    summary = summarize_table(table, labels=labels, sample_rows=0)
    return check_summary(
        variant,
        reference,
        summary,
        reference_scores=reference_scores,
        baseline_auc=baseline_auc,
        thresholds=thresholds,
    )


def summary_quality(
    labelled: LabelledRows, *, baseline_auc: float, tolerance: float, min_rows: int
) -> QualityResult:
    """``quality_check``'s verdict from a summary's labelled rows (the same join)."""
    scores, labels = labelled.scores()
    result = QualityResult("auc", None, baseline_auc, tolerance, len(scores), False)
    if len(scores) < min_rows:
        return replace(result, note=f"{len(scores)} labelled rows, fewer than {min_rows}")
    if len(np.unique(labels)) < 2:
        return replace(result, note="labelled rows hold one class only: AUC is undefined")
    value = LabelledScores.of(scores, labels).auc()
    return replace(result, value=value, drifted=baseline_auc - value > tolerance)


def check_summary(
    variant: str,
    reference: Mapping[str, np.ndarray],
    summary: WindowSummary,
    *,
    reference_scores: np.ndarray | None = None,
    baseline_auc: float | None = None,
    thresholds: DriftThresholds,
) -> VariantDriftReport:
    """A window's verdicts from its summary (one pass, or shards merged): data drift per
    feature and for the dataset, prediction drift when reference scores exist, concept drift
    when labels were given and the evaluation's AUC is known."""
    min_rows = thresholds.min_rows
    problems = summary.malformed
    report = VariantDriftReport(
        variant=variant,
        status=NOT_ENOUGH_DATA,
        rows=summary.rows,
        records=summary.records,
        malformed=problems.count,
        min_rows=min_rows,
        errors=problems.errors,
        malformed_by_kind=dict(problems.by_kind),
        malformed_files=summary.unreadable,
    )
    if summary.rows < min_rows:
        return report
    report.data = dataset_drift(
        reference,
        summary.features,
        columns=list(FEATURE_NAMES),
        share_threshold=thresholds.share_threshold,
        distance_threshold=thresholds.distance_threshold,
    )
    if reference_scores is not None and len(reference_scores):
        report.prediction = column_drift(
            SCORE,
            reference_scores,
            summary.scores,
            distance_threshold=thresholds.distance_threshold,
        )
    if summary.labelled.enabled and baseline_auc is not None:
        report.quality = summary_quality(
            summary.labelled,
            baseline_auc=baseline_auc,
            tolerance=thresholds.quality_tolerance,
            min_rows=min_rows,
        )
    drifted = (
        report.data.dataset_drift
        or bool(report.prediction and report.prediction.drifted)
        or bool(report.quality and report.quality.drifted)
    )
    report.status = DRIFT if drifted else NO_DRIFT
    return report
