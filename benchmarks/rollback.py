"""How long a rollback takes from trigger to new weights requested, and how many API calls.

Runs the traffic controller (the code the traffic Lambda runs) against the AWS emulator on
127.0.0.1, over real HTTP, alternating a shift to the challenger and a rollback; prints
medians. In AWS, add the API latency of each call (tens of ms) and, while an endpoint is
Updating, the bounded backoff (1, 2, 4, 8, 16 s, then 20 s; at most 17 attempts, 251 s).

    .venv/bin/python benchmarks/rollback.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import functools
import logging
import statistics
import time
import uuid
from collections import Counter

from moto.server import ThreadedMotoServer

from mlops.adapters.target import AwsTarget, observe_calls
from mlops.core.functions import TrafficSettings
from mlops.core.names import CHALLENGER, CHAMPION, variant_alarms
from mlops.local.moto_server import atomic_conditional_writes
from mlops.usecases.apply_traffic import TrafficRequest, traffic_controller

ENDPOINT = "bench-endpoint"


def setup(target: AwsTarget) -> str:
    sagemaker = target.client("sagemaker")
    for variant in ("champion", "challenger"):
        sagemaker.create_model(
            ModelName=f"{ENDPOINT}-{variant}",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/serving",
            PrimaryContainer={"Image": "image", "ModelDataUrl": f"s3://b/{variant}.tar.gz"},
        )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{ENDPOINT}-config",
        ProductionVariants=[
            {"VariantName": v, "ModelName": f"{ENDPOINT}-{v}", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": w}
            for v, w in (("champion", 0.9), ("challenger", 0.1))
        ],
    )  # fmt: skip
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-config")
    target.client("s3").create_bucket(Bucket="bench-reports")
    sns = target.client("sns")
    return str(sns.create_topic(Name="bench-alerts")["TopicArn"])


def count(made: Counter[str], _service: str, operation: str, _params: object) -> None:
    made[operation] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    logging.getLogger("werkzeug").disabled = True
    atomic_conditional_writes()  # as the embedded default's emulator does
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    target = AwsTarget(region="us-east-1", endpoint_url=f"http://{host}:{port}")
    try:
        topic = setup(target)
        # Wired as the traffic function and the CLI are (its settings contract).
        settings = TrafficSettings(
            endpoint_name=ENDPOINT,
            audit_bucket="bench-reports",
            topic_arn=topic,
            rollout_steps=(0.1, 0.25, 0.5),
            gate_alarms=variant_alarms(ENDPOINT, CHALLENGER),
            weight_parameters={v: f"/bench/serving/{v}-weight" for v in (CHAMPION, CHALLENGER)},
        )
        controller = traffic_controller(settings, target)
        to_request, end_to_end, calls = [], [], []
        for _ in range(args.rounds):
            base = {"endpoint": ENDPOINT, "requested_by": "benchmark", "reason": "benchmark round"}
            controller.apply(
                TrafficRequest.parse(
                    {**base, "action": "shift", "challenger": 0.25, "request_id": str(uuid.uuid4())}
                )
            )
            made: Counter[str] = Counter()
            started = time.perf_counter()
            with observe_calls(functools.partial(count, made)):
                outcome = controller.apply(
                    TrafficRequest.parse(
                        {**base, "action": "rollback", "request_id": str(uuid.uuid4())}
                    )
                )
            end_to_end.append(time.perf_counter() - started)
            if outcome.weights_after != {"champion": 1.0, "challenger": 0.0}:
                raise SystemExit(f"rollback did not happen: {outcome}")
            to_request.append(outcome.seconds_to_request or 0.0)
            calls.append(made)
        total_calls = [sum(c.values()) for c in calls]
        print(f"rollback on the emulator, {args.rounds} rounds")
        print(
            f"  trigger -> new weights requested: median {statistics.median(to_request) * 1000:.1f} ms "
            f"(min {min(to_request) * 1000:.1f}, max {max(to_request) * 1000:.1f})"
        )
        print(
            f"  whole action (incl. audit record and notification): median {statistics.median(end_to_end) * 1000:.1f} ms"
        )
        print(
            f"  API calls per rollback: {statistics.median(total_calls):.0f} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(calls[0].items()))})"
        )
        print(
            "  while the endpoint is Updating: + 1, 2, 4, 8, 16 s, then 20 s of backoff, "
            "17 attempts and 251 s at most"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
