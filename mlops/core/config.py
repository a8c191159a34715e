"""Typed, validated platform configuration.

The CDK app reads its context (cdk.json, overridden by ``-c key=value``) once into a
``PlatformConfig``. Context values given on the command line arrive as strings, so every
field accepts its string form ("true", "30", "0.1,0.25"). A bad value raises ``ConfigError``,
whose message names each bad key and what it accepts.

Pure: no AWS, clock or environment access here (``app.py`` passes the CDK_DEFAULT_* values in).
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
    2557, 2922, 3288, 3653,
)  # fmt: skip

# Instance families with local NVMe instance storage: SageMaker rejects a volume KMS key on
# these (the storage is hardware-encrypted). Families ending in "d"/"dn" (m5d, c6gd, g4dn,
# p4d, ...) have it by definition; these others do too.
_NVME_FAMILIES = frozenset(
    {"g5", "g6", "g6e", "p4de", "p5", "p5e", "p5en", "p6-b200", "trn1", "trn1n", "trn2"}
)

_SCHEDULE = re.compile(
    r"^(rate\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\)"
    r"|cron\(\S+ \S+ \S+ \S+ \S+ \S+\))$"
)
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+(?:-[a-z0-9]+)?\.[a-z0-9]+$")


def _split_csv(value: Any) -> Any:
    """Accept "0.1,0.25,0.5" from ``-c`` as well as a JSON list from cdk.json."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


