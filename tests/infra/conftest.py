"""The CDK app, built once per session from cdk.json's context (plus overrides)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from mlops.core.config import PlatformConfig, read_cdk_json_context
from stacks.platform import Platform, build_platform
from tests.conftest import ROOT

BuildFn = Callable[..., tuple[cdk.App, Platform]]

# A context that differs from the default in every setting the serving stack's mirrored
# resources and function environments depend on (tests compare both contexts).
VARIED_CONTEXT: dict[str, Any] = {
    "retrain_on_champion_drift": True,
    "auto_rollback_on_challenger_drift": False,
    "enable_mlflow_server": True,
    "drift_schedule": "rate(5 minutes)",
    "latency_alarm_ms": 250,
    "error_alarm_count": 3,
    "capture_sampling_percentage": 40,
    "rollout_steps": "0.2,0.6",
}


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> BuildFn:
    """Build the platform from cdk.json's context plus overrides, as `cdk synth` would."""

    def _build(**overrides: Any) -> tuple[cdk.App, Platform]:
        context = {**read_cdk_json_context(ROOT / "cdk.json"), **overrides}
        outdir = tmp_path_factory.mktemp("cdk.out")
        app = cdk.App(context=context, outdir=str(outdir), analytics_reporting=False)
        return app, build_platform(app, PlatformConfig.from_context(context))

    return _build


@pytest.fixture(scope="session")
def built(build: BuildFn, default_platform: tuple[cdk.App, Platform]) -> BuildFn:
    """``build``, once per set of overrides, for tests that only read what was built
    (synthesis is deterministic, and each build costs seconds)."""
    cache: dict[str, tuple[cdk.App, Platform]] = {"{}": default_platform}

    def _built(**overrides: Any) -> tuple[cdk.App, Platform]:
        key = json.dumps(overrides, sort_keys=True)
        if key not in cache:
            cache[key] = build(**overrides)
        return cache[key]

    return _built


@pytest.fixture(scope="session")
def default_platform(build: BuildFn) -> tuple[cdk.App, Platform]:
    return build()


@pytest.fixture(scope="session")
def mlflow_platform(build: BuildFn) -> tuple[cdk.App, Platform]:
    return build(enable_mlflow_server=True)


@pytest.fixture(scope="session")
def storage_template(default_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(default_platform[1].storage)


@pytest.fixture(scope="session")
def registry_template(default_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(default_platform[1].registry)


@pytest.fixture(scope="session")
def mlflow_registry_template(mlflow_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(mlflow_platform[1].registry)


@pytest.fixture(scope="session")
def pipeline_template(default_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(default_platform[1].pipeline)


@pytest.fixture(scope="session")
def own_mlflow_platform(build: BuildFn) -> tuple[cdk.App, Platform]:
    """Tracked on a team's own MLflow server, with its artifacts in the artifacts bucket."""
    return build(mlflow_tracking_uri="https://mlflow.example.com")


@pytest.fixture(scope="session")
def mlflow_pipeline_template(mlflow_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(mlflow_platform[1].pipeline)


@pytest.fixture(scope="session")
def serving_template(default_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(default_platform[1].serving)
