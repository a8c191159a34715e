"""Non-finite numbers never pass silently: a NaN or infinite feature or score in a captured
record is a malformed record with its reason, in every encoding the capture can carry; the
drift check is computed over the finite rows; the reference refuses them; no NaN or Infinity
reaches a result, a metric or an audit record; traffic weights are bounded and shares are
computed without overflow."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lambdas.drift.handler import MetricNotFinite, emit_metrics
from mlops.adapters.capture_store import CaptureWindow
from mlops.core.capture import CaptureRecord, GroundTruth, encode_record, parse_lines
from mlops.core.config import PlatformConfig
from mlops.core.drift_stats import column_drift
from mlops.core.finite import dumps, finite_or_none
from mlops.core.functions import DriftThresholds
from mlops.core.traffic import (
    MAX_WEIGHT,
    TrafficError,
    challenger_share,
    normalized,
    same,
    validate_weights,
)
from mlops.core.variant_check import DRIFT, check_table, table_from_records
from mlops.usecases.check_drift import (
    LocalSink,
    RunFacts,
    VariantOutcome,
    evaluate,
)
from mlops.usecases.drift_inputs import Reference, ReferenceDataError, read_columns
from pipeline_steps.data import synthetic_dataset
from pipeline_steps.schema import FEATURE_NAMES

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
ROW = [0.5, 1, 3.0, 2.0, 0.0, 4.0, 1, 0, 0]
THRESHOLDS = DriftThresholds.from_config(PlatformConfig(min_rows_for_drift=100))

# Spellings of a non-finite number a CSV or JSON payload can carry; each is a float to Python.
TEXT_SPELLINGS = ["nan", "NaN", "inf", "Infinity", "-inf", "-Infinity", "1e999", "-1e999"]
# ... and in JSON: the literal tokens Python's json reads, numbers beyond the float range,
# and strings (``float("nan")`` reads them).
JSON_SPELLINGS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", '"nan"', '"inf"', '"-inf"']


def capture_line(
    request: str, request_type: str, response: str, response_type: str, *, base64: bool
) -> str:
    # BASE64: the capture header does not list the type, so SageMaker stores the bytes.
    types: dict[str, Any] = {"csv_types": (), "json_types": ()} if base64 else {}
    return encode_record(
        request=request.encode(), request_type=request_type, response=response.encode(),
        response_type=response_type, inference_time=NOW, **types,
    )  # fmt: skip


def parsed(lines: list[str]) -> list[CaptureRecord]:
    result = parse_lines(lines)
    assert result.malformed == 0  # the capture lines are well-formed: the payloads are not
    return result.records


def good_csv() -> tuple[str, str]:
    return ",".join(map(str, ROW)), '{"predictions": [{"score": 0.25, "label": 0}]}'


# -- the parser, every encoding -----------------------------------------------------------
@pytest.mark.parametrize("base64", [False, True], ids=["plain", "base64"])
@pytest.mark.parametrize("spelling", TEXT_SPELLINGS)
@pytest.mark.parametrize("where", ["feature", "score"])
def test_csv_non_finite_feature_or_score_is_a_malformed_record(
    spelling: str, where: str, base64: bool
) -> None:
    request, response = good_csv()
    if where == "feature":
        bad_request = ",".join([str(ROW[0]), spelling, *map(str, ROW[2:])])
        bad = capture_line(bad_request, "text/csv", response, "application/json", base64=base64)
    else:  # a CSV answer: one score a line
        bad = capture_line(request, "text/csv", f"{spelling}\n", "text/csv", base64=base64)
    good = capture_line(request, "text/csv", response, "application/json", base64=base64)
    table = table_from_records(parsed([good, bad, good]))
    assert (table.rows, table.records, table.malformed) == (2, 3, 1)
    assert len(table.errors) == 1
    assert "not a finite number" in table.errors[0]
    assert np.isfinite(table.scores).all()
    assert all(np.isfinite(v).all() for v in table.features.values())


@pytest.mark.parametrize("base64", [False, True], ids=["plain", "base64"])
@pytest.mark.parametrize("spelling", JSON_SPELLINGS)
@pytest.mark.parametrize("where", ["feature", "score"])
def test_json_non_finite_feature_or_score_is_a_malformed_record(
    spelling: str, where: str, base64: bool
) -> None:
    features = ", ".join(map(str, ROW))
    good_request = f'{{"instances": [[{features}]]}}'
    good_response = '{"predictions": [{"score": 0.25, "label": 0}]}'
    request, response = good_request, good_response
    if where == "feature":
        values = ", ".join([str(ROW[0]), spelling, *map(str, ROW[2:])])
        request = f'{{"instances": [[{values}]]}}'
    else:
        response = f'{{"predictions": [{{"score": {spelling}, "label": 1}}]}}'
    kind = "application/json"
    bad = capture_line(request, kind, response, kind, base64=base64)
    good = capture_line(good_request, kind, good_response, kind, base64=base64)
    table = table_from_records(parsed([good, bad]))
    assert (table.rows, table.records, table.malformed) == (1, 2, 1)
    assert "not a finite number" in table.errors[0]
    assert np.isfinite(table.scores).all()


def test_a_json_score_beyond_the_float_range_as_an_integer_is_malformed() -> None:
    request, _ = good_csv()
    response = '{"predictions": [{"score": 1' + "0" * 400 + ', "label": 1}]}'
    bad = capture_line(request, "text/csv", response, "application/json", base64=False)
    table = table_from_records(parsed([bad]))
    assert (table.rows, table.malformed) == (0, 1)


def test_the_bulk_path_refuses_an_overflowing_score() -> None:
    # The common case (one CSV row, one JSON score) is parsed in bulk; 1e999 matches its
    # number pattern and is inf to numpy.
    request, _ = good_csv()
    response = '{"predictions": [{"score": 1e999, "label": 1}]}'
    bad = capture_line(request, "text/csv", response, "application/json", base64=False)
    good = capture_line(request, "text/csv", good_csv()[1], "application/json", base64=False)
    table = table_from_records(parsed([good, bad, good]))
    assert (table.rows, table.malformed) == (2, 1)
    assert "score 0 is not a finite number" in table.errors[0]
    assert np.isfinite(table.scores).all()


# -- the verdict ---------------------------------------------------------------------------
def test_two_inf_scores_do_not_hide_strong_prediction_drift() -> None:
    """The issue's case: 2,000 rows with strong prediction drift plus two inf scores gave a
    NaN prediction score and "no drift"."""
    rng = np.random.default_rng(5)
    frame = synthetic_dataset(5000, seed=1)
    reference = {name: frame[name].to_numpy(dtype=float) for name in FEATURE_NAMES}
    reference_scores = rng.uniform(0.0, 0.4, 2000)
    current = synthetic_dataset(2002, seed=2)[list(FEATURE_NAMES)].to_numpy()
    scores = [f"{s:.6f}" for s in rng.uniform(0.6, 1.0, 2000)] + ["Infinity", "1e999"]
    lines = [
        capture_line(
            ",".join(map(str, row)),
            "text/csv",
            f'{{"predictions": [{{"score": {score}, "label": 1}}]}}',
            "application/json",
            base64=False,
        )
        for row, score in zip(current, scores, strict=True)
    ]
    table = table_from_records(parsed(lines))
    report = check_table(
        "challenger", reference, table, reference_scores=reference_scores, thresholds=THRESHOLDS
    )
    assert report.status == DRIFT
    assert (report.rows, report.malformed) == (2000, 2)
    assert all("not a finite number" in e for e in report.errors)
    assert report.prediction is not None
    assert math.isfinite(report.prediction.score)
    assert report.prediction.drifted
    # The result is JSON (no NaN, no Infinity anywhere in it).
    json.loads(dumps(report.as_dict()))


def test_drift_statistics_refuse_infinity_and_stay_finite_at_extreme_magnitudes() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=3000)
    with pytest.raises(ValueError, match=r"'x': 1 infinite value\(s\) in the current data"):
        column_drift("x", reference, np.append(rng.normal(size=100), np.inf))
    with pytest.raises(ValueError, match="in the reference data"):
        column_drift("x", np.append(reference, -np.inf), rng.normal(size=100))
    # Finite, but far apart enough that the distance leaves the float range.
    tight = np.full(3000, 1.0) + rng.normal(scale=1e-9, size=3000)
    extreme = column_drift("x", tight, np.array([1.7e308, -1.7e308] * 50))
    assert math.isfinite(extreme.score)
    assert extreme.drifted
    # NaN stays "missing", as in Evidently: dropped, not refused.
    assert column_drift("x", reference, np.append(reference[:500], np.nan)).current_rows == 500


# -- the reference -------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_a_non_finite_reference_value_is_refused_naming_the_file(spelling: str) -> None:
    text = "lncoins,idp\n0.5,1\n" + f"0.7,{spelling}\n"
    with pytest.raises(ReferenceDataError, match=r"s3://b/reference\.csv: 1 non-finite .*idp"):
        read_columns(text, ("lncoins", "idp"), source="s3://b/reference.csv")


# -- results, metrics, audit records ----------------------------------------------------------
def test_a_capture_file_check_writes_json_with_a_null_weight(tmp_path: Path) -> None:
    """Capture files have no endpoint weight: it was written as NaN, which is not JSON."""
    frame = synthetic_dataset(500, seed=1)
    reference = Reference(
        "(given)", "ref.csv", {n: frame[n].to_numpy(dtype=float) for n in FEATURE_NAMES},
        None, float("nan"),
    )  # fmt: skip
    run = RunFacts(
        endpoint="ep", variant="v", weight=None, start=NOW, end=NOW, run_id="r",
        thresholds=THRESHOLDS,
    )  # fmt: skip
    outcome = evaluate(
        run, reference, CaptureWindow(), GroundTruth(), sink=LocalSink(tmp_path),
        render_html=None,
    )  # fmt: skip
    text = Path(outcome.json_uri).read_text()
    document = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the result"))
    assert document["weight"] is None
    nan_weight = evaluate(
        replace(run, variant="w", weight=float("inf")), reference, CaptureWindow(),
        GroundTruth(), sink=LocalSink(tmp_path), render_html=None,
    )  # fmt: skip
    assert nan_weight.weight is None
    assert any("not a finite number" in n for n in nan_weight.notes)


def test_json_writers_refuse_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps({"score": float("nan")})
    assert finite_or_none(float("inf")) is None
    assert finite_or_none("0.5") == 0.5
    assert finite_or_none(True) is None


def outcome_with(**changes: Any) -> VariantOutcome:
    frame = synthetic_dataset(300, seed=1)
    reference = {n: frame[n].to_numpy(dtype=float) for n in FEATURE_NAMES}
    request, response = good_csv()
    line = capture_line(request, "text/csv", response, "application/json", base64=False)
    table = table_from_records(parsed([line] * 150))
    report = check_table("v", reference, table, thresholds=THRESHOLDS)
    fields: dict[str, Any] = {
        "endpoint": "ep", "variant": "v", "package_arn": "arn", "weight": 0.5,
        "window_start": NOW, "window_end": NOW, "report": report, "files": 1,
        "labelled_events": 0, "json_uri": "", "html_uri": None,
    }  # fmt: skip
    return VariantOutcome(**{**fields, **changes})


def test_metrics_are_json_and_a_non_finite_value_is_never_emitted() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        emit_metrics(outcome_with())
        emit_metrics(outcome_with(weight=None))
    for line in out.getvalue().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the EMF record"))
    broken = outcome_with()
    assert broken.report.data is not None
    object.__setattr__(broken.report.data, "drift_share", float("nan"))
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(MetricNotFinite, match="DriftShare"):
        emit_metrics(broken)
    assert out.getvalue() == ""


# -- traffic weights -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "weight",
    [1.7e308, MAX_WEIGHT * 2, float("inf"), float("nan"), -0.5, "1e999",
     pytest.param(10**400, id="10**400")],
)  # fmt: skip
def test_absurd_weights_are_refused(weight: Any) -> None:
    with pytest.raises(TrafficError, match="weight of challenger"):
        validate_weights({"champion": 1.0, "challenger": weight}, ["champion", "challenger"])


def test_the_issue_weights_are_refused_and_shares_never_overflow() -> None:
    with pytest.raises(TrafficError, match=r"at most 1e\+06"):
        validate_weights({"champion": 1.7e308, "challenger": 1.7e308}, ["champion", "challenger"])
    assert validate_weights({"champion": MAX_WEIGHT, "challenger": 1}, ["champion", "challenger"])
    # Weights read from an endpoint are any finite numbers: the shares are still right.
    assert normalized({"champion": 1.7e308, "challenger": 1.7e308}) == {
        "champion": 0.5,
        "challenger": 0.5,
    }
    assert challenger_share({"champion": 1.7e308, "challenger": 0.0}) == 0.0
    assert same({"champion": 1.7e308, "challenger": 1.7e308}, {"champion": 1, "challenger": 1})
    with pytest.raises(TrafficError, match="finite"):
        normalized({"champion": float("inf"), "challenger": 1.0})
    with pytest.raises(TrafficError, match="above 0"):
        normalized({"champion": 0.0, "challenger": 0.0})