InstanceType = Annotated[
    str,
    Field(
        pattern=_INSTANCE_TYPE.pattern,
        description="a SageMaker ML instance type such as ml.m5.large",
    ),
]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ConfigError(ValueError):
    """One or more context values are invalid; the message names every bad key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"Invalid platform configuration (cdk.json context / -c):\n{lines}")


class PlatformConfig(BaseModel):
    """Everything a stage of the platform is configured by."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    # Identity. Both go into resource names, so they are short, lowercase and DNS-safe.
    project: str = Field(
        default="mlops",
        pattern=r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$",
        description="3-20 characters: lowercase letters, digits and '-', starting with a letter",
    )
    stage: str = Field(
        default="dev",
        pattern=r"^[a-z][a-z0-9]{0,9}$",
        description="1-10 lowercase letters or digits, starting with a letter (e.g. dev, prod)",
    )
    account: Annotated[
        str | None,
        BeforeValidator(_empty_to_none),
        Field(pattern=r"^\d{12}$", description="a 12-digit AWS account id"),
    ] = None
    region: str = Field(
        default="us-east-1",
        pattern=r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$",
        description="an AWS region name such as us-east-1",
    )
    model_family: str = Field(
        default="visits",
        pattern=r"^[a-z](?:[a-z0-9-]{0,29}[a-z0-9])?$",
        description=(
            "1-31 lowercase letters, digits or '-', starting with a letter and not ending "
            "with '-': names the model package group"
        ),
    )

    # Compute.
    processing_instance_type: InstanceType = "ml.m5.large"
    training_instance_type: InstanceType = "ml.m5.large"
    champion_instance_type: InstanceType = "ml.m5.large"
    challenger_instance_type: InstanceType = "ml.m5.large"
    endpoint_min_instances: int = Field(default=1, ge=1, le=100)
    latency_alarm_ms: int = Field(default=500, ge=1, le=600_000)
    error_alarm_count: int = Field(default=5, ge=1, le=1_000_000)
    endpoint_max_instances: int = Field(default=4, ge=1, le=100)
    # Lambda reservations must leave 100 unreserved executions in the account; a new
    # account's limit is often 10, so no reservation by default (`mlops aws preflight`).
    function_reserved_concurrency: int = Field(default=0, ge=0, le=1000)
    # Training and processing jobs and the endpoint's models run in these subnets when set
    # (both lists or neither); without them, jobs that need no internet get network isolation.
    vpc_subnet_ids: Annotated[list[str], BeforeValidator(_split_csv)] = Field(default_factory=list)
    vpc_security_group_ids: Annotated[list[str], BeforeValidator(_split_csv)] = Field(
        default_factory=list
    )
    # The account-wide log groups SageMaker jobs write to are created (KMS, retention) by the
    # pipeline stack; turn off where another stack or a previous deployment already owns them.
    create_job_log_groups: bool = True
    invocations_per_instance_target: int = Field(default=750, ge=1, le=100_000)

    # Rollout and traffic.
    challenger_initial_weight: Fraction = 0.1
    rollout_steps: Annotated[list[Fraction], BeforeValidator(_split_csv)] = Field(
        default_factory=lambda: [0.1, 0.25, 0.5]
    )

    # Data capture, drift and quality thresholds.
    capture_sampling_percentage: int = Field(default=100, ge=1, le=100)
    drift_schedule: str = Field(
        default="rate(1 hour)",
        description="an EventBridge schedule: rate(N minutes|hours|days) or cron(6 fields)",
    )
    drift_threshold: float = Field(default=0.1, gt=0.0, le=1.0, allow_inf_nan=False)
    drift_share_threshold: Fraction = 0.5
    # Below ~1,000 rows, distance tests on scores flag noise (README: "Drift monitoring").
    min_rows_for_drift: int = Field(default=1000, ge=1)
    model_metric_threshold: Fraction = 0.6
    retrain_cooldown_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Concept drift: the AUC on labelled window rows may fall this far below evaluation's.
    quality_drop_tolerance: float = Field(default=0.05, gt=0.0, le=1.0, allow_inf_nan=False)
    # Evidently's HTML report runs on a sample of this many rows (the verdicts use every row).
    drift_report_sample_rows: int = Field(default=10_000, ge=1_000, le=1_000_000)
    # A drift window never reaches back further than this, however long since the last check.
    drift_max_window_hours: int = Field(default=24, ge=1, le=24 * 7)
    # A window ends this long before its check: SageMaker writes capture files minutes late.
    drift_capture_delay_minutes: int = Field(default=5, ge=0, le=60)
    # A window whose capture files hold more than this many MB (10^6 bytes, as listed in S3) is
    # checked by a SageMaker Processing job over drift_job_instance_count instances instead of
    # in the drift function. Default: half the largest window one 3,008 MB function checks
    # within 80% of its memory and 15 minutes (memory binds: ~3.2 GB of one-row CSV requests),
    # from benchmarks/drift_window_limits.py at 1M and 3M records: 275 bytes of memory and
    # 3.1 us per record, 355 MB fixed, 426 bytes of capture per record (README: "When the
    # drift check runs as a Processing job").
    drift_job_threshold_mb: float = Field(default=1600.0, gt=0.0, allow_inf_nan=False)
    drift_job_instance_type: InstanceType = "ml.m5.xlarge"
    drift_job_instance_count: int = Field(default=2, ge=1, le=20)
    drift_job_volume_gb: int = Field(default=30, ge=1, le=16384)
    drift_job_max_runtime_minutes: int = Field(default=60, ge=5, le=24 * 60)

    # Retention.
    capture_expiration_days: int = Field(default=30, ge=1, le=3650)
    noncurrent_version_expiration_days: int = Field(default=90, ge=1, le=3650)
    access_log_expiration_days: int = Field(default=365, ge=1, le=3650)
    log_retention_days: int = 90

    # Feature flags.
    enable_mlflow_server: bool = False
    mlflow_server_size: Literal["Small", "Medium", "Large"] = "Small"
    # A team's own MLflow server (http(s)://...), instead of the managed one: training logs
    # its runs there, with artifacts in the artifacts bucket's mlflow/ prefix (README: MLflow).
    mlflow_tracking_uri: Annotated[
        str | None,
        BeforeValidator(_empty_to_none),
        Field(
            pattern=r"^https?://[^\s/]+(/\S*)?$",
            description="an MLflow tracking server URL (http:// or https://)",
        ),
    ] = None
    auto_rollback_on_challenger_drift: bool = True
    retrain_on_champion_drift: bool = False
    notification_email: Annotated[
        str | None,
        BeforeValidator(_empty_to_none),
        Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="an e-mail address"),
    ] = None

    @field_validator(
        "endpoint_min_instances",
        "endpoint_max_instances",
        "invocations_per_instance_target",
        "latency_alarm_ms",
        "error_alarm_count",
        "challenger_initial_weight",
        "rollout_steps",
        "capture_sampling_percentage",
        "drift_threshold",
        "drift_share_threshold",
        "min_rows_for_drift",
        "model_metric_threshold",
        "retrain_cooldown_hours",
        "quality_drop_tolerance",
        "drift_report_sample_rows",
        "drift_max_window_hours",
        "drift_capture_delay_minutes",
        "drift_job_threshold_mb",
        "drift_job_instance_count",
        "drift_job_volume_gb",
        "drift_job_max_runtime_minutes",
        "capture_expiration_days",
        "noncurrent_version_expiration_days",
        "access_log_expiration_days",
        "log_retention_days",
        "function_reserved_concurrency",
        mode="before",
    )
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        # JSON true would otherwise pass as 1 (and send all traffic to a challenger).
        values = value if isinstance(value, list) else [value]
        if any(
            isinstance(v, bool) or (isinstance(v, str) and v.lower() in ("true", "false"))
            for v in values
        ):
            raise ValueError("must be a number, not true/false")
        return value

    @field_validator("drift_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not _SCHEDULE.match(value):
            raise ValueError(
                "must be an EventBridge schedule such as 'rate(5 minutes)', 'rate(1 hour)' "
                "or 'cron(0 * * * ? *)'"
            )
        if value.startswith("cron("):
            fields = value[len("cron(") : -1].split()
            if (fields[2] == "?") == (fields[4] == "?"):
                raise ValueError(
                    "an EventBridge cron needs '?' in exactly one of day-of-month and "
                    "day-of-week, e.g. 'cron(0 * * * ? *)'"
                )
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
            raise ValueError(f"CloudWatch Logs accepts only these values: {allowed}")
        return value

    @field_validator("rollout_steps")
    @classmethod
    def _steps(cls, value: list[float], info: ValidationInfo) -> list[float]:
        if not value:
            raise ValueError("must name at least one challenger weight, e.g. '0.1,0.25,0.5'")
        if value[0] <= 0:
            raise ValueError("challenger weights must be above 0, e.g. '0.1,0.25,0.5'")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("challenger weights must rise strictly, e.g. '0.1,0.25,0.5'")
        initial = info.data.get("challenger_initial_weight")
        if initial is not None and value[0] < initial:
            raise ValueError(
                f"the first step ({value[0]:g}) is below challenger_initial_weight ({initial:g}): "
                "a rollout only raises the challenger's weight"
            )
        return value

    @field_validator(
        "champion_instance_type", "challenger_instance_type", "drift_job_instance_type"
    )
    @classmethod
    def _volume_key_possible(cls, value: str) -> str:
        if instance_has_local_nvme(value):
            raise ValueError(
                f"{value} has local NVMe storage, which cannot take the KMS volume key this "
                "platform puts on every endpoint and drift job; choose an EBS-backed type such "
                "as ml.m5.large"
            )
        return value

    @field_validator("vpc_subnet_ids")
    @classmethod
    def _subnets(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", v)]
        if bad:
            raise ValueError(f"subnet ids look like subnet-0123456789abcdef0 (got {bad})")
        return value

    @field_validator("vpc_security_group_ids")
    @classmethod
    def _security_groups(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.fullmatch(r"sg-[0-9a-f]{8,17}", v)]
        if bad:
            raise ValueError(f"security group ids look like sg-0123456789abcdef0 (got {bad})")
        return value

    @model_validator(mode="after")
    def _vpc_complete(self) -> PlatformConfig:
        if bool(self.vpc_subnet_ids) != bool(self.vpc_security_group_ids):
            raise ValueError("set vpc_subnet_ids and vpc_security_group_ids together, or neither")
        if self.enable_mlflow_server and self.mlflow_tracking_uri:
            raise ValueError(
                "set enable_mlflow_server (the managed server) or mlflow_tracking_uri (your own "
                "server), not both: training logs to one tracking server"
            )
        return self

    @field_validator("endpoint_max_instances")
    @classmethod
    def _max_instances(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("endpoint_min_instances")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be >= endpoint_min_instances ({minimum})")
        return value

    # Derived names: one place decides how resources are named.
    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.stage}"

    @property
    def model_package_group_name(self) -> str:
        return f"{self.prefix}-{self.model_family}"

    @property
    def endpoint_name(self) -> str:
        return f"{self.prefix}-{self.model_family}"

    def weight_parameter(self, variant: str) -> str:
        """SSM parameter holding a variant's current weight: the endpoint config reads it."""
        return f"/{self.project}/{self.stage}/serving/{variant}-weight"

    @property
    def uses_vpc(self) -> bool:
        return bool(self.vpc_subnet_ids)

    @property
    def pipeline_name(self) -> str:
        return f"{self.prefix}-training"

    @property
    def mlflow_tracking_server_name(self) -> str:
        return f"{self.prefix}-mlflow"

    @classmethod
    def from_context(
        cls,
        context: Mapping[str, Any],
        *,
        default_account: str | None = None,
        default_region: str | None = None,
    ) -> PlatformConfig:
        """Build the config from CDK context; keys CDK itself owns are ignored.

        ``default_account``/``default_region`` (CDK_DEFAULT_*) fill ``account``/``region``
        only when the context does not set them.
        """
        values = {k: v for k, v in context.items() if not _is_cdk_owned(k)}
        problems = [_unknown_key(key) for key in values if key not in cls.model_fields]
        if problems:
            raise ConfigError(problems)
        if not values.get("account") and default_account:
            values["account"] = default_account
        if "region" not in values and default_region:
            values["region"] = default_region
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError([_describe(err, values) for err in exc.errors()]) from None


def read_cdk_json_context(path: Path) -> dict[str, Any]:
    """The "context" object of a cdk.json file: what the CDK CLI hands the app by default."""
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError([f"cannot read {path}: {exc}"]) from None
    context = document.get("context", {}) if isinstance(document, dict) else None
    if not isinstance(context, dict):
        raise ConfigError([f"{path}: 'context' must be a JSON object"])
    return context


def instance_has_local_nvme(instance_type: str) -> bool:
    """True for instance types whose ML volume cannot take a KMS key (local NVMe storage)."""
    family = instance_type.removeprefix("ml.").split(".")[0]
    return family in _NVME_FAMILIES or family.endswith(("d", "dn"))


# Keys the CDK CLI itself writes into the context (cdk.context.json, `cdk acknowledge`, ...).
_CDK_CLI_KEYS = frozenset({"acknowledged-issue-numbers", "cli-telemetry"})


def _is_cdk_owned(key: str) -> bool:
    if key in _CDK_CLI_KEYS or key.startswith(
        ("@aws-cdk/", "@aws-cdk-containers/", "aws:cdk:", "aws-cdk:")
    ):
        return True
    # Cached context lookups look like "availability-zones:account=...:region=...".
    return ":" in key and "=" in key


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key, PlatformConfig.model_fields, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"'{key}': unknown setting{hint}"


def _describe(err: Any, values: Mapping[str, Any]) -> str:
    loc = err["loc"]
    key = str(loc[0]) if loc else "(config)"
    got = values.get(key, "<missing>") if loc else None
    field = PlatformConfig.model_fields.get(key)
    allowed = field.description if field is not None and field.description else None
    message = err["msg"].removeprefix("Value error, ")
    # pydantic's pattern message prints the regex; the description says it in words.
    if err["type"] == "string_pattern_mismatch" and allowed:
        message = f"must be {allowed}"
    elif allowed and err["type"] not in ("value_error",) and "must" not in message:
        message = f"{message} (allowed: {allowed})"
    where = key if len(loc) <= 1 else f"{key}[{loc[1]}]"
    got_text = f" (got {got!r})" if loc else ""
    return f"'{where}': {message}{got_text}"
