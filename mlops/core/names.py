"""Names of the platform's resources, decided once: stacks, alarms, parameters, S3 prefixes.

The stacks name what they create with these, the functions find what they act on with them,
and the embedded default creates the same names. Alarm names carry the endpoint and the
variant, so an alarm event says what it is about. Pure: no AWS here.
"""

from __future__ import annotations

import re

from mlops.core.config import PlatformConfig

CHAMPION = "champion"
CHALLENGER = "challenger"
VARIANTS = (CHAMPION, CHALLENGER)

# S3 prefixes in the capture bucket.
CAPTURE_PREFIX = "capture"  # capture/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl (SageMaker's)
GROUND_TRUTH_PREFIX = "ground-truth"  # ground-truth/<endpoint>/yyyy/mm/dd/hh/ (Model Monitor's)
# S3 prefixes in the reports bucket.
DRIFT_REPORTS_PREFIX = "drift"  # drift/<endpoint>/<variant>/yyyy/mm/dd/<time>-<run>.json|html
# MLflow's artifact store in the artifacts bucket: s3://<artifacts>/mlflow/<experiment>/...
# (the managed server's, a team's own server's, and the embedded default's alike).
MLFLOW_ARTIFACT_PREFIX = "mlflow"
TRAFFIC_AUDIT_PREFIX = "audit/traffic"
SERVING_AUDIT_PREFIX = "audit/serving"
RETRAINING_AUDIT_PREFIX = "audit/retraining"
# Drift checks run as SageMaker Processing jobs are named <prefix>-drift-<digest>; their files are
# under drift/<endpoint>/jobs/<job>/ in the reports bucket (mlops.core.drift_job).
DRIFT_JOB = "drift"
# leases/<endpoint>.json: the ledger every weight change holds (mlops.core.lease).
LEASE_PREFIX = "leases"
# claims/<kind>/<endpoint>/<request id>.json: a request's decision, written before it acts.
TRAFFIC_CLAIMS_PREFIX = "claims/traffic"
SERVING_CLAIMS_PREFIX = "claims/serving"


def storage_stack(config: PlatformConfig) -> str:
    return f"{config.prefix}-storage"


def registry_stack(config: PlatformConfig) -> str:
    return f"{config.prefix}-registry"


def pipeline_stack(config: PlatformConfig) -> str:
    return f"{config.prefix}-pipeline"


def serving_stack(config: PlatformConfig) -> str:
    return f"{config.prefix}-serving"


def drift_processing_role(config: PlatformConfig) -> str:
    """The role a drift check's Processing job runs as (read the window, write summaries)."""
    return f"{config.prefix}-drift-processing"


def dashboard(config: PlatformConfig) -> str:
    return f"{config.prefix}-serving"


def data_key_alias(config: PlatformConfig) -> str:
    return f"alias/{config.prefix}-data"


def weight_parameters(config: PlatformConfig) -> dict[str, str]:
    """variant -> the SSM parameter that holds its weight in force."""
    return {variant: config.weight_parameter(variant) for variant in VARIANTS}


# Per-variant alarms on the endpoint's own metrics: <endpoint>-<variant>-5xx|latency.
ALARM_METRICS = ("5xx", "latency")
DRIFT_ALARM = "drift"  # the drift check's alarm: <endpoint>-<variant>-drift


def variant_alarms(endpoint: str, variant: str) -> tuple[str, ...]:
    return tuple(f"{endpoint}-{variant}-{metric}" for metric in ALARM_METRICS)


def drift_alarm(endpoint: str, variant: str) -> str:
    return f"{endpoint}-{variant}-{DRIFT_ALARM}"


def challenger_gate_alarms(endpoint: str, *, drift: bool) -> tuple[str, ...]:
    """The challenger's alarms that roll it back and hold its rollout: 5XX and latency, and
    its drift alarm when drift rolls back too (auto_rollback_on_challenger_drift)."""
    alarms = variant_alarms(endpoint, CHALLENGER)
    return (*alarms, drift_alarm(endpoint, CHALLENGER)) if drift else alarms


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def schedule_seconds(schedule: str) -> int:
    """The interval of a rate() schedule; an hour for a cron() one (checked hourly at most)."""
    match = _RATE.match(schedule)
    if not match:
        return 3600
    return int(match.group(1)) * _SECONDS[match.group(2).rstrip("s")]
