"""Run one step: ``python -m pipeline_steps <step> [args]`` or ``python3 steps.pyz <step> [args]``.

SageMaker processing jobs run the zipapp built from this package (see mlops/adapters/code_bundle.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from pipeline_steps import evaluate, preprocess, train


def _steps() -> dict[str, Callable[[Sequence[str] | None], int]]:
    return {"preprocess": preprocess.main, "train": train.main, "evaluate": evaluate.main}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    steps = _steps()
    if not args or args[0] not in steps:
        print(f"usage: pipeline_steps {{{','.join(steps)}}} [options]", file=sys.stderr)
        return 2
    return steps[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
