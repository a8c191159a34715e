"""Shared fixtures and the test kinds. Everything here is offline: no AWS account, no network.

Tests live in one folder per kind, and each test is marked with its folder's kind:
- ``tests/unit``: the pure core and small adapters, in-process (``pytest -m unit``: seconds);
- ``tests/infra``: the CDK app: synthesized templates, cdk-nag, cfn-lint, image recipes;
- ``tests/local``: the embedded default: the AWS emulator, the local endpoint and pipeline;
- ``tests/e2e``: the whole lifecycle (the demo).
"""

from __future__ import annotations

import os

# One OpenMP (and OpenBLAS) thread per test process, set before numpy or scikit-learn load;
# subprocesses inherit it. xdist already runs a process per core: OpenMP's threads in each
# (scikit-learn's gradient boosting fits and predicts) spin-waiting for a core the other
# worker holds made a 10-row predict ~15x and a fit ~6x slower here. Results do not depend on
# it (test_model_bytes_do_not_depend_on_the_cpu_count sets its own, 1 and 4).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops.adapters.target import AwsTarget

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("unit", "infra", "local", "e2e")

# Before aws_cdk is imported anywhere: run jsii on the pinned Node 22 when it is installed.
_pinned_node = ROOT / "node_modules" / "node" / "bin" / "node"
if _pinned_node.exists():
    os.environ.setdefault("JSII_NODE", str(_pinned_node))
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


def pytest_configure(config: pytest.Config) -> None:
    """xdist hands out test files in collection order (the kinds' folders, slowest first:
    the demo, the CDK app, the emulator; the many quick unit files last), not reordered by
    how many tests a file holds: that put the few-test, slow files (the demo, the synth,
    the fault and race runs) at the end, one worker running them while the other idled.
    ``--loadscope-reorder`` on the command line still asks for xdist's order."""
    if "--loadscope-reorder" not in config.invocation_params.args and hasattr(
        config.option, "loadscopereorder"
    ):
        config.option.loadscopereorder = False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``pytest -m unit`` (one kind) does not even import the other kinds' test modules:
    collecting the CDK or emulator tests costs more than running the unit tests."""
    kind = config.getoption("markexpr")
    folder = collection_path.parent == ROOT / "tests" and collection_path.name in KINDS
    return True if kind in KINDS and folder and collection_path.name != kind else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's kind; a test outside the kind folders is an error."""
    for item in items:
        kind = item.path.relative_to(ROOT / "tests").parts[0]
        if kind not in KINDS:
            raise pytest.UsageError(
                f"{item.path}: tests live in tests/<kind>/, kind one of {', '.join(KINDS)}"
            )
        item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """One moto server on 127.0.0.1 for the session: the embedded default's emulator."""
    import logging  # noqa: PLC0415

    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only tests that use it pay

    from mlops.local.moto_server import atomic_conditional_writes  # noqa: PLC0415

    atomic_conditional_writes()  # as the embedded default's emulator does
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
