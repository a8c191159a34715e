"""Shared fixtures. Everything here is offline: no AWS account, no network."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Before aws_cdk is imported anywhere: run jsii on the pinned Node 22 when it is installed.
_pinned_node = ROOT / "node_modules" / "node" / "bin" / "node"
if _pinned_node.exists():
    os.environ.setdefault("JSII_NODE", str(_pinned_node))
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from mlops.aws import AwsTarget  # noqa: E402
from mlops.config import PlatformConfig, read_cdk_json_context  # noqa: E402
from stacks.platform import Platform, build_platform  # noqa: E402

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
def emulator_url() -> Iterator[str]:
    """One moto server on 127.0.0.1 for the session: the embedded default's emulator."""
    import logging  # noqa: PLC0415

    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    logging.getLogger("werkzeug").disabled = True
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def emulator(emulator_url: str) -> Iterator[AwsTarget]:
    """A clean emulator for one test (state reset before and after)."""
    reset = urllib.request.Request(f"{emulator_url}/moto-api/reset", method="POST")  # noqa: S310
    urllib.request.urlopen(reset).close()  # noqa: S310 - loopback
    yield AwsTarget(region="us-east-1", endpoint_url=emulator_url)
    urllib.request.urlopen(reset).close()  # noqa: S310


@pytest.fixture(scope="session")
def pipeline_template(default_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(default_platform[1].pipeline)


@pytest.fixture(scope="session")
def mlflow_pipeline_template(mlflow_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(mlflow_platform[1].pipeline)


@pytest.fixture(scope="session")
def serving_template(default_platform: tuple[cdk.App, Platform]) -> Template:
    return Template.from_stack(default_platform[1].serving)
