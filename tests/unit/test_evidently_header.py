"""Evidently's page headed with the verdict of record: its <title> and a banner at the top of
the body carry the result's values, and say that the page counts the prediction column and
runs on a sample (so its "9 of 10 columns" is not read as the verdict's "8 of 9")."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np

from mlops.adapters.evidently_report import evidently_html, with_verdict
from mlops.core.drift_stats import ColumnDrift, DriftResult
from mlops.core.functions import DriftThresholds
from mlops.core.variant_check import SCORE, VariantDriftReport
from mlops.usecases.drift_inputs import Reference
from mlops.usecases.drift_results import RunFacts, verdict_header
from pipeline_steps.schema import FEATURE_NAMES

END = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-visits/2"
THRESHOLDS = DriftThresholds(min_rows=1000, share_threshold=0.5, distance_threshold=0.1,
                             quality_tolerance=0.05, report_sample_rows=1000)  # fmt: skip


def header() -> dict[str, object]:
    """8 of the 9 features drifted over 4,321 rows; the page shows 1,000 of them."""
    columns = tuple(
        ColumnDrift(name, "wasserstein", "distance", 0.4 if i else 0.02, 0.1, i > 0, 3000, 4321)
        for i, name in enumerate(FEATURE_NAMES)
    )
    report = VariantDriftReport(
        variant="challenger", status="drift", rows=4321, records=900, malformed=0, min_rows=1000,
        data=DriftResult(columns, 8, 8 / 9, 0.5, True),
        prediction=ColumnDrift(SCORE, "wasserstein", "distance", 0.31, 0.1, True, 3000, 4321),
    )  # fmt: skip
    run = RunFacts(endpoint="ep", variant="challenger", weight=0.25, start=END - timedelta(hours=1),
                   end=END, run_id="run-7", thresholds=THRESHOLDS)  # fmt: skip
    reference = Reference(ARN, "s3://a/ref.csv", {}, None, None)
    return verdict_header(run, reference, report, [*FEATURE_NAMES, SCORE], 1000, 1000)


def test_the_header_says_the_verdict_of_record() -> None:
    made = header()
    facts = dict(made["facts"])  # type: ignore[call-overload]

    assert made["title"] == "ep / challenger: drift, drift share 0.89 (8 of 9 features)"
    assert facts["verdict of record"] == "drift"
    assert facts["drifted features"] == ", ".join(FEATURE_NAMES[1:])
    assert facts["window"] == "2026-11-30T13:00:00Z to 2026-11-30T14:00:00Z (run run-7)"
    assert facts["model"] == f"mlops-dev-visits/2 ({ARN})"
    assert facts["thresholds"].startswith("dataset drift at a share of 0.5 or more; distance 0.1")
    assert facts["rows"] == (
        "4321 rows checked for the verdict; this page: 1000 of them (sampled, seeded) "
        "against 1000 reference rows"
    )
    assert "wasserstein 0.31 (threshold 0.1): drift" in facts["prediction drift"]
    assert "counts 10 columns (the 9 features and prediction_score)" in str(made["caveat"])
    assert "runs on a sample of 1000 rows" in str(made["caveat"])


def test_evidently_page_gets_the_title_and_banner_unchanged_otherwise() -> None:
    rng = np.random.default_rng(0)
    columns = [*FEATURE_NAMES, SCORE]
    reference = {c: rng.normal(size=1500) for c in columns}
    current = {c: rng.normal(0.0 if c == FEATURE_NAMES[0] else 1.0, size=1500) for c in columns}
    page = evidently_html(reference, current, columns=columns, title="t", sample_rows=1000,
                          share_threshold=0.5, distance_threshold=0.1)  # fmt: skip

    headed = with_verdict(page, **header())  # type: ignore[arg-type]

    title = "<title>ep / challenger: drift, drift share 0.89 (8 of 9 features)</title>"
    assert headed.index(title) < headed.index("</head>")
    body = re.search(r"<body[^>]*>", headed)
    assert body is not None
    assert headed[body.end() :].startswith("<div id='verdict-of-record'")
    assert headed.count("verdict-of-record") == 1
    # Evidently's own page is all there, after the banner: not re-rendered.
    banner_end = headed.index("</div>", body.end()) + len("</div>")
    assert headed[: body.start()].replace(title, "") == page[: page.index("<body")]
    assert headed[banner_end:] == page[page.index("<body") + len("<body>") :]
