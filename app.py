#!/usr/bin/env python3
"""CDK entry point: read the context once into a typed config, then build the stacks.

The only environment lookups during synth are CDK_DEFAULT_ACCOUNT/REGION, right here.
"""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk

from mlops.core.config import ConfigError, PlatformConfig
from stacks.platform import build_platform


def main() -> None:
    app = cdk.App(analytics_reporting=False)
    try:
        config = PlatformConfig.from_context(
            app.node.get_all_context(),
            default_account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            default_region=os.environ.get("CDK_DEFAULT_REGION"),
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    build_platform(app, config)
    app.synth()


if __name__ == "__main__":
    main()
