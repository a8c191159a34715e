"""A variant's drift check over captured records: parsing by the model's schema, malformed
records counted, too little data reported as such, drift found when it is there."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from mlops.core.capture import encode_record, parse_line
from mlops.core.variant_check import (
    DRIFT,
    NO_DRIFT,
    NOT_ENOUGH_DATA,
    check_variant,
    table_from_records,
)
from pipeline_steps.data import synthetic_dataset
from pipeline_steps.schema import FEATURE_NAMES

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def records_from(frame, *, as_json: bool = False, per_request: int = 1):  # type: ignore[no-untyped-def]
    lines = []
    values = frame[list(FEATURE_NAMES)].to_numpy()
    for start in range(0, len(values), per_request):
        chunk = values[start : start + per_request]
        if as_json:
            body, kind = json.dumps({"instances": chunk.tolist()}), "application/json"
        else:
            body, kind = "\n".join(",".join(map(str, row)) for row in chunk), "text/csv"
        output = json.dumps({"predictions": [{"score": 0.5, "label": 1} for _ in chunk]})
        lines.append(
            encode_record(
                request=body.encode(), request_type=kind, response=output.encode(),
                response_type="application/json", inference_time=NOW,
            )
        )  # fmt: skip
    return [parse_line(line) for line in lines]


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    frame = synthetic_dataset(5000, seed=1)
    return {name: frame[name].to_numpy(dtype=float) for name in FEATURE_NAMES}


def test_csv_and_json_captures_parse_to_the_same_table() -> None:
    frame = synthetic_dataset(30, seed=2)
    by_csv = table_from_records(records_from(frame, per_request=3))
    by_json = table_from_records(records_from(frame, as_json=True))
    assert by_csv.rows == by_json.rows == 30
    for name in FEATURE_NAMES:
        np.testing.assert_allclose(by_csv.features[name], frame[name].to_numpy(dtype=float))
        np.testing.assert_allclose(by_json.features[name], frame[name].to_numpy(dtype=float))


def test_no_drift_on_data_like_the_reference(reference: dict[str, np.ndarray]) -> None:
    report = check_variant("champion", reference, records_from(synthetic_dataset(1500, seed=3)))
    assert report.status == NO_DRIFT
    assert report.rows == 1500
    assert report.data is not None
    assert report.data.drifted_columns == 0


def test_drift_is_found_when_inputs_shift(reference: dict[str, np.ndarray]) -> None:
    frame = synthetic_dataset(1500, seed=4)
    for name in ("lpi", "fmde", "disea", "lncoins", "physlm"):
        frame[name] = frame[name] * 0.3 + frame[name].max() * 0.5  # squeeze towards the top
    frame["idp"] = 1
    report = check_variant("challenger", reference, records_from(frame))
    assert report.status == DRIFT
    assert report.data is not None
    assert report.data.dataset_drift
    assert {c.column for c in report.data.columns if c.drifted} >= {"lpi", "disea", "idp"}


def test_too_few_rows_is_not_drift(reference: dict[str, np.ndarray]) -> None:
    report = check_variant(
        "challenger", reference, records_from(synthetic_dataset(50, seed=5)), min_rows=200
    )
    assert report.status == NOT_ENOUGH_DATA
    assert (report.rows, report.data) == (50, None)
    empty = check_variant("challenger", reference, [])
    assert (empty.status, empty.rows, empty.records) == (NOT_ENOUGH_DATA, 0, 0)


def test_malformed_records_are_counted_and_skipped(reference: dict[str, np.ndarray]) -> None:
    good = records_from(synthetic_dataset(300, seed=6))
    bad_input = parse_line(
        encode_record(request=b"1,2,3", request_type="text/csv", response=b'{"predictions": []}',
                      response_type="application/json", inference_time=NOW, event_id="short-row")
    )  # fmt: skip
    mismatch = parse_line(
        encode_record(request=b"4.6,1,6.9,0,0,13.7,1,0,0", request_type="text/csv",
                      response=b'{"predictions": []}', response_type="application/json",
                      inference_time=NOW, event_id="no-prediction")
    )  # fmt: skip
    report = check_variant("champion", reference, [*good, bad_input, mismatch], min_rows=200)
    assert (report.rows, report.records, report.malformed) == (300, 302, 2)
    assert report.status == NO_DRIFT
    assert report.errors[0].startswith("event short-row: CSV row 1: expected 9 values")
    assert report.errors[1] == "event no-prediction: 1 input rows but 0 predictions"


def test_prediction_drift_when_reference_scores_exist(reference: dict[str, np.ndarray]) -> None:
    records = records_from(synthetic_dataset(500, seed=7))  # every captured score is 0.5
    calm = check_variant(
        "champion", reference, records, reference_scores=np.full(2000, 0.5), min_rows=200
    )
    assert calm.prediction is not None
    assert not calm.prediction.drifted
    shifted = check_variant(
        "champion",
        reference,
        records,
        reference_scores=np.random.default_rng(0).uniform(0, 1, 2000),
        min_rows=200,
    )
    assert shifted.prediction is not None
    assert shifted.prediction.drifted
    assert shifted.status == DRIFT


def test_bulk_parse_equals_the_handlers_parser_record_by_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bulk path for one-row CSV requests gives exactly what input_fn gives, and every
    other shape (or an odd value) still goes through input_fn, with its error messages."""
    from mlops.core import variant_check as drift_check  # noqa: PLC0415

    def record(body: str, kind: str = "text/csv", score: str = "0.25") -> str:
        output = '{"predictions": [{"score": ' + score + ', "label": 0}]}'
        return encode_record(
            request=body.encode(), request_type=kind, response=output.encode(),
            response_type="application/json", inference_time=NOW,
        )  # fmt: skip

    row = "4.61512,1,6.907755,0,0,13.73189,1,0,0"
    lines = [
        record(row),
        record(row + "\n"),  # a trailing newline
        record(" 4.6 , 1 ,6.9,0,0,13,1,0,0", score="7e-1"),  # spaces, exponent
        record(row.replace("13.73189", "1e999")),  # not finite: refused by input_fn
        record(",".join(FEATURE_NAMES) + "\n" + row),  # a header row
        record(row + "\n" + row, score="0.1"),  # two rows, one score: malformed
        record(json.dumps({"instances": [[1, 0, 1, 0, 0, 2, 0, 1, 0]]}), "application/json"),
        record("1,2,3"),  # too few values
        record("1,0,2,3,0.5,\n1,0,1,0"),  # nine values over two lines: two short rows
    ]
    records = [parse_line(line) for line in lines]
    fast = table_from_records(records)
    monkeypatch.setattr(drift_check, "_bulk", lambda _: None)
    slow = table_from_records(records)
    assert (fast.rows, fast.malformed) == (slow.rows, slow.malformed) == (5, 4)
    order_fast, order_slow = np.argsort(fast.event_ids), np.argsort(slow.event_ids)
    for name in FEATURE_NAMES:
        np.testing.assert_array_equal(
            fast.features[name][order_fast], slow.features[name][order_slow]
        )
    np.testing.assert_array_equal(fast.scores[order_fast], slow.scores[order_slow])
    assert sorted(fast.errors) == sorted(slow.errors)
    assert any("not a finite number" in e for e in fast.errors)
