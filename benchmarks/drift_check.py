"""A drift check end to end on a large capture window: `mlops drift check` against the plain
script a user would otherwise write, and against Evidently's preset over every row.

Writes --rows captured requests (one row each, as an online endpoint gets them; one-row CSV
payloads in SageMaker's JSON Lines format, --per-file records per file, the model's 9
features plus its score; the second half drifted), then runs each of these in a fresh
process, alternating, --repeats times:

  plain      benchmarks/plain_drift_check.py: json.loads per line, a float split, a pandas
             frame, Evidently's DataDriftPreset with its tests (the baseline);
  ours       `mlops drift check --capture ... --reference ... --no-html`: the verdicts of
             record over every row, written as the JSON result (what the baseline gives);
  ours+html  the same with Evidently's HTML page over a sample (what the drift function writes);
  preset     our parser, then Evidently's DataDriftPreset over every row, and its HTML.

Each is timed from process start to exit (imports included) with its peak RSS (/usr/bin/time).
Prints medians and min-max, the ratios (plain / ours, preset / ours, peak memory ours / plain),
whether every column's verdict agrees, and the Lambda cost of an hourly check at 100k, 1M and
10M rows an hour beside SageMaker Model Monitor's (prices below): time and memory are measured
at --cost-rows and --rows, and other sizes read off the line through the two (and say so).

    .venv/bin/python benchmarks/drift_check.py --rows 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

# The parent writes the files; the preset child runs this file too (its imports are timed).
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from mlops.adapters.evidently_report import preset_verdicts
from mlops.core.functions import DRIFT_MEMORY_MB
from mlops.local.replay import requests, write_capture_files
from mlops.usecases.drift_inputs import load_capture
from pipeline_steps.schema import FEATURE_NAMES

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
HERE = Path(__file__).resolve().parent
KINDS = ("plain", "ours", "ours+html", "preset")
# us-east-1 list prices, November 2026.
LAMBDA_GB_SECOND = 0.0000166667  # x86, first 6 billion GB-s a month
LAMBDA_REQUEST = 0.0000002
MODEL_MONITOR_INSTANCE_HOUR = 0.269  # ml.m5.xlarge processing, Model Monitor's default
HOURS_A_MONTH = 730


def write_capture(folder: Path, rows: int, per_file: int) -> None:
    half = rows // 2
    frame = requests(half, seed=2)
    drifted = requests(rows - half, seed=3, drifted=True)
    values = [
        *frame[list(FEATURE_NAMES)].to_numpy(float),
        *drifted[list(FEATURE_NAMES)].to_numpy(float),
    ]
    scores = [0.3 + 0.4 * (n % 7) / 7 for n in range(rows)]
    write_capture_files(
        folder / "capture",
        values,
        scores,
        endpoint="bench",
        variant="challenger",
        first=NOW,
        per_file=per_file,
    )
    reference = folder / "reference" / "reference.csv"
    reference.parent.mkdir(parents=True, exist_ok=True)
    requests(14_000, seed=1)[list(FEATURE_NAMES)].to_csv(reference, index=False)


def preset_child(folder: Path) -> None:
    """Our parser, then Evidently's preset over every row (the heavier Evidently path)."""
    table = load_capture(str(folder / "capture")).table()
    current = pd.DataFrame(table.features)
    reference = pd.read_csv(folder / "reference" / "reference.csv")
    definition = DataDefinition(numerical_columns=list(FEATURE_NAMES))
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    snapshot.save_html(str(folder / f"preset-{os.getpid()}.html"))
    print(json.dumps({"rows": len(current), "verdicts": preset_verdicts(snapshot)}))


def command(kind: str, folder: Path, run: int) -> list[str]:
    python = sys.executable
    if kind == "plain":
        return [python, str(HERE / "plain_drift_check.py"), str(folder / "capture"),
                str(folder / "reference" / "reference.csv")]  # fmt: skip
    if kind == "preset":
        return [python, __file__, "--child-preset", "--folder", str(folder)]
    mlops = str(Path(python).with_name("mlops"))
    html = "--html" if kind == "ours+html" else "--no-html"
    return [mlops, "drift", "check", "--capture", str(folder / "capture"), "--reference",
            str(folder / "reference"), "--output", str(folder / "out" / f"{kind}-{run}"), html]  # fmt: skip


def verdicts_of(kind: str, folder: Path, run: int, stdout: str) -> dict[str, bool]:
    if kind in ("plain", "preset"):
        return dict(json.loads(stdout.strip().splitlines()[-1])["verdicts"])
    (result,) = (folder / "out" / f"{kind}-{run}").rglob("*.json")
    columns = json.loads(result.read_text())["data"]["columns"]
    return {c["column"]: bool(c["drifted"]) for c in columns}


