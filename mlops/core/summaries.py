"""Mergeable, exact summaries of a column: what a shard of the drift check sends to the merge.

Pure (numpy; pandas for columns of Python objects, imported then only; no AWS). A drift check sharded over several machines summarizes each
shard's columns, writes the summaries (JSON) and merges them; the drift statistics are then
computed from the merged summaries (``mlops.core.drift_stats``), bit for bit the same as from
the whole columns.

- ``Counts``: a column as its sorted distinct values and how many times each occurs. Exact,
  not a histogram, because Evidently's Wasserstein verdict needs the exact empirical CDF; it is
  compact when values repeat and never larger than the column. Merging the shards' Counts gives
  exactly the Counts of the concatenated column, whatever the split.
- ``LabelledScores``: for concept drift, the rows labelled 1 and 0 per distinct score; the AUC
  (Mann-Whitney, ties counting half) follows from the counts.

Missing values (NaN, None) are dropped, as the drift statistics always did; an infinite value is
refused (ValueError naming the column and the side): it is not a missing one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

COUNTS_FORMAT = "mlops.counts/1"
LABELLED_SCORES_FORMAT = "mlops.labelled-scores/1"

# Object-array elements counted as numbers (bool is an int; numpy's bool is neither).
_NUMBER = (int, float, np.integer, np.floating, np.bool_)


def _refuse_infinite(infinite: int, name: str, side: str) -> None:
    if infinite:
        raise ValueError(
            f"column {name!r}: {infinite} infinite value(s) in the {side} data; "
            "only finite values can be compared"
        )


def _starts(ordered: np.ndarray) -> np.ndarray:
    """True where a run of equal values starts in a sorted array."""
    starts = np.empty(len(ordered), dtype=bool)
    if len(ordered):
        starts[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    return starts


def _runs(ordered: np.ndarray) -> np.ndarray:
    """Indices where each run of equal values starts in a sorted array."""
    return np.flatnonzero(_starts(ordered))


def _aggregate(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and their summed counts (values may repeat, in any order)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = _runs(ordered)
    if len(starts) == 0:
        return ordered, np.zeros(0, dtype=np.int64)
    return ordered[starts], np.add.reduceat(counts[order].astype(np.int64), starts)


def _numeric(array: np.ndarray, name: str, side: str) -> tuple[np.ndarray, np.ndarray]:
    ordered = np.sort(np.asarray(array, dtype=np.float64))
    # NaN sorts last: keep what precedes the first one.
    ordered = ordered[: int(np.searchsorted(ordered, np.nan))]
    if len(ordered) and (ordered[0] == -np.inf or ordered[-1] == np.inf):
        _refuse_infinite(int(np.count_nonzero(np.isinf(ordered))), name, side)
    starts = _starts(ordered)
    if np.count_nonzero(starts) == len(ordered):  # every value distinct (a continuous column)
        values, counts = ordered, np.ones(len(ordered), dtype=np.int64)
    else:
        first = np.flatnonzero(starts)
        values = ordered[first]
        counts = np.diff(first, append=len(ordered)).astype(np.int64, copy=False)
    # -0.0 and 0.0 are one value: which of them a run starts with depends on the sort, so the
    # value is written as 0.0 (x + 0.0 turns -0.0 into 0.0 and leaves every other x alone).
    values += 0.0
    return values, counts


def _categorical(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    text = np.empty(len(keys), dtype=object)
    text[:] = [str(k) for k in keys]
    return _aggregate(text, counts)


def _from_objects(array: np.ndarray, name: str, side: str) -> tuple[np.ndarray, np.ndarray]:
    # Counted by hashing (pandas, imported here only: numeric columns never need it), so that
    # only the distinct values are looked at in Python.
    import pandas as pd  # noqa: PLC0415

    codes, keys = pd.factorize(array, use_na_sentinel=True)  # None and NaN: code -1
    counts = np.bincount(codes + 1, minlength=len(keys) + 1)[1:]
    keys = np.asarray(keys, dtype=object)
    infinite = sum(
        int(c)
        for k, c in zip(keys, counts, strict=True)
        if isinstance(k, (float, np.floating)) and math.isinf(k)
    )
    _refuse_infinite(infinite, name, side)
    if all(isinstance(k, _NUMBER) for k in keys):
        return _aggregate(np.asarray(keys.tolist(), dtype=np.float64) + 0.0, counts)
    return _categorical(keys, counts)


def _from_text(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if array.dtype.kind == "S":
        array = array.astype(str)
    width = array.dtype.itemsize
    if width in (4, 8):
        # One or two characters: the same bytes read as integers count faster than strings.
        flat = np.ascontiguousarray(array).view(np.uint32 if width == 4 else np.uint64)
        keys, counts = np.unique(flat, return_counts=True)
        return _categorical(keys.view(array.dtype), counts)
    keys, counts = np.unique(array, return_counts=True)
    return _categorical(keys, counts)


def _check_distinct_sorted(values: np.ndarray, counts: np.ndarray, what: str) -> None:
    if values.ndim != 1 or counts.shape != values.shape:
        raise ValueError(f"{what}: values and counts must be one-dimensional, of one length")
    if len(values) > 1 and not bool(np.all(values[1:] > values[:-1])):
        raise ValueError(f"{what}: values must be sorted and distinct")


@dataclass(frozen=True, eq=False)
class Counts:
    """A column as its sorted distinct values and their counts (missing values dropped).

    ``values``: float64 for a numeric column, str (an object array) otherwise; ``counts``:
    int64, each above 0; ``total``: their sum, the rows with a value.
    """

    values: np.ndarray
    counts: np.ndarray
    total: int

    def __post_init__(self) -> None:
        values, counts = np.asarray(self.values), np.asarray(self.counts)
        if values.dtype.kind in "iuf":
            values = values.astype(np.float64, copy=False)
            if not bool(np.isfinite(values).all()):
                raise ValueError("Counts: values must be finite")
        elif values.dtype != object or not all(isinstance(v, str) for v in values):
            raise ValueError("Counts: values must be floats or str")
        if counts.dtype.kind not in "iu" and len(counts):
            raise ValueError("Counts: counts must be integers")
        counts = counts.astype(np.int64, copy=False)
        _check_distinct_sorted(values, counts, "Counts")
        if len(counts) and int(counts.min()) <= 0:
            raise ValueError("Counts: every count must be above 0")
        if int(self.total) != int(counts.sum()):
            raise ValueError(f"Counts: total {self.total} is not the sum of the counts")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "total", int(self.total))

    @property
    def numeric(self) -> bool:
        return self.values.dtype == np.float64

    @classmethod
    def of(cls, column: Any, *, name: str = "", side: str = "current") -> Counts:
        """The Counts of a column (array-like): NaN and None dropped, infinities refused.

        Numbers (also numbers in an object array) give float64 values; anything else is
        categorical, its values written as str. ``name`` and ``side`` name the column in errors.
        """
        array = np.asarray(column)
        if array.ndim != 1:
            array = array.reshape(-1)
        kind = array.dtype.kind
        if kind in "biuf":
            values, counts = _numeric(array, name, side)
        elif kind in "US":
            values, counts = _from_text(array)
        elif kind == "O":
            values, counts = _from_objects(array, name, side)
        else:
            raise ValueError(f"column {name!r}: cannot count values of type {array.dtype}")
        return cls._trusted(values, counts)

    @classmethod
    def _trusted(cls, values: np.ndarray, counts: np.ndarray) -> Counts:
        """Built here from sorted distinct values and positive int64 counts: not checked again."""
        made = object.__new__(cls)
        object.__setattr__(made, "values", values)
        object.__setattr__(made, "counts", counts)
        object.__setattr__(made, "total", int(counts.sum()))
        return made

    @classmethod
    def merged(cls, *parts: Counts) -> Counts:
        """The Counts of the parts' columns concatenated (any split, any order)."""
        if not parts:
            raise ValueError("Counts.merged needs at least one part")
        present = [p for p in parts if len(p.values)] or [parts[0]]
        if len({p.numeric for p in present}) > 1:
            raise ValueError("cannot merge the Counts of a numeric and a categorical column")
        if len(present) == 1:
            return present[0]
        values, counts = _aggregate(
            np.concatenate([p.values for p in present]),
            np.concatenate([p.counts for p in present]),
        )
        return cls._trusted(values, counts)

    def merge(self, other: Counts) -> Counts:
        return Counts.merged(self, other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Counts):
            return NotImplemented
        return (
            self.values.dtype == other.values.dtype
            and self.total == other.total
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.values)

    def to_json(self) -> str:
        """JSON text; numbers are written in their shortest exact form (repr), so they read
        back to the same floats."""
        return json.dumps(self.as_document(), allow_nan=False, separators=(",", ":"))

    def as_document(self) -> dict[str, Any]:
        """The JSON document as a dict (to nest in a larger document, such as a window's
        summary, without writing it twice)."""
        return {
            "format": COUNTS_FORMAT,
            "numeric": self.numeric,
            "values": self.values.tolist(),
            "counts": self.counts.tolist(),
            "total": self.total,
        }

    @classmethod
    def from_json(cls, text: str | bytes) -> Counts:
        return cls.from_document(json.loads(text))

    @classmethod
    def from_document(cls, document: Any) -> Counts:
        """From ``as_document``'s dict (read from JSON); ValueError if it is not one."""
        document = _checked(document, COUNTS_FORMAT, ("numeric", "values", "counts", "total"))
        values, counts = document["values"], _integers(document["counts"], "counts")
        if document["numeric"] is True:
            array = _floats(values, "values")
        elif document["numeric"] is False and isinstance(values, list):
            if not all(isinstance(v, str) for v in values):
                raise ValueError("Counts JSON: categorical values must be strings")
            array = np.empty(len(values), dtype=object)
            array[:] = values
        else:
            raise ValueError("Counts JSON: 'numeric' must be true or false")
        total = document["total"]
        if not isinstance(total, int) or isinstance(total, bool):
            raise ValueError("Counts JSON: 'total' must be an integer")
        return cls(array, counts, total)


