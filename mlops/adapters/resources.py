"""Names of the platform's resources for one stage: from the stacks' outputs in AWS, by
convention on the embedded default (which ``mlops local up`` creates the same way)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from mlops.adapters.target import AwsTarget
from mlops.core import names
from mlops.core.config import PlatformConfig


class ResourcesNotFound(RuntimeError):
    """The stage is not deployed (AWS) or not bootstrapped (emulator)."""


@dataclass(frozen=True)
class PlatformResources:
    datasets_bucket: str
    artifacts_bucket: str
    capture_bucket: str
    reports_bucket: str
    key_arn: str | None
    model_package_group: str
    pipeline_name: str

    def bucket(self, role: str) -> str:
        return str(getattr(self, f"{role}_bucket"))

    @classmethod
    def conventional(cls, config: PlatformConfig, key_arn: str | None = None) -> PlatformResources:
        """The embedded default's names: ``<prefix>-<role>``."""
        return cls(
            datasets_bucket=f"{config.prefix}-datasets",
            artifacts_bucket=f"{config.prefix}-artifacts",
            capture_bucket=f"{config.prefix}-capture",
            reports_bucket=f"{config.prefix}-reports",
            key_arn=key_arn,
            model_package_group=config.model_package_group_name,
            pipeline_name=config.pipeline_name,
        )

    @classmethod
    def from_stack_outputs(cls, target: AwsTarget, config: PlatformConfig) -> PlatformResources:
        """Read the storage stack's outputs (the names CDK generated at deploy)."""
        stack = names.storage_stack(config)
        try:
            described = target.client("cloudformation").describe_stacks(StackName=stack)
        except ClientError as exc:
            raise ResourcesNotFound(
                f"stack {stack} is not deployed in {target.region} ({exc.response['Error']['Message']}); "
                "run `npx cdk deploy --all` first"
            ) from None
        outputs: dict[str, Any] = {
            o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])
        }
        try:
            return cls(
                datasets_bucket=outputs["DatasetsBucketName"],
                artifacts_bucket=outputs["ArtifactsBucketName"],
                capture_bucket=outputs["CaptureBucketName"],
                reports_bucket=outputs["ReportsBucketName"],
                key_arn=outputs["DataKeyArn"],
                model_package_group=config.model_package_group_name,
                pipeline_name=config.pipeline_name,
            )
        except KeyError as missing:
            raise ResourcesNotFound(f"stack {stack} has no output {missing}: redeploy it") from None

    @classmethod
    def resolve(cls, target: AwsTarget, config: PlatformConfig) -> PlatformResources:
        if target.is_emulator:
            return cls.conventional(config, emulator_key_arn(target, config))
        return cls.from_stack_outputs(target, config)


def emulator_key_arn(target: AwsTarget, config: PlatformConfig) -> str | None:
    """The data key the embedded default made (found by the storage stack's alias)."""
    try:
        described = target.client("kms").describe_key(KeyId=names.data_key_alias(config))
    except ClientError:
        return None
    return str(described["KeyMetadata"]["Arn"])


def stack_outputs(target: AwsTarget, stack: str) -> dict[str, str]:
    """A deployed stack's outputs by key; ClientError if the stack cannot be described."""
    described = target.client("cloudformation").describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}


def alerts_topic_arn(target: AwsTarget, config: PlatformConfig) -> str | None:
    """The serving stack's alerts topic in AWS; none on the embedded default, or when the
    stack cannot be read (a change is then made and audited, just not announced)."""
    if target.is_emulator:
        return None
    try:
        return stack_outputs(target, names.serving_stack(config)).get("AlertsTopicArn")
    except ClientError:
        return None
