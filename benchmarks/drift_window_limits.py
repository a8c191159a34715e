"""The largest capture window one drift function checks inside its limits, measured here and
extrapolated to Lambda: where the default of ``drift_job_threshold_mb`` comes from.

Writes capture files as an online endpoint gets them (one CSV row per request, 1,000 records
per file, the model's 9 features and its score, half of them drifted), then runs the drift
function's in-process check of a variant (``DriftMonitor.check_window``: list the window's
files with their sizes, read and parse every file on every core, summarize, the verdicts over
every row, Evidently's HTML report over a 10,000-row sample, the JSON result) in a fresh process
per size, --repeats times each, and prints the time and peak memory of each run. The S3 client
reads a local folder (same calls: list, get, put if absent): S3's transfer time is not in the
figures (see ASSUMPTIONS).

From two sizes, the marginal cost of a record (time and memory) and the fixed cost (imports,
Evidently, the reference), and from them the largest window one function checks within its
memory and 15 minutes, and the threshold above which a window goes to a Processing job.

    .venv/bin/python benchmarks/drift_window_limits.py --sizes 200000 1000000
"""

from __future__ import annotations

import argparse
import io
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
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from mlops.core.config import PlatformConfig
from mlops.core.functions import DRIFT_MEMORY_MB, DriftSettings
from mlops.local.replay import requests, write_capture_files
from mlops.usecases.check_drift import DriftMonitor, LocalSink
from mlops.usecases.drift_inputs import Reference
from pipeline_steps.schema import FEATURE_NAMES

os.environ.setdefault("DO_NOT_TRACK", "1")
NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
PER_FILE = 1000
BUCKET = "capture"

# Lambda (AWS documentation): memory 128-10,240 MB, timeout at most 15 minutes; CPU in
# proportion to memory, one vCPU at 1,769 MB, six at 10,240 MB.
LAMBDA_TIMEOUT_S = 15 * 60
LAMBDA_MAX_MB = 10_240
FUNCTION_MB = DRIFT_MEMORY_MB
MB_PER_VCPU = 1_769
# Of the limits, a check may use this share: the rest is headroom (noisy neighbours, a slower
# S3, a heavier window than this synthetic one).
USABLE = 0.8
# The threshold is this share of the largest window one function checks: above it, a window
# goes to a Processing job long before the function would fail.
THRESHOLD_SHARE = 0.5
ASSUMPTIONS = (
    "time and memory grow linearly in records (two sizes measured); a Lambda vCPU is as fast "
    "as a core here, and the check's parallel parts (reading, counting) scale with vCPUs, so "
    "time here x (cores here / the function's vCPUs); S3's transfer is left out (GETs of "
    "1,000-record files run in the reading threads, at tens of MB/s each: seconds per GB); "
    f"{USABLE:.0%} of the memory and of the 15 minutes usable"
)


