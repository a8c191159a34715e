"""The README's backoff claim is what update_weights does (counted, not assumed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlops.adapters.endpoints import EndpointError, update_weights

README = Path(__file__).resolve().parents[2] / "README.md"


class AlwaysUpdating:
    """An endpoint that stays Updating: every weights call is refused as in-progress."""

    def __init__(self) -> None:
        self.calls = 0

    def update_endpoint_weights_and_capacities(self, **_: Any) -> None:
        self.calls += 1
        raise ClientError(
            {"Error": {"Code": "ValidationException",
                       "Message": "Cannot update in-progress endpoint"}},
            "UpdateEndpointWeightsAndCapacities",
        )  # fmt: skip


def test_the_readme_states_the_attempts_and_the_wait() -> None:
    sagemaker, slept = AlwaysUpdating(), list[float]()
    with pytest.raises(EndpointError, match="through 17 attempts and 251 s"):
        update_weights(sagemaker, "e", {"champion": 1.0}, sleep=slept.append)  # type: ignore[arg-type]
    assert sagemaker.calls == 17
    assert slept == [1, 2, 4, 8, 16, *[20] * 11]
    text = " ".join(README.read_text().split())
    assert "1, 2, 4, 8, 16 s, then 20 s between attempts, at most 17 attempts and 251 s" in text
