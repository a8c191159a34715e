"""Start an execution of the deployed SageMaker Pipeline and follow it to the end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})


class ExecutionError(RuntimeError):
    """The execution could not be started or followed."""


@dataclass(frozen=True)
class StepStatus:
    name: str
    status: str
    failure_reason: str | None = None
    model_package_arn: str | None = None


@dataclass
class ExecutionOutcome:
    arn: str
    status: str
    failure_reason: str | None = None
    steps: list[StepStatus] = field(default_factory=list)

    @property
    def model_package_arn(self) -> str | None:
        return next((s.model_package_arn for s in self.steps if s.model_package_arn), None)


def pipeline_parameters(sagemaker: SageMakerClient, pipeline_name: str) -> dict[str, Any]:
    """The deployed pipeline's parameters and their defaults."""
    described = sagemaker.describe_pipeline(PipelineName=pipeline_name)
    definition = json.loads(described["PipelineDefinition"])
    return {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}


def start_execution(
    sagemaker: SageMakerClient,
    pipeline_name: str,
    parameters: Mapping[str, str],
    *,
    display_name: str | None = None,
) -> str:
    known = pipeline_parameters(sagemaker, pipeline_name)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ExecutionError(
            f"unknown pipeline parameter(s) {', '.join(unknown)}; "
            f"{pipeline_name} takes: {', '.join(sorted(known))}"
        )
    request: dict[str, Any] = {
        "PipelineName": pipeline_name,
        "PipelineParameters": [{"Name": k, "Value": str(v)} for k, v in sorted(parameters.items())],
    }
    if display_name:
        request["PipelineExecutionDisplayName"] = display_name
    return str(sagemaker.start_pipeline_execution(**request)["PipelineExecutionArn"])


def _steps(sagemaker: SageMakerClient, arn: str) -> list[StepStatus]:
    steps: list[StepStatus] = []
    token: str | None = None
    while True:
        request: dict[str, Any] = {"PipelineExecutionArn": arn, "SortOrder": "Ascending"}
        if token:
            request["NextToken"] = token
        page = sagemaker.list_pipeline_execution_steps(**request)
        for step in page.get("PipelineExecutionSteps", []):
            registered = step.get("Metadata", {}).get("RegisterModel", {}).get("Arn")
            steps.append(
                StepStatus(
                    name=step["StepName"],
                    status=step["StepStatus"],
                    failure_reason=step.get("FailureReason"),
                    model_package_arn=registered,
                )
            )
        token = page.get("NextToken")
        if not token:
            return steps


def follow_execution(
    sagemaker: SageMakerClient,
    arn: str,
    *,
    poll_seconds: float = 15.0,
    timeout_seconds: float | None = None,
    on_step: Callable[[StepStatus], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ExecutionOutcome:
    """Poll until the execution ends; report each step whenever its status changes."""
    seen: dict[str, str] = {}
    deadline = None if timeout_seconds is None else clock() + timeout_seconds
    while True:
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        status = described["PipelineExecutionStatus"]
        steps = _steps(sagemaker, arn)
        for step in steps:
            if seen.get(step.name) != step.status:
                seen[step.name] = step.status
                if on_step:
                    on_step(step)
        if status in TERMINAL:
            return ExecutionOutcome(
                arn=arn, status=status, failure_reason=described.get("FailureReason"), steps=steps
            )
        if deadline is not None and clock() >= deadline:
            raise ExecutionError(
                f"{arn} is still {status} after {timeout_seconds:.0f} s; it goes on in SageMaker"
            )
        sleep(poll_seconds)
