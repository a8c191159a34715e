"""Where AWS calls go: a real account, or the embedded default's emulator.

One ``AwsTarget`` builds every boto3 client, so the same code runs against both: the only
difference is an ``endpoint_url`` (the moto server on 127.0.0.1) and dummy credentials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

# What the emulator accepts; never sent to AWS (an endpoint_url is always set with them).
EMULATOR_ACCESS_KEY = "testing"
EMULATOR_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class AwsTarget:
    region: str
    endpoint_url: str | None = None
    profile: str | None = None

    @classmethod
    def lambda_runtime(cls) -> AwsTarget:
        """Inside a Lambda function: the function's region (AWS_REGION, which Lambda sets) and
        role; boto3 itself honours AWS_ENDPOINT_URL (the embedded default aims handlers so)."""
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise RuntimeError("AWS_REGION is not set: Lambda sets it; set it to run a handler")
        return cls(region=region)

    @property
    def is_emulator(self) -> bool:
        return self.endpoint_url is not None

    def session(self) -> boto3.Session:
        if self.is_emulator:
            return boto3.Session(
                region_name=self.region,
                aws_access_key_id=EMULATOR_ACCESS_KEY,
                aws_secret_access_key=EMULATOR_ACCESS_KEY,
            )
        return boto3.Session(region_name=self.region, profile_name=self.profile)

    def client(self, service: str, **config: Any) -> Any:
        config.setdefault("retries", {"max_attempts": 3, "mode": "standard"})
        return self.session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            config=Config(**config),
        )

    def describe(self) -> str:
        return (
            f"embedded emulator at {self.endpoint_url}"
            if self.is_emulator
            else f"AWS {self.region}"
        )
