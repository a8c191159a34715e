"""How long the CLI takes to show its help, and the functions their cold start (handler import).

Each case runs in a fresh process, the cases alternating, ``--runs`` times each after one
warm-up run that is not counted (it writes the bytecode and fills the file cache). Printed per
case: the median and the range of the wall time, the median CPU time (user + system: less
swayed than the wall time by other work on the machine) and the median peak RSS of the process.

- ``mlops --help``, ``mlops drift check --help``: the console script, as an operator runs it.
- the drift and traffic functions' cold start: ``python -c "import lambdas.<fn>.handler"``,
  what Lambda's init phase runs before the first event (the images compile their bytecode).
- the drift function's without bytecode: ``PYTHONDONTWRITEBYTECODE=1`` and an empty
  ``PYTHONPYCACHEPREFIX`` per run, so every module is compiled from source and nothing is
  written: a read-only file system without precompiled ``.pyc`` files.

    .venv/bin/python benchmarks/startup.py [--runs 7]

Measured here (2 cores, other work running; medians of 7): `mlops --help` 0.32-0.39 s wall,
0.31-0.37 s CPU, 25 MB (0.97-1.24 s and 53 MB while the CLI imported boto3 and the config at
start-up); `mlops drift check --help` 0.48-0.73 s, 39 MB (typer itself loads pydantic for the
global options). The drift function's cold start: 0.9-1.0 s, 90 MB with bytecode, 3.5 s without
(hence `compileall` in its image); 0.5 s and 46 MB of it are the handler without
`mlops.usecases.check_drift` (numpy, polars), which every scheduled check needs, so it stays in
the init phase. Evidently (with pandas) is imported at the first HTML report, in the invocation:
about 6-7 s and 240 MB more. The traffic function's: 0.55-0.74 s, 46 MB.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MLOPS = [str(BIN / "mlops")] if (BIN / "mlops").exists() else [sys.executable, "-m", "mlops.cli"]
BYTECODE_VARIABLES = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")


def _with_bytecode(_scratch: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in BYTECODE_VARIABLES}


def _without_bytecode(scratch: Path) -> dict[str, str]:
    """Python looks for bytecode only under an empty folder, and writes none."""
    prefix = Path(tempfile.mkdtemp(prefix="pycache-", dir=scratch))
    return {**_with_bytecode(scratch), "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPYCACHEPREFIX": str(prefix)}  # fmt: skip


@dataclass
class Case:
    name: str
    argv: list[str]
    environment: Callable[[Path], dict[str, str]] = _with_bytecode
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)


def cases() -> list[Case]:
    python = [sys.executable, "-c"]
    return [
        Case("mlops --help", [*MLOPS, "--help"]),
        Case("mlops drift check --help", [*MLOPS, "drift", "check", "--help"]),
        Case("drift handler import (.pyc)", [*python, "import lambdas.drift.handler"]),
        Case(
            "drift handler import (no .pyc)",
            [*python, "import lambdas.drift.handler"],
            _without_bytecode,
        ),
        Case("traffic handler import (.pyc)", [*python, "import lambdas.traffic.handler"]),
    ]


def run_once(case: Case, scratch: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of one fresh process running ``case``."""
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and console script
            case.argv,
            cwd=ROOT,
            env=case.environment(scratch),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        # wait4: this child's own resource usage (RUSAGE_CHILDREN would be the peak of all).
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode(errors="replace")[-2000:]
            sys.exit(f"{case.name} exited {process.returncode}:\n{message}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each case (default 7)")
    runs = parser.parse_args().runs
    measured = cases()
    with tempfile.TemporaryDirectory(prefix="startup-") as folder:
        scratch = Path(folder)
        for case in measured:
            run_once(case, scratch)  # warm-up, not counted
        for _ in range(runs):
            for case in measured:
                seconds, cpu_seconds, peak = run_once(case, scratch)
                case.seconds.append(seconds)
                case.cpu_seconds.append(cpu_seconds)
                case.peak_kib.append(peak)
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {runs} runs per case "
          "(fresh processes, alternating)")  # fmt: skip
    print(f"{'case':<32} {'wall median':>11} {'min-max':>13} {'CPU':>8} {'peak RSS':>9}")
    for case in measured:
        low, high = min(case.seconds), max(case.seconds)
        print(
            f"{case.name:<32} {statistics.median(case.seconds):>9.2f} s "
            f"{f'{low:.2f}-{high:.2f} s':>13} {statistics.median(case.cpu_seconds):>6.2f} s "
            f"{statistics.median(case.peak_kib) / 1024:>6.0f} MB"
        )


if __name__ == "__main__":
    main()
