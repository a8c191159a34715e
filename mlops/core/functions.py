"""One contract per Lambda function: the settings the serving stack writes into a function's
environment, and the handler reads back.

Each class is built from the platform config (``for_platform``) by the stack at synth and by
the embedded default, turned into environment variables with ``environment()``, and parsed
back with ``from_environment()`` in the handler. No field has a default value (an optional
resource, such as the alerts topic, is None when absent): a value the function needs comes
from ``PlatformConfig`` (the one place defaults live) or from a resource the stack made, and a
missing one is an error that names it, not a silently different behaviour.
Pure: pydantic only (values may be CDK tokens at synth).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from mlops.core import drift_job, names
from mlops.core.config import PlatformConfig
from mlops.core.names import CHAMPION, challenger_gate_alarms


class SettingsError(ValueError):
    """A function's environment does not satisfy its contract; the message names each field."""


def _json(value: Any) -> Any:
    """Lists and maps travel as JSON in an environment variable."""
    return json.loads(value) if isinstance(value, str) else value


JsonTuple = Annotated[tuple[str, ...], BeforeValidator(_json)]
JsonFloats = Annotated[tuple[float, ...], BeforeValidator(_json)]
JsonMap = Annotated[dict[str, str], BeforeValidator(_json)]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_json)]


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"))


class FunctionSettings(BaseModel):
    """Fields are named in snake case; their environment variables are the same in capitals."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", alias_generator=str.upper, populate_by_name=True
    )
    service: ClassVar[str]  # Powertools' service name: logs and metrics say which function

    def environment(self) -> dict[str, str]:
        """The function's environment variables (None values are left out)."""
        env = {"POWERTOOLS_SERVICE_NAME": self.service}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                env[name.upper()] = _encode(value)
        return env

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Self:
        """Parse the function's environment; SettingsError names every field that is wrong."""
        known = {name.upper() for name in cls.model_fields}
        try:
            return cls.model_validate({k: v for k, v in environ.items() if k in known and v})
        except ValidationError as exc:  # a malformed JSON value is one too
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])).upper() or 'environment'}: {e['msg']}"
                for e in exc.errors()
            )
            raise SettingsError(f"{cls.__name__} environment: {problems}") from None


class TrafficSettings(FunctionSettings):
    """The traffic function (lambdas/traffic): one endpoint's weights, rollouts and rollbacks."""

    service: ClassVar[str] = "traffic"

    endpoint_name: str = Field(min_length=1)
    audit_bucket: str = Field(min_length=3)
    topic_arn: str | None = None  # no alerts topic: no notices
    rollout_steps: JsonFloats = Field(min_length=1)
    # The challenger's alarms that roll it back and hold a rollout step.
    gate_alarms: JsonTuple
    # variant -> the SSM parameter holding the weight in force (the endpoint config reads it);
    # empty for an endpoint the serving stack does not manage.
    weight_parameters: JsonMap

    @classmethod
    def for_platform(
        cls,
        config: PlatformConfig,
        *,
        audit_bucket: str,
        topic_arn: str | None,
        endpoint: str | None = None,
    ) -> TrafficSettings:
        endpoint = endpoint or config.endpoint_name
        return cls(
            endpoint_name=endpoint,
            audit_bucket=audit_bucket,
            topic_arn=topic_arn,
            rollout_steps=tuple(config.rollout_steps),
            gate_alarms=challenger_gate_alarms(
                endpoint, drift=config.auto_rollback_on_challenger_drift
            ),
            # Only the stage's own endpoint reads its weights from these parameters.
            weight_parameters=(
                names.weight_parameters(config) if endpoint == config.endpoint_name else {}
            ),
        )


class DeploySettings(FunctionSettings):
    """The deploy function (lambdas/deploy): approved package -> challenger; promote."""

    service: ClassVar[str] = "deploy"

    endpoint_name: str = Field(min_length=1)
    serving_stack_name: str = Field(min_length=1)
    model_package_group: str = Field(min_length=1)
    initial_challenger_weight: float = Field(ge=0, le=1, allow_inf_nan=False)
    weight_parameters: JsonMap
    audit_bucket: str = Field(min_length=3)
    topic_arn: str | None = None  # no alerts topic: no notices
    cloudformation_role_arn: str | None = None  # None: CloudFormation uses the stack's role

    @classmethod
    def for_platform(
        cls,
        config: PlatformConfig,
        *,
        audit_bucket: str,
        topic_arn: str | None,
        cloudformation_role_arn: str | None,
    ) -> DeploySettings:
        return cls(
            endpoint_name=config.endpoint_name,
            serving_stack_name=names.serving_stack(config),
            model_package_group=config.model_package_group_name,
            initial_challenger_weight=config.challenger_initial_weight,
            weight_parameters=names.weight_parameters(config),
            audit_bucket=audit_bucket,
            topic_arn=topic_arn,
            cloudformation_role_arn=cloudformation_role_arn,
        )


@dataclass(frozen=True)
class DriftThresholds:
    """How a window is judged: the same for the scheduled check, the CLI and the benchmarks."""

    min_rows: int
    share_threshold: float
    distance_threshold: float
    quality_tolerance: float
    report_sample_rows: int

    @classmethod
    def from_config(cls, config: PlatformConfig) -> DriftThresholds:
        return cls(
            min_rows=config.min_rows_for_drift,
            share_threshold=config.drift_share_threshold,
            distance_threshold=config.drift_threshold,
            quality_tolerance=config.quality_drop_tolerance,
            report_sample_rows=config.drift_report_sample_rows,
        )


