"""Drift statistics vs Evidently's DataDriftPreset, side by side in one run.

Synthetic data: 20 numeric + 5 categorical columns, drift injected into 5 numeric and 1
categorical column; reference 10,000 rows; current --rows rows (default 1,000,000). The two
run alternately, --repeats times each (default 3): each side's median time with its min and
max, the ratio of the medians, and each column's verdict compared. Exits 1 when a verdict
differs.

    DO_NOT_TRACK=1 .venv/bin/python benchmarks/drift.py [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from mlops.adapters.evidently_report import preset_verdicts
from mlops.core.drift_stats import dataset_drift

os.environ.setdefault("DO_NOT_TRACK", "1")
NUMERIC, CATEGORICAL = 20, 5


def frame(rows: int, rng: np.random.Generator, *, drifted: bool) -> pd.DataFrame:
    data = {}
    for i in range(NUMERIC):
        shift = 0.5 if drifted and i < 5 else 0.0
        data[f"num{i}"] = rng.normal(shift, 1.0, rows)
    for i in range(CATEGORICAL):
        p = [0.2, 0.3, 0.5] if drifted and i == 0 else [0.5, 0.3, 0.2]
        data[f"cat{i}"] = rng.choice(["a", "b", "c"], rows, p=p)
    return pd.DataFrame(data)


def ours(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    kinds = {c: ("categorical" if c.startswith("cat") else "numeric") for c in reference}
    result = dataset_drift(
        {c: reference[c].to_numpy() for c in reference},
        {c: current[c].to_numpy() for c in current},
        kinds=kinds,  # type: ignore[arg-type]
    )
    return {c.column: c.drifted for c in result.columns}


def evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    definition = DataDefinition(
        numerical_columns=[c for c in reference if c.startswith("num")],
        categorical_columns=[c for c in reference if c.startswith("cat")],
    )
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return preset_verdicts(snapshot)


def timed(
    function: Callable[[pd.DataFrame, pd.DataFrame], dict[str, bool]],
    reference: pd.DataFrame,
    current: pd.DataFrame,
) -> tuple[float, dict[str, bool]]:
    started = time.perf_counter()
    value = function(reference, current)
    return time.perf_counter() - started, value


def spread(seconds: list[float]) -> str:
    return (
        f"median {statistics.median(seconds):6.2f} s  "
        f"(min {min(seconds):.2f}, max {max(seconds):.2f}, {len(seconds)} runs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    reference = frame(10_000, rng, drifted=False)
    current = frame(args.rows, rng, drifted=True)
    ours_times: list[float] = []
    evidently_times: list[float] = []
    for _ in range(args.repeats):  # alternating, so that both sides see the same noise
        seconds, our_verdicts = timed(ours, reference, current)
        ours_times.append(seconds)
        seconds, their_verdicts = timed(evidently, reference, current)
        evidently_times.append(seconds)
    columns = list(reference)
    differ = [c for c in columns if our_verdicts.get(c) != their_verdicts.get(c)]
    ratio = statistics.median(evidently_times) / statistics.median(ours_times)
    print(
        f"drift check: reference 10,000 rows, current {args.rows:,} rows x {len(columns)} columns"
        f" ({NUMERIC} numeric, {CATEGORICAL} categorical), {args.repeats} runs each, alternating"
    )
    print(f"  mlops.core.drift_stats     {spread(ours_times)}")
    print(f"  Evidently DataDriftPreset  {spread(evidently_times)}")
    print(f"  ratio of medians: {ratio:.1f}x")
    print(
        f"  drifted columns: ours {sum(bool(our_verdicts.get(c)) for c in columns)},"
        f" Evidently {sum(bool(their_verdicts.get(c)) for c in columns)} of {len(columns)};"
        f" verdicts agree on {len(columns) - len(differ)} of {len(columns)}"
    )
    for column in differ:
        print(
            f"  DIFFERS: {column}: ours {our_verdicts.get(column)},"
            f" Evidently {their_verdicts.get(column)}"
        )
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
