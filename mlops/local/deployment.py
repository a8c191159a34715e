"""Serving on the embedded default, built from the serving stack's own specifications.

``EmulatorDeployment`` applies serving changes the way the serving stack's resources look in
AWS: one SageMaker model per package, one endpoint config with the fixed variants
``champion`` and ``challenger``, data capture as ``mlops.core.specs.capture`` says, and the
alarms and rules of ``mlops.core.specs`` (created once: putting an alarm again would reset
its state). The emulator has no UpdateEndpoint: a changed config re-creates the endpoint.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mlops.adapters import endpoints
from mlops.adapters.registry import model_package_of
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import EMULATOR_ACCOUNT
from mlops.core import specs
from mlops.core.approval import ServingChange, ServingState
from mlops.core.config import PlatformConfig
from mlops.core.names import CHALLENGER, CHAMPION
from mlops.core.traffic import TrafficError
from mlops.local.aws_services import create_alarms, create_rules

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sagemaker import SageMakerClient


def _package_version(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class EmulatorDeployment:
    """Serving on the embedded default: SageMaker models, endpoint config, endpoint."""

    def __init__(
        self,
        *,
        sagemaker: SageMakerClient,
        config: PlatformConfig,
        resources: PlatformResources,
        cloudwatch: CloudWatchClient | None = None,
        events: EventBridgeClient | None = None,
    ) -> None:
        self.sagemaker = sagemaker
        self.cloudwatch = cloudwatch
        self.events = events
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

    def _account(self) -> str:
        parts = (self.resources.key_arn or "").split(":")
        return parts[4] if len(parts) > 4 and parts[4] else EMULATOR_ACCOUNT

    def endpoint_config(self, change: ServingChange) -> dict[str, Any]:
        """The CreateEndpointConfig request for ``change`` (its name hashes its content)."""
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
        capture = specs.capture(self.config).data_capture_config(
            self.resources.capture_bucket, self.resources.key_arn
        )
        digest = hashlib.sha256(repr((production, capture)).encode()).hexdigest()[:10]
        request: dict[str, Any] = {
            "EndpointConfigName": f"{self.endpoint}-{digest}",
            "ProductionVariants": production,
            "DataCaptureConfig": capture,
        }
        if self.resources.key_arn:
            request["KmsKeyId"] = self.resources.key_arn
        return request

    def deploy(self, change: ServingChange) -> str:
        """Deploy ``change``; return the endpoint's status."""
        request = self.endpoint_config(change)
        config_name = request["EndpointConfigName"]
        try:
            self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        except ClientError:
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
        if self.cloudwatch is not None:
            create_alarms(
                self.cloudwatch,
                [*specs.variant_alarms(self.config), *specs.drift_alarms(self.config)],
            )
        if self.events is not None:
            create_rules(self.events, self.config)
        current = endpoints.describe(self.sagemaker, self.endpoint)
        wanted = {v: change.weights.get(v, 0.0) for v in current.variant_names}
        if current.weights != wanted:
            endpoints.update_weights(
                self.sagemaker,
                self.endpoint,
                wanted,
                instances={v.name: v.instances for v in current.variants},
            )
            current = endpoints.describe(self.sagemaker, self.endpoint)
        return current.status