def timed(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one fresh process."""
    report = tempfile.NamedTemporaryFile(suffix=".time", delete=False)  # noqa: SIM115
    report.close()
    started = time.perf_counter()
    out = subprocess.run(  # noqa: S603
        ["/usr/bin/time", "-f", "%M", "-o", report.name, *argv],
        check=True, capture_output=True, text=True,
        env={**os.environ, "DO_NOT_TRACK": "1", "COLUMNS": "200"},
    )  # fmt: skip
    seconds = time.perf_counter() - started
    peak_kb = float(Path(report.name).read_text().split()[-1])
    Path(report.name).unlink()
    return seconds, peak_kb / 1024, out.stdout


def cost_table(points: list[tuple[int, float, float]]) -> None:
    """Time and peak memory as a line through two measured sizes (rows, seconds, MB)."""
    (small, small_s, small_mb), (large, large_s, large_mb) = sorted(points)[0], sorted(points)[-1]
    per_row_s = (large_s - small_s) / (large - small)
    per_row_mb = (large_mb - small_mb) / (large - small)
    print(f"\nmeasured (ours+html): {small:,} rows {small_s:.1f} s {small_mb:,.0f} MB; "
          f"{large:,} rows {large_s:.1f} s {large_mb:,.0f} MB; "
          f"{per_row_s * 1e6:.2f} us and {per_row_mb * 1e3:.3f} kB a row beyond a fixed "
          f"{small_s - per_row_s * small:.1f} s")  # fmt: skip
    print(
        f"cost of an hourly check for a month ({HOURS_A_MONTH} runs): the function as deployed "
        f"({DRIFT_MEMORY_MB:,} MB), against Model Monitor's ml.m5.xlarge job:"
    )
    print(
        f"  {'rows an hour':>12}  {'run (s)':>8}  {'peak':>9}  {'Lambda':>9}  {'Model Monitor':>13}"
    )
    for rows in (100_000, 1_000_000, 10_000_000):
        seconds = small_s + per_row_s * (rows - small)
        peak = small_mb + per_row_mb * (rows - small)
        memory = DRIFT_MEMORY_MB
        run = seconds * memory / 1024 * LAMBDA_GB_SECOND + LAMBDA_REQUEST
        # Model Monitor bills each hourly job by the second, one minute at least, start-up
        # (provisioning, image pull) included: counted here as 5 minutes.
        monitor = max(60.0, seconds + 300) / 3600 * MODEL_MONITOR_INSTANCE_HOUR
        note = "" if rows in (small, large) else " (extrapolated)"
        if peak > DRIFT_MEMORY_MB or seconds > 900:
            note += " past one function: a Processing job (README)"
        print(f"  {rows:>12,}  {seconds:>8.1f}  {peak:>6,.0f} MB  ${run * HOURS_A_MONTH:>8.2f}  "
              f"${monitor * HOURS_A_MONTH:>12.2f}{note}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--per-file", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset")
    parser.add_argument("--cost-rows", type=int, default=100_000,
                        help="a second, smaller window for the cost line (0: no cost table)")  # fmt: skip
    parser.add_argument("--child-preset", action="store_true")
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child_preset:
        preset_child(args.folder)
        return
    kinds = [k for k in args.kinds.split(",") if k]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        write_capture(folder, args.rows, args.per_file)
        size = sum(p.stat().st_size for p in (folder / "capture").rglob("*.jsonl")) / 1e6
        print(f"{args.rows:,} captured rows in {math.ceil(args.rows / args.per_file):,} files, "
              f"{size:,.0f} MB (written in {time.perf_counter() - started:.0f} s); "
              f"{os.cpu_count()} cores")  # fmt: skip
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        verdicts: dict[str, dict[str, bool]] = {}
        for run in range(args.repeats):
            for kind in kinds:  # alternate: all see the same load
                seconds, peak, stdout = timed(command(kind, folder, run))
                runs[kind].append((seconds, peak))
                verdicts[kind] = verdicts_of(kind, folder, run, stdout)
    median: dict[str, tuple[float, float]] = {}
    for kind, results in runs.items():
        times = [s for s, _ in results]
        peaks = [p for _, p in results]
        median[kind] = (statistics.median(times), statistics.median(peaks))
        print(f"{kind:10s} median {median[kind][0]:6.1f} s (min {min(times):.1f}, max "
              f"{max(times):.1f}), peak RSS median {median[kind][1]:,.0f} MB")  # fmt: skip
    if "ours" in median:
        ours_s, ours_mb = median["ours"]
        for other in ("plain", "preset", "ours+html"):
            if other in median:
                print(f"ratio {other} / ours: {median[other][0] / ours_s:.1f}x time, "
                      f"ours / {other}: {ours_mb / median[other][1]:.2f} peak memory")  # fmt: skip
    reference = verdicts.get("plain") or next(iter(verdicts.values()))
    for kind, theirs in verdicts.items():
        agree = sum(theirs.get(c) == v for c, v in reference.items())
        print(f"verdicts {kind} vs {'plain' if 'plain' in verdicts else kinds[0]}: agree on "
              f"{agree} of {len(reference)} columns; drifted {sorted(c for c, d in theirs.items() if d)}")  # fmt: skip
    if "ours+html" in median and args.cost_rows:
        # The function's run is ours+html (it writes the page too): measured again on a small
        # window, for the line through the two sizes.
        with tempfile.TemporaryDirectory() as scratch:
            small = Path(scratch)
            write_capture(small, args.cost_rows, args.per_file)
            measured = [timed(command("ours+html", small, run))[:2] for run in range(args.repeats)]
        cost_table([
            (args.cost_rows, statistics.median(s for s, _ in measured),
             statistics.median(p for _, p in measured)),
            (args.rows, *median["ours+html"]),
        ])  # fmt: skip


if __name__ == "__main__":
    main()
