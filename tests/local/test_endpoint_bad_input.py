"""The local endpoint's answer to a request it cannot take: a status and one line of JSON,
never a dropped connection or a traceback, and the server goes on serving.

A body not as its headers state (Content-Length not one number, negative, over the 6 MB limit,
more than arrives, chunked) is refused by the HTTP front before any model is asked; a body
the model cannot read, in either content type it takes (CSV, JSON) or another, is the model's
client error, which SageMaker returns as 424 ModelError (OriginalStatusCode 400).

The server here fronts a stub of ``LocalEndpoints`` that parses bodies with the model
handlers' own ``input_fn``: no emulator, no model to train.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mlops.local.endpoint import INVOKED_VARIANT, MAX_BODY, LocalEndpoints, LocalEndpointServer
from pipeline_steps import inference

ROW = b"4.61512,1,6.907755,0,0,13.73189,1,0,0"
PATH = "/endpoints/mlops-dev-visits/invocations"


class Endpoints:
    """What the HTTP front needs of ``LocalEndpoints``: the model handlers' parsing, no model."""

    capture = SimpleNamespace(close=list)

    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str, **_: Any
    ) -> tuple[bytes, str, str]:
        rows = inference.input_fn(body, content_type)
        return json.dumps({"rows": len(rows)}).encode(), "application/json", "champion"


