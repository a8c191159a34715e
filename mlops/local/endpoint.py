"""A local endpoint that speaks the SageMaker runtime protocol, for the embedded default.

``POST /endpoints/{name}/invocations`` as SageMaker serves it, so
``boto3.client("sagemaker-runtime", endpoint_url=...)`` works unchanged:

- each request goes to a variant drawn by the endpoint's *current* weights in the emulated
  SageMaker (read again every ``refresh_seconds``, so a traffic shift takes effect within it,
  or at once after ``refresh``), unless ``TargetVariant`` names one;
- the variant's registered model package is loaded from (emulated) S3 and served with the
  same handlers as in AWS (``pipeline_steps.inference``);
- the response carries ``x-Amzn-Invoked-Production-Variant``;
- inputs and outputs are captured in SageMaker's JSON Lines layout and S3 key scheme, per
  the endpoint config's DataCaptureConfig (sampling, content types, KMS key);
- a body not as its headers state (Content-Length not one number, over 6 MB, or more than
  arrives within ``idle_timeout``) is answered 400, 413 or 411 (chunked) in one line of JSON.

What SageMaker hosting does with the model's execution role (reading the model package, its
model artifacts, writing data capture) runs inside the optional ``model_role`` hook; reading the
endpoint, its config and its models is SageMaker's own.

Capture durability: mlops.local.capture_writer.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from mlops.adapters import s3io
from mlops.adapters.target import AwsTarget
from mlops.core import capture
from mlops.local.capture_writer import CaptureWriteError, CaptureWriter, RoleScope, _in_role
from pipeline_steps import inference

if TYPE_CHECKING:
    pass

log = logging.getLogger("mlops.local.endpoint")
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"
MAX_BODY = 6 * 1024 * 1024  # bytes: SageMaker's limit on a real-time request's payload


class EndpointNotServable(RuntimeError):
    """The request names no servable endpoint or variant (SageMaker: 400 ValidationError)."""


class EndpointFailure(RuntimeError):
    """This server failed, not the model (SageMaker: 500 InternalFailure)."""


@dataclass
class VariantRoute:
    name: str
    weight: float
    model_data_url: str


@dataclass
class EndpointRoute:
    name: str
    variants: list[VariantRoute]
    capture_uri: str | None
    capture_percentage: int
    capture_kms_key: str | None
    csv_types: tuple[str, ...]
    json_types: tuple[str, ...]
    read_at: float


class LocalEndpoints:
    """Resolves endpoints in the emulated SageMaker and serves their models."""

    def __init__(
        self,
        target: AwsTarget,
        *,
        cache_dir: Path,
        refresh_seconds: float = 0.5,
        seed: int | None = None,
        capture_writer: CaptureWriter | None = None,
        model_role: RoleScope | None = None,
    ) -> None:
        self.sagemaker = target.client("sagemaker")
        self.s3 = target.client("s3")
        self.model_role = model_role
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.refresh_seconds = refresh_seconds
        self.random = random.Random(seed)  # noqa: S311 - traffic routing, not security
        self.capture = capture_writer or CaptureWriter(self.s3, model_role=model_role)
        self._routes: dict[str, EndpointRoute] = {}
        self._models: dict[str, inference.LoadedModel] = {}
        self._lock = threading.Lock()

    def route(self, endpoint: str) -> EndpointRoute:
        with self._lock:
            cached = self._routes.get(endpoint)
            if cached and time.monotonic() - cached.read_at < self.refresh_seconds:
                return cached
        try:
            described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        except ClientError:
            raise EndpointNotServable(f"Endpoint {endpoint} not found.") from None
        if described["EndpointStatus"] != "InService":
            raise EndpointNotServable(f"Endpoint {endpoint} is {described['EndpointStatus']}.")
        config = self.sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"]
        )
        models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
        variants = [
            VariantRoute(
                name=v["VariantName"],
                weight=float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0))),
                model_data_url=self._model_data_url(models[v["VariantName"]]),
            )
            for v in described["ProductionVariants"]
        ]
        capture_config = config.get("DataCaptureConfig") or {}
        headers = capture_config.get("CaptureContentTypeHeader") or {}
        route = EndpointRoute(
            name=endpoint,
            variants=variants,
            capture_uri=capture_config.get("DestinationS3Uri")
            if capture_config.get("EnableCapture")
            else None,
            capture_percentage=int(capture_config.get("InitialSamplingPercentage", 0)),
            capture_kms_key=capture_config.get("KmsKeyId"),
            csv_types=tuple(headers.get("CsvContentTypes", ())),
            json_types=tuple(headers.get("JsonContentTypes", ())),
            read_at=time.monotonic(),
        )
        with self._lock:
            self._routes[endpoint] = route
        return route

    def refresh(self, endpoint: str) -> None:
        """Read ``endpoint``'s weights and models again at its next request: for a caller that
        changed its traffic and serves with a long ``refresh_seconds`` (reading them costs six
        SageMaker calls, more than the prediction)."""
        with self._lock:
            self._routes.pop(endpoint, None)

    def _model_data_url(self, model_name: str) -> str:
        model = self.sagemaker.describe_model(ModelName=model_name)
        container = (model.get("Containers") or [model.get("PrimaryContainer", {})])[0]
        if container.get("ModelPackageName"):
            with _in_role(self.model_role, "package"):
                package = self.sagemaker.describe_model_package(
                    ModelPackageName=container["ModelPackageName"]
                )
            return str(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])
        return str(container["ModelDataUrl"])

    def model(self, model_data_url: str) -> inference.LoadedModel:
        with self._lock:
            if model_data_url in self._models:
                return self._models[model_data_url]
        folder = Path(tempfile.mkdtemp(prefix="model-", dir=self.cache_dir))
        # The archive ModelDataUrl names, fetched as SageMaker fetches it (no listing: the
        # model role may read the object, not list the bucket). With a hook, on this thread.
        bucket, key = s3io.split_uri(model_data_url)
        transfer = TransferConfig(use_threads=False) if self.model_role else None
        with _in_role(self.model_role, "model"):
            self.s3.download_file(bucket, key, str(folder / "model.tar.gz"), Config=transfer)
        with tarfile.open(folder / "model.tar.gz") as archive:
            archive.extractall(folder / "model", filter="data")
        loaded = inference.model_fn(str(folder / "model"))
        with self._lock:
            self._models[model_data_url] = loaded
        return loaded

    def choose(self, route: EndpointRoute, target_variant: str | None) -> VariantRoute:
        if target_variant:
            for variant in route.variants:
                if variant.name == target_variant:
                    return variant
            raise EndpointNotServable(
                f"Variant {target_variant} not found on endpoint {route.name}."
            )
        live = [v for v in route.variants if v.weight > 0]
        if not live:
            raise EndpointNotServable(
                f"Endpoint {route.name} has no variant with a weight above 0."
            )
        return self.random.choices(live, weights=[v.weight for v in live])[0]

    def invoke(
        self,
        endpoint: str,
        body: bytes,
        content_type: str,
        accept: str,
        *,
        target_variant: str | None = None,
        inference_id: str | None = None,
    ) -> tuple[bytes, str, str]:
        route = self.route(endpoint)
        variant = self.choose(route, target_variant)
        try:
            loaded = self.model(variant.model_data_url)
        except Exception as exc:
            raise EndpointFailure(
                f"could not load the model of variant {variant.name}: {exc}"
            ) from exc
        data = inference.input_fn(body, content_type)  # InvalidRequest for bad input
        response, response_type = inference.output_fn(inference.predict_fn(data, loaded), accept)
        payload = response.encode()
        if route.capture_uri and self.random.random() * 100 < route.capture_percentage:
            line = capture.encode_record(
                request=body,
                request_type=content_type,
                response=payload,
                response_type=response_type,
                inference_time=datetime.now(UTC),
                inference_id=inference_id,
                csv_types=route.csv_types,
                json_types=route.json_types,
            )
            try:
                self.capture.add(route, variant.name, line)
            except Exception:  # capture never fails an inference, as in SageMaker
                log.exception("data capture failed on %s/%s", endpoint, variant.name)
        return payload, response_type, variant.name


class _Requests:
    """Requests in flight, and whether new ones are still taken (not once the server stops)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._in_flight = 0
        self._open = True

    def enter(self) -> bool:
        with self._changed:
            if self._open:
                self._in_flight += 1
            return self._open

    def leave(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def close(self, timeout: float) -> int:
        """Take no new request, wait for those in flight; how many are still running."""
        with self._changed:
            self._open = False
            self._changed.wait_for(lambda: self._in_flight == 0, timeout=timeout)
            return self._in_flight


def _handler(
    endpoints: LocalEndpoints, requests: _Requests, idle_timeout: float
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = idle_timeout  # seconds a connection may stay silent: idle, or mid-body

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, error_type: str, message: str, **extra: Any) -> None:
            body = json.dumps({"message": message, **extra}).encode()
            self._send(
                status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}
            )

        def _body(self) -> bytes | None:
            """The request's body; None once a body not as its headers state is answered."""
            stated = {v.strip() for v in self.headers.get_all("Content-Length") or ["0"]}
            raw = stated.pop() if len(stated) == 1 else ""
            status, problem = 400, f"Content-Length must be one number of bytes, got {raw!r:.40}"
            if self.headers.get("Transfer-Encoding"):
                status, problem = 411, "send the body with a Content-Length, not chunked"
            elif raw.isascii() and raw.isdigit():
                if len(raw.lstrip("0")) > 9 or int(raw) > MAX_BODY:
                    status, problem = 413, f"a body holds at most {MAX_BODY} bytes, got {raw:.12}"
                else:
                    try:
                        body = self.rfile.read(int(raw))
                    except TimeoutError:  # (``timeout``) the body is shorter than stated
                        body = b""
                    if len(body) == int(raw):
                        return body
                    problem = f"Content-Length says {int(raw)} bytes, the body has fewer"
            self.close_connection = True  # what follows on the connection is not a request
            self._error(status, "ValidationError", problem)
            return None

        def do_POST(self) -> None:
            parts = urllib.parse.urlparse(self.path).path.strip("/").split("/")
            if (body := self._body()) is None:
                return
            if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
                self._error(404, "UnknownOperationException", f"no route for {self.path}")
                return
            if not requests.enter():  # stopping: the buffered capture is being written
                self.close_connection = True
                self._error(503, "ServiceUnavailable", "the local endpoint is stopping")
                return
            try:
                self._invoke(urllib.parse.unquote(parts[1]), body)
            finally:
                requests.leave()

        def _invoke(self, endpoint: str, body: bytes) -> None:
            try:
                payload, content_type, variant = endpoints.invoke(
                    endpoint,
                    body,
                    self.headers.get("Content-Type", "application/octet-stream"),
                    self.headers.get("Accept", "application/json"),
                    target_variant=self.headers.get("X-Amzn-SageMaker-Target-Variant"),
                    inference_id=self.headers.get("X-Amzn-SageMaker-Inference-Id"),
                )
            except EndpointNotServable as exc:
                self._error(400, "ValidationError", str(exc))
                return
            except EndpointFailure as exc:
                log.exception("internal failure on %s", endpoint)
                self._error(500, "InternalFailure", str(exc))
                return
            except inference.InvalidRequest as exc:
                # What SageMaker returns when the model container answers with an error.
                self._error(424, "ModelError", f"Received client error (400) from model: {exc}",
                            OriginalStatusCode=400, OriginalMessage=str(exc))  # fmt: skip
                return
            except Exception as exc:  # the model server's 500, not a crash of this server
                log.exception("model error on %s", endpoint)
                self._error(424, "ModelError", f"Received server error (500) from model: {exc}",
                            OriginalStatusCode=500, OriginalMessage=str(exc))  # fmt: skip
                return
            self._send(200, payload, {"Content-Type": content_type, INVOKED_VARIANT: variant})

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing a kept-alive connection is routine, not an error worth a traceback.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return
        log.exception("error serving %s", client_address)


