"""The drift monitor on emulated AWS (moto), with hand-made fixtures: no model is trained.

A registered package's lineage (reference.csv, evaluation.json, scores.csv), an endpoint whose
variants serve packages, capture files and ground-truth labels as SageMaker writes them. The
HTML renderer is a fake that records what it was given, except in one test that renders
Evidently's page for real.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws
from scipy import stats

from mlops.core.capture import encode_ground_truth, encode_record, object_key
from mlops.core.config import PlatformConfig
from mlops.core.functions import DriftSettings
from mlops.core.variant_check import DRIFT, NO_DRIFT, NOT_ENOUGH_DATA, SCORE
from mlops.local.replay import requests
from mlops.usecases.check_drift import (
    DriftCheckFailed,
    DriftMonitor,
    LocalSink,
    S3Sink,
)
from mlops.usecases.drift_inputs import ReferenceDataError, load_capture, load_reference
from pipeline_steps.schema import FEATURE_NAMES

REGION = "us-east-1"
ENDPOINT = "visits"
ARTIFACTS, CAPTURE, REPORTS = "artifacts", "capture", "reports"
EXECUTION = f"s3://{ARTIFACTS}/pipelines/p/exec-1"
NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
BASELINE_AUC = 0.74
ROLE = "arn:aws:iam::123456789012:role/serving"
SETTINGS = DriftSettings.for_platform(
    PlatformConfig.from_context(
        {
            "min_rows_for_drift": 100,
            "drift_report_sample_rows": 2000,
            "drift_schedule": "rate(1 hour)",
        }
    ),
    reports_bucket=REPORTS,
    capture_bucket=CAPTURE,
    topic_arn=None,
    capture_delay_minutes=0,  # these tests place records right up to the check's time
).model_copy(update={"endpoint_name": ENDPOINT})


@cache
def reference_frame() -> pd.DataFrame:
    return requests(3000, seed=1)[list(FEATURE_NAMES)]


def score_like_reference(rows: int, seed: int) -> np.ndarray:
    """Scores spread like the model's test-set scores (scores.csv): the quantiles of one
    distribution, shuffled, so any two windows of them agree whatever their size."""
    quantiles = stats.beta.ppf((np.arange(rows) + 0.5) / rows, 2.0, 3.0)
    return np.random.default_rng(seed).permutation(quantiles)


@dataclass
class FakeRenderer:
    """Stands in for Evidently: records its arguments, returns a tiny page."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self, reference: dict[str, np.ndarray], current: dict[str, np.ndarray], **kwargs: Any
    ) -> str:
        self.calls.append({"reference": reference, "current": current, **kwargs})
        return "<html>fake</html>"


