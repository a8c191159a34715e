"""The drift function's whole check on a large capture window, side by side with the slow path.

Writes --rows captured requests (one row each, as an online endpoint gets them; CSV payloads,
1,000 records per file, the model's 9 features plus its score) under a folder, half of them
drifted, then runs in fresh processes, alternating, --repeats times each:

  ours       parse every capture file, the verdicts over every row (mlops.core.drift_stats, Evidently's
             default tests), Evidently's HTML report over a 10,000-row sample, JSON result;
  evidently  parse every capture file, Evidently's DataDriftPreset over every row, its HTML;
  parse      only read and parse the capture files (what both of the above start with).

Prints the median time and peak memory of each, their ratio, and whether the two agree on
every column's verdict.

    .venv/bin/python benchmarks/drift_check.py --rows 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Each --child re-imports this file: these load before its timer starts. All three kinds need
# them, so the times leave out only this shared cost; Evidently is imported in the timed run.
import pandas as pd

from mlops.adapters.evidently_report import evidently_html, preset_verdicts
from mlops.core.capture import GroundTruth, encode_record, object_key
from mlops.core.config import PlatformConfig
from mlops.core.functions import DriftThresholds
from mlops.local.replay import requests
from mlops.usecases.check_drift import LocalSink, evaluate
from mlops.usecases.drift_inputs import load_capture, load_reference
from pipeline_steps.schema import FEATURE_NAMES

os.environ.setdefault("DO_NOT_TRACK", "1")
NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
PER_FILE = 1000


def write_capture(folder: Path, rows: int) -> None:
    half = rows // 2
    frame = requests(half, seed=2)
    drifted = requests(rows - half, seed=3, drifted=True)
    values = [
        *frame[list(FEATURE_NAMES)].to_numpy(float),
        *drifted[list(FEATURE_NAMES)].to_numpy(float),
    ]
    for start in range(0, rows, PER_FILE):
        when = NOW + timedelta(seconds=start // PER_FILE)
        lines = []
        for i, row in enumerate(values[start : start + PER_FILE]):
            score = 0.3 + 0.4 * ((start + i) % 7) / 7
            lines.append(
                encode_record(
                    request=",".join(f"{v:g}" for v in row).encode(),
                    request_type="text/csv",
                    response=json.dumps(
                        {"predictions": [{"score": score, "label": int(score >= 0.5)}]}
                    ).encode(),
                    response_type="application/json",
                    inference_time=when,
                )
            )
        path = folder / "capture" / object_key("capture", "bench", "challenger", when)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    reference = folder / "reference" / "reference.csv"
    reference.parent.mkdir(parents=True, exist_ok=True)
    requests(14_000, seed=1)[list(FEATURE_NAMES)].to_csv(reference, index=False)


def run_ours(folder: Path) -> dict[str, bool]:
    outcome = evaluate(
        "bench",
        DriftThresholds.from_config(PlatformConfig.from_context({})),
        load_reference(str(folder / "reference")),
        load_capture(str(folder / "capture")),
        GroundTruth(),
        variant="challenger",
        weight=0.1,
        start=NOW,
        end=NOW + timedelta(hours=1),
        run_id=f"bench-{os.getpid()}",
        sink=LocalSink(folder / "out"),
        render_html=evidently_html,
    )
    assert outcome.report.data is not None  # noqa: S101
    return {c.column: c.drifted for c in outcome.report.data.columns}


def run_evidently(folder: Path) -> dict[str, bool]:
    # Evidently in this child only, and inside its timed run: "ours" loads it the same way
    # (evidently_html imports it on first use), and "parse" never does.
    from evidently import DataDefinition, Dataset, Report  # noqa: PLC0415
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    table = load_capture(str(folder / "capture")).table()  # the same parse as ours
    current = pd.DataFrame(table.features)
    reference = pd.read_csv(folder / "reference" / "reference.csv")
    definition = DataDefinition(numerical_columns=list(FEATURE_NAMES))
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    (folder / "out").mkdir(exist_ok=True)
    snapshot.save_html(str(folder / "out" / f"evidently-{os.getpid()}.html"))
    return preset_verdicts(snapshot)


def run_parse(folder: Path) -> dict[str, bool]:
    load_capture(str(folder / "capture")).table()
    return {}


def child(kind: str, folder: Path) -> None:
    started = time.perf_counter()
    verdicts = {"ours": run_ours, "evidently": run_evidently, "parse": run_parse}[kind](folder)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "verdicts": verdicts}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["ours", "evidently", "parse"])
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder)
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        write_capture(folder, args.rows)
        size = sum(p.stat().st_size for p in (folder / "capture").rglob("*.jsonl")) / 1e6
        print(f"{args.rows:,} captured rows in {args.rows // PER_FILE:,} files, {size:,.0f} MB "
              f"(written in {time.perf_counter() - started:.0f} s)")  # fmt: skip
        runs: dict[str, list[dict[str, object]]] = {"ours": [], "evidently": [], "parse": []}
        for _ in range(args.repeats):
            for kind in ("ours", "evidently", "parse"):  # alternate: all see the same load
                out = subprocess.run(  # noqa: S603
                    [sys.executable, __file__, "--child", kind, "--folder", str(folder)],
                    check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                runs[kind].append(json.loads(out.strip().splitlines()[-1]))
    for kind, results in runs.items():
        seconds = statistics.median(float(r["seconds"]) for r in results)  # type: ignore[arg-type]
        peak = statistics.median(float(r["peak_mb"]) for r in results)  # type: ignore[arg-type]
        times = ", ".join(f"{float(r['seconds']):.1f}" for r in results)  # type: ignore[arg-type]
        print(f"{kind:10s} median {seconds:6.1f} s ({times}), peak RSS median {peak:,.0f} MB")
    ours_s = statistics.median(float(r["seconds"]) for r in runs["ours"])  # type: ignore[arg-type]
    evidently_s = statistics.median(float(r["seconds"]) for r in runs["evidently"])  # type: ignore[arg-type]
    print(f"ratio: evidently / ours = {evidently_s / ours_s:.1f}x")
    mine, theirs = runs["ours"][0]["verdicts"], runs["evidently"][0]["verdicts"]
    if not (isinstance(mine, dict) and isinstance(theirs, dict)):
        raise TypeError("a child printed no verdicts")
    agree = sum(mine[c] == theirs.get(c) for c in mine)
    print(f"verdicts agree on {agree}/{len(mine)} columns; drifted: "
          f"{sorted(c for c, d in mine.items() if d)}")  # fmt: skip


if __name__ == "__main__":
    main()
