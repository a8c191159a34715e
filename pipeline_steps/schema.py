"""The model family's data contract: the RAND Health Insurance Experiment (randhie) table.

Every input row is checked against it before anything is split or trained, and errors name
the file, line and column. Serving and drift checks read the same feature list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

TARGET_SOURCE = "mdvis"  # number of outpatient doctor visits in the year
LABEL = "any_visit"  # what the model predicts: mdvis > 0


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Literal["numeric", "binary"]
    minimum: float
    maximum: float
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature("lncoins", "numeric", 0.0, 4.7, "ln(coinsurance + 1), coinsurance 0-100%"),
    Feature("idp", "binary", 0, 1, "individual deductible plan"),
    Feature("lpi", "numeric", 0.0, 12.0, "ln(max(1, annual participation incentive payment))"),
    Feature("fmde", "numeric", 0.0, 12.0, "ln(max(1, MDE / (0.01 coinsurance))), 0 if idp"),
    Feature("physlm", "numeric", 0.0, 1.0, "physical limitation"),
    Feature("disea", "numeric", 0.0, 100.0, "number of chronic diseases"),
    Feature("hlthg", "binary", 0, 1, "self-rated health good"),
    Feature("hlthf", "binary", 0, 1, "self-rated health fair"),
    Feature("hlthp", "binary", 0, 1, "self-rated health poor"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
INPUT_COLUMNS: tuple[str, ...] = (TARGET_SOURCE, *FEATURE_NAMES)


class DataValidationError(ValueError):
    """The input does not match the schema; the message says where and why."""


def read_validated_csv(path: Path, *, require_target: bool = True) -> pd.DataFrame:
    """Read one CSV file and check it against the schema.

    Returns a frame with the schema's columns in schema order (extra columns are dropped),
    numeric dtypes, and the label column when the target is present.
    """
    import pandas as pd  # noqa: PLC0415 - the feature list alone (serving, drift) needs none

    try:
        # Blank lines are kept as rows so that reported line numbers match the file.
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=False
        )
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{path.name}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path.name}: not a readable CSV file: {exc}") from None
    return validate_frame(raw, source=path.name, require_target=require_target)


def validate_frame(raw: pd.DataFrame, *, source: str, require_target: bool = True) -> pd.DataFrame:
    """Validate string cells against the schema and convert them to numbers."""
    import pandas as pd  # noqa: PLC0415

    columns = [str(c).strip() for c in raw.columns]
    raw = raw.set_axis(columns, axis=1)
    required = INPUT_COLUMNS if require_target else FEATURE_NAMES
    missing = [c for c in required if c not in columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataValidationError(
            f"{source}: missing column(s) {names}; expected columns: {', '.join(required)}"
        )
    if raw.empty:
        raise DataValidationError(f"{source}: the file has a header but no data rows")

    out = {}
    bounds = {f.name: f for f in FEATURES}
    for column in required:
        cells = raw[column].fillna("").astype(str).str.strip()
        values = pd.to_numeric(cells, errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            cell = cells.iloc[row]
            what = "an empty value" if cell == "" else repr(cell)
            raise DataValidationError(
                f"{source}, line {row + 2}, column {column!r}: expected a finite number, got {what}"
            )
        if column == TARGET_SOURCE:
            invalid = (values < 0) | (values != np.floor(values))
            rule = "a whole number >= 0"
        else:
            feature = bounds[column]
            if feature.kind == "binary":
                invalid = ~values.isin([0, 1])
                rule = "0 or 1"
            else:
                invalid = (values < feature.minimum) | (values > feature.maximum)
                rule = f"between {feature.minimum:g} and {feature.maximum:g}"
        if invalid.any():
            row = int(np.flatnonzero(invalid.to_numpy())[0])
            raise DataValidationError(
                f"{source}, line {row + 2}, column {column!r}: must be {rule}, "
                f"got {cells.iloc[row]!r}"
            )
        out[column] = values.astype("int64" if column == TARGET_SOURCE else "float64")
    frame = pd.DataFrame(out, columns=list(required))
    if require_target:
        frame[LABEL] = (frame[TARGET_SOURCE] > 0).astype("int64")
    return frame
