"""The drift image's second entry point: one shard of a drift check run as a SageMaker
Processing job (``python3 -m lambdas.drift.shard``, the job definition's ContainerEntrypoint;
mlops.core.drift_job).

Reads this instance's capture files and the job's task from /opt/ml/processing/input, writes
its window summary to /opt/ml/processing/output. A failure exits non-zero (the job fails, and
the drift function reports it and checks the window again); its reason is left in
/opt/ml/output/message, which SageMaker shows as the job's exit message.
``MLOPS_PROCESSING_ROOT`` moves those paths under a folder (the embedded default runs each
instance as a local process in its own folder).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from mlops.usecases.drift_shard import ShardPaths, run_shard


def main() -> int:
    root = Path(os.environ.get("MLOPS_PROCESSING_ROOT", "/"))
    started = time.perf_counter()
    try:
        written = run_shard(root)
    except Exception as exc:
        message = f"drift shard failed: {type(exc).__name__}: {exc}"
        print(message, file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            path = ShardPaths(root).failure_message
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(message[:1000])
        raise
    print(f"drift shard: {written} in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
