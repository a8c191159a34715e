"""What reacts to what: the drift function's settings, the drift alarms, and the alarm routes.

Pure (no AWS, no CDK): the serving stack builds its EventBridge rules, alarms and the drift
function's environment from these, and the embedded default (mlops.emulated_aws) evaluates
and routes the same alarms to the same handlers, so the two cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlops.config import PlatformConfig
from mlops.traffic import CHAMPION, challenger_gate_alarms, drift_alarm_name

DRIFT_NAMESPACE = "MLOps/Drift"
DRIFT_METRIC = "DriftDetected"  # 1 when a checked window drifted, 0 when not; none without data
DRIFT_ALARM_PERIODS = 2  # ALARM while either of the last two checks drifted (1 datapoint)
GROUND_TRUTH_PREFIX = (
    "ground-truth"  # in the capture bucket: ground-truth/<endpoint>/yyyy/mm/dd/hh/
)
CAPTURE_PREFIX = "capture"
TRAFFIC = "traffic"
DRIFT = "drift"

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def schedule_seconds(schedule: str) -> int:
    """The interval of a rate() schedule; an hour for a cron() one (checked hourly at most)."""
    match = _RATE.match(schedule)
    if not match:
        return 3600
    return int(match.group(1)) * _SECONDS[match.group(2).rstrip("s")]


def drift_alarm_period(config: PlatformConfig) -> int:
    """One alarm period per scheduled check, within CloudWatch's one-day evaluation limit."""
    return min(max(schedule_seconds(config.drift_schedule), 60), 86400)


@dataclass(frozen=True)
class Route:
    """An EventBridge rule: alarms (to ALARM) -> the function that acts on them."""

    name: str
    description: str
    alarms: tuple[str, ...]
    target: str  # TRAFFIC | DRIFT


def alarm_routes(config: PlatformConfig) -> list[Route]:
    endpoint = config.endpoint_name
    routes = [
        Route(
            "ChallengerAlarmRule",
            "Roll back to the champion when a challenger alarm fires",
            challenger_gate_alarms(endpoint, drift=config.auto_rollback_on_challenger_drift),
            TRAFFIC,
        )
    ]
    if config.retrain_on_champion_drift:
        routes.append(
            Route(
                "ChampionDriftRule",
                "Start retraining when the champion drifts (one start per episode and cooldown)",
                (drift_alarm_name(endpoint, CHAMPION),),
                DRIFT,
            )
        )
    return routes


def drift_environment(
    config: PlatformConfig,
    *,
    reports_bucket: str,
    capture_bucket: str,
    topic_arn: str | None,
) -> dict[str, str]:
    """The drift function's environment (lambdas/drift/handler.py Settings)."""
    environment = {
        "ENDPOINT_NAME": config.endpoint_name,
        "REPORTS_BUCKET": reports_bucket,
        "CAPTURE_URI": f"s3://{capture_bucket}/{CAPTURE_PREFIX}",
        "GROUND_TRUTH_URI": f"s3://{capture_bucket}/{GROUND_TRUTH_PREFIX}",
        "MIN_ROWS": str(config.min_rows_for_drift),
        "SHARE_THRESHOLD": f"{config.drift_share_threshold:g}",
        "DISTANCE_THRESHOLD": f"{config.drift_threshold:g}",
        "QUALITY_TOLERANCE": f"{config.quality_drop_tolerance:g}",
        "REPORT_SAMPLE_ROWS": str(config.drift_report_sample_rows),
        "FIRST_WINDOW_MINUTES": str(max(1, schedule_seconds(config.drift_schedule) // 60)),
        "MAX_WINDOW_HOURS": str(config.drift_max_window_hours),
        "CAPTURE_DELAY_MINUTES": str(config.drift_capture_delay_minutes),
        "PIPELINE_NAME": config.pipeline_name,
        "RETRAIN_ON_CHAMPION_DRIFT": str(config.retrain_on_champion_drift).lower(),
        "RETRAIN_COOLDOWN_HOURS": str(config.retrain_cooldown_hours),
        "POWERTOOLS_SERVICE_NAME": "drift",
    }
    if topic_arn:
        environment["TOPIC_ARN"] = topic_arn
    return environment