# The drift function's size, specified once for the stack, the twin and the benchmarks.
# 3,008 MB holds a 1,000,000-row check at a fifth of it (benchmarks/drift_check.py); memory
# binds before the 15 minutes, at about 8 million one-row requests
# (benchmarks/drift_window_limits.py): windows past half of that go to a Processing job.
DRIFT_MEMORY_MB = 3008
DRIFT_TIMEOUT_MINUTES = 15


class DriftSettings(FunctionSettings):
    """The drift function (lambdas/drift): scheduled checks and retraining on drift."""

    service: ClassVar[str] = "drift"

    endpoint_name: str = Field(min_length=1)
    reports_bucket: str = Field(min_length=3)
    capture_uri: str = Field(pattern=r"^s3://")
    ground_truth_uri: str | None = Field(default=None, pattern=r"^s3://")  # None: no labels
    topic_arn: str | None = None  # no alerts topic: no notices
    min_rows: int = Field(ge=1)
    share_threshold: float = Field(gt=0, le=1, allow_inf_nan=False)
    distance_threshold: float = Field(gt=0, le=1, allow_inf_nan=False)
    quality_tolerance: float = Field(ge=0, le=1, allow_inf_nan=False)
    report_sample_rows: int = Field(ge=100)
    first_window_minutes: int = Field(ge=1)
    max_window_hours: int = Field(ge=1)
    capture_delay_minutes: int = Field(ge=0)
    # The champion's drift alarm: its ALARM starts retraining (when enabled).
    champion_drift_alarm: str = Field(min_length=1)
    pipeline_name: str = Field(min_length=1)
    retrain_on_champion_drift: bool
    retrain_cooldown_hours: int = Field(ge=1)
    # Above this many bytes of capture files, a window is checked by a Processing job...
    job_threshold_bytes: int = Field(ge=1)
    job_prefix: str = Field(min_length=1)  # ... named with this prefix ...
    # ... made from this definition (mlops.core.drift_job.definition, synthesized by the stack).
    # None: no job can be started, every window is checked in the function.
    processing_job: JsonObject | None = None

    @property
    def thresholds(self) -> DriftThresholds:
        return DriftThresholds(
            min_rows=self.min_rows,
            share_threshold=self.share_threshold,
            distance_threshold=self.distance_threshold,
            quality_tolerance=self.quality_tolerance,
            report_sample_rows=self.report_sample_rows,
        )

    @property
    def first_window(self) -> timedelta:
        return timedelta(minutes=self.first_window_minutes)

    @property
    def max_window(self) -> timedelta:
        return timedelta(hours=self.max_window_hours)

    @property
    def capture_delay(self) -> timedelta:
        """SageMaker writes capture files minutes after the requests: a window ends this long
        before the check, so records still in flight are checked next time, not skipped."""
        return timedelta(minutes=self.capture_delay_minutes)

    @classmethod
    def for_platform(
        cls,
        config: PlatformConfig,
        *,
        reports_bucket: str,
        capture_bucket: str,
        topic_arn: str | None,
        capture_delay_minutes: int | None = None,
        processing_job: dict[str, Any] | None = None,
    ) -> DriftSettings:
        """``capture_delay_minutes`` overrides the config's where captures land at once (the
        embedded default's local endpoint writes them when asked, unlike SageMaker);
        ``processing_job``: the definition of the jobs large windows are checked by (None:
        none is, as for checks on demand)."""
        return cls(
            endpoint_name=config.endpoint_name,
            reports_bucket=reports_bucket,
            capture_uri=f"s3://{capture_bucket}/{names.CAPTURE_PREFIX}",
            ground_truth_uri=f"s3://{capture_bucket}/{names.GROUND_TRUTH_PREFIX}",
            topic_arn=topic_arn,
            min_rows=config.min_rows_for_drift,
            share_threshold=config.drift_share_threshold,
            distance_threshold=config.drift_threshold,
            quality_tolerance=config.quality_drop_tolerance,
            report_sample_rows=config.drift_report_sample_rows,
            first_window_minutes=max(1, names.schedule_seconds(config.drift_schedule) // 60),
            max_window_hours=config.drift_max_window_hours,
            capture_delay_minutes=(
                config.drift_capture_delay_minutes
                if capture_delay_minutes is None
                else capture_delay_minutes
            ),
            champion_drift_alarm=names.drift_alarm(config.endpoint_name, CHAMPION),
            pipeline_name=config.pipeline_name,
            retrain_on_champion_drift=config.retrain_on_champion_drift,
            retrain_cooldown_hours=config.retrain_cooldown_hours,
            job_threshold_bytes=max(1, round(config.drift_job_threshold_mb * 1_000_000)),
            job_prefix=drift_job.job_prefix(config),
            processing_job=processing_job,
        )


# The contract of each function the serving stack deploys (keys: mlops.core.specs.HANDLERS).
CONTRACTS: dict[str, type[FunctionSettings]] = {
    "traffic": TrafficSettings,
    "deploy": DeploySettings,
    "drift": DriftSettings,
}