class FolderS3:
    """The S3 calls the drift check makes, answered from a local folder (bucket/key)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get_paginator(self, name: str) -> FolderS3:
        assert name == "list_objects_v2"  # noqa: S101
        return self

    def _listed(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        base = self.root / bucket
        folder = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
        if not folder.exists():
            return []
        return [
            {"Key": key, "Size": path.stat().st_size}
            for path in sorted(folder.rglob("*"))
            if path.is_file() and (key := path.relative_to(base).as_posix()).startswith(prefix)
        ]

    def paginate(self, *, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
        return [{"Contents": self._listed(Bucket, Prefix)}]

    def list_objects_v2(self, *, Bucket: str, Prefix: str, MaxKeys: int = 1000) -> dict[str, Any]:
        return {"Contents": self._listed(Bucket, Prefix)[:MaxKeys]}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO((self.root / Bucket / Key).read_bytes())}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **options: Any) -> dict[str, Any]:
        path = self.root / Bucket / Key
        if options.get("IfNoneMatch") == "*" and path.exists():
            error = {"Error": {"Code": "PreconditionFailed", "Message": "exists"}}
            raise ClientError(error, "PutObject")  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Body)
        return {"ETag": '"local"'}


def write_capture(root: Path, variant: str, rows: int) -> int:
    """``rows`` one-row requests in files of PER_FILE, half drifted; returns the bytes written."""
    half = rows // 2
    values = np.vstack(
        [
            requests(half, seed=2)[list(FEATURE_NAMES)].to_numpy(float),
            requests(rows - half, seed=3, drifted=True)[list(FEATURE_NAMES)].to_numpy(float),
        ]
    )
    drawn = np.random.default_rng(4).beta(2, 3, rows)
    paths = write_capture_files(
        root / BUCKET,
        values,
        [round(float(s), 6) for s in drawn],
        endpoint="bench",
        variant=variant,
        first=NOW - timedelta(minutes=50),
        per_file=PER_FILE,
        labels=(drawn >= 0.5).tolist(),  # the unrounded score's label, as the model's
    )
    return sum(p.stat().st_size for p in paths)


def child(root: Path, variant: str) -> None:
    started = time.perf_counter()
    config = PlatformConfig()
    settings = DriftSettings.for_platform(
        config, reports_bucket="reports", capture_bucket=BUCKET, topic_arn=None
    ).model_copy(update={"endpoint_name": "bench", "ground_truth_uri": None})
    monitor = DriftMonitor(sagemaker=None, s3=FolderS3(root), settings=settings)  # type: ignore[arg-type]
    frame = requests(14_000, seed=1)
    monitor._references["bench"] = Reference(
        "bench", "reference.csv", {n: frame[n].to_numpy(float) for n in FEATURE_NAMES},
        np.random.default_rng(0).beta(2, 3, 2000), 0.74,
    )  # fmt: skip
    checking = time.perf_counter()
    outcome = monitor.check_window(
        variant, "bench", 0.5, start=NOW - timedelta(hours=1), end=NOW,
        run_id=f"bench-{os.getpid()}", sink=LocalSink(root / "out" / str(os.getpid())),
    )  # fmt: skip
    done = time.perf_counter()
    print(json.dumps({
        "check_s": done - checking, "process_s": done - started,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": outcome.report.rows, "status": outcome.report.status,
    }))  # fmt: skip


def run(root: Path, variant: str) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 - this script, in a fresh interpreter
        [sys.executable, __file__, "--child", variant, "--folder", str(root)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def largest(per_record_s: float, fixed_s: float, per_record_mb: float, fixed_mb: float,
            memory_mb: int, cores_here: int) -> tuple[int, int]:  # fmt: skip
    """(records within the memory, records within the time) of a function of ``memory_mb``."""
    vcpus = min(6.0, memory_mb / MB_PER_VCPU)
    slower = max(1.0, cores_here / vcpus)  # the check runs on fewer cores there than here
    by_memory = (memory_mb * USABLE - fixed_mb) / per_record_mb
    by_time = (LAMBDA_TIMEOUT_S * USABLE - fixed_s * slower) / (per_record_s * slower)
    return int(by_memory), int(by_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[200_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child")
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.folder, args.child)
        return
    cores = len(os.sched_getaffinity(0))
    small, large = sorted(args.sizes)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        sizes = {}
        for rows in (small, large):
            written = time.perf_counter()
            sizes[rows] = write_capture(root, f"v{rows}", rows)
            print(f"{rows:,} records in {rows // PER_FILE:,} files, {sizes[rows] / 1e6:,.0f} MB "
                  f"(written in {time.perf_counter() - written:.0f} s)", flush=True)  # fmt: skip
        runs: dict[int, list[dict[str, Any]]] = {small: [], large: []}
        for _ in range(args.repeats):
            for rows in (small, large):
                runs[rows].append(run(root, f"v{rows}"))
    print(f"\nthe drift function's in-process check, {cores} cores, median of {args.repeats}:")
    print("| records | capture MB | check s | whole process s | peak memory MB |")
    print("| --- | --- | --- | --- | --- |")
    medians = {}
    for rows in (small, large):
        found = runs[rows]
        assert all(r["rows"] == rows for r in found), found  # noqa: S101
        median = {
            k: statistics.median(r[k] for r in found) for k in ("check_s", "process_s", "peak_mb")
        }
        medians[rows] = median
        print(f"| {rows:,} | {sizes[rows] / 1e6:,.0f} | {median['check_s']:.1f} | "
              f"{median['process_s']:.1f} | {median['peak_mb']:,.0f} |")  # fmt: skip
    extra = large - small
    per_s = (medians[large]["process_s"] - medians[small]["process_s"]) / extra
    per_mb = (medians[large]["peak_mb"] - medians[small]["peak_mb"]) / extra
    fixed_s = medians[small]["process_s"] - per_s * small
    fixed_mb = medians[small]["peak_mb"] - per_mb * small
    bytes_per_record = (sizes[large] - sizes[small]) / extra
    print(f"\nper record: {per_s * 1e6:.1f} us, {per_mb * 1e6:,.0f} bytes of memory, "
          f"{bytes_per_record:,.0f} bytes of capture; fixed: {fixed_s:.1f} s, {fixed_mb:,.0f} MB")  # fmt: skip
    print(f"assumptions: {ASSUMPTIONS}")
    limits = {}
    for memory in (FUNCTION_MB, LAMBDA_MAX_MB):
        by_memory, by_time = largest(per_s, fixed_s, per_mb, fixed_mb, memory, cores)
        limits[memory] = min(by_memory, by_time)
        print(f"a function of {memory:,} MB ({min(6.0, memory / MB_PER_VCPU):.1f} vCPU): "
              f"{by_memory:,} records within its memory, {by_time:,} within 15 minutes: "
              f"at most {limits[memory]:,} records, "
              f"{limits[memory] * bytes_per_record / 1e6:,.0f} MB of capture")  # fmt: skip
    threshold = limits[FUNCTION_MB] * bytes_per_record * THRESHOLD_SHARE / 1e6
    print(f"threshold for the drift function ({FUNCTION_MB:,} MB), {THRESHOLD_SHARE:.0%} of its "
          f"largest window: {threshold:,.0f} MB of capture "
          f"({limits[FUNCTION_MB] * THRESHOLD_SHARE:,.0f} records like these)")  # fmt: skip


if __name__ == "__main__":
    main()
