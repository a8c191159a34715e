"""One shard of a drift check run as a SageMaker Processing job (mlops.core.drift_job).

Runs in each instance of the job, in the drift function's image (``python3 -m
lambdas.drift.shard``): the capture files SageMaker gave this instance (its share of the
window's manifest, sharded by key) are read exactly as the function reads a window
(mlops.core.capture_reader), summarized (mlops.core.window_summary) with the window's labels,
and the summary is written to the job's output as ``<host>.json``. No AWS call: the job runs
network-isolated, SageMaker moves the files.

``root``: where SageMaker's paths are (``/`` in a job; a folder per instance on the embedded
default, which runs the shards as local processes).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from mlops.core import drift_job
from mlops.core.capture_reader import read_files
from mlops.core.drift_job import Task
from mlops.core.window_summary import SourceFile, summarize


class ShardError(RuntimeError):
    """The job's inputs are not what the drift function wrote."""


@dataclass(frozen=True)
class ShardPaths:
    root: Path

    def _at(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def capture(self) -> Path:
        return self._at(f"{drift_job.PROCESSING_ROOT}/input/{drift_job.CAPTURE_INPUT}")

    @property
    def task(self) -> Path:
        return self._at(f"{drift_job.PROCESSING_ROOT}/input/{drift_job.TASK_INPUT}")

    @property
    def output(self) -> Path:
        return self._at(f"{drift_job.PROCESSING_ROOT}/output")

    @property
    def resource_config(self) -> Path:
        return self._at(drift_job.RESOURCE_CONFIG)

    @property
    def failure_message(self) -> Path:
        # What the container leaves here when it fails: the job's ExitMessage (1 KB).
        return self._at("/opt/ml/output/message")


def host(paths: ShardPaths) -> str:
    """This instance's name in the job (algo-1, algo-2, ...): each writes its own summary."""
    try:
        return str(json.loads(paths.resource_config.read_text())["current_host"])
    except (OSError, ValueError, KeyError):
        return socket.gethostname()


def run_shard(root: Path = Path("/")) -> Path:
    """Summarize this instance's capture files; return the summary's path."""
    paths = ShardPaths(root)
    try:
        task = Task.from_document(json.loads((paths.task / "task.json").read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise ShardError(f"no readable task.json in {paths.task}: {exc}") from None
    labels_file = paths.task / "labels.json"
    labels = json.loads(labels_file.read_text())["labels"] if labels_file.exists() else {}
    order = {key: i for i, key in enumerate(task.keys)}
    sources: list[tuple[SourceFile, Path]] = []
    if paths.capture.exists():
        for path in sorted(p for p in paths.capture.rglob("*") if p.is_file()):
            relative = path.relative_to(paths.capture).as_posix()
            if relative not in order:
                raise ShardError(f"{relative} is not one of the job's {len(order)} files")
            sources.append((SourceFile(order[relative], task.prefix + relative), path))
    # Named by their keys, as the function names the files it reads itself.
    read = read_files(
        ((source.name, path.read_bytes) for source, path in sources),
        start=task.start,
        end=task.end,
        keep_errors=task.keep_errors,
    )
    summary = summarize(
        [(source, file) for (source, _), (_, file) in zip(sources, read, strict=True)],
        labels=labels,
        sample_rows=task.sample_rows,
        keep_errors=task.keep_errors,
    )
    paths.output.mkdir(parents=True, exist_ok=True)
    written = paths.output / f"{host(paths)}.json"
    written.write_text(json.dumps(summary.as_document(), allow_nan=False, separators=(",", ":")))
    return written