class Errors(logging.Handler):
    """Error records of the endpoint's logger (a request's thread crashing logs one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[LocalEndpointServer, Errors]]:
    errors = Errors()
    logger = logging.getLogger("mlops.local.endpoint")
    logger.addHandler(errors)
    started = LocalEndpointServer(cast(LocalEndpoints, Endpoints()), idle_timeout=0.5).start()
    yield started, errors
    started.stop()
    logger.removeHandler(errors)


@pytest.fixture
def server(running: tuple[LocalEndpointServer, Errors]) -> Iterator[LocalEndpointServer]:
    started, errors = running
    errors.records.clear()
    yield started
    assert [r.getMessage() for r in errors.records] == []  # nothing crashed serving it


def exchange(server: LocalEndpointServer, head: list[str], body: bytes = b"") -> Any:
    """Send a request as written (headers and all) and read the answer: status, headers, JSON."""
    host, port = server.server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=5) as connection:
        request = "\r\n".join([f"POST {PATH} HTTP/1.1", "Host: local", *head, "", ""])
        connection.sendall(request.encode("utf-8") + body)
        response = http.client.HTTPResponse(connection)
        response.begin()
        raw = response.read()
        return response.status, response, raw


def assert_one_line_json(raw: bytes) -> dict[str, Any]:
    text = raw.decode()
    assert "\n" not in text
    assert "Traceback" not in text
    answer: dict[str, Any] = json.loads(text)
    assert isinstance(answer["message"], str)
    assert answer["message"]
    return answer


def served(server: LocalEndpointServer) -> None:
    status, response, raw = exchange(
        server, ["Content-Type: text/csv", f"Content-Length: {len(ROW)}"], ROW
    )
    assert (status, json.loads(raw)) == (200, {"rows": 1})
    assert response.getheader(INVOKED_VARIANT) == "champion"


@pytest.mark.parametrize(
    ("lengths", "body", "status", "says"),
    [
        (["abc"], ROW, 400, "Content-Length must be one number"),
        (["-5"], ROW, 400, "Content-Length must be one number"),
        (["+5"], ROW, 400, "Content-Length must be one number"),
        (["5.0"], ROW, 400, "Content-Length must be one number"),
        ([""], ROW, 400, "Content-Length must be one number"),
        (["0x10"], ROW, 400, "Content-Length must be one number"),
        (["١٢"], ROW, 400, "Content-Length must be one number"),  # digits, not ASCII ones
        ([f"{len(ROW)}", f"{len(ROW) + 1}"], ROW, 400, "Content-Length must be one number"),
        ([f"{len(ROW)}, {len(ROW)}"], ROW, 400, "Content-Length must be one number"),
        (["100"], ROW, 400, "Content-Length says 100 bytes"),  # more than will arrive
        ([str(MAX_BODY + 1)], b"", 413, f"at most {MAX_BODY} bytes"),
        (["9" * 5000], b"", 413, f"at most {MAX_BODY} bytes"),  # beyond int()'s digit limit
    ],
    ids=lambda value: value[0][:12] if isinstance(value, list) else "",
)
def test_a_body_not_as_stated_is_refused(
    server: LocalEndpointServer, lengths: list[str], body: bytes, status: int, says: str
) -> None:
    head = ["Content-Type: text/csv", *(f"Content-Length: {v}" for v in lengths)]
    got, response, raw = exchange(server, head, body)
    assert got == status, raw
    assert says in assert_one_line_json(raw)["message"]
    assert response.getheader("Content-Type") == "application/json"
    served(server)  # and the server goes on, on a new connection


def test_a_chunked_body_is_refused(server: LocalEndpointServer) -> None:
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(ROW), ROW)
    status, _, raw = exchange(
        server, ["Content-Type: text/csv", "Transfer-Encoding: chunked"], chunked
    )
    assert status == 411
    assert "Content-Length" in assert_one_line_json(raw)["message"]
    served(server)


def test_the_same_length_twice_is_one_length(server: LocalEndpointServer) -> None:
    head = ["Content-Type: text/csv", f"Content-Length: {len(ROW)}", f"Content-Length: {len(ROW)}"]
    status, _, raw = exchange(server, head, ROW)
    assert (status, json.loads(raw)) == (200, {"rows": 1})


BAD_BODIES = [
    ("text/csv", b"", "no rows"),
    ("text/csv", b"\n\n  \n", "no rows"),
    ("text/csv", b"1,2,3", "expected 9 values"),
    ("text/csv", ROW.replace(b"4.61512", b"abc"), "not a number"),
    ("text/csv", ROW.replace(b"4.61512", b"nan"), "not a finite number"),
    ("text/csv", ROW.replace(b"4.61512", b"1e999"), "not a finite number"),
    ("text/csv", b"\xff\xfe\x00garbage", "not UTF-8"),
    ("text/csv", b"\n".join([ROW] * (inference.MAX_ROWS + 1)), "at most"),
    ("text/csv", b'"unterminated,' + ROW, "expected 9 values"),
    ("application/json", b"{", "not valid JSON"),
    ("application/json", b"", "not valid JSON"),
    ("application/json", b"null", "expected"),
    ("application/json", b"42", "expected"),
    ("application/json", b'"row"', "expected"),
    ("application/json", b"[]", "no rows"),
    ("application/json", b'{"instances": 5}', "expected"),
    ("application/json", b'{"instances": [[1, 2]]}', "expected 9 values"),
    ("application/json", b'[{"a": 1}]', "missing feature"),
    ("application/json", b"[[null, 1, 6.9, 0, 0, 13.7, 1, 0, 0]]", "not a number"),
    ("application/json", b"[[NaN, 1, 6.9, 0, 0, 13.7, 1, 0, 0]]", "not a finite number"),
    ("application/json", b"[[1e999, 1, 6.9, 0, 0, 13.7, 1, 0, 0]]", "not a finite number"),
    ("application/json", b"[[[1], 1, 6.9, 0, 0, 13.7, 1, 0, 0]]", "not a number"),
    ("application/x-npy", ROW, "unsupported content type"),
]


@pytest.mark.parametrize(("content_type", "body", "says"), BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_a_body_the_model_cannot_read_is_its_client_error(
    server: LocalEndpointServer, content_type: str, body: bytes, says: str
) -> None:
    head = [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    status, response, raw = exchange(server, head, body)
    assert status == 424, raw
    answer = assert_one_line_json(raw)
    assert says in answer["message"]
    assert answer["OriginalStatusCode"] in (400, 500)
    assert response.getheader("x-amzn-ErrorType") == "ModelError"
    served(server)


def test_json_nested_past_the_parser_s_depth_is_answered(
    running: tuple[LocalEndpointServer, Errors],
) -> None:
    """Legal JSON nested deeper than the parser goes is the caller's error, as any bad body:
    424 ModelError with OriginalStatusCode 400, nothing logged as a model failure."""
    body = b"[" * 100_000 + b"]" * 100_000
    head = ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    server, errors = running
    errors.records.clear()
    status, _, raw = exchange(server, head, body)
    assert status == 424
    answer = assert_one_line_json(raw)
    assert answer["OriginalStatusCode"] == 400
    assert "nested too deeply" in answer["message"]
    served(server)
    assert [r.getMessage() for r in errors.records] == []
