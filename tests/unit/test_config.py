"""The typed config: cdk.json context and `-c key=value` strings in, clear errors out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops.core.config import (
    ConfigError,
    PlatformConfig,
    instance_has_local_nvme,
    read_cdk_json_context,
)

ROOT = Path(__file__).resolve().parents[2]


def problems(context: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        PlatformConfig.from_context(context)
    return caught.value.problems


def test_cdk_json_context_is_valid_and_matches_the_defaults() -> None:
    # Given the committed cdk.json, when it is read, then it validates, and it restates the
    # model's defaults (so cdk.json cannot silently drift from the code).
    from_json = PlatformConfig.from_context(read_cdk_json_context(ROOT / "cdk.json"))
    assert from_json == PlatformConfig()


def test_command_line_strings_are_coerced() -> None:
    config = PlatformConfig.from_context(
        {
            "enable_mlflow_server": "true",
            "capture_expiration_days": "7",
            "challenger_initial_weight": "0.2",
            "rollout_steps": "0.2, 0.5, 1",
            "log_retention_days": "30",
        }
    )
    assert config.enable_mlflow_server is True
    assert config.capture_expiration_days == 7
    assert config.challenger_initial_weight == pytest.approx(0.2)
    assert config.rollout_steps == [0.2, 0.5, 1.0]
    assert config.log_retention_days == 30


def test_cdk_owned_keys_are_ignored() -> None:
    config = PlatformConfig.from_context(
        {
            "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
            "aws:cdk:enable-path-metadata": True,
            # written by `cdk acknowledge`, `cdk cli-telemetry --disable`, context lookups:
            "acknowledged-issue-numbers": [32775],
            "cli-telemetry": False,
            "availability-zones:account=123456789012:region=us-east-1": ["us-east-1a"],
        }
    )
    assert config.stage == "dev"


def test_hyphenated_instance_families_are_valid() -> None:
    config = PlatformConfig.from_context({"training_instance_type": "ml.p6-b200.48xlarge"})
    assert config.training_instance_type == "ml.p6-b200.48xlarge"


@pytest.mark.parametrize(
    ("context", "key", "says"),
    [
        ({"stage": ""}, "'stage'", "1-10 lowercase letters or digits"),
        ({"stage": "Prod"}, "'stage'", "lowercase"),
        ({"project": "x"}, "'project'", "3-20 characters"),
        ({"region": "mars-1"}, "'region'", "AWS region name"),
        ({"account": "12345"}, "'account'", "12-digit"),
        ({"training_instance_type": "m5.large"}, "'training_instance_type'", "ml.m5.large"),
        ({"mlflow_server_size": "Huge"}, "'mlflow_server_size'", "'Small', 'Medium' or 'Large'"),
        ({"enable_mlflow_server": "maybe"}, "'enable_mlflow_server'", "valid boolean"),
        ({"log_retention_days": "10"}, "'log_retention_days'", "1, 3, 5, 7, 14, 30"),
        ({"drift_schedule": "every hour"}, "'drift_schedule'", "rate(5 minutes)"),
        ({"drift_schedule": "rate(1 minutes)"}, "'drift_schedule'", "EventBridge schedule"),
        ({"challenger_initial_weight": "nan"}, "'challenger_initial_weight'", "finite"),
        ({"challenger_initial_weight": "-0.1"}, "'challenger_initial_weight'", "greater than"),
        ({"rollout_steps": "0.5,0.2"}, "'rollout_steps'", "rise strictly"),
        ({"rollout_steps": ""}, "'rollout_steps'", "at least one"),
        ({"rollout_steps": "0.1,2"}, "'rollout_steps[1]'", "less than or equal to 1"),
        ({"capture_sampling_percentage": "0"}, "'capture_sampling_percentage'", "greater than"),
        (
            {"endpoint_min_instances": "3", "endpoint_max_instances": "2"},
            "'endpoint_max_instances'",
            ">= endpoint_min_instances (3)",
        ),
        ({"notification_email": "oncall"}, "'notification_email'", "e-mail"),
        ({"model_family": "churn-"}, "'model_family'", "not ending with '-'"),
        ({"endpoint_min_instances": True}, "'endpoint_min_instances'", "not true/false"),
        ({"challenger_initial_weight": "true"}, "'challenger_initial_weight'", "not true/false"),
        ({"drift_schedule": "cron(0 * * * * *)"}, "'drift_schedule'", "'?' in exactly one"),
        ({"rollout_steps": "0,0.5"}, "'rollout_steps'", "above 0"),
        (
            {"challenger_initial_weight": "0.3", "rollout_steps": "0.2,0.5"},
            "'rollout_steps'",
            "below challenger_initial_weight (0.3)",
        ),
        ({"stage:": "prod"}, "'stage:'", "unknown setting"),
        ({"champion_instance_type": "ml.g5.xlarge"}, "'champion_instance_type'", "local NVMe"),
        (
            {"challenger_instance_type": "ml.m5d.large"},
            "'challenger_instance_type'",
            "cannot take the KMS",
        ),
    ],
)
def test_bad_value_names_the_key_and_what_it_accepts(
    context: dict[str, Any], key: str, says: str
) -> None:
    found = problems(context)
    assert len(found) == 1, found
    assert found[0].startswith(key), found
    assert says in found[0], found


def test_every_bad_key_is_reported_at_once() -> None:
    found = problems({"stage": "", "region": "x", "mlflow_server_size": "XL"})
    assert [p.split(":")[0] for p in found] == ["'stage'", "'region'", "'mlflow_server_size'"]


def test_unknown_key_is_rejected_with_a_suggestion() -> None:
    found = problems({"stag": "prod"})
    assert found == ["'stag': unknown setting; did you mean 'stage'?"]


def test_error_message_lists_the_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        PlatformConfig.from_context({"stage": ""})
    assert "Invalid platform configuration" in str(caught.value)
    assert "'stage'" in str(caught.value)
    assert "(got '')" in str(caught.value)


def test_cdk_default_environment_fills_only_what_context_leaves_open() -> None:
    from_env = PlatformConfig.from_context(
        {}, default_account="111122223333", default_region="eu-west-1"
    )
    assert (from_env.account, from_env.region) == ("111122223333", "eu-west-1")
    pinned = PlatformConfig.from_context(
        {"account": "444455556666", "region": "us-west-2"},
        default_account="111122223333",
        default_region="eu-west-1",
    )
    assert (pinned.account, pinned.region) == ("444455556666", "us-west-2")
    assert PlatformConfig.from_context({}).account is None


def test_derived_names() -> None:
    config = PlatformConfig.from_context({"project": "acme-ml", "stage": "prod"})
    assert config.prefix == "acme-ml-prod"
    assert config.model_package_group_name == "acme-ml-prod-visits"
    assert config.mlflow_tracking_server_name == "acme-ml-prod-mlflow"


def test_config_is_immutable() -> None:
    config = PlatformConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.stage = "prod"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("instance_type", "nvme"),
    [
        ("ml.m5.large", False),
        ("ml.c5.xlarge", False),
        ("ml.m5d.large", True),
        ("ml.c5d.2xlarge", True),
        ("ml.g4dn.xlarge", True),
        ("ml.p4d.24xlarge", True),
        ("ml.g5.xlarge", True),
        ("ml.inf2.xlarge", False),  # EBS only
        ("ml.trn2.48xlarge", True),
        ("ml.p6-b200.48xlarge", True),
        ("ml.m6gd.large", True),
        ("ml.g5g.xlarge", False),
        ("ml.t2.medium", False),
    ],
)
def test_local_nvme_instance_types(instance_type: str, nvme: bool) -> None:
    assert instance_has_local_nvme(instance_type) is nvme


def test_unreadable_cdk_json_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "cdk.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        read_cdk_json_context(broken)
    broken.write_text('{"context": []}')
    with pytest.raises(ConfigError, match="'context' must be a JSON object"):
        read_cdk_json_context(broken)
