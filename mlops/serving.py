"""Which approved model packages serve as champion and challenger, and deploying that.

The decisions are pure (``on_approval``, ``on_promote``). ``EmulatorDeployment`` applies
them to the embedded default the way the serving stack's resources look in AWS: one
SageMaker model per package, one endpoint config with the fixed variants ``champion`` and
``challenger``, data capture of inputs and outputs to the capture bucket under the platform
key. (The emulator has no UpdateEndpoint: a changed config re-creates the endpoint there.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from mlops import endpoints
from mlops.automation import CAPTURE_PREFIX
from mlops.config import PlatformConfig
from mlops.registry import model_package_of
from mlops.resources import PlatformResources
from mlops.traffic import CHALLENGER, CHAMPION, TrafficError, shift_to, variant_alarm_names


@dataclass(frozen=True)
class ServingState:
    """The model package ARN each variant serves (None: the variant does not exist)."""

    champion: str | None = None
    challenger: str | None = None


@dataclass(frozen=True)
class ServingChange:
    state: ServingState
    weights: dict[str, float]
    changed: bool
    summary: str


def _version(arn: str | None) -> int:
    tail = (arn or "").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def on_approval(
    current: ServingState, approved: str, *, initial_challenger_weight: float
) -> ServingChange:
    """A newly approved package becomes the challenger; the first one becomes the champion.

    An approval event also fires when an approved package is edited: a version older than
    the one serving as challenger (or champion) is not deployed again.
    """
    serving = {current.champion, current.challenger}
    if approved in serving:
        role = CHALLENGER if approved == current.challenger else CHAMPION
        weights = (
            {CHAMPION: 1.0} if current.challenger is None else shift_to(initial_challenger_weight)
        )
        return ServingChange(current, weights, False, f"{approved} already serves as {role}")
    newest = max(_version(current.champion), _version(current.challenger))
    if current.champion is not None and 0 <= _version(approved) < newest:
        return ServingChange(
            current, {}, False, f"{approved} is older than the packages serving: not deployed"
        )
    if current.champion is None:
        return ServingChange(
            ServingState(champion=approved),
            {CHAMPION: 1.0},
            True,
            f"{approved} is the first champion",
        )
    replaced = (
        f" (replacing {current.challenger})"
        if current.challenger not in (None, current.champion)
        else ""
    )
    return ServingChange(
        ServingState(champion=current.champion, challenger=approved),
        shift_to(initial_challenger_weight),
        True,
        f"{approved} is the challenger at {initial_challenger_weight:g}{replaced}",
    )


def on_promote(current: ServingState) -> ServingChange:
    """The challenger's package becomes the champion's and takes all traffic.

    The challenger variant stays (serving the same package at weight 0): removing a variant
    that autoscaling is registered on makes UpdateEndpoint fail, and the next approval
    replaces its model anyway.
    """
    if current.challenger is None or current.challenger == current.champion:
        raise TrafficError("there is no challenger to promote")
    return ServingChange(
        ServingState(champion=current.challenger, challenger=current.challenger),
        {CHAMPION: 1.0, CHALLENGER: 0.0},
        True,
        f"{current.challenger} promoted to champion (was {current.champion})",
    )


def _package_version(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class EmulatorDeployment:
    """Serving on the embedded default: SageMaker models, endpoint config, endpoint."""

    def __init__(
        self,
        *,
        sagemaker: Any,
        config: PlatformConfig,
        resources: PlatformResources,
        cloudwatch: Any | None = None,
    ) -> None:
        self.sagemaker = sagemaker
        self.cloudwatch = cloudwatch
        self.config = config
        self.resources = resources
        self.endpoint = config.endpoint_name

    def current(self) -> ServingState:
        try:
            described = self.sagemaker.describe_endpoint(EndpointName=self.endpoint)
        except ClientError:
            return ServingState()
        config = self.sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"]
        )
        packages: dict[str, str | None] = {}
        for variant in config["ProductionVariants"]:
            packages[variant["VariantName"]] = model_package_of(
                self.sagemaker, variant["ModelName"]
            )
        return ServingState(champion=packages.get(CHAMPION), challenger=packages.get(CHALLENGER))

    def _model_for(self, package_arn: str) -> str:
        name = f"{self.endpoint}-v{_package_version(package_arn)}"
        try:
            self.sagemaker.describe_model(ModelName=name)
        except ClientError:
            self.sagemaker.create_model(
                ModelName=name,
                ExecutionRoleArn=f"arn:aws:iam::{self._account()}:role/{self.config.prefix}-serving",
                Containers=[{"ModelPackageName": package_arn}],
                EnableNetworkIsolation=True,
            )
        return name

    def _alarms(self, cloudwatch: Any | None) -> None:
        """The serving stack's per-variant alarms, so rollout gating reads real alarm states."""
        client = cloudwatch or self.cloudwatch
        if client is None:
            return
        for variant in (CHAMPION, CHALLENGER):
            errors, latency = variant_alarm_names(self.endpoint, variant)
            dimensions = [
                {"Name": "EndpointName", "Value": self.endpoint},
                {"Name": "VariantName", "Value": variant},
            ]
            for name, metric, threshold in (
                (errors, "Invocation5XXErrors", float(self.config.error_alarm_count)),
                (latency, "ModelLatency", float(self.config.latency_alarm_ms * 1000)),
            ):
                client.put_metric_alarm(
                    AlarmName=name,
                    Namespace="AWS/SageMaker",
                    MetricName=metric,
                    Dimensions=dimensions,
                    Statistic="Sum" if metric == "Invocation5XXErrors" else "Maximum",
                    Period=60,
                    EvaluationPeriods=3,
                    DatapointsToAlarm=2,
                    Threshold=threshold,
                    ComparisonOperator="GreaterThanOrEqualToThreshold",
                    TreatMissingData="notBreaching",
                )
        from mlops.emulated_aws import create_drift_alarms  # noqa: PLC0415

        create_drift_alarms(client, self.config)

    def _account(self) -> str:
        return package_account(self.resources.key_arn)

    def deploy(self, change: ServingChange) -> endpoints.EndpointState:
        state = change.state
        if state.champion is None:
            raise TrafficError("nothing to deploy: no champion")
        variants = [(CHAMPION, state.champion)]
        if state.challenger is not None:
            variants.append((CHALLENGER, state.challenger))
        instance_types = {
            CHAMPION: self.config.champion_instance_type,
            CHALLENGER: self.config.challenger_instance_type,
        }
        production = [
            {
                "VariantName": variant,
                "ModelName": self._model_for(package),
                "InitialInstanceCount": self.config.endpoint_min_instances,
                "InstanceType": instance_types[variant],
                "InitialVariantWeight": change.weights.get(variant, 0.0),
            }
            for variant, package in variants
        ]
        digest = hashlib.sha256(
            repr((production, self.config.capture_sampling_percentage)).encode()
        ).hexdigest()[:10]
        config_name = f"{self.endpoint}-{digest}"
        try:
            self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        except ClientError:
            request: dict[str, Any] = {
                "EndpointConfigName": config_name,
                "ProductionVariants": production,
                "DataCaptureConfig": {
                    "EnableCapture": True,
                    "InitialSamplingPercentage": self.config.capture_sampling_percentage,
                    "DestinationS3Uri": f"s3://{self.resources.capture_bucket}/{CAPTURE_PREFIX}",
                    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                    # Without these SageMaker stores payloads base64-encoded.
                    "CaptureContentTypeHeader": {
                        "CsvContentTypes": ["text/csv"],
                        "JsonContentTypes": ["application/json"],
                    },
                },
            }
            if self.resources.key_arn:
                request["KmsKeyId"] = self.resources.key_arn
                request["DataCaptureConfig"]["KmsKeyId"] = self.resources.key_arn
            self.sagemaker.create_endpoint_config(**request)
        try:
            existing = self.sagemaker.describe_endpoint(EndpointName=self.endpoint)
        except ClientError:
            existing = None
        if existing is None:
            self.sagemaker.create_endpoint(
                EndpointName=self.endpoint, EndpointConfigName=config_name
            )
        elif existing["EndpointConfigName"] != config_name:
            # The emulator has no UpdateEndpoint (AWS updates in place, keeping the endpoint).
            self.sagemaker.delete_endpoint(EndpointName=self.endpoint)
            self.sagemaker.create_endpoint(
                EndpointName=self.endpoint, EndpointConfigName=config_name
            )
        self._alarms(cloudwatch=None)
        current = endpoints.describe(self.sagemaker, self.endpoint)
        if current.weights != {v: change.weights.get(v, 0.0) for v in current.variant_names}:
            endpoints.update_weights(
                self.sagemaker,
                self.endpoint,
                {v: change.weights.get(v, 0.0) for v in current.variant_names},
                instances={v.name: v.instances for v in current.variants},
            )
            current = endpoints.describe(self.sagemaker, self.endpoint)
        return current


def package_account(arn: str | None) -> str:
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 4 and parts[4] else "123456789012"
