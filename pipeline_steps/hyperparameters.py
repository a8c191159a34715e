"""The model family's hyperparameters and their defaults, in one place.

Light on purpose (no scikit-learn): the pipeline definition (at synth), the train step's
arguments, the local runner and the CLI all take their defaults from ``DEFAULTS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Algorithm = Literal["logistic", "gradient_boosting"]
ALGORITHMS: tuple[str, ...] = ("logistic", "gradient_boosting")
# The settings each algorithm reads (pipeline_steps.model.build); the others are ignored by it.
USED_BY: dict[str, tuple[str, ...]] = {
    "logistic": ("algorithm", "seed", "max_iter", "c"),
    "gradient_boosting": ("algorithm", "seed", "max_iter", "learning_rate"),
}


@dataclass(frozen=True)
class Hyperparameters:
    algorithm: Algorithm = "logistic"
    seed: int = 42
    max_iter: int = 200
    learning_rate: float = 0.1
    c: float = 1.0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}"
            )
        if self.max_iter < 1 or self.learning_rate <= 0 or self.c <= 0:
            raise ValueError("max_iter must be >= 1; learning_rate and c must be > 0")

    def used(self) -> dict[str, object]:
        """The settings this algorithm uses: what a run logs as its parameters (a ``c`` on a
        gradient-boosting run would say something about the model that is not true)."""
        return {name: getattr(self, name) for name in USED_BY[self.algorithm]}


DEFAULTS = Hyperparameters()
