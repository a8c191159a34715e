"""Captured records of the local endpoint, written to S3 as SageMaker's data capture writes them.

Capture durability. Captured records are buffered per variant and written as one new S3 object
per batch: at once at ``max_records`` (200), else by a background timer within
``max_age_seconds`` (5 s) of the batch's first record (SageMaker's own delay is minutes).
``LocalEndpointServer.stop()`` (``mlops local serve`` on SIGTERM and SIGINT) refuses new
requests (503), lets those in flight finish and writes what is buffered: after a clean stop
every answered request is captured exactly once. One writer at a time takes each batch, so no
record is written twice; a failed write keeps its batch, its object key and body fixed at the
first attempt, for the next flush (the timer retries after ``max_age_seconds``): a write that
failed after S3 stored it is overwritten by the same object. A ``kill -9`` (a crash, a lost
machine) loses what was buffered since the last write - at most ``max_age_seconds`` of requests
and the batch being written, plus any batch whose write was failing; everything older is in S3.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from mlops.adapters import s3io
from mlops.core import capture

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

log = logging.getLogger("mlops.local.endpoint")


class CaptureRoute(Protocol):
    """Where an endpoint's captured records go (the endpoint's route has these)."""

    @property
    def name(self) -> str: ...
    @property
    def capture_uri(self) -> str | None: ...
    @property
    def capture_kms_key(self) -> str | None: ...


# Entered around what SageMaker does with the model role, named: "package", "model", "capture".
RoleScope = Callable[[str], AbstractContextManager[object]]


def _in_role(scope: RoleScope | None, what: str) -> AbstractContextManager[object]:
    return scope(what) if scope else nullcontext()


_Destination = tuple[str, str, str, str | None]  # capture URI, endpoint, variant, KMS key


@dataclass
class _Buffer:
    lines: list[str] = field(default_factory=list)
    started: float = 0.0


@dataclass(eq=False)
class _Batch:
    """Records sealed for one S3 object. Its key and body are fixed at the first attempt, so a
    retry writes the same object again: a PUT that failed after S3 stored it is not duplicated."""

    destination: _Destination
    lines: list[str]
    object_key: str | None = None
    body: bytes = b""


class CaptureWriteError(RuntimeError):
    """Some captured records could not be written; they are kept for the next flush."""


class CaptureWriter:
    """Buffers captured records per variant and writes them as new S3 objects: when a buffer
    holds ``max_records``, and by a background timer within ``max_age_seconds`` of a buffer's
    first record (the timer thread starts with the first record). ``close()`` stops the timer
    and writes everything; a record added after ``close()`` is written at once."""

    def __init__(
        self,
        s3: S3Client,
        *,
        max_records: int = 200,
        max_age_seconds: float = 5.0,
        model_role: RoleScope | None = None,
    ) -> None:
        self.s3 = s3
        self.model_role = model_role
        self.max_records = max_records
        self.max_age_seconds = max_age_seconds
        self._buffers: dict[_Destination, _Buffer] = {}
        self._sealed: list[_Batch] = []  # to write, in order; a failed write stays here
        self._lock = threading.Lock()  # buffers and batches only, never held during a write
        self._writing = threading.Lock()  # one writer at a time: each batch is written once
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._retry_at = 0.0  # after a failed write, the timer retries no sooner than this
        self.files_written: list[str] = []

    def add(self, route: CaptureRoute, variant: str, line: str) -> None:
        if route.capture_uri is None:
            return
        key = (route.capture_uri, route.name, variant, route.capture_kms_key)
        with self._lock:
            buffer = self._buffers.get(key)
            wake = buffer is None  # the timer learns of the new buffer's deadline
            if buffer is None:
                buffer = self._buffers[key] = _Buffer(started=time.monotonic())
            buffer.lines.append(line)
            if len(buffer.lines) >= self.max_records:
                self._sealed.append(_Batch(key, self._buffers.pop(key).lines))
                wake = True
            closed = self._closed
            if not closed and self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._run, name="capture-flusher", daemon=True
                )
                self._flusher.start()
        if closed:
            self.flush()
        elif wake:
            self._wake.set()

    @property
    def pending_records(self) -> int:
        """Records captured and not written yet (buffered, or in a batch whose write failed)."""
        with self._lock:
            return sum(len(b.lines) for b in self._buffers.values()) + sum(
                len(b.lines) for b in self._sealed
            )

    def flush(self) -> list[str]:
        """Write every captured record now; the files written by this call. Raises
        ``CaptureWriteError`` when a write failed (its records are kept for the next flush)."""
        return self._write(due_only=False)

    def close(self) -> list[str]:
        """Stop the timer and write everything (``flush``'s result and errors)."""
        with self._lock:
            self._closed = True
            flusher = self._flusher
        self._wake.set()
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()
        return self.flush()

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before reading the deadlines: a later add() wakes us again
            with self._lock:
                if self._closed:
                    return
                due = [b.started + self.max_age_seconds for b in self._buffers.values()]
                if self._sealed:
                    due.append(self._retry_at)
            delay = min(due) - time.monotonic() if due else None
            if delay is None or delay > 0:
                self._wake.wait(delay)
                continue
            try:
                self._write(due_only=True)
            except CaptureWriteError as exc:
                log.warning("%s; retrying in %.1f s", exc, self.max_age_seconds)
            except Exception:  # the timer must outlive any surprise
                log.exception("data capture flush failed")
                with self._lock:
                    self._retry_at = time.monotonic() + self.max_age_seconds

    def _write(self, *, due_only: bool) -> list[str]:
        with self._writing:
            now = time.monotonic()
            with self._lock:
                for key, buffer in list(self._buffers.items()):
                    if not due_only or buffer.started + self.max_age_seconds <= now:
                        self._sealed.append(_Batch(key, self._buffers.pop(key).lines))
                batches = list(self._sealed)
                # Being written now: the timer must not take them for a failed write that is
                # due again (it would write them as soon as this write let go).
                self._retry_at = now + self.max_age_seconds
            written: list[str] = []
            failures: list[tuple[_Batch, Exception]] = []
            for batch in batches:
                try:
                    uri = self._put(batch)
                except Exception as exc:  # kept, and retried by the next flush
                    failures.append((batch, exc))
                    continue
                with self._lock:
                    self._sealed.remove(batch)
                    self.files_written.append(uri)
                written.append(uri)
            with self._lock:
                self._retry_at = time.monotonic() + self.max_age_seconds if failures else 0.0
        if failures:
            records = sum(len(batch.lines) for batch, _ in failures)
            raise CaptureWriteError(
                f"data capture: {len(failures)} file(s) with {records} record(s) not written "
                f"(kept for the next flush): {failures[0][1]}"
            ) from failures[0][1]
        return written

    def _put(self, batch: _Batch) -> str:
        uri, endpoint, variant, kms_key = batch.destination
        bucket, prefix = s3io.split_uri(uri)
        if batch.object_key is None:
            batch.object_key = capture.object_key(prefix, endpoint, variant, datetime.now(UTC))
            batch.body = ("\n".join(batch.lines) + "\n").encode()
        request: PutObjectRequestTypeDef = {
            "Bucket": bucket,
            "Key": batch.object_key,
            "Body": batch.body,
            "ContentType": "application/jsonl",
        }
        if kms_key:
            request["ServerSideEncryption"] = "aws:kms"
            request["SSEKMSKeyId"] = kms_key
        with _in_role(self.model_role, "capture"):
            self.s3.put_object(**request)
        return f"s3://{bucket}/{batch.object_key}"
