"""The step scripts on their own: validation, deterministic splits, reproducible models,
the evaluation report and the serving handlers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline_steps import evaluate, inference, preprocess, train
from pipeline_steps.data import bundled_dataset_path, load_bundled_dataset, synthetic_dataset
from pipeline_steps.hyperparameters import Hyperparameters
from pipeline_steps.model import ModelCard
from pipeline_steps.schema import FEATURE_NAMES, INPUT_COLUMNS, DataValidationError

# -- schema validation: bad input gets a clear error naming the problem ------------------------


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def good_csv(rows: int = 50, seed: int = 0) -> str:
    frame: pd.DataFrame = synthetic_dataset(rows, seed=seed)
    text: str = frame.to_csv(index=False)
    return text


def test_missing_column_is_named(tmp_path: Path) -> None:
    frame = synthetic_dataset(20).drop(columns=["lpi"])
    source = write(tmp_path, frame.to_csv(index=False))
    with pytest.raises(DataValidationError, match=r"data.csv: missing column\(s\) 'lpi'"):
        preprocess.run(source.parent, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written


def test_wrong_type_names_file_line_and_column(tmp_path: Path) -> None:
    lines = good_csv(20).splitlines()
    cells = lines[5].split(",")
    cells[INPUT_COLUMNS.index("disea")] = "lots"
    lines[5] = ",".join(cells)
    source = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(
        DataValidationError,
        match=r"data.csv, line 6, column 'disea': expected a finite number, got 'lots'",
    ):
        preprocess.run(source.parent, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_value_is_reported(tmp_path: Path) -> None:
    lines = good_csv(5).splitlines()
    cells = lines[2].split(",")
    cells[INPUT_COLUMNS.index("idp")] = ""
    lines[2] = ",".join(cells)
    source = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match=r"line 3, column 'idp': .* got an empty value"):
        preprocess.run(source, tmp_path / "out")


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [("idp", "2", "0 or 1"), ("lncoins", "9.5", "between 0 and 4.7"), ("mdvis", "-1", ">= 0")],
)
def test_out_of_range_values_are_rejected(
    tmp_path: Path, column: str, value: str, rule: str
) -> None:
    lines = good_csv(5).splitlines()
    cells = lines[1].split(",")
    cells[INPUT_COLUMNS.index(column)] = value
    lines[1] = ",".join(cells)
    source = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match=rf"line 2, column '{column}': must be .*{rule}"):
        preprocess.run(source, tmp_path / "out")


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    lines = good_csv(8).splitlines()
    lines.insert(3, "")  # a blank physical line 4
    cells = lines[6].split(",")
    cells[INPUT_COLUMNS.index("lpi")] = "x"
    lines[6] = ",".join(cells)  # physical line 7
    source = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match=r"line 4, column 'mdvis': .* got an empty value"):
        preprocess.run(source, tmp_path / "out")
    del lines[3]
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match=r"line 6, column 'lpi'"):
        preprocess.run(source, tmp_path / "out")


def test_one_class_only_is_refused_before_training(tmp_path: Path) -> None:
    frame = synthetic_dataset(200)
    frame["mdvis"] = 0
    source = write(tmp_path, frame.to_csv(index=False))
    with pytest.raises(
        DataValidationError,
        match=r"every row has any_visit=0: the model needs rows of both classes",
    ):
        preprocess.run(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_split_without_both_classes_is_refused(tmp_path: Path) -> None:
    frame = synthetic_dataset(40)
    frame["mdvis"] = 0
    frame.loc[0, "mdvis"] = 3  # one positive row: some split gets none
    source = write(tmp_path, frame.to_csv(index=False))
    with pytest.raises(DataValidationError, match=r"split \(\d+ rows\) holds only one class"):
        preprocess.run(source, tmp_path / "out")


def test_empty_file(tmp_path: Path) -> None:
    source = write(tmp_path, "")
    with pytest.raises(DataValidationError, match=r"data.csv: the file is empty"):
        preprocess.run(source, tmp_path / "out")


def test_header_without_rows(tmp_path: Path) -> None:
    source = write(tmp_path, ",".join(INPUT_COLUMNS) + "\n")
    with pytest.raises(DataValidationError, match=r"has a header but no data rows"):
        preprocess.run(source, tmp_path / "out")


def test_folder_without_csv(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match=r"holds no .csv file"):
        preprocess.run(tmp_path / "empty", tmp_path / "out")


def test_preprocess_cli_exits_1_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path, "")
    code = preprocess.main(["--input", str(source), "--output", str(tmp_path / "out")])
    assert code == 1
    assert "invalid input data: data.csv: the file is empty" in capsys.readouterr().err


# -- preprocess ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("prepared")
    return out, preprocess.run(bundled_dataset_path(), out, seed=42, code_version="test")


def test_split_sizes_and_disjointness(prepared: tuple[Path, dict[str, object]]) -> None:
    out, manifest = prepared
    frames = {n: pd.read_csv(out / n / f"{n}.csv") for n in preprocess.SPLIT_NAMES}
    assert manifest["rows"] == {"train": 14134, "validation": 3028, "test": 3028}
    assert sum(len(f) for f in frames.values()) == len(load_bundled_dataset())
    assert list(frames["train"].columns) == [*FEATURE_NAMES, "any_visit"]
    reference = pd.read_csv(out / "reference" / "reference.csv")
    assert list(reference.columns) == list(FEATURE_NAMES)
    pd.testing.assert_frame_equal(reference, frames["train"][list(FEATURE_NAMES)])


def test_manifest_hashes_every_input_and_output(prepared: tuple[Path, dict[str, object]]) -> None:
    out, manifest = prepared
    on_disk = json.loads((out / "manifest" / preprocess.MANIFEST).read_text())
    assert on_disk == manifest
    assert set(manifest["outputs"]) == {  # type: ignore[call-overload]
        "train/train.csv",
        "validation/validation.csv",
        "test/test.csv",
        "reference/reference.csv",
        "reference/schema.json",
    }
    from pipeline_steps.hashing import file_sha256  # noqa: PLC0415

    for name, digest in manifest["outputs"].items():  # type: ignore[attr-defined]
        assert file_sha256(out / name) == digest
    assert manifest["inputs"] == {"randhie.csv": file_sha256(bundled_dataset_path())}
    # The same data as DVC names it: one file, its plain md5 (what `dvc add` records).
    dvc_md5 = hashlib.md5(bundled_dataset_path().read_bytes(), usedforsecurity=False).hexdigest()
    assert manifest["inputs_md5"] == {"randhie.csv": dvc_md5}
    assert manifest["dataset_dvc_md5"] == dvc_md5


def test_split_is_deterministic_and_seeded(
    tmp_path: Path, prepared: tuple[Path, dict[str, object]]
) -> None:
    _, first = prepared
    again = preprocess.run(bundled_dataset_path(), tmp_path / "again", seed=42, code_version="test")
    other = preprocess.run(bundled_dataset_path(), tmp_path / "other", seed=7, code_version="test")
    assert again["outputs"] == first["outputs"]
    assert again["dataset_sha256"] == first["dataset_sha256"]
    assert other["dataset_sha256"] == first["dataset_sha256"]  # same data version...
    assert other["outputs"] != first["outputs"]  # ...split differently


# -- train and evaluate: reproducibility ---------------------------------------------------


def train_once(prepared_dir: Path, model_dir: Path, params: Hyperparameters) -> ModelCard:
    return train.run(
        train_dir=prepared_dir / "train",
        validation_dir=prepared_dir / "validation",
        manifest_dir=prepared_dir / "manifest",
        model_dir=model_dir,
        params=params,
        code_version="test",
    )


@pytest.mark.parametrize("algorithm", ["logistic", "gradient_boosting"])
def test_same_data_and_seed_give_the_same_model_bytes(
    tmp_path: Path, prepared: tuple[Path, dict[str, object]], algorithm: str
) -> None:
    out, _ = prepared
    params = Hyperparameters(algorithm=algorithm, seed=3, max_iter=50)  # type: ignore[arg-type]
    first = train_once(out, tmp_path / "a", params)
    second = train_once(out, tmp_path / "b", params)
    assert first.model_sha256 == second.model_sha256
    assert (tmp_path / "a" / "model.joblib").read_bytes() == (
        tmp_path / "b" / "model.joblib"
    ).read_bytes()
    assert first.validation_metrics == second.validation_metrics
    assert (
        first.dataset_sha256
        == json.loads((out / "manifest" / "manifest.json").read_text())["dataset_sha256"]
    )


def test_model_bytes_do_not_depend_on_the_cpu_count(
    tmp_path: Path, prepared: tuple[Path, dict[str, object]]
) -> None:
    # A 2-core laptop and an 8-core instance must produce the same bytes.
    out, _ = prepared
    digests = set()
    for threads in ("1", "4"):
        model_dir = tmp_path / f"threads{threads}"
        args = ["--train", str(out / "train"), "--validation", str(out / "validation"),
                "--manifest", str(out / "manifest"), "--model-dir", str(model_dir),
                "--algorithm", "gradient_boosting", "--max-iter", "20"]  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "pipeline_steps", "train", *args],
            env={**os.environ, "OMP_NUM_THREADS": threads, "MLFLOW_TRACKING_URI": ""},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        digests.add(json.loads(result.stdout.splitlines()[-1])["model_sha256"])
    assert len(digests) == 1


def test_a_different_split_seed_gives_a_different_model(
    tmp_path: Path, prepared: tuple[Path, dict[str, object]]
) -> None:
    # The seed decides the split (and the estimator's own randomness where it has any), so
    # a model is identified by data + seed + hyperparameters + code: change one, get new bytes.
    out, _ = prepared
    other = tmp_path / "split7"
    preprocess.run(bundled_dataset_path(), other, seed=7, code_version="test")
    first = train_once(out, tmp_path / "a", Hyperparameters())
    second = train_once(other, tmp_path / "b", Hyperparameters())
    third = train_once(out, tmp_path / "c", Hyperparameters(c=0.5))
    assert len({first.model_sha256, second.model_sha256, third.model_sha256}) == 3


def test_model_folder_carries_its_serving_code(
    tmp_path: Path, prepared: tuple[Path, dict[str, object]]
) -> None:
    out, _ = prepared
    train_once(out, tmp_path / "model", Hyperparameters())
    code = tmp_path / "model" / "code"
    assert (code / "inference.py").exists()
    assert (code / "pipeline_steps" / "inference.py").exists()
    # The serving container imports code/inference.py with code/ on its path: nothing else.
    script = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import inference as h; "
        "m = h.model_fn(sys.argv[2]); "
        "body, kind = h.output_fn(h.predict_fn(h.input_fn(sys.argv[3], 'text/csv'), m), 'application/json'); "
        "print(body)"
    )
    row = ",".join(["4.6", "1", "6.9", "0", "0", "13.7", "1", "0", "0"])
    result = subprocess.run(
        [sys.executable, "-I", "-c", script, str(code), str(tmp_path / "model"), row],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    prediction = json.loads(result.stdout)["predictions"][0]
    assert 0.0 <= prediction["score"] <= 1.0
    assert prediction["label"] in (0, 1)


def test_evaluation_report_layout(tmp_path: Path, prepared: tuple[Path, dict[str, object]]) -> None:
    out, manifest = prepared
    card = train_once(out, tmp_path / "model", Hyperparameters())
    report = evaluate.run(
        model_source=tmp_path / "model",
        test_dir=out / "test",
        manifest_dir=out / "manifest",
        output=tmp_path / "eval",
    )
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text()) == report
    metrics = report["binary_classification_metrics"]
    for name in ("auc", "accuracy", "precision", "recall", "f1"):
        assert set(metrics[name]) == {"value", "standard_deviation"}
        assert 0.0 <= metrics[name]["value"] <= 1.0
    matrix = metrics["confusion_matrix"]
    assert sum(matrix[a][p] for a in "01" for p in "01") == report["rows"] == 3028
    assert report["lineage"] == {
        "mlflow_run_id": "not-tracked",
        "dataset_sha256": manifest["dataset_sha256"],
        "dataset_dvc_md5": manifest["dataset_dvc_md5"],
        "model_sha256": card.model_sha256,
        "code_version": "test",
    }
    assert metrics["auc"]["value"] > 0.6  # logistic regression on this data: ~0.66


def test_evaluate_refuses_a_tampered_model(
    tmp_path: Path, prepared: tuple[Path, dict[str, object]]
) -> None:
    out, _ = prepared
    train_once(out, tmp_path / "model", Hyperparameters())
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    card["model_sha256"] = "0" * 64
    (tmp_path / "model" / "model.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"does not match model\.json"):
        evaluate.run(
            model_source=tmp_path / "model",
            test_dir=out / "test",
            manifest_dir=out / "manifest",
            output=tmp_path / "e",
        )


def test_bad_hyperparameters() -> None:
    with pytest.raises(ValueError, match="algorithm must be one of logistic, gradient_boosting"):
        Hyperparameters(algorithm="xgboost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_iter must be >= 1"):
        Hyperparameters(max_iter=0)


# -- inference handlers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, prepared: tuple[Path, dict[str, object]]
) -> inference.LoadedModel:
    out, _ = prepared
    model_dir = tmp_path_factory.mktemp("served")
    train_once(out, model_dir, Hyperparameters())
    return inference.model_fn(str(model_dir))


ROW = [4.61512, 1, 6.907755, 0, 0, 13.73189, 1, 0, 0]


def test_csv_and_json_give_the_same_scores(served: inference.LoadedModel) -> None:
    csv_body = "\n".join(",".join(map(str, ROW)) for _ in range(3))
    by_csv = inference.predict_fn(inference.input_fn(csv_body, "text/csv"), served)
    as_objects = json.dumps({"instances": [dict(zip(FEATURE_NAMES, ROW, strict=True))] * 3})
    by_json = inference.predict_fn(inference.input_fn(as_objects, "application/json"), served)
    as_lists = json.dumps([ROW, ROW, ROW])
    by_lists = inference.predict_fn(
        inference.input_fn(as_lists.encode(), "application/json; charset=utf-8"), served
    )
    np.testing.assert_array_equal(by_csv, by_json)
    np.testing.assert_array_equal(by_csv, by_lists)


def test_csv_header_row_is_allowed_in_any_column_order(served: inference.LoadedModel) -> None:
    body = ",".join(FEATURE_NAMES) + "\n" + ",".join(map(str, ROW)) + "\n"
    assert inference.input_fn(body, "text/csv").tolist() == [[float(v) for v in ROW]]
    reversed_body = (
        ",".join(reversed(FEATURE_NAMES)) + "\n" + ",".join(map(str, reversed(ROW))) + "\n"
    )
    assert inference.input_fn(reversed_body, "text/csv").tolist() == [[float(v) for v in ROW]]


def test_output_formats(served: inference.LoadedModel) -> None:
    scores = np.array([0.25, 0.75])
    body, kind = inference.output_fn(scores, "application/json")
    assert kind == "application/json"
    assert json.loads(body) == {
        "predictions": [{"score": 0.25, "label": 0}, {"score": 0.75, "label": 1}]
    }
    body, kind = inference.output_fn(scores, "text/csv")
    assert (body, kind) == ("0.250000\n0.750000\n", "text/csv")


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("1,2,3", "text/csv", "CSV row 1: expected 9 values"),
        (",".join(["x"] * 9), "text/csv", "feature 'lncoins': not a number"),
        (",".join(["nan"] * 9), "text/csv", "not a finite number"),
        ("", "text/csv", "holds no rows"),
        ("{not json", "application/json", "not valid JSON"),
        ('{"instances": [{"lncoins": 1}]}', "application/json", "missing feature"),
        ('"a string"', "application/json", 'expected {"instances"'),
        ("1,2", "application/x-npy", "unsupported content type"),
    ],
)
def test_bad_requests_are_explained(body: str, content_type: str, message: str) -> None:
    with pytest.raises(inference.InvalidRequest, match=message):
        inference.input_fn(body, content_type)


def test_non_utf8_body_is_explained() -> None:
    with pytest.raises(inference.InvalidRequest, match="not UTF-8"):
        inference.input_fn(b"\xff\xfe1,2", "text/csv")


def test_accept_lists_pick_the_first_supported_type() -> None:
    assert inference.output_fn(np.array([0.5]), "application/xml, text/csv;q=0.5")[1] == "text/csv"
    assert (
        inference.output_fn(np.array([0.5]), "application/json, text/csv")[1] == "application/json"
    )


def test_unsupported_accept(served: inference.LoadedModel) -> None:
    with pytest.raises(inference.InvalidRequest, match="unsupported accept type"):
        inference.output_fn(np.array([0.5]), "application/xml")


def test_synthetic_data_matches_the_schema_and_scales(tmp_path: Path) -> None:
    frame = synthetic_dataset(50_000, seed=1)
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    from pipeline_steps.schema import read_validated_csv  # noqa: PLC0415

    validated = read_validated_csv(path)
    assert len(validated) == 50_000
    assert 0.4 < validated["any_visit"].mean() < 0.9
    assert synthetic_dataset(100, seed=1).equals(synthetic_dataset(100, seed=1))
