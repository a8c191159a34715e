"""Assemble the platform's stacks for one configured stage."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Environment, Tags

from mlops.config import PlatformConfig

from .compliance import add_compliance_checks
from .registry import RegistryStack
from .storage import StorageStack


@dataclass(frozen=True)
class Platform:
    storage: StorageStack
    registry: RegistryStack


def build_platform(app: App, config: PlatformConfig) -> Platform:
    """Create every stack of one stage in ``app`` and register the compliance checks."""
    env = Environment(account=config.account, region=config.region)
    storage = StorageStack(app, f"{config.prefix}-storage", config=config, env=env)
    registry = RegistryStack(app, f"{config.prefix}-registry", config=config, env=env)
    registry.add_stack_dependency(storage, "imports the storage stack's exported buckets and key")
    for stack in (storage, registry):
        Tags.of(stack).add("project", config.project)
        Tags.of(stack).add("stage", config.stage)
    add_compliance_checks(app)
    return Platform(storage=storage, registry=registry)
