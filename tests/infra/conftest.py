"""The CDK app, built once per session from cdk.json's context (plus overrides)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from mlops.core.config import PlatformConfig, read_cdk_json_context
from stacks.platform import Platform, build_platform
from tests.conftest import ROOT

BuildFn = Callable[..., tuple[cdk.App, Platform]]


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
def mlflow_pipeline_template(mlflow_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(mlflow_platform[1].pipeline)


@pytest.fixture(scope="session")
def serving_template(default_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(default_platform[1].serving)
