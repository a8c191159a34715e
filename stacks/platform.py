"""Assemble the platform's stacks for one configured stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Environment, Tags

from mlops.core import names
from mlops.core.config import PlatformConfig

from .compliance import add_compliance_checks
from .pipeline import PipelineStack
from .registry import RegistryStack
from .serving import ServingStack
from .storage import StorageStack


@dataclass(frozen=True)
class Platform:
    storage: StorageStack
    registry: RegistryStack
    pipeline: PipelineStack
    serving: ServingStack


def build_platform(app: App, config: PlatformConfig) -> Platform:
    """Create every stack of one stage in ``app`` and register the compliance checks."""
    env = Environment(account=config.account, region=config.region)
    # Step-code archives are built here, inside the cloud assembly; CDK stages them as assets.
    bundle_dir = Path(app.outdir) / "bundles" / config.prefix
    storage = StorageStack(app, names.storage_stack(config), config=config, env=env)
    registry = RegistryStack(app, names.registry_stack(config), config=config, env=env)
    registry.add_stack_dependency(storage, "imports the storage stack's exported buckets and key")
    pipeline = PipelineStack(
        app, names.pipeline_stack(config), config=config, env=env, bundle_dir=bundle_dir
    )
    pipeline.add_stack_dependency(storage, "imports the storage stack's exported buckets and key")
    pipeline.add_stack_dependency(registry, "registers into the model package group")
    serving = ServingStack(app, names.serving_stack(config), config=config, env=env)
    serving.add_stack_dependency(storage, "imports the storage stack's exported buckets and key")
    serving.add_stack_dependency(registry, "serves packages of the model package group")
    for stack in (storage, registry, pipeline, serving):
        Tags.of(stack).add("project", config.project)
        Tags.of(stack).add("stage", config.stage)
    add_compliance_checks(app)
    return Platform(storage=storage, registry=registry, pipeline=pipeline, serving=serving)