@dataclass(frozen=True, eq=False)
class LabelledScores:
    """Per distinct score (sorted, float64): how many rows were labelled 1 and how many 0."""

    scores: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64)
        if not bool(np.isfinite(scores).all()):
            raise ValueError("LabelledScores: scores must be finite")
        positives, negatives = np.asarray(self.positives), np.asarray(self.negatives)
        for counts in (positives, negatives):
            if counts.dtype.kind not in "iu" and len(counts):
                raise ValueError("LabelledScores: counts must be integers")
        positives = positives.astype(np.int64, copy=False)
        negatives = negatives.astype(np.int64, copy=False)
        _check_distinct_sorted(scores, positives, "LabelledScores")
        _check_distinct_sorted(scores, negatives, "LabelledScores")
        if len(scores) and (
            int(positives.min()) < 0
            or int(negatives.min()) < 0
            or not bool((positives + negatives > 0).all())
        ):
            raise ValueError("LabelledScores: counts must be >= 0, and above 0 for each score")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "positives", positives)
        object.__setattr__(self, "negatives", negatives)

    @classmethod
    def of(cls, scores: Any, labels: Any) -> LabelledScores:
        """From one score and one label (0 or 1) per row; every score must be finite."""
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        marks = np.asarray(labels, dtype=np.float64).reshape(-1)
        if len(values) != len(marks):
            raise ValueError(f"{len(values)} scores but {len(marks)} labels")
        if not bool(np.isfinite(values).all()):
            raise ValueError("scores must be finite numbers")
        positive, negative = marks == 1, marks == 0
        if not bool((positive | negative).all()):
            raise ValueError("labels must be 0 or 1")
        distinct, inverse = np.unique(values + 0.0, return_inverse=True)
        return cls(
            distinct,
            np.bincount(inverse[positive], minlength=len(distinct)),
            np.bincount(inverse[negative], minlength=len(distinct)),
        )

    @classmethod
    def merged(cls, *parts: LabelledScores) -> LabelledScores:
        if not parts:
            raise ValueError("LabelledScores.merged needs at least one part")
        if len(parts) == 1:
            return parts[0]
        scores = np.concatenate([p.scores for p in parts])
        order = np.argsort(scores, kind="stable")
        ordered = scores[order]
        starts = _runs(ordered)
        if len(starts) == 0:
            return parts[0]

        def summed(counts: Iterable[np.ndarray]) -> np.ndarray:
            return np.add.reduceat(np.concatenate(list(counts))[order], starts)

        return cls(
            ordered[starts],
            summed(p.positives for p in parts),
            summed(p.negatives for p in parts),
        )

    def merge(self, other: LabelledScores) -> LabelledScores:
        return LabelledScores.merged(self, other)

    @property
    def rows(self) -> int:
        return int(self.positives.sum() + self.negatives.sum())

    def auc(self) -> float:
        """Area under the ROC curve: the share of (positive, negative) pairs where the positive
        scores higher, ties counting half (Mann-Whitney U). Needs both classes."""
        n_pos, n_neg = int(self.positives.sum()), int(self.negatives.sum())
        if n_pos == 0 or n_neg == 0:
            raise ValueError("AUC needs labels of both classes")
        below = np.cumsum(self.negatives) - self.negatives  # negatives scored strictly lower
        # Twice U, in integers: exact while it fits int64 (2 * n_pos * n_neg below 2**63).
        pairs = self.positives * (2 * below + self.negatives)
        twice_u = int(pairs.sum()) if 2 * n_pos * n_neg < 2**63 else sum(map(int, pairs))
        return twice_u / (2 * n_pos * n_neg)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelledScores):
            return NotImplemented
        return (
            np.array_equal(self.scores, other.scores)
            and np.array_equal(self.positives, other.positives)
            and np.array_equal(self.negatives, other.negatives)
        )

    __hash__ = None  # type: ignore[assignment]

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": LABELLED_SCORES_FORMAT,
                "scores": self.scores.tolist(),
                "positives": self.positives.tolist(),
                "negatives": self.negatives.tolist(),
            },
            allow_nan=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> LabelledScores:
        document = _document(text, LABELLED_SCORES_FORMAT, ("scores", "positives", "negatives"))
        return cls(
            _floats(document["scores"], "scores"),
            _integers(document["positives"], "positives"),
            _integers(document["negatives"], "negatives"),
        )


def _document(text: str | bytes, expected: str, keys: tuple[str, ...]) -> dict[str, Any]:
    return _checked(json.loads(text), expected, keys)


def _checked(document: Any, expected: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("format") != expected:
        raise ValueError(f"not a {expected} document")
    missing = [k for k in keys if k not in document]
    if missing:
        raise ValueError(f"{expected} document lacks {', '.join(missing)}")
    return document


def _floats(values: Any, what: str) -> np.ndarray:
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(f"{what} must be a list of numbers")
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _integers(values: Any, what: str) -> np.ndarray:
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(f"{what} must be a list of integers")
    return np.asarray(values, dtype=np.int64).reshape(-1)
