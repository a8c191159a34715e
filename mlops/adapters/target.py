"""Where AWS calls go: a real account, or the embedded default's emulator.

One ``AwsTarget`` builds every boto3 client, so the same code runs against both: the only
difference is an ``endpoint_url`` (the moto server on 127.0.0.1) and dummy credentials.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    import boto3

    # Type-only: the Lambda images install boto3 but not the stubs.
    from botocore.client import BaseClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

# The services the platform calls; each has an overload of AwsTarget.client below (and a
# boto3-stubs extra in pyproject.toml), so a new one is a type error until both are added.
Service = Literal[
    "cloudformation",
    "cloudwatch",
    "events",
    "kms",
    "lambda",
    "logs",
    "s3",
    "sagemaker",
    "sagemaker-runtime",
    "service-quotas",
    "sns",
    "sqs",
    "ssm",
    "sts",
]

# What the emulator accepts; never sent to AWS (an endpoint_url is always set with them).
EMULATOR_ACCESS_KEY = "testing"
EMULATOR_ACCOUNT = "123456789012"


_SESSIONS: dict[AwsTarget, boto3.Session] = {}
_SESSIONS_LOCK = threading.RLock()

# Observers of the calls made in the current context: (service, operation, API params).
CallObserver = Callable[[str, str, Mapping[str, Any]], None]
_OBSERVERS: contextvars.ContextVar[tuple[CallObserver, ...]] = contextvars.ContextVar(
    "mlops_call_observers", default=()
)
_API_PARAMS = "mlops_api_params"  # where the API params wait in botocore's request context


@contextlib.contextmanager
def observe_calls(callback: CallObserver) -> Iterator[None]:
    """Call ``callback(service, operation, params)`` before each AWS call made, while the block
    runs, by a client of ``AwsTarget`` in this context (this thread, this asyncio task).

    ``service`` is botocore's service name ("s3", "cloudwatch", "sagemaker-runtime"),
    ``operation`` the API operation ("PutObject"), ``params`` the call's API parameters (a
    copy). The callback runs after botocore validated the parameters and before the request is
    sent: raising (e.g. a ``ClientError`` with code AccessDenied) refuses the call, and the
    caller gets that exception, with no request made and no retry.

    Observers live in a context variable, so concurrent threads and invocations never see each
    other's calls. A thread started inside the block sees none of them unless it runs in a copy
    of the context (``contextvars.copy_context().run``): boto3's ``upload_file`` and
    ``download_file`` make their calls on worker threads, unobserved, unless given
    ``Config=TransferConfig(use_threads=False)``.
    """
    token = _OBSERVERS.set((*_OBSERVERS.get(), callback))
    try:
        yield
    finally:
        _OBSERVERS.reset(token)


def _keep_api_params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    # before-call receives the serialized HTTP request; the API parameters are seen here.
    if _OBSERVERS.get():
        context[_API_PARAMS] = dict(params)


def _notify_observers(model: Any, context: dict[str, Any], **_: Any) -> None:
    observers = _OBSERVERS.get()
    if not observers:  # the usual case: one context-variable read per call
        return
    params = context.get(_API_PARAMS, {})
    for observer in observers:
        observer(model.service_model.service_name, model.name, params)


# An S3 client's connection pool: room for the capture reader's fetches in flight
# (mlops.core.capture_reader.FETCHERS; tests/unit/test_capture_reader.py holds them together).
S3_CONNECTIONS = 32


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
        """One session per target for the life of the process: a session caches the service
        models its clients load (~0.2 s per client otherwise), and inside a warm Lambda
        container every invocation reuses it, as boto3's default session would."""
        import boto3  # noqa: PLC0415 - 0.2 s a command that makes no AWS call need not pay

        with _SESSIONS_LOCK:
            if self not in _SESSIONS:
                _SESSIONS[self] = (
                    boto3.Session(
                        region_name=self.region,
                        aws_access_key_id=EMULATOR_ACCESS_KEY,
                        aws_secret_access_key=EMULATOR_ACCESS_KEY,
                    )
                    if self.is_emulator
                    else boto3.Session(region_name=self.region, profile_name=self.profile)
                )
                # Clients copy the session's handlers when made: register before any is. First
                # and as specific as botocore's Stubber, so an observer runs before a stub answers.
                events = _SESSIONS[self].events
                events.register_first(
                    "before-parameter-build.*.*", _keep_api_params, unique_id="mlops-params"
                )
                events.register_first(
                    "before-call.*.*", _notify_observers, unique_id="mlops-observers"
                )
            return _SESSIONS[self]

    @overload
    def client(self, service: Literal["cloudformation"], **config: Any) -> CloudFormationClient: ...
    @overload
    def client(self, service: Literal["cloudwatch"], **config: Any) -> CloudWatchClient: ...
    @overload
    def client(self, service: Literal["events"], **config: Any) -> EventBridgeClient: ...
    @overload
    def client(self, service: Literal["kms"], **config: Any) -> KMSClient: ...
    @overload
    def client(self, service: Literal["lambda"], **config: Any) -> LambdaClient: ...
    # No boto3-stubs extra for these two yet: the preflight, their one user, types the calls
    # it makes with Protocols (mlops/adapters/preflight.py).
    @overload
    def client(self, service: Literal["logs", "service-quotas"], **config: Any) -> BaseClient: ...
    @overload
    def client(self, service: Literal["s3"], **config: Any) -> S3Client: ...
    @overload
    def client(self, service: Literal["sagemaker"], **config: Any) -> SageMakerClient: ...
    @overload
    def client(
        self, service: Literal["sagemaker-runtime"], **config: Any
    ) -> SageMakerRuntimeClient: ...
    @overload
    def client(self, service: Literal["sns"], **config: Any) -> SNSClient: ...
    @overload
    def client(self, service: Literal["sqs"], **config: Any) -> SQSClient: ...
    @overload
    def client(self, service: Literal["ssm"], **config: Any) -> SSMClient: ...
    @overload
    def client(self, service: Literal["sts"], **config: Any) -> STSClient: ...
    def client(self, service: Service, **config: Any) -> BaseClient:
        config.setdefault("retries", {"max_attempts": 3, "mode": "standard"})
        if service == "s3":  # else connections past botocore's 10 are dropped after each GET
            config.setdefault("max_pool_connections", S3_CONNECTIONS)
        session = self.session()
        with _SESSIONS_LOCK:  # creating clients from one session is not thread-safe
            return session.client(
                service,
                endpoint_url=self.endpoint_url,
                config=Config(**config),
            )

    def describe(self) -> str:
        return (
            f"embedded emulator at {self.endpoint_url}"
            if self.is_emulator
            else f"AWS {self.region}"
        )

    def caller(self) -> str:
        """Who is asking, for audit records: the caller identity's ARN, or $USER when it
        cannot be read (no credentials yet, no network)."""
        try:
            return str(self.client("sts").get_caller_identity()["Arn"])
        except (ClientError, BotoCoreError):
            return os.environ.get("USER", "unknown")
