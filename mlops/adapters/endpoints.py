"""A thin adapter over the SageMaker endpoint APIs the traffic controls need.

UpdateEndpointWeightsAndCapacities fails with ``ValidationException: Cannot update
in-progress endpoint`` while the endpoint is Updating, and with ThrottlingException under
load: both are waited out with bounded exponential backoff, everything else surfaces.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import DesiredWeightAndCapacityTypeDef

RETRYABLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})


class EndpointError(RuntimeError):
    """The endpoint is missing, failed, or stayed busy too long."""


class EndpointNotFound(EndpointError):
    """No endpoint of that name: a request to fix, not an outage to retry."""


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    desired_weight: float | None
    instances: int | None
    desired_instances: int | None


@dataclass(frozen=True)
class EndpointState:
    name: str
    status: str
    config_name: str
    variants: tuple[Variant, ...]

    @property
    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)


@dataclass
class CallLog:
    """Counts the AWS calls one traffic action makes (reported with every change)."""

    calls: dict[str, int] = field(default_factory=dict)

    def record(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def describe(
    sagemaker: SageMakerClient, endpoint: str, calls: CallLog | None = None
) -> EndpointState:
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ValidationException":
            raise EndpointNotFound(f"endpoint {endpoint!r} does not exist") from None
        raise
    finally:
        if calls is not None:
            calls.record("DescribeEndpoint")
    variants = tuple(
        Variant(
            name=v["VariantName"],
            weight=float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0))),
            desired_weight=v.get("DesiredWeight"),
            instances=v.get("CurrentInstanceCount"),
            desired_instances=v.get("DesiredInstanceCount"),
        )
        for v in described.get("ProductionVariants", [])
    )
    return EndpointState(
        name=endpoint,
        status=described["EndpointStatus"],
        config_name=described.get("EndpointConfigName", ""),
        variants=variants,
    )


def _retryable(exc: ClientError) -> bool:
    error = exc.response["Error"]
    if error["Code"] in RETRYABLE_CODES:
        return True
    return error["Code"] == "ValidationException" and "in-progress" in error.get("Message", "")


def update_weights(
    sagemaker: SageMakerClient,
    endpoint: str,
    weights: Mapping[str, float],
    *,
    instances: Mapping[str, int | None] | None = None,
    calls: CallLog | None = None,
    max_attempts: int = 20,
    max_wait: float = 270.0,
    first_delay: float = 1.0,
    max_delay: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Request new weights, waiting out an in-progress update or throttling (bounded).

    ``instances`` passes each variant's current instance count along: the API takes weights
    and counts together, and the emulator drops counts that are not sent.
    """
    request: list[DesiredWeightAndCapacityTypeDef] = []
    for name, weight in weights.items():
        entry: DesiredWeightAndCapacityTypeDef = {
            "VariantName": name,
            "DesiredWeight": float(weight),
        }
        count = (instances or {}).get(name)
        if count is not None:
            entry["DesiredInstanceCount"] = int(count)
        request.append(entry)
    delay = first_delay
    waited = 0.0
    for attempt in range(1, max_attempts + 1):
        try:
            sagemaker.update_endpoint_weights_and_capacities(
                EndpointName=endpoint, DesiredWeightsAndCapacities=request
            )
        except ClientError as exc:
            if calls is not None:
                calls.record("UpdateEndpointWeightsAndCapacities")
            # An endpoint update CloudFormation started takes minutes: wait up to max_wait
            # (within the Lambda's 5-minute timeout), then fail loudly for a retry.
            if not _retryable(exc) or attempt == max_attempts or waited + delay > max_wait:
                code = exc.response["Error"]["Code"]
                if _retryable(exc):
                    raise EndpointError(
                        f"endpoint {endpoint!r} stayed busy ({code}) through {attempt} attempts "
                        f"and {waited:.0f} s"
                    ) from exc
                raise
            sleep(delay)
            waited += delay
            delay = min(delay * 2, max_delay)
            continue
        if calls is not None:
            calls.record("UpdateEndpointWeightsAndCapacities")
        return


def wait_until_in_service(
    sagemaker: SageMakerClient,
    endpoint: str,
    *,
    calls: CallLog | None = None,
    timeout: float = 600.0,
    poll: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> EndpointState:
    deadline = clock() + timeout
    while True:
        state = describe(sagemaker, endpoint, calls)
        if state.status == "InService":
            return state
        if state.status in ("Failed", "OutOfService", "Deleting"):
            raise EndpointError(f"endpoint {endpoint!r} is {state.status}")
        if clock() >= deadline:
            raise EndpointError(f"endpoint {endpoint!r} still {state.status} after {timeout:.0f} s")
        sleep(poll)
