"""Numbers that are numbers: finite floats, and JSON that holds no NaN or Infinity. Pure.

``float`` reads "nan", "inf", "Infinity" and 1e999, and ``json.dumps`` writes NaN and
Infinity, which no JSON parser but Python's reads (and CloudWatch, S3 Select, jq refuse).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def finite_or_none(value: Any) -> float | None:
    """``value`` as a finite float, or None (absent, not a number, NaN or infinite)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def dumps(document: Any, **options: Any) -> str:
    """``json.dumps`` with ``allow_nan=False``: a NaN or an infinity raises ValueError here
    instead of being written as invalid JSON."""
    return json.dumps(document, allow_nan=False, **options)


def non_finite_cells(matrix: np.ndarray, columns: Sequence[str]) -> str | None:
    """None if every value of ``matrix`` (rows x ``columns``) is finite; else how many are
    not, and where the first one is (column and 1-based data row)."""
    bad = np.argwhere(~np.isfinite(matrix))
    if not len(bad):
        return None
    row, column = (int(v) for v in bad[0])
    return (
        f"{len(bad)} non-finite value(s); the first, {matrix[row, column]!r}, "
        f"in column {columns[column]} of data row {row + 1}"
    )
