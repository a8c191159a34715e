"""The bundled dataset, and synthetic data with the same schema for scale tests.

The RAND Health Insurance Experiment data (20,190 rows) ships inside statsmodels
(``statsmodels/datasets/randhie/randhie.csv``; public domain, per statsmodels). It is read
from the installed package: nothing is downloaded.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline_steps.schema import FEATURES, INPUT_COLUMNS, TARGET_SOURCE

DATASET_NAME = "randhie"
DATASET_SOURCE = (
    "RAND Health Insurance Experiment, as shipped by statsmodels "
    "(statsmodels.datasets.randhie); public domain"
)


def bundled_dataset_path() -> Path:
    """Path of the CSV inside the installed statsmodels package."""
    resource = importlib.resources.files("statsmodels.datasets.randhie") / "randhie.csv"
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(f"statsmodels is installed without its randhie data: {path}")
    return path


def load_bundled_dataset() -> pd.DataFrame:
    return pd.read_csv(bundled_dataset_path())[list(INPUT_COLUMNS)]


def synthetic_dataset(
    rows: int, *, seed: int = 0, source: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``rows`` rows with the bundled data's schema and joint structure, for scale tests.

    Rows are resampled from the real data (keeping feature correlations and the label
    relation), then numeric features get small noise clipped to the schema's bounds.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    base = load_bundled_dataset() if source is None else source
    rng = np.random.default_rng(seed)
    picked = base.iloc[rng.integers(0, len(base), size=rows)].reset_index(drop=True)
    out = picked.copy()
    for feature in FEATURES:
        if feature.kind == "numeric":
            spread = float(base[feature.name].std()) * 0.05
            noisy = out[feature.name] + rng.normal(0.0, spread, size=rows)
            out[feature.name] = noisy.clip(feature.minimum, feature.maximum).round(6)
    out[TARGET_SOURCE] = out[TARGET_SOURCE].astype("int64")
    return out[list(INPUT_COLUMNS)]


def write_synthetic_csv(path: Path, rows: int, *, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_dataset(rows, seed=seed).to_csv(path, index=False)
    return path
