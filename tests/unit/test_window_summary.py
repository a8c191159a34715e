"""A window summarized in shards and merged gives exactly the one-pass report.

Capture files written as benchmarks/drift_check.py writes them (one CSV row per request, half
of them drifted), plus what a real window holds: requests of several rows, JSON payloads,
malformed lines of several kinds spread over more files than the examples kept per kind, a
record whose payload does not parse, a file that is not gzip, ground-truth labels (one event
copied into a second file), records outside the window. Split into N shards (N = 1..5, any
assignment of files to shards), each summarized on its own, written to JSON and read back,
merged in any order: the result is the one-pass check's, byte for byte (status, every column's
score and verdict, prediction drift, AUC, malformed counts and examples), and so is the
report's sample.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops.adapters.capture_store import CaptureWindow
from mlops.core.capture import GroundTruth, Malformed, encode_record, object_key
from mlops.core.capture_reader import FileRead, read_file
from mlops.core.config import PlatformConfig
from mlops.core.drift_stats import column_drift, dataset_drift
from mlops.core.functions import DriftThresholds
from mlops.core.summaries import Counts
from mlops.core.variant_check import (
    SCORE,
    check_summary,
    check_table,
    quality_check,
)
from mlops.core.window_summary import (
    LabelledRows,
    Problems,
    SourceFile,
    WindowSummary,
    merged,
    row_hashes,
    summarize,
)
from mlops.local.replay import capture_line, requests
from mlops.usecases.check_drift import LabelFacts, LocalSink, RunFacts, evaluate, record
from mlops.usecases.drift_inputs import Reference
from pipeline_steps.schema import FEATURE_NAMES

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
START, END = NOW - timedelta(hours=1), NOW
THRESHOLDS = DriftThresholds.from_config(
    PlatformConfig.from_context({"min_rows_for_drift": 500, "drift_report_sample_rows": 1000})
)
RUN = RunFacts(
    endpoint="ep", variant="challenger", weight=0.5, start=START, end=END, run_id="r",
    thresholds=THRESHOLDS,
)  # fmt: skip
PER_FILE = 150
FILES = 12
PROPERTY = settings(max_examples=40, deadline=None, database=None)


@dataclass
class Window:
    files: list[tuple[str, bytes]] = field(default_factory=list)
    labels: GroundTruth = field(default_factory=GroundTruth)


@cache
def window() -> Window:
    """FILES capture files of the window (and their labels), as the drift check lists them."""
    rng = np.random.default_rng(7)
    half = FILES * PER_FILE // 2
    values = np.vstack(
        [
            requests(half, seed=2)[list(FEATURE_NAMES)].to_numpy(float),
            requests(half, seed=3, drifted=True)[list(FEATURE_NAMES)].to_numpy(float),
        ]
    )
    made = Window()
    copied = ""  # an event id that two files hold
    for f in range(FILES):
        when = START + timedelta(minutes=4 * f)
        lines = []
        for i in range(PER_FILE):
            n = f * PER_FILE + i
            score = round(float(rng.beta(2 + 3 * (n >= half), 3)), 6)
            event = f"e{n}"
            lines.append(
                capture_line(values[n], score, when + timedelta(seconds=i % 50), event_id=event)
            )
            if n % 3 == 0:  # a third of the events labelled, against the scores half the time
                made.labels.labels[event] = [float((score > 0.5) == (n % 2 == 0))]
        if f == 2:
            copied = f"e{2 * PER_FILE + 6}"  # a labelled event of file 2 ...
        if f == 9:  # ... again in file 9, scored otherwise: its one label goes to file 2's row
            lines.insert(3, capture_line(values[n], 0.999, when, event_id=copied))
        if f % 2 == 1:  # "not JSON" in six files: more than the 3 examples kept per kind
            lines.insert(f, f"not json {f}")
        if f in (4, 7):
            # 8 values: bad input
            lines.append(capture_line(values[0][:8], 0.5, when, event_id=f"short-{f}"))
            lines.append('{"captureData": {}, "eventMetadata": {"eventId": "x"}}')
        if f == 5:  # a request of three rows (JSON in, JSON out), all three labelled
            rows = values[10:13]
            lines.append(
                encode_record(
                    request=json.dumps({"instances": rows.tolist()}).encode(),
                    request_type="application/json",
                    response=json.dumps(
                        {"predictions": [{"score": s, "label": 1} for s in (0.9, 0.2, 0.7)]}
                    ).encode(),
                    response_type="application/json",
                    inference_time=when,
                    event_id="three",
                )
            )
            made.labels.labels["three"] = [1.0, 0.0, 0.0]
            late = END + timedelta(minutes=1)  # not in the window
            lines.append(capture_line(values[1], 0.4, late, event_id="late"))
        name = object_key("capture", "ep", "challenger", when, unique=f"{f:04d}")
        made.files.append((name, ("\n".join(lines) + "\n").encode()))
    made.files.insert(6, ("capture/ep/challenger/broken.jsonl.gz", b"not gzip at all"))
    return made


@cache
def reads() -> tuple[tuple[str, FileRead], ...]:
    return tuple(
        (name, read_file(body, source=name, start=START, end=END)) for name, body in window().files
    )


@cache
def reference() -> Reference:
    frame = requests(3000, seed=1)
    scores = np.random.default_rng(0).beta(2, 3, 2000)
    return Reference(
        "arn:pkg", "ref.csv", {n: frame[n].to_numpy(float) for n in FEATURE_NAMES}, scores, 0.74
    )


@dataclass
class Renderer:
    calls: list[dict[str, np.ndarray]] = field(default_factory=list)

    def __call__(self, reference: Any, current: dict[str, np.ndarray], **_: Any) -> str:
        self.calls.append(current)
        return "<html></html>"


def judged(
    folder: Path, recorder: Callable[[LocalSink, Renderer], Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    renderer = Renderer()
    outcome = recorder(LocalSink(folder), renderer)
    result = json.loads(Path(outcome.json_uri).read_text())
    result.pop("report_html")
    (current,) = renderer.calls
    return result, current


@cache
def one_pass() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    folder = Path(tempfile.mkdtemp(prefix="one-pass-"))
    captured = CaptureWindow()
    for name, read in reads():
        captured.add(name, read)
    return judged(
        folder,
        lambda sink, render: evaluate(
            RUN, reference(), captured, window().labels, sink=sink, render_html=render
        ),
    )


def shard_summary(files: list[int]) -> WindowSummary:
    """One shard's summary, as a Processing job's shard writes it (JSON) and the merge reads it."""
    summary = summarize(
        [(SourceFile(i, reads()[i][0]), reads()[i][1]) for i in files],
        labels=window().labels.labels,
        sample_rows=THRESHOLDS.report_sample_rows,
    )
    return WindowSummary.from_document(json.loads(json.dumps(summary.as_document())))


def sharded(
    folder: Path, assignment: list[int], order: list[int]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    shards = [[f for f, s in enumerate(assignment) if s == shard] for shard in order]
    summary = merged([shard_summary(files) for files in shards])
    return judged(
        folder,
        lambda sink, render: record(
            RUN,
            reference(),
            summary,
            LabelFacts.of(window().labels),
            skipped_files=[],
            sink=sink,
            render_html=render,
        ),
    )


@pytest.fixture(scope="module")
def expected() -> tuple[dict[str, Any], dict[str, Any]]:
    return one_pass()


def test_the_window_exercises_every_part_of_the_summary(
    expected: tuple[dict[str, Any], dict[str, np.ndarray]],
) -> None:
    result, sample = expected
    assert result["status"] == "drift"
    assert result["rows"] == FILES * PER_FILE + 1 + 3  # the copied record, the 3-row request
    assert result["malformed_by_kind"] == {
        "not JSON": 6,
        "bad input": 2,
        "missing endpointInput": 2,
    }
    assert len(result["errors"]) == 3 + 2 + 2  # three examples of "not JSON" kept, of six
    (unreadable,) = result["malformed_files"]
    assert unreadable.startswith("capture/ep/challenger/broken.jsonl.gz: ")
    assert result["quality"]["labelled_rows"] == FILES * PER_FILE // 3 + 3
    assert result["quality"]["value"] is not None
    assert {c["column"] for c in result["data"]["columns"] if c["drifted"]}
    assert result["prediction"]["drifted"]
    assert {len(v) for v in sample.values()} == {THRESHOLDS.report_sample_rows}


@PROPERTY
@given(data=st.data())
def test_any_split_into_shards_merged_in_any_order_gives_the_one_pass_report(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    expected_result, expected_sample = one_pass()
    count = len(reads())
    shards = data.draw(st.integers(1, 5), label="shards")
    assignment = data.draw(
        st.lists(st.integers(0, shards - 1), min_size=count, max_size=count), label="assignment"
    )
    order = data.draw(st.permutations(range(shards)), label="merge order")
    result, sample = sharded(tmp_path_factory.mktemp("sharded"), assignment, list(order))
    assert result == expected_result  # every score bit for bit (JSON's exact floats)
    assert sample.keys() == expected_sample.keys()
    for name in sample:
        np.testing.assert_array_equal(sample[name], expected_sample[name])


def test_merging_is_associative_and_a_file_cannot_be_merged_twice() -> None:
    a, b, c = shard_summary([0, 1, 2]), shard_summary([3, 4, 5, 6]), shard_summary([7, 8])
    left = merged([merged([a, b]), c]).as_document()
    right = merged([a, merged([c, b])]).as_document()
    assert json.dumps(left) == json.dumps(right)
    with pytest.raises(ValueError, match=r"file\(s\) \[1\] summarized in two shards"):
        merged([a, shard_summary([1])])


def test_the_summary_path_gives_the_statistics_computed_from_the_raw_table() -> None:
    """check_table now summarizes its table first: its verdicts are those computed from the
    raw columns (scores bit for bit; the AUC from counts is the rank AUC to 1e-12)."""
    captured = CaptureWindow()
    for name, read in reads():
        captured.add(name, read)
    table = captured.table()
    ref = reference()
    labels = window().labels.labels
    report = check_table(
        "v", ref.features, table, reference_scores=ref.scores, labels=labels,
        baseline_auc=0.74, thresholds=THRESHOLDS,
    )  # fmt: skip
    raw = dataset_drift(ref.features, table.features, columns=list(FEATURE_NAMES))
    assert report.data is not None
    assert [(c.score, c.drifted) for c in report.data.columns] == [
        (c.score, c.drifted) for c in raw.columns
    ]
    assert report.prediction == column_drift(SCORE, ref.scores, table.scores)
    quality = quality_check(
        table, labels, baseline_auc=0.74, tolerance=THRESHOLDS.quality_tolerance,
        min_rows=THRESHOLDS.min_rows,
    )  # fmt: skip
    assert report.quality is not None
    assert report.quality.labelled_rows == quality.labelled_rows
    assert report.quality.value == pytest.approx(quality.value, abs=1e-12)
    assert report.quality.drifted == quality.drifted
    summary = captured.summary(labels=labels, sample_rows=10)
    again = check_summary(
        "v", ref.features, summary, reference_scores=ref.scores, baseline_auc=0.74,
        thresholds=THRESHOLDS,
    )  # fmt: skip
    assert again.data == report.data
    assert again.prediction == report.prediction


def test_malformed_examples_are_the_first_by_place_and_kinds_keep_their_first_order() -> None:
    def file(order: int, *problems: tuple[str, str]) -> Problems:
        malformed = Malformed()
        for kind, text in problems:
            malformed.add(kind, text)
        return Problems.of(malformed, 0, order, keep=2)

    parts = [
        file(2, ("b", "b2"), ("a", "a2")),
        file(0, ("a", "a0"), ("a", "a0'"), ("a", "a0''")),
        file(1, ("b", "b1"), ("c", "c1")),
    ]
    whole = Problems.merged(parts).malformed()
    assert list(whole.by_kind) == ["a", "b", "c"]
    assert whole.by_kind == {"a": 4, "b": 2, "c": 1}
    assert whole.examples == {"a": ["a0", "a0'"], "b": ["b1", "b2"], "c": ["c1"]}


def test_an_event_in_two_files_takes_its_labels_once_in_file_order() -> None:
    @dataclass
    class T:
        event_ids: np.ndarray
        scores: np.ndarray

    labels = {"e": [1.0, 0.0]}
    first = LabelledRows.of([(3, T(np.array(["e"], object), np.array([0.2])))], labels)  # type: ignore[list-item]
    second = LabelledRows.of([(1, T(np.array(["e", "e"], object), np.array([0.9, 0.8])))], labels)  # type: ignore[list-item]
    scores, given = LabelledRows.merged([first, second]).scores()
    np.testing.assert_array_equal(scores, [0.9, 0.8])  # file 1's rows take both labels
    np.testing.assert_array_equal(given, [1.0, 0.0])


def test_row_hashes_depend_on_the_name_and_the_row_only() -> None:
    a = row_hashes("capture/ep/v/x.jsonl", 5)
    assert a.dtype == np.uint64
    np.testing.assert_array_equal(a[:3], row_hashes("capture/ep/v/x.jsonl", 3))
    assert not np.array_equal(a, row_hashes("capture/ep/v/y.jsonl", 5))
    assert len(set(a.tolist())) == 5


def test_a_summary_is_json_and_reads_back_the_same() -> None:
    summary = shard_summary(list(range(len(reads()))))
    text = json.dumps(summary.as_document(), allow_nan=False)
    again = WindowSummary.from_document(json.loads(text))
    assert json.dumps(again.as_document(), allow_nan=False) == text
    assert again.features["disea"] == summary.features["disea"]
    assert isinstance(again.scores, Counts)
    with pytest.raises(ValueError, match=r"not a mlops\.window-summary/1 document"):
        WindowSummary.from_document({"format": "other"})
