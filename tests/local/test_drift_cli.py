"""`mlops drift check` on capture files in a local folder: all three encodings, malformed
lines, too little data, reports never overwritten, and the exit code CI can gate on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops.cli import DRIFT_EXIT_CODE, app
from mlops.core.capture import encode_record, object_key
from mlops.local.replay import requests
from pipeline_steps.schema import FEATURE_NAMES

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def write_capture(folder: Path, frame: pd.DataFrame, *, batch: int = 5) -> int:
    """Capture files as SageMaker writes them, rotating through CSV, JSON and BASE64 payloads
    (BASE64: what SageMaker stores when CaptureContentTypeHeader does not list the type)."""
    values = frame[list(FEATURE_NAMES)].to_numpy(dtype=float)
    lines: list[str] = []
    for number, start in enumerate(range(0, len(values), batch)):
        chunk = values[start : start + batch]
        scores = [0.5 + 0.01 * (i % 10) for i in range(len(chunk))]
        output = json.dumps({"predictions": [{"score": s, "label": int(s >= 0.5)} for s in scores]})
        if number % 3 == 1:
            body, kind = json.dumps({"instances": chunk.tolist()}), "application/json"
        else:
            body = "\n".join(",".join(f"{v:g}" for v in row) for row in chunk)
            kind = "text/csv"
        plain = number % 3 != 2
        lines.append(
            encode_record(
                request=body.encode(), request_type=kind, response=output.encode(),
                response_type="application/json", inference_time=NOW + timedelta(seconds=number),
                csv_types=("text/csv",) if plain else (), json_types=("application/json",) if plain else (),
            )
        )  # fmt: skip
    key = object_key("capture", "ep", "challenger", NOW)
    path = folder / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["drift", "check", *args], env={"COLUMNS": "200"})


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    path = tmp_path / "model" / "reference" / "reference.csv"
    path.parent.mkdir(parents=True)
    requests(3000, seed=1)[list(FEATURE_NAMES)].to_csv(path, index=False)
    return path


def test_drifted_capture_fails_the_gate_and_writes_reports(reference: Path, tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    records = write_capture(capture, requests(1500, seed=2, drifted=True))
    # One line that is not a capture record: counted, reported, not fatal.
    (capture / "extra.jsonl").write_text('{"captureData": {}}\nnot json\n')
    out = tmp_path / "out"
    args = ["--capture", str(capture), "--reference", str(reference.parent), "--output", str(out)]

    result = run(*args, "--fail-on-drift")
    assert result.exit_code == DRIFT_EXIT_CODE, result.output
    assert "drift" in result.output
    (result_file,) = out.rglob("*.json")
    document = json.loads(result_file.read_text())
    assert document["status"] == "drift"
    assert document["rows"] == 1500
    assert document["records"] == records
    assert document["malformed"] == 2
    assert any("not JSON" in e for e in document["errors"])
    assert sum(document["malformed_by_kind"].values()) == 2
    assert "1 not JSON" in result.output  # the counts by kind, on the terminal too
    assert document["data"]["drift_share"] >= 0.5
    (html,) = out.rglob("*.html")
    assert "lncoins" in html.read_text()

    # Without the flag the same finding exits 0; a second run never overwrites the first.
    again = run(*args)
    assert again.exit_code == 0, again.output
    assert len(list(out.rglob("*.json"))) == 2
    assert json.loads(result_file.read_text()) == document


def test_json_is_one_document_and_the_gate_still_exits_3(reference: Path, tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, requests(1500, seed=2, drifted=True))
    out = tmp_path / "out"
    result = run("--capture", str(capture), "--reference", str(reference), "--output", str(out),
                 "--fail-on-drift", "--json")  # fmt: skip
    assert result.exit_code == DRIFT_EXIT_CODE, result.output
    document = json.loads(result.stdout)
    assert document["drifted"] == ["capture"]
    (variant,) = document["variants"]
    assert variant["status"] == "drift"
    assert variant["rows"] == 1500
    assert variant["drift_share"] >= 0.5
    assert "lncoins" in variant["drifted_features"]
    (result_file,) = out.rglob("*.json")
    assert variant["result"] == str(result_file)  # the whole path, as the result says
    assert json.loads(result_file.read_text())["data"]["drift_share"] == variant["drift_share"]
    assert "capture read and checked" in result.stderr  # the progress, off stdout
    assert "drift" in result.stderr


def test_capture_like_the_reference_passes_the_gate(reference: Path, tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, requests(1500, seed=3))
    result = run("--capture", str(capture), "--reference", str(reference), "--output",
                 str(tmp_path / "out"), "--fail-on-drift", "--no-html")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no-drift" in result.output
    assert not list((tmp_path / "out").rglob("*.html"))


def test_too_little_capture_is_not_enough_data(reference: Path, tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, requests(40, seed=4, drifted=True))
    result = run("--capture", str(capture), "--reference", str(reference), "--output",
                 str(tmp_path / "out"), "--fail-on-drift")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "not-enough-data" in result.output
    (result_file,) = (tmp_path / "out").rglob("*.json")
    assert json.loads(result_file.read_text())["data"] is None


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--capture", "{capture}"], 2, "--capture needs --reference"),
        (["--reference", "{reference}"], 2, "go with --capture"),
        (["--capture", "{capture}", "--reference", "{reference}", "-v", "a", "-v", "b"], 2,
         "at most one --variant"),
        (["--capture", "{missing}", "--reference", "{reference}"], 2, "does not exist"),
        (["--capture", "{empty}", "--reference", "{reference}"], 1, "no capture files"),
        (["--capture", "{capture}", "--reference", "{empty}"], 1, "expected one reference.csv"),
        (["--capture", "{capture}", "--reference", "{reference}", "--last", "soon"], 2, "--last"),
        (["--capture", "{capture}", "--reference", "{reference}", "--since", "yesterday"], 2,
         "ISO time"),
    ],
)  # fmt: skip
def test_bad_input_is_named(
    reference: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, requests(20, seed=5))
    (tmp_path / "empty").mkdir()
    paths = {"capture": capture, "missing": tmp_path / "nope", "empty": tmp_path / "empty",
             "reference": reference}  # fmt: skip
    result = run(*[a.format(**paths) for a in args], "--output", str(tmp_path / "out"))
    assert result.exit_code == code, result.output
    assert message in result.output
