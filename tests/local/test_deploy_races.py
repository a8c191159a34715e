"""A deployment (the deploy function's flow: a new challenger) racing a rollback on the twin.

Both hold the endpoint's lease, so they run one after the other: both complete (the rollback
never meets the endpoint half re-created: the twin re-creates it on a new config), and the
endpoint (and SSM, which both write) ends as the later of the two left it. 10 rounds: the races between traffic decisions
(tests/local/test_traffic_races.py) are the 50-round proof; this adds the deploy function.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

from mlops.adapters import endpoints
from mlops.adapters.lease import EndpointLease
from mlops.adapters.target import EMULATOR_ACCOUNT, AwsTarget
from mlops.core import names
from mlops.core.approval import PackageScope
from mlops.core.config import PlatformConfig
from mlops.core.functions import TrafficSettings
from mlops.local.deployment import EmulatorDeployment
from mlops.local.emulator import bootstrap
from mlops.usecases.apply_traffic import TrafficRequest, traffic_controller
from mlops.usecases.approve import ServingRequest, change_serving

ROUNDS = 10


def run_at(
    barrier: threading.Barrier, results: dict[str, Any], name: str, work: Any, *args: Any
) -> None:
    barrier.wait()
    try:
        results[name] = work(*args)
    except Exception as exc:  # reported by the test
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}


def test_a_deployment_racing_a_rollback_is_serialized(emulator: AwsTarget) -> None:
    config = PlatformConfig()
    resources = bootstrap(emulator, config)
    sagemaker = emulator.client("sagemaker")
    ssm = emulator.client("ssm")

    def package() -> str:
        return str(
            sagemaker.create_model_package(
                ModelPackageGroupName=config.model_package_group_name,
                ModelApprovalStatus="Approved",
                InferenceSpecification={
                    "Containers": [{"Image": "visits:1", "ModelDataUrl": "s3://a/model.tar.gz"}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
            )["ModelPackageArn"]
        )

    def deploy(arn: str, request_id: str) -> dict[str, Any]:
        outcome = change_serving(
            ServingRequest("deploy", "deployer", "approved", arn, request_id),
            deployment=EmulatorDeployment(
                sagemaker=emulator.client("sagemaker"),
                config=config,
                resources=resources,
                ssm=emulator.client("ssm"),
            ),
            registry=emulator.client("sagemaker"),
            scope=PackageScope(config.model_package_group_name, EMULATOR_ACCOUNT, emulator.region),
            endpoint=config.endpoint_name,
            initial_challenger_weight=0.1,
            s3=emulator.client("s3"),
            audit_bucket=resources.reports_bucket,
        )
        return {"record": outcome.record}

    settings = TrafficSettings.for_platform(
        config, audit_bucket=resources.reports_bucket, topic_arn=None
    )
    deploy(package(), "first")
    problems: list[str] = []
    lease = EndpointLease(emulator.client("s3"), resources.reports_bucket, config.endpoint_name)
    for round_ in range(ROUNDS):
        arn = package()
        before_round = lease.read()[0].sequence
        weights_before = endpoints.describe(sagemaker, config.endpoint_name).weights
        results: dict[str, Any] = {}
        barrier = threading.Barrier(2)
        rollback = TrafficRequest.parse(
            {"action": "rollback", "endpoint": config.endpoint_name, "reason": "race",
             "requested_by": "alarm", "request_id": f"rollback-{round_}"}
        )  # fmt: skip
        controller = traffic_controller(settings, emulator, send_instance_counts=True)
        threads = [
            threading.Thread(
                target=run_at, args=(barrier, results, "deploy", deploy, arn, f"deploy-{round_}")
            ),
            threading.Thread(
                target=run_at,
                args=(
                    barrier,
                    results,
                    "rollback",
                    lambda r, c=controller: asdict(c.apply(r)),
                    rollback,
                ),
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        errors = [f"{k}: {v['error']}" for k, v in results.items() if "error" in v]
        if errors:
            problems += [f"round {round_}: {e}" for e in errors]
            continue
        ledger, _, _ = lease.read()
        assert ledger.last is not None
        # One after the other: two decisions in the ledger, and the rollback started from the
        # weights in force when it ran (before the deployment, or the new challenger's 0.1).
        if ledger.sequence != before_round + 2:
            problems.append(f"round {round_}: the ledger moved {before_round} -> {ledger.sequence}")
        rolled = results["rollback"]
        started_from = (
            weights_before
            if rolled["sequence"] == before_round + 1
            else {"champion": 0.9, "challenger": 0.1}
        )
        if rolled["weights_before"] != started_from:
            problems.append(
                f"round {round_}: the rollback (#{rolled['sequence']}) decided from "
                f"{rolled['weights_before']}, not {started_from}"
            )
        state = endpoints.describe(sagemaker, config.endpoint_name)
        serving = EmulatorDeployment(
            sagemaker=sagemaker, config=config, resources=resources
        ).current()
        if serving.challenger != arn:
            problems.append(f"round {round_}: the challenger is {serving.challenger}, not {arn}")
        # The later decision shapes the endpoint: a rollback after the deployment leaves the
        # new challenger at 0; a deployment after the rollback starts it at 0.1.
        expected = 0.0 if ledger.last.action == "rollback" else 0.1
        stored = {
            variant: float(ssm.get_parameter(Name=name)["Parameter"]["Value"])
            for variant, name in names.weight_parameters(config).items()
        }
        if stored != state.weights:
            problems.append(f"round {round_}: SSM holds {stored}, the endpoint {state.weights}")
        if abs(state.weights.get("challenger", -1) - expected) > 1e-9:
            problems.append(
                f"round {round_}: last was {ledger.last.action}, challenger at {state.weights}"
            )
    assert not problems, "\n".join(problems[:10])
