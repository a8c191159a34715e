"""Serving on the embedded default, built from the serving stack's own specifications.

``EmulatorDeployment`` applies serving changes the way the serving stack's resources look in
AWS: one SageMaker model per package, one endpoint config with the fixed variants
``champion`` and ``challenger``, data capture as ``mlops.core.specs.capture`` says, and the
alarms and rules of ``mlops.core.specs`` (created once: putting an alarm again would reset
its state). The emulator has no UpdateEndpoint: a changed config re-creates the endpoint.

Nothing is left half-applied: models, the endpoint config, alarms and rules are made before
the endpoint changes (a retry finds and reuses them); an endpoint that cannot be re-created
with the new config is re-created with the one it had (``EndpointNotRestored`` if even that
fails). Only SageMaker's "could not find" answer means a resource is missing: throttling or a
server error raises, and never reads as "nothing serves".
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mlops.adapters import endpoints
from mlops.adapters.registry import model_package_of
from mlops.adapters.resources import PlatformResources
from mlops.adapters.target import EMULATOR_ACCOUNT
from mlops.core import names, specs
from mlops.core.approval import ServingChange, ServingState
from mlops.core.config import PlatformConfig
from mlops.core.names import CHALLENGER, CHAMPION
from mlops.core.traffic import TrafficError
from mlops.local.aws_services import create_alarms, create_rules

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_ssm import SSMClient


def _package_version(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class EndpointNotRestored(RuntimeError):
    """The endpoint was deleted to be re-created with a new config, and neither the new nor the
    old config could be put back: nothing serves. Not a refusal: it fails loudly."""


def _missing(exc: ClientError) -> bool:
    """SageMaker's answer for a model, endpoint config or endpoint that does not exist."""
    return exc.response["Error"].get("Code") == "ValidationException"


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
        ssm: SSMClient | None = None,
    ) -> None:
        self.sagemaker = sagemaker
        self.ssm = ssm
        self.cloudwatch = cloudwatch
        self.events = events
        self.config = config
        self.resources = resources
        self.endpoint = config.endpoint_name

    def current(self) -> ServingState:
        try:
            described = self.sagemaker.describe_endpoint(EndpointName=self.endpoint)
        except ClientError as exc:
            if _missing(exc):
                return ServingState()
            raise
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
        except ClientError as exc:
            if not _missing(exc):
                raise
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
        except ClientError as exc:
            if not _missing(exc):
                raise
            self.sagemaker.create_endpoint_config(**request)
        # Before the endpoint changes: a failure here leaves it serving what it served.
        if self.cloudwatch is not None:
            create_alarms(
                self.cloudwatch,
                [*specs.variant_alarms(self.config), *specs.drift_alarms(self.config)],
            )
        if self.events is not None:
            create_rules(self.events, self.config)
        try:
            existing = self.sagemaker.describe_endpoint(EndpointName=self.endpoint)
        except ClientError as exc:
            if not _missing(exc):
                raise
            existing = None
        if existing is None:
            self.sagemaker.create_endpoint(
                EndpointName=self.endpoint, EndpointConfigName=config_name
            )
        elif existing["EndpointConfigName"] != config_name:
            self._recreate(existing["EndpointConfigName"], config_name)
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
        self._record_weights(change)
        return current.status

    def _record_weights(self, change: ServingChange) -> None:
        """The weights in force, where the serving stack keeps them (SSM), as a deployment in
        AWS writes them: the traffic controls and the next deployment read the same values."""
        if self.ssm is None:
            return
        for variant, name in names.weight_parameters(self.config).items():
            self.ssm.put_parameter(
                Name=name,
                Value=f"{change.weights.get(variant, 0.0):g}",
                Type="String",
                Overwrite=True,
            )

    def _recreate(self, old_config: str, new_config: str) -> None:
        """The endpoint with ``new_config``: the emulator has no UpdateEndpoint (AWS updates in
        place, keeping the endpoint), so it is deleted and created again. If the creation
        fails, the endpoint is created again with ``old_config``, and the failure raised."""
        self.sagemaker.delete_endpoint(EndpointName=self.endpoint)
        try:
            self.sagemaker.create_endpoint(
                EndpointName=self.endpoint, EndpointConfigName=new_config
            )
        except Exception as exc:
            try:
                self.sagemaker.create_endpoint(
                    EndpointName=self.endpoint, EndpointConfigName=old_config
                )
            except Exception as again:
                raise EndpointNotRestored(
                    f"endpoint {self.endpoint} was deleted to serve {new_config}, creating it "
                    f"failed ({type(exc).__name__}: {exc}), and creating it again with "
                    f"{old_config}, which it served, failed too "
                    f"({type(again).__name__}: {again}): nothing serves; create it with "
                    f"{old_config}"
                ) from again
            raise