class LocalEndpointServer:
    """The HTTP front of ``LocalEndpoints`` on 127.0.0.1, in a background thread."""

    def __init__(self, endpoints: LocalEndpoints, port: int = 0, idle_timeout: float = 60) -> None:
        self.endpoints = endpoints
        self._requests = _Requests()
        self.server = _Server(
            ("127.0.0.1", port), _handler(endpoints, self._requests, idle_timeout)
        )
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="local-endpoint", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalEndpointServer:
        self._thread.start()
        return self

    def stop(self, drain_seconds: float = 10.0) -> None:
        """Refuse new requests, let those in flight finish (up to ``drain_seconds``), stop
        listening and write all buffered capture. A failed write is logged, and its records
        counted in ``endpoints.capture.pending_records``."""
        running = self._requests.close(drain_seconds)
        if running:
            log.warning("%d request(s) still running at stop: each writes its capture", running)
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        try:
            self.endpoints.capture.close()
        except CaptureWriteError as exc:
            log.error("%s", exc)  # one line: the cause is in the message


@contextmanager
def serving(target: AwsTarget, cache_dir: Path, **options: Any) -> Iterator[LocalEndpointServer]:
    server = LocalEndpointServer(LocalEndpoints(target, cache_dir=cache_dir, **options)).start()
    try:
        yield server
    finally:
        server.stop()
