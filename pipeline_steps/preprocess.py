"""Preprocess: validate the raw data, split it deterministically, write the drift reference
and a manifest of content hashes.

SageMaker: ``python3 steps.pyz preprocess --input /opt/ml/processing/input/data --output
/opt/ml/processing/output``. Locally: the same, on folders (``mlops pipeline run-local``).

Outputs (one folder each, uploaded as one S3 prefix each):
  train/train.csv, validation/validation.csv, test/test.csv   features + label
  reference/reference.csv, reference/schema.json              drift reference: training features
  manifest/manifest.json                                      hashes of every input and output
                                                              (sha256; and DVC's md5 of the input)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline_steps.hashing import combined_sha256, dvc_digest, file_md5, file_sha256, tree_hashes
from pipeline_steps.schema import (
    FEATURE_NAMES,
    FEATURES,
    LABEL,
    DataValidationError,
    read_validated_csv,
)

SPLIT_NAMES = ("train", "validation", "test")
MANIFEST = "manifest.json"


def input_files(source: Path) -> list[Path]:
    """The CSV files to read: the file itself, or every *.csv under a folder, sorted."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise DataValidationError(f"input {source} does not exist")
    files = sorted(p for p in source.rglob("*.csv") if p.is_file())
    if not files:
        raise DataValidationError(f"input folder {source} holds no .csv file")
    return files


def split_indices(
    rows: int, *, seed: int, validation_fraction: float, test_fraction: float
) -> dict[str, np.ndarray]:
    if not (0 < validation_fraction < 1 and 0 < test_fraction < 1):
        raise ValueError("validation and test fractions must be between 0 and 1")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation + test fractions must leave rows for training")
    order = np.random.default_rng(seed).permutation(rows)
    n_test = max(1, round(rows * test_fraction))
    n_validation = max(1, round(rows * validation_fraction))
    if rows - n_test - n_validation < 1:
        raise DataValidationError(f"{rows} rows are too few to split into train/validation/test")
    return {
        "test": np.sort(order[:n_test]),
        "validation": np.sort(order[n_test : n_test + n_validation]),
        "train": np.sort(order[n_test + n_validation :]),
    }


def check_classes(labels: pd.Series, splits: dict[str, np.ndarray]) -> None:
    """A classifier needs both classes in every split; say so before any job is paid for."""
    counts = labels.value_counts().to_dict()
    if len(counts) < 2:
        only = next(iter(counts), None)
        raise DataValidationError(
            f"every row has {LABEL}={only}: the model needs rows of both classes "
            f"(mdvis = 0 and mdvis > 0)"
        )
    for name, index in splits.items():
        if labels.iloc[index].nunique() < 2:
            raise DataValidationError(
                f"the {name} split ({len(index)} rows) holds only one class of {LABEL}: "
                "add rows of the rarer class or use more data"
            )


def run(
    source: Path,
    output: Path,
    *,
    seed: int = 42,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    code_version: str = "unknown",
) -> dict[str, object]:
    files = input_files(source)
    frames = [read_validated_csv(path) for path in files]  # raises before anything is written
    data = pd.concat(frames, ignore_index=True)
    splits = split_indices(
        len(data), seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction
    )
    check_classes(data[LABEL], splits)

    written: list[Path] = []
    columns = [*FEATURE_NAMES, LABEL]
    for name in SPLIT_NAMES:
        path = output / name / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        data.iloc[splits[name]][columns].to_csv(path, index=False)
        written.append(path)

    reference_dir = output / "reference"
    reference_dir.mkdir(parents=True, exist_ok=True)
    reference = reference_dir / "reference.csv"
    data.iloc[splits["train"]][list(FEATURE_NAMES)].to_csv(reference, index=False)
    schema = reference_dir / "schema.json"
    schema.write_text(
        json.dumps(
            {
                "features": [
                    {"name": f.name, "kind": f.kind, "min": f.minimum, "max": f.maximum}
                    for f in FEATURES
                ],
                "label": LABEL,
            },
            indent=2,
        )
        + "\n"
    )
    written += [reference, schema]

    names = {(p.relative_to(source).as_posix() if source.is_dir() else p.name): p for p in files}
    inputs = {name: file_sha256(path) for name, path in names.items()}
    inputs_md5 = {name: file_md5(path) for name, path in names.items()}
    outputs = tree_hashes(output, written)
    manifest = {
        # The data version: depends only on the raw input files' bytes.
        "dataset_sha256": combined_sha256(inputs),
        # The same data version as DVC names it: what `dvc pull` fetches from the datasets
        # bucket's DVC remote (mlops data upload).
        "dataset_dvc_md5": dvc_digest(inputs_md5),
        # The prepared data: also depends on the seed, fractions and code.
        "prepared_sha256": combined_sha256(outputs),
        "inputs": inputs,
        "inputs_md5": inputs_md5,
        "outputs": outputs,
        "rows": {name: len(idx) for name, idx in splits.items()},
        "seed": seed,
        "validation_fraction": validation_fraction,
        "test_fraction": test_fraction,
        "code_version": code_version,
    }
    manifest_path = output / "manifest" / MANIFEST
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="preprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="a CSV file or a folder of them")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    args = parser.parse_args(argv)
    try:
        manifest = run(
            args.input,
            args.output,
            seed=args.seed,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            code_version=os.environ.get("CODE_VERSION", "unknown"),
        )
    except DataValidationError as exc:
        print(f"preprocess: invalid input data: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"dataset_sha256": manifest["dataset_sha256"], "rows": manifest["rows"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
