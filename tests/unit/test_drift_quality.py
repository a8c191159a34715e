"""Concept drift: the AUC, the join of ground-truth labels to captured rows by event id, and
the ground-truth records themselves (CSV, JSON, BASE64; malformed lines counted, never fatal)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlops.core.capture import CaptureRecord, encode_ground_truth, encode_record, parse_line
from mlops.core.capture import parse_ground_truth as parse_labels
from mlops.core.variant_check import (
    DRIFT,
    NO_DRIFT,
    CaptureTable,
    auc,
    check_variant,
    quality_check,
    table_from_records,
)
from pipeline_steps.data import synthetic_dataset
from pipeline_steps.schema import FEATURE_NAMES
from tests.unit.test_capture_aws_examples import GROUND_TRUTH_EXAMPLES

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def record(event_id: str, rows: np.ndarray, scores: Sequence[float]) -> CaptureRecord:
    body = "\n".join(",".join(str(v) for v in row) for row in rows)
    output = json.dumps({"predictions": [{"score": s, "label": int(s > 0.5)} for s in scores]})
    return parse_line(
        encode_record(
            request=body.encode(),
            request_type="text/csv",
            response=output.encode(),
            response_type="application/json",
            inference_time=NOW,
            event_id=event_id,
        )
    )


def feature_rows(n: int, seed: int) -> np.ndarray:
    frame = synthetic_dataset(n, seed=seed)
    return np.asarray(frame[list(FEATURE_NAMES)].to_numpy(dtype=float))


def gt_line(event_id: str, data: str, encoding: str) -> str:
    return json.dumps(
        {
            "groundTruthData": {"data": data, "encoding": encoding},
            "eventMetadata": {"eventId": event_id},
            "eventVersion": "0",
        }
    )


# --- auc -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_auc_matches_sklearn_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=300)
    scores = rng.normal(size=300) + labels * 0.7
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=400)
    scores = np.round(rng.uniform(size=400) * 0.5 + labels * 0.3, 1)  # few distinct values
    assert len(np.unique(scores)) < 20
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    # all scores tied: exactly a half
    assert auc(labels, np.zeros(400)) == pytest.approx(0.5)


def test_auc_perfect_and_inverted() -> None:
    labels = np.array([0, 0, 1, 1])
    assert auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0


@pytest.mark.parametrize("labels", [np.ones(5), np.zeros(5), np.array([], dtype=float)])
def test_auc_needs_both_classes(labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="both classes"):
        auc(labels, np.linspace(0, 1, len(labels)))


# --- quality_check: the join by event id ---------------------------------------------------


def small_table() -> CaptureTable:
    rows = feature_rows(6, seed=10)
    records = [
        record("multi", rows[0:3], [0.9, 0.1, 0.8]),  # three rows, one request
        record("single", rows[3:4], [0.2]),
        record("unlabelled", rows[4:6], [0.7, 0.3]),
    ]
    table = table_from_records(records)
    assert table.rows == 6
    assert list(table.event_ids) == ["multi"] * 3 + ["single"] + ["unlabelled"] * 2
    return table


def test_labels_join_one_per_row_in_order_and_unlabelled_events_are_skipped() -> None:
    table = small_table()
    # multi: rows scored 0.9, 0.1, 0.8 labelled 1, 0, 1; single: 0.2 labelled 0 -> perfect.
    labels = {"multi": [1.0, 0.0, 1.0], "single": [0.0]}
    result = quality_check(table, labels, baseline_auc=0.8, tolerance=0.05, min_rows=1)
    assert result.labelled_rows == 4  # the unlabelled event's two rows are not counted
    assert result.value == pytest.approx(1.0)
    assert result.drifted is False
    assert (result.metric, result.baseline, result.tolerance) == ("auc", 0.8, 0.05)
    # The same event's labels in another order: the join is by position within the request.
    skewed = {"multi": [0.0, 1.0, 1.0], "single": [0.0]}
    # positives 0.1, 0.8; negatives 0.9, 0.2: pairs (0.1>0.9 no, 0.1>0.2 no, 0.8>0.9 no,
    # 0.8>0.2 yes) -> 1/4
    moved = quality_check(table, skewed, baseline_auc=0.8, tolerance=0.05, min_rows=1)
    assert moved.value == pytest.approx(0.25)
    assert moved.drifted is True


def test_fewer_labels_than_rows_label_the_first_rows() -> None:
    table = small_table()
    labels = {"multi": [1.0, 0.0], "single": [0.0]}  # third row of "multi" has no label
    result = quality_check(table, labels, baseline_auc=0.5, tolerance=0.05, min_rows=1)
    assert result.labelled_rows == 3
    # positives 0.9; negatives 0.1, 0.2 -> 1.0
    assert result.value == pytest.approx(1.0)


def test_too_few_labelled_rows_is_no_verdict() -> None:
    table = small_table()
    labels = {"multi": [1.0, 0.0, 1.0], "single": [0.0]}
    result = quality_check(table, labels, baseline_auc=0.8, tolerance=0.05, min_rows=5)
    assert result.value is None
    assert result.drifted is False
    assert result.labelled_rows == 4
    assert result.note == "4 labelled rows, fewer than 5"
    nothing = quality_check(table, {"other": [1.0]}, baseline_auc=0.8, tolerance=0.05, min_rows=1)
    assert (nothing.value, nothing.labelled_rows) == (None, 0)
    assert "0 labelled rows" in nothing.note


def test_one_class_is_no_verdict() -> None:
    table = small_table()
    labels = {"multi": [1.0, 1.0, 1.0], "single": [1.0]}
    result = quality_check(table, labels, baseline_auc=0.8, tolerance=0.05, min_rows=1)
    assert result.value is None
    assert result.drifted is False
    assert result.labelled_rows == 4
    assert "one class" in result.note


def labelled_window(
    n: int, seed: int, *, inverted: bool, per_request: int = 2
) -> tuple[list[CaptureRecord], dict[str, list[float]]]:
    """Rows like the reference; scores that track (or invert) the labels."""
    rng = np.random.default_rng(seed)
    rows = feature_rows(n, seed=seed)
    y = rng.integers(0, 2, size=n)
    good = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.15, size=n), 0, 1)
    scores = 1 - good if inverted else good
    records, labels = [], {}
    for i, start in enumerate(range(0, n, per_request)):
        event = f"event-{seed}-{i}"
        end = start + per_request
        records.append(record(event, rows[start:end], scores[start:end].tolist()))
        labels[event] = [float(v) for v in y[start:end]]
    return records, labels


def test_inverted_model_drifts_against_its_baseline() -> None:
    records, labels = labelled_window(200, seed=20, inverted=True)
    table = table_from_records(records)
    result = quality_check(table, labels, baseline_auc=0.85, tolerance=0.05, min_rows=100)
    assert result.labelled_rows == 200
    assert result.value is not None
    assert result.value < 0.2
    assert result.drifted is True
    good_records, good_labels = labelled_window(200, seed=20, inverted=False)
    good_table = table_from_records(good_records)
    good = quality_check(good_table, good_labels, baseline_auc=0.85, tolerance=0.05, min_rows=100)
    assert good.value is not None
    assert good.value > 0.8
    assert good.drifted is False
    # The same window, scores inverted: 1 - AUC (ties count half either way).
    assert result.value == pytest.approx(1 - good.value)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    frame = synthetic_dataset(5000, seed=1)
    return {name: frame[name].to_numpy(dtype=float) for name in FEATURE_NAMES}


def test_check_variant_reports_quality_drift_without_data_drift(
    reference: dict[str, np.ndarray],
) -> None:
    records, labels = labelled_window(600, seed=21, inverted=True)
    plain = check_variant("champion", reference, records, min_rows=200)
    assert plain.status == NO_DRIFT  # the inputs are like the reference
    assert plain.quality is None
    assert plain.data is not None
    assert not plain.data.dataset_drift
    report = check_variant(
        "champion", reference, records, labels=labels, baseline_auc=0.85, min_rows=200
    )
    assert report.quality is not None
    assert report.quality.labelled_rows == 600
    assert report.quality.drifted is True
    assert report.data is not None
    assert not report.data.dataset_drift
    assert report.status == DRIFT
    # Good scores, same inputs: quality holds, nothing drifts.
    good_records, good_labels = labelled_window(600, seed=21, inverted=False)
    calm = check_variant(
        "champion", reference, good_records, labels=good_labels, baseline_auc=0.85, min_rows=200
    )
    assert calm.quality is not None
    assert calm.quality.drifted is False
    assert calm.status == NO_DRIFT
    # Labels without a baseline: no quality check.
    unbased = check_variant("champion", reference, records, labels=labels, min_rows=200)
    assert unbased.quality is None
    assert unbased.status == NO_DRIFT


# --- parse_ground_truth ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GROUND_TRUTH_EXAMPLES))
def test_published_ground_truth_records_parse(name: str) -> None:
    text = GROUND_TRUTH_EXAMPLES[name]
    document = json.loads(text)
    event_id = document["eventMetadata"]["eventId"]
    expected = [float(document["groundTruthData"]["data"])]
    # As one JSON Lines line (the docs' example is pretty-printed over several lines).
    line = json.dumps(document)
    result = parse_labels([line], source="gt.jsonl")
    assert (result.labels, result.malformed, result.errors) == ({event_id: expected}, 0, [])


def test_encode_ground_truth_round_trips() -> None:
    lines = [
        encode_ground_truth("one", [1]),
        encode_ground_truth("two", [1, 0]),
        encode_ground_truth("three", [0, 0, 1]),
    ]
    assert json.loads(lines[1])["groundTruthData"] == {"data": "1\n0", "encoding": "CSV"}
    result = parse_labels(lines)
    assert result.labels == {"one": [1.0], "two": [1.0, 0.0], "three": [0.0, 0.0, 1.0]}
    assert result.malformed == 0


def test_json_and_base64_encodings() -> None:
    lines = [
        gt_line("json-list", "[1, 0]", "JSON"),
        gt_line("json-scalar", "1", "JSON"),
        gt_line("b64", base64.b64encode(b"0\n1\n1").decode(), "BASE64"),
        gt_line("csv-commas", "1,0", "CSV"),
    ]
    result = parse_labels(lines)
    assert result.labels == {
        "json-list": [1.0, 0.0],
        "json-scalar": [1.0],
        "b64": [0.0, 1.0, 1.0],
        "csv-commas": [1.0, 0.0],
    }
    assert result.malformed == 0


def test_malformed_lines_are_counted_never_raised() -> None:
    lines = [
        encode_ground_truth("good", [1]),
        "this is not json",
        json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {}}),
        gt_line("label-two", "2", "CSV"),
        gt_line("parquet", "1", "PARQUET"),
        "",  # blank lines are skipped, not malformed
        gt_line("bad-b64", "!!!not base64", "BASE64"),
        json.dumps([1, 0]),
        encode_ground_truth("also-good", [0, 1]),
        gt_line("nested", "[[1, 0]]", "JSON"),
        gt_line("null", "null", "JSON"),
        gt_line("empty", "[]", "JSON"),
        json.dumps({"groundTruthData": {"data": "1"}, "eventMetadata": "abc"}),
        json.dumps({"eventMetadata": {"eventId": "no-data"}}),
        gt_line("half", "0.5", "CSV"),
        gt_line("boolean", "true", "JSON"),
    ]
    result = parse_labels(lines, source="s3://b/gt/file.jsonl")
    assert result.labels == {"good": [1.0], "also-good": [0.0, 1.0]}
    assert result.malformed == 13
    assert len(result.errors) == 13
    numbers = [error.split(": ", 1)[0] for error in result.errors]
    malformed_lines = (2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16)
    assert numbers == [f"s3://b/gt/file.jsonl:{n}" for n in malformed_lines]
    assert "eventId" in result.errors[1]
    assert "0 or 1" in result.errors[2]
    assert "PARQUET" in result.errors[3]
    assert "true/false" in result.errors[12]


def test_parse_accumulates_into_an_existing_result() -> None:
    first = parse_labels([encode_ground_truth("a", [1])], source="one")
    both = parse_labels(["junk", encode_ground_truth("b", [0])], source="two", into=first)
    assert both is first
    assert both.labels == {"a": [1.0], "b": [0.0]}
    assert (both.malformed, both.errors[0].split(": ")[0]) == (1, "two:1")


def test_keep_errors_limits_the_descriptions_not_the_count() -> None:
    result = parse_labels(["x"] * 30, source="f", keep_errors=5)
    assert result.malformed == 30
    assert len(result.errors) == 5


def test_parsed_labels_drive_the_quality_check() -> None:
    table = small_table()
    labels = parse_labels([encode_ground_truth("multi", [1, 0, 1]), gt_line("single", "0", "CSV")])
    result = quality_check(table, labels.labels, baseline_auc=0.9, tolerance=0.05, min_rows=4)
    assert (result.labelled_rows, result.value, result.drifted) == (4, 1.0, False)
