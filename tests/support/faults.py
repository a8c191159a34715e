"""Fault injection for boto3 clients: AWS errors at a chosen call, on moto or a Stubber alike.

A ``Faults`` plan names operations and what their calls answer, in order: ``None`` passes a
call through to the real (emulated) service, an error code fails it. The failure is raised
from botocore's ``before-call`` hook, after retries would have run, so it is what a caller sees
when botocore's own retries are exhausted (``Throttling`` and ``InternalError`` are retried by
botocore before they reach our code; an injected one is the one that got through).

    faults = Faults()
    faults.fail("ssm", "PutParameter", "ThrottlingException", times=1)
    faults.attach(client)            # or faults.attach_all(target) for every client it makes

``faults.calls`` records every call made (service, operation), failed ones included, so a test
can inject at *each* step of a flow: run once clean, then once per recorded call index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3.session
from botocore.awsrequest import AWSResponse, HTTPHeaders

# Error code -> HTTP status, as AWS answers them.
STATUS = {
    "Throttling": 400,
    "ThrottlingException": 400,
    "ThrottledException": 400,
    "SlowDown": 503,
    "RequestLimitExceeded": 400,
    "TooManyRequestsException": 429,
    "InternalError": 500,
    "InternalFailure": 500,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
}

# The throttling and server errors each service answers with.
THROTTLE = {
    "s3": "SlowDown",
    "ssm": "ThrottlingException",
    "sns": "Throttling",
    "cloudwatch": "Throttling",
    "sagemaker": "ThrottlingException",
    "cloudformation": "Throttling",
    "events": "ThrottlingException",
}
SERVER_ERROR = {
    "s3": "InternalError",
    "ssm": "InternalServerError",
    "sns": "InternalError",
    "cloudwatch": "InternalServiceError",
    "sagemaker": "InternalFailure",
    "cloudformation": "InternalFailure",
    "events": "InternalException",
}


@dataclass
class Faults:
    plan: dict[tuple[str, str], list[str | None]] = field(default_factory=lambda: defaultdict(list))
    calls: list[tuple[str, str]] = field(default_factory=list)
    raised: list[tuple[str, str, str]] = field(default_factory=list)
    fail_at: int | None = None  # fail the call with this index in ``calls`` (any operation)
    fail_code: str | None = None  # the code for ``fail_at``; None: the service's throttling code

    def fail(self, service: str, operation: str, code: str, *, times: int = 1) -> Faults:
        self.plan[(service, operation)].extend([code] * times)
        return self

    def fail_call(self, index: int, code: str | None = None) -> Faults:
        """Fail the ``index``-th call made through attached clients, whatever it is."""
        self.fail_at, self.fail_code = index, code
        return self

    def clear(self) -> Faults:
        """No failure planned and no call seen: clients attached once serve the next attempt."""
        self.plan.clear()
        self.calls.clear()
        self.raised.clear()
        self.fail_at = self.fail_code = None
        return self

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call.*.*", self._before_call)
        return client

    def _before_call(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        service = model.service_model.endpoint_prefix
        service = {"api.sagemaker": "sagemaker", "monitoring": "cloudwatch"}.get(service, service)
        key = (service, model.name)
        index = len(self.calls)
        self.calls.append(key)
        code: str | None = None
        if self.fail_at is not None and index == self.fail_at:
            code = self.fail_code or THROTTLE.get(service, "Throttling")
        elif self.plan.get(key):
            code = self.plan[key].pop(0)
        if code is None:
            return None
        self.raised.append((service, model.name, code))
        status = STATUS.get(code, 500 if "Internal" in code else 400)
        http = AWSResponse("https://fault.invalid", status, HTTPHeaders(), None)
        parsed = {
            "Error": {"Code": code, "Message": f"injected {code} on {model.name}"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
        }
        return http, parsed


@contextmanager
def faulty_clients(faults: Faults) -> Iterator[Faults]:
    """Attach ``faults`` to every boto3 client created inside the block (any session)."""
    original = boto3.session.Session.client

    def client(self: Any, *args: Any, **kwargs: Any) -> Any:
        return faults.attach(original(self, *args, **kwargs))

    boto3.session.Session.client = client  # type: ignore[method-assign]
    try:
        yield faults
    finally:
        boto3.session.Session.client = original  # type: ignore[method-assign]
