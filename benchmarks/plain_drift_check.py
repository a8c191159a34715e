"""The baseline: the drift check a user could write in ten minutes without this platform.

Reads every capture file line by line with json.loads, splits each one-row CSV request on
commas, builds a pandas frame, and runs Evidently's DataDriftPreset (with its tests) against
the reference. Prints one JSON document: every column's verdict. benchmarks/drift_check.py
times it beside `mlops drift check` on the same files.

    .venv/bin/python benchmarks/plain_drift_check.py CAPTURE_FOLDER REFERENCE_CSV
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

os.environ.setdefault("DO_NOT_TRACK", "1")


def main() -> None:
    capture, reference_csv = Path(sys.argv[1]), Path(sys.argv[2])
    reference = pd.read_csv(reference_csv)
    rows = []
    for path in sorted(capture.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                data = record["captureData"]["endpointInput"]["data"]
                rows.append([float(v) for v in data.split(",")])
    current = pd.DataFrame(rows, columns=reference.columns)
    definition = DataDefinition(numerical_columns=list(reference.columns))
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    verdicts = {}
    for test in snapshot.dict()["tests"]:  # "Value Drift for column X": FAIL means drift
        name = test["name"]
        if name.startswith("Value Drift for column "):
            verdicts[name.removeprefix("Value Drift for column ")] = test["status"].value == "FAIL"
    print(json.dumps({"rows": len(current), "verdicts": verdicts}))


if __name__ == "__main__":
    main()
