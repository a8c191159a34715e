"""What a drift check compares: the reference a model was trained on, and captured records.

The reference (reference.csv from preprocess, scores.csv from evaluate) and, for checks given
by location (``mlops drift check`` on a folder or an S3 prefix), the capture files.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlops.adapters import s3io
from mlops.adapters.capture_store import CaptureWindow
from mlops.core.capture import CAPTURE_SUFFIXES
from mlops.core.finite import non_finite_cells
from mlops.core.variant_check import SCORE
from pipeline_steps.schema import FEATURE_NAMES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SCORES_FILE = "scores.csv"  # next to evaluation.json (pipeline_steps/evaluate.py)
REFERENCE_FILE = "reference.csv"  # under the package's reference_data_uri


class ReferenceDataError(RuntimeError):
    """The model's reference data cannot be found or read; the message says where."""


@dataclass
class Reference:
    package_arn: str
    uri: str
    features: dict[str, np.ndarray]
    scores: np.ndarray | None
    baseline_auc: float | None
    notes: list[str] = field(default_factory=list)


def read_columns(text: str, required: tuple[str, ...], *, source: str) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV with a header, by name; ReferenceDataError names what is wrong."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise ReferenceDataError(f"{source} is empty")
    missing = [c for c in required if c not in header]
    if missing:
        raise ReferenceDataError(f"{source} lacks column(s) {', '.join(missing)}")
    index = [header.index(c) for c in required]
    try:
        rows = [[float(row[i]) for i in index] for row in reader if row]
    except (ValueError, IndexError) as exc:
        raise ReferenceDataError(f"{source}: not numeric: {exc}") from None
    matrix = np.asarray(rows, dtype=float).reshape(len(rows), len(required))
    # "nan", "inf", 1e999 are floats. The reference is the pipeline's schema-checked output: a
    # non-finite value is a damaged file, refused (dropping it would quietly move the baseline).
    if bad := non_finite_cells(matrix, required):
        raise ReferenceDataError(f"{source}: {bad}")
    return {name: matrix[:, i] for i, name in enumerate(required)}


# -- inputs given by location (the CLI: a local folder or an S3 prefix) ---------------------------
def _sources(
    location: str,
    s3: S3Client | None,
    suffix: str | tuple[str, ...],
    skipped: list[str] | None = None,
) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(name, a function that reads its bytes) of the file ``location``, or of every
    ``*suffix`` file under it: nothing is read until asked, so a large window is never all in
    memory as bytes. The names of the other files under it go to ``skipped`` (S3 "folder" keys
    ending in / are not files)."""
    if location.startswith("s3://"):
        if s3 is None:
            raise ValueError(f"{location} is in S3: an S3 client is needed")
        client = s3
        bucket, key = s3io.split_uri(location)
        keys = s3io.list_keys(s3, bucket, key)
        under = [key] if key in keys else keys
        if key and not key.endswith("/") and key not in keys:
            under = [k for k in keys if k.startswith(key.rstrip("/") + "/")]  # not siblings
        for k in under:
            if k != key and not k.endswith(suffix):
                if skipped is not None and not k.endswith("/"):
                    skipped.append(f"s3://{bucket}/{k}")
                continue
            yield f"s3://{bucket}/{k}", functools.partial(s3io.read, client, bucket, k)
        return
    path = Path(location)
    if path.is_file():
        yield str(path), path.read_bytes
        return
    if not path.is_dir():
        raise FileNotFoundError(f"{location} does not exist")
    for p in sorted(path.rglob("*")):
        if not p.is_file():
            continue
        if p.name.endswith(suffix):
            yield str(p), p.read_bytes
        elif skipped is not None:
            skipped.append(str(p))


def _files(
    location: str, s3: S3Client | None, suffix: str | tuple[str, ...]
) -> Iterator[tuple[str, bytes]]:
    for name, read in _sources(location, s3, suffix):
        yield name, read()


def load_reference(
    location: str, s3: S3Client | None = None, *, scores_location: str | None = None
) -> Reference:
    """A reference from a reference.csv (or the folder / S3 prefix holding it), and optionally
    the model's test-set scores (scores.csv) for prediction drift."""
    found = [
        (name, body)
        for name, body in _files(location, s3, ".csv")
        if name == location or name.endswith("/" + REFERENCE_FILE)
    ]
    if len(found) != 1:
        raise ReferenceDataError(
            f"expected one {REFERENCE_FILE} at {location}, found {len(found)}"
            + (f": {', '.join(n for n, _ in found[:3])}" if found else "")
        )
    name, body = found[0]
    reference = Reference(
        "(given)", name, read_columns(body.decode(), FEATURE_NAMES, source=name), None, None
    )
    if scores_location:
        files = list(_files(scores_location, s3, SCORES_FILE))
        if not files:
            raise ReferenceDataError(f"no {SCORES_FILE} at {scores_location}")
        scores_name, scores = files[0]
        reference.scores = read_columns(scores.decode(), (SCORE,), source=scores_name)[SCORE]
    else:
        reference.notes.append("no reference scores given: prediction drift not checked")
    return reference


def load_capture(
    location: str,
    s3: S3Client | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> CaptureWindow:
    """Every capture record in the capture files (.jsonl, .jsonl.gz) at ``location``, optionally
    within a window; other files there are named as skipped, unreadable ones as malformed."""
    window = CaptureWindow()
    window.add_files(_sources(location, s3, CAPTURE_SUFFIXES, window.skipped_files), start, end)
    if window.files == 0 and not window.malformed_files:
        others = window.skipped_files
        raise FileNotFoundError(
            f"no capture files (*.jsonl, *.jsonl.gz) at {location}"
            + (f"; {len(others)} other file(s) there, e.g. {others[0]}" if others else "")
        )
    return window