@dataclass
class World:
    sagemaker: Any
    s3: Any
    packages: dict[str, str]  # variant -> the model package ARN it serves
    fake: FakeRenderer = field(default_factory=FakeRenderer)

    def monitor(self, **settings: Any) -> DriftMonitor:
        return DriftMonitor(
            sagemaker=self.sagemaker,
            s3=self.s3,
            settings=SETTINGS.model_copy(update=settings),
            render_html=self.fake,
        )

    def text(self, bucket: str, key: str) -> str:
        return str(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def put_capture(
        self,
        variant: str,
        frame: pd.DataFrame,
        *,
        at: datetime,
        scores: Sequence[float] | np.ndarray | None = None,
        batch: int = 10,
        extra_lines: Sequence[str] = (),
    ) -> list[str]:
        """One capture file of CSV requests (``batch`` rows each) and their JSON scores, one
        record a second from ``at``; returns the event ids."""
        values = frame[list(FEATURE_NAMES)].to_numpy(dtype=float)
        given = list(
            score_like_reference(len(values), seed=len(values)) if scores is None else scores
        )
        lines, events = [], []
        for number, start in enumerate(range(0, len(values), batch)):
            chunk, chunk_scores = values[start : start + batch], given[start : start + batch]
            event = f"{variant}-{at:%H%M%S}-{number}"
            output = {"predictions": [{"score": s, "label": int(s >= 0.5)} for s in chunk_scores]}
            lines.append(
                encode_record(
                    request="\n".join(",".join(f"{v:g}" for v in row) for row in chunk).encode(),
                    request_type="text/csv",
                    response=json.dumps(output).encode(),
                    response_type="application/json",
                    inference_time=at + timedelta(seconds=number),
                    event_id=event,
                )
            )
            events.append(event)
        key = object_key("capture", ENDPOINT, variant, at)
        body = "\n".join([*lines, *extra_lines]) + "\n"
        self.s3.put_object(Bucket=CAPTURE, Key=key, Body=body.encode())
        return events

    def put_labels(
        self, at: datetime, labels: dict[str, list[int]], extra_lines: Sequence[str] = ()
    ) -> None:
        key = f"ground-truth/{ENDPOINT}/{at:%Y/%m/%d/%H}/labels-{at:%M%S}.jsonl"
        lines = [encode_ground_truth(e, v) for e, v in labels.items()]
        body = "\n".join([*lines, *extra_lines]) + "\n"
        self.s3.put_object(Bucket=CAPTURE, Key=key, Body=body.encode())


def upload_lineage(
    s3: Any,
    execution: str,
    *,
    reference: pd.DataFrame | None = None,
    scores: bool = True,
) -> None:
    """What the preprocess and evaluate steps write under a pipeline execution."""
    prefix = execution.removeprefix(f"s3://{ARTIFACTS}/")
    if reference is not None:
        s3.put_object(
            Bucket=ARTIFACTS,
            Key=f"{prefix}/reference/reference.csv",
            Body=reference.to_csv(index=False).encode(),
        )
    evaluation = {"binary_classification_metrics": {"auc": {"value": BASELINE_AUC}}}
    s3.put_object(
        Bucket=ARTIFACTS,
        Key=f"{prefix}/evaluation/evaluation.json",
        Body=json.dumps(evaluation).encode(),
    )
    if scores:
        values = score_like_reference(2000, seed=0)
        table = pd.DataFrame({SCORE: values, "any_visit": (values > 0.4).astype(int)})
        s3.put_object(
            Bucket=ARTIFACTS,
            Key=f"{prefix}/evaluation/scores.csv",
            Body=table.to_csv(index=False).encode(),
        )


def register(sagemaker: Any, execution: str = EXECUTION, *, metadata: bool = True) -> str:
    """A model package whose lineage points at ``execution``'s reference and evaluation."""
    request: dict[str, Any] = {
        "ModelPackageGroupName": "visits",
        "ModelApprovalStatus": "Approved",
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"{execution}/evaluation/evaluation.json",
                }
            }
        },
        "InferenceSpecification": {
            "Containers": [{"Image": "visits:1", "ModelDataUrl": f"{execution}/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    if metadata:
        request["CustomerMetadataProperties"] = {"reference_data_uri": f"{execution}/reference/"}
    return str(sagemaker.create_model_package(**request)["ModelPackageArn"])


def make_endpoint(
    sagemaker: Any, name: str, variants: dict[str, tuple[dict[str, Any], float]]
) -> None:
    """An endpoint whose variants serve models made of the given containers."""
    for variant, (container, _) in variants.items():
        spec = (
            {"Containers": [container]}
            if "ModelPackageName" in container
            else {"PrimaryContainer": container}
        )
        sagemaker.create_model(ModelName=f"{name}-{variant}", ExecutionRoleArn=ROLE, **spec)
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": f"{name}-{variant}",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
            for variant, (_, weight) in variants.items()
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (ARTIFACTS, CAPTURE, REPORTS):
            s3.create_bucket(Bucket=bucket)
        upload_lineage(s3, EXECUTION, reference=reference_frame())
        sagemaker.create_model_package_group(ModelPackageGroupName="visits")
        packages = {"champion": register(sagemaker), "challenger": register(sagemaker)}
        make_endpoint(
            sagemaker,
            ENDPOINT,
            {
                "champion": ({"ModelPackageName": packages["champion"]}, 0.8),
                "challenger": ({"ModelPackageName": packages["challenger"]}, 0.2),
            },
        )
        yield World(sagemaker, s3, packages)


# -- what serves ------------------------------------------------------------------------------
def test_serving_maps_variants_to_packages_and_current_weights(world: World) -> None:
    world.sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=ENDPOINT,
        DesiredWeightsAndCapacities=[
            {"VariantName": "champion", "DesiredWeight": 0.6},
            {"VariantName": "challenger", "DesiredWeight": 0.4},
        ],
    )
    assert world.monitor().serving() == {
        "champion": (world.packages["champion"], 0.6),
        "challenger": (world.packages["challenger"], 0.4),
    }


def test_variant_without_a_model_package_is_named(world: World) -> None:
    make_endpoint(
        world.sagemaker,
        "plain",
        {
            "champion": ({"ModelPackageName": world.packages["champion"]}, 1.0),
            "legacy": ({"Image": "visits:0", "ModelDataUrl": "s3://artifacts/old.tar.gz"}, 0.0),
        },
    )
    with pytest.raises(ReferenceDataError, match=r"variant legacy serves model plain-legacy"):
        world.monitor(endpoint_name="plain").serving()


# -- the model's reference --------------------------------------------------------------------
def test_reference_reads_features_scores_and_baseline_auc(world: World) -> None:
    reference = world.monitor().reference(world.packages["champion"])
    assert reference.uri == f"{EXECUTION}/reference/reference.csv"
    assert list(reference.features) == list(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        np.testing.assert_allclose(reference.features[name], reference_frame()[name].to_numpy())
    assert reference.scores is not None
    np.testing.assert_allclose(reference.scores, score_like_reference(2000, seed=0))
    assert reference.baseline_auc == BASELINE_AUC
    assert reference.notes == []


def test_package_without_reference_metadata_is_refused(world: World) -> None:
    arn = register(world.sagemaker, metadata=False)
    with pytest.raises(ReferenceDataError, match="has no reference_data_uri metadata"):
        world.monitor().reference(arn)


def test_missing_reference_csv_is_named(world: World) -> None:
    arn = register(world.sagemaker, f"s3://{ARTIFACTS}/pipelines/p/exec-9")
    missing = f"s3://{ARTIFACTS}/pipelines/p/exec-9/reference/reference.csv"
    with pytest.raises(
        ReferenceDataError, match=f"reference data {re.escape(missing)} .* does not exist"
    ):
        world.monitor().reference(arn)


def test_reference_csv_lacking_a_column_is_named(world: World) -> None:
    execution = f"s3://{ARTIFACTS}/pipelines/p/exec-2"
    upload_lineage(world.s3, execution, reference=reference_frame().drop(columns=["disea"]))
    arn = register(world.sagemaker, execution)
    with pytest.raises(ReferenceDataError, match=r"reference\.csv lacks column\(s\) disea$"):
        world.monitor().reference(arn)


def test_without_scores_prediction_drift_is_not_checked(world: World) -> None:
    execution = f"s3://{ARTIFACTS}/pipelines/p/exec-3"
    upload_lineage(world.s3, execution, reference=reference_frame(), scores=False)
    arn = register(world.sagemaker, execution)
    monitor = world.monitor()
    reference = monitor.reference(arn)
    assert reference.scores is None
    assert reference.baseline_auc == BASELINE_AUC
    assert reference.notes == [
        f"no {execution}/evaluation/scores.csv: prediction drift not checked"
    ]

    world.put_capture("champion", requests(200, seed=2), at=NOW - timedelta(minutes=30))
    outcome = monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    assert outcome.report.status == NO_DRIFT
    assert outcome.report.prediction is None
    assert "prediction drift not checked" in outcome.notes[0]
    assert world.fake.calls[0]["columns"] == list(FEATURE_NAMES)  # no score column


# -- windows ----------------------------------------------------------------------------------
def test_first_window_then_the_next_starts_where_the_last_ended(world: World) -> None:
    monitor, arn = world.monitor(), world.packages["champion"]
    assert monitor.window("champion", arn, NOW) == (NOW - timedelta(hours=1), NOW)

    world.put_capture("champion", requests(200, seed=2), at=NOW - timedelta(minutes=30))
    outcome = monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    assert (outcome.window_start, outcome.window_end) == (NOW - timedelta(hours=1), NOW)
    assert outcome.report.status == NO_DRIFT
    later = NOW + timedelta(minutes=15)
    assert monitor.window("champion", arn, later) == (NOW, later)
    # Each variant keeps its own state.
    assert monitor.window("challenger", world.packages["challenger"], later) == (
        later - timedelta(hours=1),
        later,
    )


def test_too_little_data_keeps_the_start_so_rows_accumulate(world: World) -> None:
    monitor, arn = world.monitor(), world.packages["champion"]
    world.put_capture("champion", requests(60, seed=2), at=NOW - timedelta(minutes=30))
    first = monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    assert first.report.status == NOT_ENOUGH_DATA
    assert first.report.rows == 60

    world.put_capture("champion", requests(60, seed=3), at=NOW + timedelta(minutes=10))
    later = NOW + timedelta(minutes=30)
    second = monitor.check("champion", arn, 0.8, now=later, run_id="r2")
    assert second.window_start == NOW - timedelta(hours=1)
    assert second.report.rows == 120
    assert second.report.status in (DRIFT, NO_DRIFT)
    assert second.files == 2
    assert monitor.window("champion", arn, later + timedelta(minutes=5))[0] == later


def test_a_window_ends_a_capture_delay_before_the_check(world: World) -> None:
    # SageMaker writes capture files minutes after the requests: the window stops short of
    # the check by the delay, and those minutes are the next window's, not lost.
    monitor = world.monitor(capture_delay_minutes=5)
    arn = world.packages["champion"]
    world.put_capture("champion", requests(150, seed=2), at=NOW - timedelta(minutes=30))
    world.put_capture("champion", requests(150, seed=3), at=NOW - timedelta(minutes=2))
    first = monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    assert (first.window_start, first.window_end) == (
        NOW - timedelta(minutes=65),
        NOW - timedelta(minutes=5),
    )
    assert first.report.rows == 150
    second = monitor.check("champion", arn, 0.8, now=NOW + timedelta(hours=1), run_id="r2")
    assert second.window_start == NOW - timedelta(minutes=5)
    assert second.report.rows == 150  # the late ones


def test_a_new_package_on_the_variant_starts_a_new_window(world: World) -> None:
    monitor, arn = world.monitor(), world.packages["champion"]
    world.put_capture("champion", requests(200, seed=2), at=NOW - timedelta(minutes=30))
    monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    later = NOW + timedelta(hours=2)
    assert monitor.window("champion", arn, later) == (NOW, later)
    new = register(world.sagemaker)
    assert monitor.window("champion", new, later) == (later - timedelta(hours=1), later)


def test_max_window_caps_a_long_gap(world: World) -> None:
    monitor, arn = world.monitor(max_window_hours=6), world.packages["champion"]
    world.put_capture("champion", requests(200, seed=2), at=NOW - timedelta(minutes=30))
    monitor.check("champion", arn, 0.8, now=NOW, run_id="r1")
    much_later = NOW + timedelta(days=3)
    assert monitor.window("champion", arn, much_later) == (
        much_later - timedelta(hours=6),
        much_later,
    )


# -- the check --------------------------------------------------------------------------------
def test_check_writes_json_and_html_under_time_stamped_keys(world: World) -> None:
    arn = world.packages["champion"]
    world.put_capture("champion", requests(300, seed=2), at=NOW - timedelta(minutes=30))
    # Another variant's capture and capture outside the window are not read.
    world.put_capture("challenger", requests(50, seed=5), at=NOW - timedelta(minutes=30))
    world.put_capture("champion", requests(50, seed=6), at=NOW - timedelta(hours=3))

    outcome = world.monitor().check("champion", arn, 0.8, now=NOW, run_id="run-1")

    base = f"drift/{ENDPOINT}/champion/2026/11/26/20261126T140000Z-run-1"
    assert outcome.json_uri == f"s3://{REPORTS}/{base}.json"
    assert outcome.html_uri == f"s3://{REPORTS}/{base}.html"
    assert not outcome.duplicate
    assert outcome.report.status == NO_DRIFT
    assert outcome.report.prediction is not None
    assert not outcome.report.prediction.drifted
    document = json.loads(world.text(REPORTS, f"{base}.json"))
    assert document["status"] == NO_DRIFT
    assert document["model_package_arn"] == arn
    assert document["weight"] == 0.8
    assert document["window"] == {"start": "2026-11-26T13:00:00Z", "end": "2026-11-26T14:00:00Z"}
    assert document["rows"] == 300
    assert document["capture_files"] == 1
    assert document["report_html"] == outcome.html_uri
    html = world.s3.get_object(Bucket=REPORTS, Key=f"{base}.html")
    assert html["ContentType"] == "text/html"
    # Evidently's page as it rendered it, headed with the verdict of record (the result's).
    page = html["Body"].read().decode()
    assert page.startswith("<html>")
    assert page.endswith("fake</html>")
    share = f"{document['data']['drift_share']:.2f}"
    assert f"<title>{ENDPOINT} / champion: no-drift, drift share {share} (0 of 9 features)" in page
    for fact in (
        "2026-11-26T13:00:00Z to 2026-11-26T14:00:00Z (run run-1)",
        f"{arn.rsplit('/', 2)[-2]}/{arn.rsplit('/', 1)[-1]}",
        "300 rows checked for the verdict; this page: 300 of them (sampled, seeded) against "
        "2000 reference rows",
        "counts 10 columns (the 9 features and prediction_score)",
    ):
        assert fact in page, fact

    # The report compares the features and the prediction score, sample for sample.
    (call,) = world.fake.calls
    columns = [*FEATURE_NAMES, SCORE]
    assert call["columns"] == columns
    assert set(call["reference"]) == set(call["current"]) == set(columns)
    assert {len(v) for v in call["reference"].values()} == {2000}  # as many rows as scores
    assert {len(v) for v in call["current"].values()} == {300}
    assert call["title"] == f"{ENDPOINT} / champion: data and prediction drift"
    assert call["sample_rows"] == 2000


def test_the_same_run_again_is_a_duplicate_and_overwrites_nothing(world: World) -> None:
    arn = world.packages["champion"]
    world.put_capture("champion", requests(300, seed=2), at=NOW - timedelta(minutes=30))
    monitor = world.monitor()
    start = NOW - timedelta(hours=1)
    first = monitor.check_window(
        "champion", arn, 0.8, start=start, end=NOW, run_id="run-1", sink=monitor.sink()
    )
    written = {k: world.text(REPORTS, k) for k in world.keys(REPORTS)}
    # More capture arrives; the redelivered run must still not replace the first record.
    world.put_capture(
        "champion", requests(300, seed=3, drifted=True), at=NOW - timedelta(minutes=20)
    )
    again = monitor.check_window(
        "champion", arn, 0.8, start=start, end=NOW, run_id="run-1", sink=monitor.sink()
    )
    assert not first.duplicate
    assert again.duplicate
    assert again.html_uri is None
    assert "exists" in again.json_uri
    assert {k: world.text(REPORTS, k) for k in world.keys(REPORTS)} == written


def test_a_redelivered_schedule_event_is_a_duplicate(world: World) -> None:
    arn = world.packages["champion"]
    world.put_capture("champion", requests(300, seed=2), at=NOW - timedelta(minutes=30))
    monitor = world.monitor()
    first = monitor.check("champion", arn, 0.8, now=NOW, run_id="event-1")
    written = {k: world.text(REPORTS, k) for k in world.keys(REPORTS) if "state" not in k}
    again = monitor.check("champion", arn, 0.8, now=NOW, run_id="event-1")
    assert not first.duplicate
    assert again.duplicate
    assert {k: world.text(REPORTS, k) for k in written} == written


def test_prediction_drift_is_flagged_when_scores_shift(world: World) -> None:
    world.put_capture(
        "challenger", requests(300, seed=2), at=NOW - timedelta(minutes=30), scores=[0.99] * 300
    )
    outcome = world.monitor().check(
        "challenger", world.packages["challenger"], 0.2, now=NOW, run_id="r1"
    )
    report = outcome.report
    assert report.data is not None
    assert not report.data.dataset_drift
    assert report.prediction is not None
    assert report.prediction.column == SCORE
    assert report.prediction.drifted
    assert report.status == DRIFT
    assert outcome.drifted


def test_concept_drift_joins_labels_by_event_id(world: World) -> None:
    scores = score_like_reference(300, seed=9)
    events = world.put_capture(
        "champion", requests(300, seed=2), at=NOW - timedelta(minutes=30), scores=scores
    )
    # The labels contradict the scores: high score, no visit; low score, a visit.
    labels = {
        event: [int(s < 0.4) for s in scores[i * 10 : (i + 1) * 10]]
        for i, event in enumerate(events)
    }
    world.put_labels(NOW - timedelta(minutes=10), labels, extra_lines=['{"groundTruthData": {}}'])
    world.put_labels(NOW - timedelta(hours=5), {"other-event": [1]})  # outside the window

    outcome = world.monitor().check(
        "champion", world.packages["champion"], 0.8, now=NOW, run_id="r1"
    )
    quality = outcome.report.quality
    assert quality is not None
    assert quality.labelled_rows == 300
    assert quality.baseline == BASELINE_AUC
    assert quality.value is not None
    assert quality.value < 0.1
    assert quality.drifted
    assert outcome.report.status == DRIFT
    assert outcome.labelled_events == len(events)
    assert "1 malformed label line(s)" in outcome.notes
    assert outcome.report.errors == [
        f"ground-truth/{ENDPOINT}/2026/11/26/13/labels-5000.jsonl:31: eventMetadata.eventId is missing"
    ]


def test_malformed_lines_and_records_are_counted_not_fatal(world: World) -> None:
    bad_record = encode_record(
        request=b"1,2,3,4,5,6,7,8",  # 8 values, the schema has 9
        request_type="text/csv",
        response=b'{"predictions": [{"score": 0.5, "label": 1}]}',
        response_type="application/json",
        inference_time=NOW - timedelta(minutes=5),
        event_id="short",
    )
    world.put_capture(
        "champion",
        requests(200, seed=2),
        at=NOW - timedelta(minutes=30),
        extra_lines=["not json", '{"captureData": {}}', bad_record],
    )
    outcome = world.monitor().check(
        "champion", world.packages["champion"], 0.8, now=NOW, run_id="r1"
    )
    report = outcome.report
    assert report.rows == 200
    assert report.malformed == 3
    assert any("not JSON" in e for e in report.errors)
    assert any("eventMetadata is missing or not an object" in e for e in report.errors)
    assert any(re.search(r"\.jsonl:\d+: event short: CSV row 1", e) for e in report.errors)
    assert report.status == NO_DRIFT
    document = json.loads(world.text(REPORTS, outcome.json_uri.removeprefix(f"s3://{REPORTS}/")))
    kinds = {"not JSON": 1, "missing eventMetadata": 1, "bad input": 1}
    assert (document["malformed"], document["malformed_by_kind"]) == (3, kinds)


def test_an_empty_window_is_not_enough_data_without_html(world: World) -> None:
    outcome = world.monitor().check(
        "champion", world.packages["champion"], 0.8, now=NOW, run_id="r1"
    )
    assert outcome.report.status == NOT_ENOUGH_DATA
    assert outcome.report.rows == 0
    assert outcome.files == 0
    assert outcome.html_uri is None
    assert world.fake.calls == []
    keys = world.keys(REPORTS, f"drift/{ENDPOINT}/champion/")
    assert [k for k in keys if k.endswith(".html")] == []
    document = json.loads(world.text(REPORTS, outcome.json_uri.removeprefix(f"s3://{REPORTS}/")))
    assert document["status"] == NOT_ENOUGH_DATA
    assert document["data"] is None


def test_run_checks_every_variant(world: World) -> None:
    world.put_capture("champion", requests(300, seed=2), at=NOW - timedelta(minutes=30))
    world.put_capture(
        "challenger", requests(300, seed=3, drifted=True), at=NOW - timedelta(minutes=30)
    )
    outcomes = world.monitor().run(now=NOW, run_id="r1")
    assert [(o.variant, o.package_arn, o.weight, o.report.status) for o in outcomes] == [
        ("challenger", world.packages["challenger"], 0.2, DRIFT),
        ("champion", world.packages["champion"], 0.8, NO_DRIFT),
    ]
    assert outcomes[0].report.drift_share is not None
    assert outcomes[0].report.drift_share >= 0.5


def test_the_default_renderer_writes_an_evidently_page(world: World) -> None:
    monitor = DriftMonitor(
        sagemaker=world.sagemaker,
        s3=world.s3,
        settings=SETTINGS,
        render_html=None,
    )
    world.put_capture("champion", requests(300, seed=2), at=NOW - timedelta(minutes=30))
    outcome = monitor.check("champion", world.packages["champion"], 0.8, now=NOW, run_id="r1")
    assert outcome.html_uri is not None
    page = world.text(REPORTS, outcome.html_uri.removeprefix(f"s3://{REPORTS}/"))
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert all(column in page for column in ("lncoins", "disea", SCORE))


# -- sinks and inputs given by location -------------------------------------------------------
def test_local_sink_never_overwrites(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "out")
    written = sink.write_once("champion/2026/11/26/x.json", "first", "application/json")
    assert written == str(tmp_path / "out" / "champion/2026/11/26/x.json")
    assert sink.write_once("champion/2026/11/26/x.json", "second", "application/json") is None
    assert Path(written).read_text() == "first"


def test_load_capture_from_s3_and_a_local_folder(world: World, tmp_path: Path) -> None:
    world.put_capture(
        "champion", requests(40, seed=2), at=NOW - timedelta(minutes=30), extra_lines=["oops"]
    )
    world.put_capture("champion", requests(20, seed=3), at=NOW + timedelta(hours=2))
    # A sibling prefix is another variant, not part of ".../champion".
    world.put_capture("champion-b", requests(20, seed=4), at=NOW - timedelta(minutes=30))
    from_s3 = load_capture(f"s3://{CAPTURE}/capture/{ENDPOINT}/champion", world.s3)
    assert (from_s3.files, from_s3.table().records, from_s3.malformed) == (2, 6, 1)
    within = load_capture(
        f"s3://{CAPTURE}/capture/{ENDPOINT}/champion/",
        world.s3,
        start=NOW - timedelta(hours=1),
        end=NOW,
    )
    assert within.table().records == 4

    for key in world.keys(CAPTURE, f"capture/{ENDPOINT}/champion/"):
        path = tmp_path / "capture" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(world.text(CAPTURE, key))
    local = load_capture(str(tmp_path / "capture"))
    assert (local.files, local.table().records, local.malformed) == (2, 6, 1)
    assert any("not JSON" in e for e in local.errors)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no capture files"):
        load_capture(str(tmp_path / "empty"))


def test_load_reference_from_s3_and_a_local_folder(world: World, tmp_path: Path) -> None:
    # A sibling prefix with its own reference.csv is not part of ".../reference".
    world.s3.put_object(
        Bucket=ARTIFACTS, Key="pipelines/p/exec-1/reference-old/reference.csv", Body=b"lncoins\n1\n"
    )
    from_s3 = load_reference(
        f"{EXECUTION}/reference", world.s3, scores_location=f"{EXECUTION}/evaluation/"
    )
    assert from_s3.uri == f"{EXECUTION}/reference/reference.csv"
    assert len(from_s3.features["lncoins"]) == 3000
    assert from_s3.scores is not None
    assert len(from_s3.scores) == 2000
    assert from_s3.notes == []

    folder = tmp_path / "reference"
    folder.mkdir()
    reference_frame().to_csv(folder / "reference.csv", index=False)
    local = load_reference(str(folder))
    assert local.uri == str(folder / "reference.csv")
    np.testing.assert_allclose(local.features["disea"], reference_frame()["disea"].to_numpy())
    assert local.scores is None
    assert local.notes == ["no reference scores given: prediction drift not checked"]
    with pytest.raises(ReferenceDataError, match=r"expected one reference\.csv at .*, found 2"):
        load_reference(f"s3://{ARTIFACTS}/pipelines/p/", world.s3)


def test_one_variant_failing_does_not_cost_the_other_its_check(world: World) -> None:
    # The challenger's reference cannot be read: the champion is still checked and acted on
    # (metrics, notice) before its window is marked done; then the run fails loudly.
    world.put_capture("champion", requests(300, seed=2), at=NOW - timedelta(minutes=30))
    acted: list[str] = []
    monitor = world.monitor()
    readable = monitor.reference

    def reference(arn: str) -> Any:
        if arn == world.packages["challenger"]:
            raise ReferenceDataError("reference data s3://artifacts/gone.csv does not exist")
        return readable(arn)

    monitor.reference = reference  # type: ignore[method-assign,assignment]
    with pytest.raises(DriftCheckFailed, match="challenger: ReferenceDataError") as failed:
        monitor.run(now=NOW, run_id="r1", on_outcome=lambda o: acted.append(o.variant))
    assert acted == ["champion"]
    assert [o.variant for o in failed.value.outcomes] == ["champion"]
    assert (
        monitor.window("champion", world.packages["champion"], NOW + timedelta(hours=1))[0] == NOW
    )


def test_s3_sink_without_a_prefix_writes_at_the_bucket_root(world: World) -> None:
    sink = S3Sink(world.s3, REPORTS, "")
    assert sink.write_once("a/b.json", "{}", "application/json") == f"s3://{REPORTS}/a/b.json"
    assert sink.write_once("a/b.json", "{}", "application/json") is None
